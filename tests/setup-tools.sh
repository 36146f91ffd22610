#!/usr/bin/env bash
# System tools some tests use, installed as a user would (idempotent; the README's test command runs it):
#  - redis-server: the team tests (tests/llm/test_team.py) start their own on a Unix socket with
#    persistence off, and stop it; none uses a system service.
#  - promtool (Debian's prometheus package): `promtool check metrics` judges perfd's Prometheus
#    output and a scrape of the daemon's /metrics endpoint.
#  - zsh and fish: the completion tests (tests/daemon/test_completion_shells.py) run each shell's
#    completion against a real workspace (bash is there already).
# Debian's packages with apt-get; Homebrew's on macOS. A test whose tool is missing is skipped
# with the reason, so the suite still runs without root.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1; }
if ! have apt-get && have brew; then
  have redis-server || brew install redis
  have promtool || brew install prometheus
  have zsh || brew install zsh
  have fish || brew install fish
  exit 0
fi
need=()
have redis-server || [ -x /usr/bin/redis-server ] || need+=(redis-server)
have promtool || need+=(prometheus)
have zsh || need+=(zsh)
have fish || need+=(fish)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # policy-rc.d-free containers may try to start the packaged servers: they are not needed
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
promtool --version 2>&1 | head -1
