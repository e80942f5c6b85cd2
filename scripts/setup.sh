#!/usr/bin/env bash
# Installs what the project needs (Node >= 22 and pnpm into .tools/ when missing, the workspace's
# packages, promtool) and starts the services. Idempotent; the README's commands call it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
# shellcheck source=lib/toolchain.sh
source "$here/lib/toolchain.sh"
eventlane_toolchain

if ! command -v promtool >/dev/null 2>&1; then
  echo "setup: installing promtool (Debian package prometheus)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
    || echo "setup: could not install prometheus; promtool checks will fail" >&2
fi

pnpm install --frozen-lockfile --reporter=append-only 2>&1 | tail -n 3
bash "$here/services.sh"
