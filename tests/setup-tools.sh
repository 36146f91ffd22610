#!/usr/bin/env bash
# System tools some tests use, from Debian's packages (idempotent; the README's test command runs it):
#  - promtool (package prometheus): `promtool check metrics` judges perfd's Prometheus output
#    and a scrape of the daemon's /metrics endpoint (tests/daemon/test_daemon.py).
# A test whose tool is missing is skipped with the reason, so the suite still runs without root.
set -euo pipefail
need_apt=()
command -v promtool >/dev/null || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # policy-rc.d-free containers may try to start the packaged Prometheus server: it is not needed
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
promtool --version | head -1
