"""stacks/cluster-onprem: the NodePlaybook resource under Pulumi's mock runtime (its triggers and
secret kubeconfig output), and its dynamic provider running a real playbook with ansible-runner
(a local-connection playbook standing in for site.yml: the real hosts are tests/ansible's job).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from mockrun import run

from kubeforge.errors import KubeforgeError
from kubeforge.pulumi import onprem

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "stacks" / "cluster-onprem"
NODE_TYPE = "pulumi-python:dynamic/kubeforge:NodePlaybook"


@pytest.fixture
def site(tmp_path) -> Path:
    """A copy of the repository's inventory and roles, and a playbook, that tests may edit."""
    root = tmp_path / "site"
    shutil.copytree(REPO / "inventory" / "onprem", root / "inventory" / "onprem")
    shutil.copytree(REPO / "roles", root / "roles", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "playbooks", root / "playbooks")
    (root / "stacks" / "cluster-onprem").mkdir(parents=True)
    return root


def _config(site: Path) -> dict:
    return {"kubeforge:inventory": str(site / "inventory/onprem"), "kubeforge:playbook": str(site / "playbooks/site.yml"),
            "kubeforge:roles": str(site / "roles")}


def _triggers(site: Path, **extra) -> dict:
    res = run(onprem.main, config={**_config(site), **extra}, project="kubeforge-cluster-onprem", stack="staging")
    (node,) = [r for r in res.registrations.values() if r.type == NODE_TYPE]
    assert "kubeconfig" in node.additional_secret_outputs
    assert "kubeconfig" in res.secret_outputs
    return node.inputs["triggers"]


def test_shipped_stack_files_resolve_against_the_repository():
    for env in ("staging", "prod"):
        from kubeforge.pulumi.settings import read_stack_file

        cfg, _ = read_stack_file(STACK / f"Pulumi.{env}.yaml")
        s = onprem.parse_settings(cfg, base=STACK, file=f"Pulumi.{env}.yaml")
        assert s.hosts_file.is_file() and s.playbook.is_file() and s.roles.is_dir()


def test_triggers_are_stable_when_nothing_changed(site):
    assert _triggers(site) == _triggers(site)


@pytest.mark.parametrize("edit, key", [
    (lambda s: _append(next((s / "roles").rglob("main.yml")), "\n# changed\n"), "roles"),
    (lambda s: _append(s / "inventory/onprem/hosts.yml", "\n# new host comment\n"), "inventory"),
    (lambda s: _write(s / "inventory/onprem/group_vars/all/extra.yml", "kubernetes_version: '1.34.2'\n"), "inventory"),
    (lambda s: _append(s / "playbooks/site.yml", "\n# changed\n"), "playbooks"),
])
def test_triggers_change_when_inventory_group_vars_roles_or_playbooks_change(site, edit, key):
    before = _triggers(site)
    edit(site)
    after = _triggers(site)
    assert before[key] != after[key]
    assert {k for k in before if before[k] != after[k]} == {key}


def test_triggers_ignore_fetched_artifacts_and_unrelated_files(site):
    before = _triggers(site)
    _write(site / "inventory/onprem/artifacts/admin.conf", "apiVersion: v1\n")
    _write(site / "inventory/onprem/artifacts/validate/report.json", "{}")
    _write(site / "README.txt", "unrelated\n")
    _write(site / "roles/node_prep/tasks/__pycache__/x.pyc", "junk")
    assert _triggers(site) == before


def test_extra_vars_are_a_trigger(site):
    assert _triggers(site)["extraVars"] != _triggers(site, **{"kubeforge:extraVars": {"a": 1}})["extraVars"]


def test_moving_the_checkout_is_not_a_change(site, tmp_path):
    before = _triggers(site)
    moved = tmp_path / "moved"
    shutil.copytree(site, moved)
    assert _triggers(moved) == before


def test_diff_reruns_only_when_triggers_or_options_change():
    provider = onprem._provider_class()()
    base = {"name": "nodes", "playbook": "/a/site.yml", "triggers": {"roles": "1"}, "extraVars": {}, "limit": ""}
    assert not provider.diff("nodes", base, {**base, "playbook": "/moved/site.yml"}).changes
    d = provider.diff("nodes", base, {**base, "triggers": {"roles": "2"}})
    assert d.changes and not d.replaces     # re-run in place, never replace the cluster
    assert provider.diff("nodes", base, {**base, "limit": "gpu-1"}).changes


@pytest.mark.parametrize("key, value, field", [
    ("kubeforge:inventory", "/nonexistent/inventory", "kubeforge:inventory"),
    ("kubeforge:playbook", "/nonexistent/site.yml", "kubeforge:playbook"),
    ("kubeforge:invetory", "x", "kubeforge:invetory"),
])
def test_bad_settings_name_the_field(site, key, value, field):
    cfg = {k.split(":", 1)[1]: v for k, v in {**_config(site), key: value}.items()}
    with pytest.raises(KubeforgeError) as exc:
        onprem.parse_settings(cfg, base=site, file="Pulumi.staging.yaml")
    assert field in exc.value.field


def test_create_runs_the_playbook_with_ansible_runner_and_returns_the_kubeconfig(tmp_path, monkeypatch):
    """The provider's create() for real: ansible-runner runs a local playbook that writes admin.conf
    where site.yml fetches it (kubeforge_artifacts_dir)."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    inv = tmp_path / "inventory"
    inv.mkdir()
    (inv / "hosts.yml").write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                                   f"      ansible_python_interpreter: {sys.executable}\n")
    pb = tmp_path / "playbooks" / "site.yml"
    pb.parent.mkdir()
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                  "    - ansible.builtin.copy:\n        dest: \"{{ kubeforge_artifacts_dir }}/admin.conf\"\n"
                  "        content: \"apiVersion: v1\\nkind: Config\\n# {{ greeting }}\\n\"\n")
    (tmp_path / "roles").mkdir()
    props = {"name": "nodes", "playbook": str(pb), "hostsFile": str(inv / "hosts.yml"), "roles": str(tmp_path / "roles"),
             "artifactsDir": str(inv / "artifacts"), "extraVars": {"greeting": "hello"}, "limit": "",
             "triggers": {}}
    (inv / "artifacts").mkdir()
    result = onprem._provider_class()().create(props)
    assert result.id == "nodes"
    assert result.outs["kubeconfig"] == "apiVersion: v1\nkind: Config\n# hello\n"


def test_a_failing_playbook_fails_the_resource(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    inv = tmp_path / "hosts.yml"
    inv.write_text(f"all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                   f"      ansible_python_interpreter: {sys.executable}\n")
    pb = tmp_path / "site.yml"
    pb.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.fail: {msg: boom}\n")
    props = {"name": "nodes", "playbook": str(pb), "hostsFile": str(inv), "roles": str(tmp_path),
             "artifactsDir": str(tmp_path / "artifacts"), "extraVars": {}, "limit": "", "triggers": {}}
    with pytest.raises(RuntimeError, match="failed .*localhost"):
        onprem.run_playbook(props)


def _append(p: Path, text: str) -> None:
    p.write_text(p.read_text() + text)


def _write(p: Path, text: str) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
