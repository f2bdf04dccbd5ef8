#!/usr/bin/env bash
# What the test suite needs beyond the virtual environment (make test runs this first):
# PostgreSQL and Redis on 127.0.0.1 for tests/integration/test_distributed.py, started if they are down,
# and Debian's docker-compose 1.29 for tests/deploy/test_compose.py (it validates the compose file
# without an engine), installed if it is missing.
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
    for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi
echo "redis 127.0.0.1:6379 - $(redis-cli -h 127.0.0.1 -p 6379 ping)"

if ! command -v docker-compose >/dev/null; then
    echo "installing Debian's docker-compose (validates docker-compose.yaml)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null; }
fi
docker-compose version --short
