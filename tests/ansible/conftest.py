"""Fixtures for the real-test-host suite: three booted-systemd hosts, built once per session.

`nodes_lab` boots kf-cp1 (control plane) and kf-gpu1/kf-gpu2 (GPU workers) with hostlab, serves the
stand-in vendor repository on the bridge, writes the test inventory and tears everything down at the
end of the session, also when a test or the build fails.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import hostlab  # noqa: E402
import standin_repo  # noqa: E402
from labinventory import CONTROL_PLANE, GPU_FIXTURE, GPU_WORKERS, NodesLab, write_inventory  # noqa: E402


@pytest.fixture(scope="session")
def nodes_lab(tmp_path_factory, gpu_fixtures) -> NodesLab:
    why = hostlab.missing_requirements()
    if why:
        pytest.skip(f"real test hosts unavailable: {why}")
    names = CONTROL_PLANE + GPU_WORKERS
    lab = hostlab.Lab(names, subnet=os.environ.get("KUBEFORGE_TEST_SUBNET", hostlab.DEFAULT_SUBNET))
    with lab:
        standin_repo.build(lab.repo_dir, gpu_fixtures / GPU_FIXTURE)
        inv = write_inventory(tmp_path_factory.mktemp("inventory"), lab, CONTROL_PLANE, GPU_WORKERS)
        # testinfra's ansible backend reuses one ssh connection per host (ControlPersist): 10x faster.
        cfg = inv / "testinfra-ansible.cfg"
        cfg.write_text("[ssh_connection]\nssh_args = -o ControlMaster=auto -o ControlPersist=120s\n"
                       "control_path = %(directory)s/cm-%%h\n"
                       f"[persistent_connection]\ncontrol_path_dir = {lab.workdir}\n")
        old = os.environ.get("ANSIBLE_CONFIG")
        os.environ["ANSIBLE_CONFIG"] = str(cfg)
        try:
            yield NodesLab(lab=lab, inventory=inv, artifacts=inv / "artifacts")
        finally:
            if old is None:
                os.environ.pop("ANSIBLE_CONFIG", None)
            else:
                os.environ["ANSIBLE_CONFIG"] = old
