#!/usr/bin/env bash
# Start the local PostgreSQL and Redis if they are down: the prod-profile tests talk to both,
# and the nightly's online_features task (make run, make serve) to Redis. Same commands as
# the machine's own start-up; a no-op when both already answer. Redis, which the embedded
# default needs too, is installed from Debian's packages when it is missing (as root).
set -uo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "ensure-services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
fi
if ! redis_up && ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-services: installing Debian's redis-server (the online feature store)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >/dev/null; } \
      || echo "ensure-services: could not install redis-server"
  else
    echo "ensure-services: redis-server is not installed; install it (Debian: apt-get install redis-server)"
  fi
fi
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "ensure-services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  fi
fi
pg_up && echo "ensure-services: PostgreSQL up on 127.0.0.1:5432" || echo "ensure-services: PostgreSQL NOT available"
redis_up && echo "ensure-services: Redis up on 127.0.0.1:6379" || echo "ensure-services: Redis NOT available"
exit 0
