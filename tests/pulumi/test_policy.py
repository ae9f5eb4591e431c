"""The policy pack: the plain policy functions, and the pack itself spoken to over the analyzer
protocol the Pulumi engine uses for `pulumi preview --policy-pack stacks/policy` (the engine is
not available here; the test plays its part: start the pack, read its port, call Analyze).
"""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from kubeforge.pulumi import policies

REPO = Path(__file__).resolve().parents[2]


def _violations(fn, resource_type: str, props: dict) -> list[str]:
    out: list[str] = []
    fn(types.SimpleNamespace(resource_type=resource_type, props=props, name="n"), lambda msg, urn=None: out.append(msg))
    return out


def _deploy(name: str, **container) -> dict:
    c = {"name": "c", "image": "registry.example.com/app:1.2.3", "resources": {"requests": {"cpu": "10m"}}}
    c.update(container)
    return {"metadata": {"name": name, "namespace": "x"}, "spec": {"template": {"spec": {"containers": [c]}}}}


DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"


def test_namespace_needs_a_pod_security_level():
    fn = policies.namespace_pod_security
    ns = "kubernetes:core/v1:Namespace"
    assert _violations(fn, ns, {"metadata": {"name": "a"}})
    assert _violations(fn, ns, {"metadata": {"name": "a", "labels": {policies.PSA_LABEL: "lax"}}})
    assert not _violations(fn, ns, {"metadata": {"name": "a", "labels": {policies.PSA_LABEL: "baseline"}}})
    assert not _violations(fn, DEPLOYMENT, _deploy("d"))


@pytest.mark.parametrize("image, bad", [
    ("nginx", True), ("docker.io/library/nginx:latest", True), ("localhost:5000/app", True),
    ("nginx:1.27", False), ("localhost:5000/app:1.0", False),
    ("ghcr.io/x/y@sha256:" + "a" * 64, False),
])
def test_images_are_pinned(image, bad):
    assert bool(_violations(policies.no_latest_images, DEPLOYMENT, _deploy("d", image=image))) is bad


def test_init_containers_and_cronjobs_are_checked_too():
    cron = {"metadata": {"name": "j"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox"}]}}}}}}
    assert _violations(policies.no_latest_images, "kubernetes:batch/v1:CronJob", cron)
    d = _deploy("d")
    d["spec"]["template"]["spec"]["initContainers"] = [{"name": "i", "image": "busybox:latest"}]
    assert _violations(policies.no_latest_images, DEPLOYMENT, d)


def test_privileged_only_for_the_allowlisted_node_agents():
    priv = {"securityContext": {"privileged": True}}
    assert _violations(policies.privileged_allowlist, DEPLOYMENT, _deploy("my-app", **priv))
    for name, reason in policies.PRIVILEGED_ALLOWLIST.items():
        assert reason.strip()
        assert not _violations(policies.privileged_allowlist, DAEMONSET, _deploy(name, **priv))
    assert not _violations(policies.privileged_allowlist, DEPLOYMENT, _deploy("my-app"))


def test_workloads_request_resources():
    assert _violations(policies.resource_requests, DEPLOYMENT, _deploy("d", resources={}))
    assert _violations(policies.resource_requests, DEPLOYMENT, _deploy("d", resources={"limits": {"cpu": "1"}}))
    assert not _violations(policies.resource_requests, DEPLOYMENT, _deploy("d"))


def test_non_kubernetes_resources_are_ignored():
    for _, _, fn, _ in policies.POLICIES:
        assert not _violations(fn, "pulumi:index:Stash", {"input": {"image": "x:latest"}})


def test_the_pack_answers_the_engines_analyzer_protocol():
    """Start stacks/policy as the engine does (it prints its port), then GetAnalyzerInfo and Analyze."""
    import grpc
    from google.protobuf import empty_pb2, struct_pb2
    from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

    proc = subprocess.Popen([sys.executable, str(REPO / "stacks/policy/__main__.py")], cwd=REPO / "stacks/policy",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(proc.stdout.readline().decode().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = analyzer_pb2_grpc.AnalyzerStub(ch)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            assert info.name == "kubeforge"
            levels = {p.name: p.enforcementLevel for p in info.policies}
            assert set(levels) == {n for n, _, _, _ in policies.POLICIES}
            props = struct_pb2.Struct()
            props.update(_deploy("web", image="nginx:latest", securityContext={"privileged": True}))
            resp = stub.Analyze(analyzer_pb2.AnalyzeRequest(type=DEPLOYMENT, properties=props,
                                                             urn="urn:pulumi:s::p::" + DEPLOYMENT + "::web",
                                                             name="web"), timeout=30)
            got = {d.policyName for d in resp.diagnostics}
            assert got == {"no-latest-images", "privileged-allowlist"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
