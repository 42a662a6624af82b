#!/usr/bin/env bash
# Make sure the Redis and RabbitMQ the tests use answer (PMAP_TEST_REDIS_URL, PMAP_TEST_RABBITMQ_URL; the
# defaults are this machine's 127.0.0.1:6379 and 127.0.0.1:5672); install them from Debian's packages when
# missing and start them when stopped. Exits non-zero with a reason when one cannot be reached.
set -euo pipefail

answers() {  # host port
  python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

wait_for() {  # host port name
  for _ in $(seq 1 60); do answers "$1" "$2" && return 0; sleep 1; done
  echo "$3 is not reachable at $1:$2" >&2
  return 1
}

apt_install() {
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
  else
    echo "install $* (Debian: apt-get install $*)" >&2
    return 1
  fi
}

if ! answers 127.0.0.1 6379; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  echo "starting Redis on 127.0.0.1:6379"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for 127.0.0.1 6379 Redis
fi

if ! answers 127.0.0.1 5672; then
  command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
  echo "starting RabbitMQ on 127.0.0.1:5672"
  rabbitmq-server -detached
  wait_for 127.0.0.1 5672 RabbitMQ
fi
