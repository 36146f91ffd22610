#!/usr/bin/env bash
# Installs what the team tests (tests/llm/test_team.py) need: redis-server, as a user
# would (Debian's package with apt-get; Homebrew's on macOS). Each test starts its own server on a Unix socket
# with persistence off and stops it; none uses a system service. Idempotent.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 && command -v brew >/dev/null 2>&1; then
  brew install redis
  exit 0
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]
