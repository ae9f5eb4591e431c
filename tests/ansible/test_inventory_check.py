"""Bad inventories and bad variables fail before anything connects, naming the file and the key.

No hosts needed: kubeforge checks the inventory before ansible-runner starts, so nothing here can
reach a machine (the example inventory's addresses are documentation addresses, never contacted).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubeforge.errors import KubeforgeError
from kubeforge.nodes.inventory import check_inventory
from kubeforge.nodes.runner import ROLES, run_playbook


@pytest.fixture
def onprem(repo_root, tmp_path) -> Path:
    dest = tmp_path / "onprem"
    shutil.copytree(repo_root / "inventory" / "onprem", dest)
    return dest


def _edit(path: Path, fn) -> None:
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _error(inv: Path, playbook: str = "site", extravars=None) -> KubeforgeError:
    with pytest.raises(KubeforgeError) as exc:
        check_inventory(inv, playbook, ROLES, extravars)
    return exc.value


def test_example_inventory_passes(repo_root):
    inv = check_inventory(repo_root / "inventory" / "onprem", "site", ROLES)
    assert inv.hosts_of("gpu_nodes") == {"gpu1", "gpu2"}
    assert inv.hosts_of("k8s_cluster") == {"cp1", "gpu1", "gpu2"}
    assert inv.host_vars("gpu1")["nvidia_driver_branch"].value == "580"
    assert "nvidia_driver_branch" not in inv.host_vars("cp1")


def test_test_inventory_group_vars_pass_the_same_checks(repo_root, tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(repo_root / "tests" / "ansible" / "inventory", inv)
    shutil.copy(repo_root / "inventory" / "onprem" / "hosts.yml", inv / "hosts.yml")
    check_inventory(inv, "site", ROLES)


def test_missing_group_names_the_hosts_file_and_group(onprem):
    _edit(onprem / "hosts.yml", lambda d: d["all"]["children"].pop("gpu_nodes"))
    err = _error(onprem)
    assert err.file == str(onprem / "hosts.yml") and err.field == "gpu_nodes"
    assert "no group 'gpu_nodes'" in err.message


def test_gpu_host_without_driver_branch(onprem):
    _edit(onprem / "group_vars" / "gpu_nodes.yml", lambda d: d.pop("nvidia_driver_branch"))
    err = _error(onprem)
    assert err.field == "nvidia_driver_branch"
    assert err.file == str(onprem / "group_vars" / "gpu_nodes.yml")
    assert "is a GPU node but has no nvidia_driver_branch" in err.message
    assert "group_vars/gpu_nodes.yml" in err.fix


def test_missing_kubernetes_pin(onprem):
    _edit(onprem / "group_vars" / "all.yml", lambda d: d.pop("kubernetes_version"))
    err = _error(onprem)
    assert err.field == "kubernetes_version" and "has no kubernetes_version" in err.message
    # validate and reset do not install Kubernetes: the pin is not needed there.
    check_inventory(onprem, "validate", ROLES)


def test_unknown_variable_gets_a_did_you_mean(onprem):
    _edit(onprem / "group_vars" / "gpu_nodes.yml", lambda d: d.update(nvidia_driver_kernel_modul="open"))
    err = _error(onprem)
    assert err.field == "nvidia_driver_kernel_modul"
    assert err.fix == "did you mean nvidia_driver_kernel_module?"


def test_value_outside_the_role_argument_spec_choices(onprem):
    _edit(onprem / "group_vars" / "gpu_nodes.yml", lambda d: d.update(nvidia_driver_kernel_module="closed"))
    err = _error(onprem)
    assert err.field == "nvidia_driver_kernel_module"
    assert "must be one of open, proprietary, not 'closed'" in err.message


def test_wrong_type_from_the_command_line(onprem):
    err = _error(onprem, extravars={"gpu_node_validate_expect_gpu_count": "eight"})
    assert err.file == "-e" and err.field == "gpu_node_validate_expect_gpu_count"
    assert "must be a int" in err.message


def test_driver_version_off_its_branch(onprem):
    _edit(onprem / "group_vars" / "gpu_nodes.yml", lambda d: d.update(nvidia_driver_version="570.195.03"))
    err = _error(onprem)
    assert err.field == "nvidia_driver_version" and "not on branch 580" in err.message


def test_gpu_node_outside_the_cluster(onprem):
    _edit(onprem / "hosts.yml", lambda d: d["all"]["children"]["gpu_nodes"]["hosts"].update(gpu9=None))
    err = _error(onprem)
    assert err.field == "gpu_nodes" and "gpu9 in gpu_nodes but not in k8s_cluster" in err.message


def test_host_name_with_a_slash(onprem):
    _edit(onprem / "hosts.yml",
          lambda d: d["all"]["children"]["kube_node"]["hosts"].update({"rack1/gpu3": {"ansible_host": "x"}}))
    err = _error(onprem)
    assert "contains '/'" in err.message and "ansible_host" in err.fix


def test_invalid_yaml_names_the_file_and_line(onprem):
    (onprem / "group_vars" / "all.yml").write_text("kubernetes_version: [1.34\n")
    err = _error(onprem)
    assert err.file == str(onprem / "group_vars" / "all.yml") and "line" in err.message


def test_several_problems_are_listed_together(onprem):
    _edit(onprem / "group_vars" / "gpu_nodes.yml",
          lambda d: (d.pop("nvidia_container_toolkit_version"), d.update(nvidia_driver_kernel_module="x")))
    err = _error(onprem)
    assert "nvidia_container_toolkit_version" in err.message and "also:" in err.message
    assert "nvidia_driver_kernel_module" in err.message


def test_run_playbook_checks_before_ansible_starts(onprem, tmp_path):
    _edit(onprem / "group_vars" / "gpu_nodes.yml", lambda d: d.pop("nvidia_driver_version"))
    private = tmp_path / "runner"
    with pytest.raises(KubeforgeError, match="nvidia_driver_version"):
        run_playbook(onprem, "site", private_dir=private)
    assert not private.exists()   # ansible-runner never started


def test_cli_exit_code_2_with_file_key_and_fix(onprem):
    _edit(onprem / "group_vars" / "gpu_nodes.yml", lambda d: d.pop("nvidia_driver_branch"))
    proc = subprocess.run([sys.executable, "-m", "kubeforge.cli", "nodes", "apply", "-i", str(onprem)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {onprem / 'group_vars' / 'gpu_nodes.yml'}: nvidia_driver_branch: ")
    assert "fix: set nvidia_driver_branch in group_vars/gpu_nodes.yml" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_rejects_a_malformed_extra_var(onprem):
    proc = subprocess.run([sys.executable, "-m", "kubeforge.cli", "nodes", "check", "-i", str(onprem), "-e", "oops"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "-e 'oops' is not NAME=VALUE" in proc.stderr


def test_cli_missing_inventory(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kubeforge.cli", "nodes", "validate", "-i", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "inventory not found" in proc.stderr


def test_cli_module_import_stays_cheap():
    code = ("import sys, kubeforge.cli_nodes; "
            "print(sorted(m for m in ('ansible_runner', 'ansible', 'yaml', 'rich', 'kubeforge.nodes') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
