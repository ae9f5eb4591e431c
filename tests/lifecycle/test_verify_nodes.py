"""Node checks: hosts from the real example inventory, and the testinfra judging run for real on
this machine through testinfra's local backend."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lifecycle_helpers import REPO

from kubeforge.errors import KubeforgeError
from kubeforge.verify import nodes
from kubeforge.verify.checks import NODE, collect

INVENTORY = str(REPO / "inventory" / "onprem")


def test_node_checks_come_from_the_inventory(training):
    checks = [c for c in collect(training.plan, training, inventory=INVENTORY) if c.kind == NODE]
    assert [c.name for c in checks] == ["nodes/cp1", "nodes/gpu1", "nodes/gpu2"]
    by = {c.name: c for c in checks}
    assert "nvidia runtime" in by["nodes/gpu1"].description
    assert "nvidia" not in by["nodes/cp1"].description


def test_a_broken_inventory_is_a_usage_error(tmp_path):
    bad = tmp_path / "hosts.yml"
    bad.write_text("all: [this is not an inventory\n")
    with pytest.raises(KubeforgeError) as err:
        nodes.inventory_hosts(str(bad))
    assert err.value.exit_code == 2 and err.value.field == "--inventory"


def test_host_judging_runs_for_real_on_this_machine():
    import testinfra

    host = testinfra.get_host("local://")
    problems = nodes.host_problems(host, gpu=True)
    swaps = Path("/proc/swaps").read_text().strip().splitlines()[1:]
    assert any(p.startswith("swap is on") for p in problems) == bool(swaps)
    if shutil.which("nvidia-smi") is None:
        assert any(p.startswith("nvidia-smi failed") for p in problems)
    if not Path("/etc/cdi/nvidia.yaml").exists() and not Path("/var/run/cdi/nvidia.yaml").exists():
        assert any(p.startswith("no CDI spec") for p in problems)
    assert all(isinstance(p, str) and p for p in problems)


def test_verify_with_a_missing_inventory_exits_2(capsys):
    from kubeforge.cli import main

    rc = main(["verify", "-p", "base", "--inventory", "no/such/inventory", "--list"])
    err = capsys.readouterr().err
    assert rc == 2 and "error: no/such/inventory: --inventory: the inventory does not exist" in err
