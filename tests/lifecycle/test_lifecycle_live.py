"""verify, teardown and upgrade against the cluster KUBECONFIG names (skipped, with the reason,
when there is none). Written for a real cluster with the profile installed:

    KUBECONFIG=~/.kube/config KUBEFORGE_LIVE_PROFILE=dev pytest tests/lifecycle/test_lifecycle_live.py -ra

Teardown deletes the platform, so it runs only with KUBEFORGE_LIVE_TEARDOWN=1, and last.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest

from kubeforge import api
from kubeforge.cli import main
from kubeforge.verify.cluster import connect, installed_components, live_cluster_reason

REASON = live_cluster_reason()
PROFILE = os.environ.get("KUBEFORGE_LIVE_PROFILE", "dev")
pytestmark = [pytest.mark.live, pytest.mark.skipif(REASON is not None, reason=f"no live cluster: {REASON}")]


@pytest.fixture(scope="module")
def plan():
    return api.plan(api.load_profile(PROFILE))


def test_the_profile_is_installed(plan):
    found = installed_components(connect())
    missing = [n for n in plan.components if n not in found]
    assert not missing, f"install {PROFILE} first (kubeforge up / render + kubectl apply); missing {missing}"
    for name, version in found.items():
        if name in plan.components:
            assert version == plan.components[name].version


def test_verify_passes_and_writes_junit_and_json(tmp_path):
    out, junit = tmp_path / "verify.json", tmp_path / "junit.xml"
    rc = main(["verify", "-p", PROFILE, "--json-file", str(out), "--junit", str(junit)])
    summary = json.loads(out.read_text())
    assert rc == 0, json.dumps([r for r in summary["results"] if r["status"] == "failed"], indent=1)
    assert summary["ok"] is True and summary["failures"] == []
    suite = ET.parse(junit).getroot().find("testsuite")
    assert int(suite.get("tests")) == len(summary["results"]) and suite.get("failures") == "0"


def test_teardown_dry_run_resolves_live_objects(capsys):
    rc = main(["teardown", "-p", PROFILE, "--dry-run", "--json", "--kubeconfig", os.environ["KUBECONFIG"]])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    phases = [s["phase"] for s in data["steps"]]
    assert phases[0] == "verify-leftovers" and phases[-1] == "crds"
    webhooks = [o for s in data["steps"] if s["phase"] == "webhooks" for o in s["objects"]]
    assert webhooks, "the installed platform has webhook configurations to remove before its services"


def test_upgrade_to_the_installed_profile_is_a_clean_no_op(capsys):
    rc = main(["upgrade", "-p", PROFILE, "--from", PROFILE, "--dry-run", "--json",
               "--kubeconfig", os.environ["KUBECONFIG"]])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["ok"] is True
    assert all(c["change"] == "same" for c in data["components"])
    for c in data["components"]:
        for crd in c["crds"]:
            assert crd["stored_known"], "stored versions are read from the cluster"


@pytest.mark.skipif(os.environ.get("KUBEFORGE_LIVE_TEARDOWN") != "1",
                    reason="teardown deletes the platform: set KUBEFORGE_LIVE_TEARDOWN=1 to run it")
def test_zz_teardown_removes_everything(plan, capsys):
    rc = main(["teardown", "-p", PROFILE, "--yes", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, report["stuck"]
    left = installed_components(connect())
    assert not [n for n in plan.components if n in left]
