#!/usr/bin/env bash
# Installs what the team tests (tests/llm/test_team.py) need: Debian's redis-server,
# with apt-get as a user would. Each test starts its own server on a Unix socket
# with persistence off and stops it; none uses a system service. Idempotent.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
  exit 0
fi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]
