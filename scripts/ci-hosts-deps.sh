#!/usr/bin/env bash
# Everything the real-test-host suite (tests/ansible, `pytest -m hosts`) needs beyond the Python venv,
# on a fresh Debian 12 machine with python3/pip/apt. Idempotent: safe to run on every CI run.
#   - Debian packages: systemd-nspawn, mmdebstrap, ssh client, gpg, dpkg-dev, zstd, iproute2
#   - the Ansible collections the roles use (ansible.posix, community.general), taken from the
#     pinned `ansible` wheel on PyPI (Galaxy is not reachable here) into the cache directory that
#     ansible.cfg lists in collections_path.
# Usage: scripts/ci-hosts-deps.sh [PYTHON]   (PYTHON defaults to .venv/bin/python, then python3)
set -euo pipefail

ANSIBLE_WHEEL_VERSION=12.3.0   # the `ansible` package whose bundled collections we extract
COLLECTIONS=(ansible/posix community/general)

repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-}"
if [[ -z "$py" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then py="$repo/.venv/bin/python"; else py=python3; fi
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubeforge"

debs=(systemd-container mmdebstrap openssh-client gnupg dpkg-dev zstd iproute2 tar)
missing=()
for d in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q "install ok installed" || missing+=("$d")
done
if ((${#missing[@]})); then
  echo "ci-hosts-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

dest="$cache/ansible/collections"
stamp="$dest/.from-ansible-$ANSIBLE_WHEEL_VERSION"
if [[ ! -e "$stamp" ]]; then
  echo "ci-hosts-deps: extracting ${COLLECTIONS[*]} from ansible==$ANSIBLE_WHEEL_VERSION"
  wheels="$cache/wheels"
  mkdir -p "$wheels"
  whl="$wheels/ansible-$ANSIBLE_WHEEL_VERSION-py3-none-any.whl"
  [[ -e "$whl" ]] || "$py" -m pip download -q --no-deps "ansible==$ANSIBLE_WHEEL_VERSION" -d "$wheels"
  tmp="$(mktemp -d)"
  "$py" - "$whl" "$tmp" "${COLLECTIONS[@]}" <<'PY'
import sys, zipfile
whl, out, *cols = sys.argv[1:]
prefixes = tuple(f"ansible_collections/{c}/" for c in cols)
with zipfile.ZipFile(whl) as z:
    z.extractall(out, [n for n in z.namelist() if n.startswith(prefixes)])
PY
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  mv "$tmp" "$dest"
  touch "$stamp"
fi
echo "ci-hosts-deps: ok (collections in $dest)"
