# Sourced by the project's scripts: puts Node >= 22 and the pinned pnpm on PATH.
# Where the machine's node is older than 22, Node 24 comes from the npm registry (the `node` package
# ships the binary) into .tools/, together with pnpm; nothing is installed outside the repository.
EVENTLANE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EVENTLANE_TOOLS="$EVENTLANE_ROOT/.tools"
PNPM_VERSION=12.4.2
NODE_PACKAGE=node@24

eventlane_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

eventlane_toolchain() {
  export PATH="$EVENTLANE_TOOLS/node_modules/.bin:$PATH"
  local want_node=0
  [ "$(eventlane_node_major)" -ge 22 ] || want_node=1
  if [ "$want_node" = 1 ] || ! pnpm --version 2>/dev/null | grep -qx "$PNPM_VERSION"; then
    local pkgs=("pnpm@$PNPM_VERSION")
    [ "$want_node" = 1 ] && pkgs+=("$NODE_PACKAGE")
    echo "eventlane: installing ${pkgs[*]} into .tools/ (npm registry)" >&2
    mkdir -p "$EVENTLANE_TOOLS"
    [ -f "$EVENTLANE_TOOLS/package.json" ] || echo '{"private":true}' > "$EVENTLANE_TOOLS/package.json"
    npm install --no-audit --no-fund --loglevel=error --prefix "$EVENTLANE_TOOLS" "${pkgs[@]}" >&2 || return 1
    hash -r
  fi
  [ "$(eventlane_node_major)" -ge 22 ] || { echo "eventlane: node >= 22 is required, found $(node --version)" >&2; return 1; }
  export npm_config_update_notifier=false
}
