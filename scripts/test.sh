#!/usr/bin/env bash
# The whole test suite, as README's `make test` runs it. It installs what the test hosts need
# (Debian packages, as root) first, then runs pytest; pytest's "no tests" (exit 5) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/ci-hosts-deps.sh ]; then
  if [ "$(id -u)" = 0 ]; then
    bash scripts/ci-hosts-deps.sh .venv/bin/python
  else
    echo "test.sh: not root: the test-host tests (marker 'hosts') will skip" >&2
  fi
fi
rc=0
.venv/bin/pytest -q "$@" || rc=$?
if [ "$rc" = 5 ]; then
  echo "test.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
