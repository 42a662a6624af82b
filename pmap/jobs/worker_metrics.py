"""A ``pmapctl worker``'s Prometheus metrics: its pool processes each count their jobs, decrypts and data keys (the
same :class:`pmap.core.metrics.Metrics` as ``pmapctl serve``), and the worker's main process serves their sum at
``/metrics`` on a port of its own (``--metrics-port``).

The pool processes are forked and re-forked by Celery, so they cannot each answer a scrape: they count into files of
a private directory (prometheus_client's multiprocess mode, chosen before prometheus_client is first imported), and
the main process adds the files up at each scrape. A pool process that was replaced still counts in the sum, as a
counter should. Like the API's, the endpoint needs no token and holds nothing secret: every label is from a bounded
set and no label carries an id.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from pmap.core.errors import ConfigurationError
from pmap.core.files import private_directory

#: prometheus_client's switch to multiprocess mode (read once, when prometheus_client.values is imported)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(data_dir: Path) -> Path:
    """A fresh private directory under ``data_dir`` that this process and every pool process it forks count into;
    called before anything imports prometheus_client."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("worker metrics must be prepared before prometheus_client is imported")
    directory = Path(tempfile.mkdtemp(prefix="worker-metrics-", dir=private_directory(data_dir)))
    os.environ[MULTIPROCESS_ENV] = str(directory)
    return directory


def serve(host: str, port: int) -> Any:
    """Serve the sum of every process's metrics at ``http://host:port/metrics`` from a thread of this process;
    returns the server (``shutdown()`` stops it)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigurationError(f"the worker's metrics cannot listen on {host}:{port} ({exc.strerror})") from None
    return server


def remove(directory: Path) -> None:
    """Remove the counting directory once the worker has stopped (its counts went with its process)."""
    shutil.rmtree(directory, ignore_errors=True)
