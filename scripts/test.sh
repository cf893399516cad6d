#!/usr/bin/env bash
# Install (idempotent) and run the default test suite: what CI runs.
# Long runs are excluded by default; run them with: .venv/bin/python -m pytest -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
# Optional: a real FUSE network mount (sshfs over loopback) for the network_mount tests, and
# strace for the crash tests that kill the daemon inside one system call;
# they skip cleanly when these packages are unavailable.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! { command -v sshfs && command -v strace; } >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server sshfs strace) >/dev/null 2>&1 || true
fi
exec .venv/bin/python -m pytest "$@"
