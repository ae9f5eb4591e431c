"""The real thing: `kubeforge preview -e dev` with the real `pulumi` CLI against a real cluster.

Runs only when a `pulumi` executable is on PATH and KUBECONFIG names a reachable cluster; skipped
otherwise, with the reason in the pytest summary (-ra). State goes to a temporary file backend and
the stack files to a temporary copy of stacks/platform, so nothing in the checkout changes.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _cluster_problem() -> str | None:
    kc = os.environ.get("KUBECONFIG", "")
    if not kc or not any(Path(p).is_file() for p in kc.split(os.pathsep)):
        return "KUBECONFIG names no kubeconfig file"
    try:
        from kubernetes import client, config

        config.load_kube_config()
        client.VersionApi().get_code(_request_timeout=5)
    except Exception as exc:  # any failure to reach it is a reason to skip, printed
        return f"the cluster in KUBECONFIG is not reachable: {type(exc).__name__}: {str(exc)[:120]}"
    return None


@pytest.mark.live
def test_real_pulumi_preview_of_dev(tmp_path, mirror_dir):
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        pytest.skip("no `pulumi` executable on PATH (install: curl -fsSL https://get.pulumi.com | sh)")
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)
    home = tmp_path / "home"
    (home / "stacks").mkdir(parents=True)
    shutil.copytree(REPO / "stacks" / "platform", home / "stacks" / "platform",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for d in ("components", "profiles", ".venv"):
        (home / d).symlink_to(REPO / d)
    (tmp_path / "state").mkdir()
    env = {**os.environ, "KUBEFORGE_HOME": str(home), "KUBEFORGE_MIRROR": str(mirror_dir),
           "PULUMI_CONFIG_PASSPHRASE": "kubeforge-live-test", "PULUMI_SKIP_UPDATE_CHECK": "true"}
    out = subprocess.run([sys.executable, "-m", "kubeforge.cli", "preview", "-e", "dev", "--json",
                          "--backend", (tmp_path / "state").as_uri()],
                         env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout)
    assert sum(result["changes"].values()) > 0
    assert result["components"], "no per-component progress was recorded"
