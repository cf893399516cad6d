#!/usr/bin/env bash
# Install (idempotent) and run the default test suite: what CI runs.
# Long runs are excluded by default; run them with: .venv/bin/python -m pytest -m slow
#
# What it installs, and says so as it does:
# - the project with the test, yolo, dist, api and s3test extras (scripts/install.sh): yolo brings
#   ultralytics and torch, several GB, for the operator-weights tests; dist (celery, redis-py) the
#   scale-out tests in tests/dist; api (FastAPI, uvicorn, PyJWT) and s3test (boto3, moto's server)
#   tests/api and tests/buckets, which start uvicorn and moto's server on loopback themselves.
#   ANONYMIZER_EXTRAS=none ./scripts/test.sh keeps the CPU-only install, and those tests skip saying why.
# - run as root with apt-get, if missing: the Debian packages openssh-server, sshfs and strace for
#   the network_mount tests (a real sshfs mount over loopback) and the crash tests that kill the
#   daemon inside one system call; redis-server for the scale-out tests (a real broker on loopback,
#   started by the tests themselves; the package's own service is not needed); chromium, the real
#   headless browser that renders the QA report in tests/review.
#   ANONYMIZER_NO_APT=1 skips this; without them those tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."
ANONYMIZER_EXTRAS=${ANONYMIZER_EXTRAS-yolo,dist,api,s3test} ./scripts/install.sh

need=()
command -v sshfs >/dev/null || need+=(sshfs)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v strace >/dev/null || need+=(strace)
command -v chromium >/dev/null || need+=(chromium)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${ANONYMIZER_NO_APT:-0}" != 1 ]; then
    log=$(mktemp -t anonymizer-apt.XXXXXX)
    echo "test.sh: installing Debian packages ${need[*]} with apt-get (ANONYMIZER_NO_APT=1 skips this)" >&2
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >"$log" 2>&1; then
      echo "test.sh: installed ${need[*]}" >&2
      rm -f "$log"
    else
      echo "test.sh: apt-get install ${need[*]} FAILED (log: $log); the tests that need them will skip" >&2
    fi
  else
    why="not root, or no apt-get"
    [ "${ANONYMIZER_NO_APT:-0}" = 1 ] && why="ANONYMIZER_NO_APT=1"
    echo "test.sh: missing ${need[*]}, not installed ($why); the tests that need them will skip" >&2
  fi
fi
exec "${ANONYMIZER_VENV:-.venv}/bin/python" -m pytest "$@"
