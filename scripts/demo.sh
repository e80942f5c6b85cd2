#!/usr/bin/env bash
# The main job: the hotel-booking demo end to end (API, relay, three consumers, real PostgreSQL and
# Kafka). Installs and starts what it needs. Flags go to the demo: --kill-relay, --bookings N, --keep.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
bash scripts/setup.sh
source scripts/lib/toolchain.sh && eventlane_toolchain
exec node --conditions=eventlane-source --no-warnings examples/hotel-booking/scripts/demo.ts "$@"
