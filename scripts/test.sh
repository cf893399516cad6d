#!/usr/bin/env bash
# Install (idempotent) and run the default test suite: what CI runs.
# Long runs are excluded by default; run them with: .venv-test/bin/python -m pytest -m slow
#
# The tests get an environment of their own, ./.venv-test (ANONYMIZER_TEST_VENV moves it): the
# product's ./.venv, which the quick start installs CPU-only at about 1 GB, is never touched.
#
# What it installs, and says so as it does:
# - into .venv-test, the project with the test, gpu, yolo, scaleout, api, apitest, s3, s3test and
#   browsertest extras
#   (scripts/install.sh): gpu (torch, onnx2torch) for the test that the torch path masks what
#   onnxruntime masks, run on the CPU; yolo brings ultralytics and torch, several GB, for the operator-weights
#   tests; scaleout (celery, redis-py) the scale-out tests in tests/scaleout; api (FastAPI, uvicorn,
#   PyJWT), apitest (schemathesis, the fuzzer), s3 (boto3) and s3test (moto's server) tests/api and
#   tests/buckets, which start uvicorn and moto's server on loopback themselves.
#   browsertest (Playwright, no browser download) drives Debian's chromium in the review editor's test.
#   ANONYMIZER_EXTRAS=none ./scripts/test.sh keeps the CPU-only install, and those tests skip
#   saying why.
# - run as root with apt-get, if missing: the Debian packages openssh-server, sshfs and strace for
#   the network_mount tests (a real sshfs mount over loopback) and the crash tests that kill the
#   daemon inside one system call; redis-server for the scale-out tests (a real broker on loopback,
#   started by the tests themselves); chromium, the real headless browser that renders the QA
#   report in tests/review. The tests start their own sshd and redis-server on free loopback ports,
#   so the packages' services are neither started by the install nor left enabled: a policy-rc.d
#   refuses the start, and the units this script's install enabled are disabled again.
#   ANONYMIZER_NO_APT=1 skips this; without them those tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${ANONYMIZER_TEST_VENV:-.venv-test}
ANONYMIZER_VENV=$VENV ANONYMIZER_EXTRAS=${ANONYMIZER_EXTRAS-gpu,yolo,scaleout,api,apitest,s3,s3test,browsertest} ./scripts/install.sh

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
    # Services these packages would start and enable (ssh, redis-server): none may be left behind.
    units=(ssh.service redis-server.service)
    enabled_before=()
    if command -v systemctl >/dev/null; then
      for u in "${units[@]}"; do systemctl is-enabled -q "$u" 2>/dev/null && enabled_before+=("$u"); done
    fi
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\n# scripts/test.sh: no service starts while it installs test packages\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      own_policy=1
    fi
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >"$log" 2>&1; then
      echo "test.sh: installed ${need[*]}" >&2
      rm -f "$log"
    else
      echo "test.sh: apt-get install ${need[*]} FAILED (log: $log); the tests that need them will skip" >&2
    fi
    [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    if command -v systemctl >/dev/null; then
      for u in "${units[@]}"; do
        case " ${enabled_before[*]} " in *" $u "*) continue ;; esac
        if systemctl is-enabled -q "$u" 2>/dev/null; then
          systemctl disable -q --now "$u" >/dev/null 2>&1 || systemctl disable -q "$u" >/dev/null 2>&1 || true
          echo "test.sh: $u was enabled by the package install; disabled again (the tests start their own)" >&2
        fi
      done
    fi
  else
    why="not root, or no apt-get"
    [ "${ANONYMIZER_NO_APT:-0}" = 1 ] && why="ANONYMIZER_NO_APT=1"
    echo "test.sh: missing ${need[*]}, not installed ($why); the tests that need them will skip" >&2
  fi
fi
exec "$VENV/bin/python" -m pytest "$@"
