"""ansible-lint with the production profile on the roles and the playbooks."""
from __future__ import annotations

import os
import subprocess
import sys

from kubeforge.nodes.runner import collections_path


def test_ansible_lint_production_profile(repo_root):
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": collections_path(), "NO_COLOR": "1"}
    env.pop("ANSIBLE_CONFIG", None)   # the repository's ansible.cfg, as users run it
    proc = subprocess.run([sys.executable, "-m", "ansiblelint", "--offline", "--profile", "production",
                           "roles", "playbooks"], cwd=repo_root, env=env, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert "couldn't resolve module" not in out, "collections missing: run scripts/ci-hosts-deps.sh\n" + out
    assert proc.returncode == 0, out
    assert "Profile 'production' was required, and it passed" in out
