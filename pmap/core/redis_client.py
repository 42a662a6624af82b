"""Redis clients for state several processes share (the webhook budgets, the readiness check).

Every client here fails fast: a short connect and read timeout and no retries, so a Redis that is
down or unreachable costs a caller at most ``timeout`` seconds, never a stall. What a caller does on
failure is its own policy (the webhook budgets fall back to in-process buckets). :func:`location`
names a Redis for logs without its password.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

#: seconds a connect or a command may take before it fails
TIMEOUT = 0.5


def connect(url: str, timeout: float = TIMEOUT) -> redis.Redis:
    """A client (its own connection pool) for ``url``; nothing is connected until the first command."""
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                retry=Retry(NoBackoff(), 0), health_check_interval=0)


def location(url: str) -> str:
    """``redis://host:port/db`` of ``url``, without its user name and password (safe to log)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # an unparseable port: name nothing of it
        return "redis"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"
