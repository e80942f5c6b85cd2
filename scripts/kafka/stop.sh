#!/usr/bin/env bash
# Stops the broker that scripts/kafka/start.sh started on KAFKA_PORT (default 9092). Keeps its data
# unless --purge is given.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${KAFKA_PORT:-9092}
pidfile="$root/.var/kafka-$port/pid"
if [ ! -f "$pidfile" ]; then
  echo "kafka: no broker started here on port $port"
  if [ "${1:-}" = "--purge" ]; then rm -rf "$root/.var/kafka-$port"; fi
  exit 0
fi
pid=$(cat "$pidfile")
if kill "$pid" 2>/dev/null; then
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  echo "kafka: stopped broker $pid on port $port"
fi
rm -f "$pidfile"
if [ "${1:-}" = "--purge" ]; then rm -rf "$root/.var/kafka-$port"; fi
