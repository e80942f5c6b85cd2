#!/usr/bin/env bash
# The whole test suite: install, start the services, lint, type-check, then vitest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
bash scripts/setup.sh
source scripts/lib/toolchain.sh && eventlane_toolchain
echo "== lint (biome)"
pnpm run lint
echo "== typecheck (tsc -b)"
pnpm run typecheck
echo "== tests (vitest)"
pnpm run test "$@"
