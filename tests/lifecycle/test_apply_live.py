"""`kubeforge apply` against the cluster KUBECONFIG names (skipped, with the reason, when there is
none). The dry run touches nothing and always runs; installing runs only with
KUBEFORGE_LIVE_APPLY=1 (it installs the profile on that cluster), e.g. on a throw-away kind cluster:

    kind create cluster && KUBEFORGE_LIVE_APPLY=1 pytest tests/lifecycle/test_apply_live.py -ra
"""
from __future__ import annotations

import json
import os

import pytest

from kubeforge.cli import main
from kubeforge.verify.cluster import live_cluster_reason

REASON = live_cluster_reason()
PROFILE = os.environ.get("KUBEFORGE_LIVE_PROFILE", "dev")
pytestmark = [pytest.mark.live, pytest.mark.skipif(REASON is not None, reason=f"no live cluster: {REASON}")]
INSTALL = pytest.mark.skipif(os.environ.get("KUBEFORGE_LIVE_APPLY") != "1",
                             reason="installs the profile on the cluster: set KUBEFORGE_LIVE_APPLY=1 to run it")


def _apply(capsys, *extra):
    rc = main(["apply", "-p", PROFILE, "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)


def test_dry_run_is_admitted_and_persists_nothing(capsys):
    rc, summary = _apply(capsys, "--dry-run")
    assert rc == 0, summary["errors"]
    assert summary["dry_run"] is True and summary["errors"] == []


@INSTALL
def test_one_pass_then_unchanged(capsys, tmp_path):
    rc, first = _apply(capsys, "--write-lock", str(tmp_path / "lock.json"))
    assert rc == 0, first["stopped"] or first["errors"]
    assert first["errors"] == [], "one pass, zero ordering errors"
    rc, second = _apply(capsys, "--write-lock", str(tmp_path / "lock.json"))
    assert rc == 0 and set(second["counts"]) == {"unchanged"}, second["counts"]
