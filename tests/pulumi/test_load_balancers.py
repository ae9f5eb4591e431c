"""LoadBalancer Services and `pulumi.com/skipAwait` (docs/pulumi.md): on bare metal nothing may
hand out load-balancer addresses, so the provider's wait for one would hang `pulumi up`; the
stack skips that wait unless `kubeforge:awaitLoadBalancers` is true.

No shipped profile renders a LoadBalancer Service, so the test adds a component that does to a
copy of the catalog (adding a component touches nothing else) and runs the real platform program
under the mock runtime with the stack config as Pulumi passes it (strings)."""
from __future__ import annotations

import pytest
from graph_summary import run_profile

from kubeforge.pulumi.settings import parse

SKIP_AWAIT = "pulumi.com/skipAwait"
COMPONENT = """name: edge-gateway
version: "1.0"
description: a test component with a LoadBalancer Service, a ClusterIP one and one annotated upstream
namespaces: {edge: baseline}
kubernetes: {min: "1.25", max: "1.37"}
"""
GENERATE = '''
def _svc(name, type_, annotations=None):
    md = {"name": name, "namespace": "edge", **({"annotations": annotations} if annotations else {})}
    return {"apiVersion": "v1", "kind": "Service", "metadata": md,
            "spec": {"type": type_, "selector": {"app": "edge"}, "ports": [{"port": 80}]}}


def generate(ctx):
    return [_svc("public", "LoadBalancer"), _svc("internal", "ClusterIP"),
            _svc("pinned", "LoadBalancer", {"pulumi.com/skipAwait": "false"})]
'''


@pytest.fixture
def edge_profile(catalog_with):
    catalog_with({"edge-gateway": {"component.yaml": COMPONENT, "generate.py": GENERATE}},
                 {"edge": "extends: base\ndescription: edge\ncomponents:\n  edge-gateway: {enabled: true}\n"})
    return "edge"


def _services(res) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: (r.inputs["metadata"].get("annotations") or {})
            for r in res.registrations.values() if r.type == "kubernetes:core/v1:Service"}


@pytest.mark.parametrize("config, skipped", [
    ({}, True),                                              # default: bare metal, no wait
    ({"kubeforge:awaitLoadBalancers": "false"}, True),
    ({"kubeforge:awaitLoadBalancers": "true"}, False),       # the provider's own wait
])
def test_load_balancer_services_skip_the_address_wait_unless_asked(edge_profile, mirror_dir, config, skipped):
    ann = _services(run_profile(edge_profile, mirror_dir, config))
    assert set(ann) == {"public", "internal", "pinned"}
    assert (ann["public"].get(SKIP_AWAIT) == "true") is skipped
    assert SKIP_AWAIT not in ann["internal"]                     # only LoadBalancers are affected
    assert ann["pinned"][SKIP_AWAIT] == "false"                  # an annotation upstream sets wins


@pytest.mark.parametrize("value, want", [(True, True), (False, False), ("true", True), ("false", False),
                                         ("True", True), (None, False)])
def test_await_load_balancers_reads_yaml_and_pulumi_strings(value, want):
    """`kubeforge up` reads the stack file (YAML: a bool, or the string `pulumi config set` writes)."""
    config = {"profile": "dev", **({} if value is None else {"awaitLoadBalancers": value})}
    assert parse(config, file="Pulumi.x.yaml").await_load_balancers is want


def test_await_load_balancers_rejects_other_values():
    from kubeforge.errors import KubeforgeError

    with pytest.raises(KubeforgeError) as e:
        parse({"profile": "dev", "awaitLoadBalancers": "sometimes"}, file="Pulumi.x.yaml")
    assert e.value.field == "config.kubeforge:awaitLoadBalancers" and "true" in e.value.fix
