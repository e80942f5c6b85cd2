#!/usr/bin/env bash
# Makes sure the real services are up: PostgreSQL on 127.0.0.1:5432 and Kafka on 127.0.0.1:9092.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
pg_isready -h 127.0.0.1 -p 5432

bash "$here/kafka/start.sh"
