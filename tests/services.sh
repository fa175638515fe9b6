#!/usr/bin/env bash
# What the test suite needs beside .venv, started or installed when missing: PostgreSQL on
# 127.0.0.1:5432 (dlt destination, Airflow metadata), Redis on 127.0.0.1:6379 (the Celery broker)
# and Debian's chromium (the browser test; browser builds cannot be downloaded here).
set -euo pipefail

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "tests need the Debian package(s) $*: install them (apt-get install $*) and rerun" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

wait_for() {
  for _ in $(seq 30); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "gave up waiting for: $*" >&2
  exit 1
}

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  wait_for pg_isready -q -h 127.0.0.1 -p 5432
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null || apt_install redis-server
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes
  wait_for redis-cli -h 127.0.0.1 -p 6379 ping
fi

command -v chromium >/dev/null || apt_install chromium
