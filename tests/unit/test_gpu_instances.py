"""The GPU instance table (kubeforge/gpu/instances.yaml) and what verify expects from it.

Expected numbers are the clouds' published ones, written here by hand (a p5.48xlarge has 8 H100
80GB, an a3-highgpu-8g 8 H100 80GB, a Standard_NC24ads_A100_v4 one A100 80GB), not read back
from the table under test.
"""
from __future__ import annotations

import types

import pytest

from kubeforge import api
from kubeforge.gpu import instances
from kubeforge.verify import gpu


def test_the_issue_example_line():
    assert instances.capacity(2, instances.lookup("aws", "p5.48xlarge")) == "2 × p5.48xlarge = 16 H100 80GB"


@pytest.mark.parametrize("cloud, name, model, count, mig", [
    ("aws", "p5.48xlarge", "H100 80GB", 8, True), ("aws", "p4d.24xlarge", "A100 40GB", 8, True),
    ("aws", "g6.xlarge", "L4 24GB", 1, False), ("aws", "g5.12xlarge", "A10G 24GB", 4, False),
    ("gcp", "a3-highgpu-8g", "H100 80GB", 8, True), ("gcp", "g2-standard-24", "L4 24GB", 2, False),
    ("gcp", "a2-ultragpu-1g", "A100 80GB", 1, True),
    ("azure", "Standard_NC24ads_A100_v4", "A100 80GB", 1, True), ("azure", "Standard_ND96isr_H100_v5", "H100 80GB", 8, True),
    ("azure", "Standard_NC4as_T4_v3", "T4 16GB", 1, False),
])
def test_known_types(cloud, name, model, count, mig):
    t = instances.lookup(cloud, name)
    assert (t.model, t.count, t.mig) == (model, count, mig)
    assert instances.find(name) == t


def test_every_gke_machine_names_its_accelerator_and_names_never_collide():
    table = instances.table()
    assert set(table) == {"aws", "gcp", "azure"}
    assert all(t.accelerator and t.accelerator.startswith("nvidia-") for t in table["gcp"].values())
    names = [n for types_ in table.values() for n in types_]
    assert len(names) == len(set(names))
    assert instances.lookup("aws", "m6i.xlarge") is None and instances.find("no-such-type") is None


def _profile(sharing="none", replicas=4, mig="none"):
    return types.SimpleNamespace(gpu=types.SimpleNamespace(
        sharing=types.SimpleNamespace(strategy=sharing, replicas=replicas), mig=types.SimpleNamespace(strategy=mig)))


def _node(name, itype, alloc):
    return {"metadata": {"name": name, "labels": {"node.kubernetes.io/instance-type": itype}},
            "status": {"allocatable": {"nvidia.com/gpu": alloc}}}


def test_verify_expects_every_gpu_of_a_known_instance_type():
    nodes = [_node("a", "p5.48xlarge", "8"), _node("b", "p5.48xlarge", "0"), _node("c", "m6i.xlarge", "0"),
             _node("d", "some-new-type", "3")]
    assert gpu.count_problems(nodes, _profile()) == [
        "node b (p5.48xlarge): allocatable nvidia.com/gpu is 0, want 8 (8 H100 80GB)"]


def test_shared_gpus_count_replicas_and_mig_is_left_to_the_layout():
    assert gpu.expected_gpus(_node("a", "g2-standard-24", "4"), _profile("time-slicing", 2))[1] == 4
    assert gpu.count_problems([_node("a", "g2-standard-24", "2")], _profile("time-slicing", 2)) == [
        "node a (g2-standard-24): allocatable nvidia.com/gpu is 2, want 4 (2 L4 24GB x 2 replicas)"]
    assert gpu.expected_gpus(_node("a", "p5.48xlarge", "56"), _profile(mig="single")) is None


def test_provider_mode_verifies_the_clouds_gpus_too():
    """No platform component advertises GPUs in provider mode; verify still counts them."""
    from kubeforge.verify.checks import collect

    plan = api.plan(api.load_profile("serving", {"gpu": {"mode": "provider"}}))
    checks = collect(plan, types.SimpleNamespace(components={}))
    cloud_checks = [c for c in checks if c.name == "cloud/gpu-allocatable"]
    assert len(cloud_checks) == 1 and cloud_checks[0].fn is gpu.allocatable_check
    plan = api.plan(api.load_profile("serving"))
    assert not [c for c in collect(plan, types.SimpleNamespace(components={})) if c.component == "cloud"]
