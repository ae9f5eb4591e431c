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


def _subnet() -> str:
    """KUBEFORGE_TEST_SUBNET, else 198.51.100.0/24; under pytest-xdist a /26 of it per worker."""
    if os.environ.get("KUBEFORGE_TEST_SUBNET"):
        return os.environ["KUBEFORGE_TEST_SUBNET"]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return f"198.51.100.{64 * (int(worker[2:]) % 4)}/26"
    return hostlab.DEFAULT_SUBNET


@pytest.fixture(scope="session")
def nodes_lab(tmp_path_factory, gpu_fixtures) -> NodesLab:
    why = hostlab.missing_requirements()
    if why:
        pytest.skip(f"real test hosts unavailable: {why}")
    names = CONTROL_PLANE + GPU_WORKERS
    lab = hostlab.Lab(names, subnet=_subnet())
    with lab:
        standin_repo.build(lab.repo_dir, gpu_fixtures / GPU_FIXTURE)
        inv = write_inventory(tmp_path_factory.mktemp("inventory"), lab, CONTROL_PLANE, GPU_WORKERS)
        # testinfra's ansible backend reuses one ssh connection per host (ControlPersist): 10x faster.
        cfg = inv / "testinfra-ansible.cfg"
        cfg.write_text("[ssh_connection]\nssh_args = -o ControlMaster=auto -o ControlPersist=120s\n"
                       "control_path = %(directory)s/cm-%%h\n"
                       f"[persistent_connection]\ncontrol_path_dir = {lab.workdir}\n")
        # testinfra calls ansible-inventory, which sits beside this interpreter.
        env = {"ANSIBLE_CONFIG": str(cfg), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield NodesLab(lab=lab, inventory=inv, artifacts=inv / "artifacts")
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
