"""`cluster.apis`: APIs the cluster already serves (an existing Prometheus Operator, Gateway API).

DCGM exporter's upstream ServiceMonitor is the real case: without the Prometheus Operator's CRDs
among the objects it fails validation and the Pulumi graph; declared as served by the cluster it
passes both. Everything is rendered for real from the mirror.
"""
from __future__ import annotations

import pytest

from kubeforge import api
from kubeforge.errors import KubeforgeError
from kubeforge.pulumi.graph import build_graph, stack_graph
from kubeforge.pulumi.settings import StackSettings

SM = "monitoring.coreos.com/ServiceMonitor/dcgm-exporter/dcgm-exporter"


MONITORING = ("prometheus-operator-crds", "kube-prometheus", "gpu-monitoring", "platform-monitors")


def _render(mirror_dir, apis=None, crds=False):
    """gpu-onprem without kubeforge's monitoring (an existing Prometheus Operator would provide
    it), dcgm-exporter shipping upstream's own ServiceMonitor; optionally just the operator CRDs."""
    over = {"components": {"dcgm-exporter": {"values": {"serviceMonitor": True}},
                           **{n: {"enabled": crds and n == "prometheus-operator-crds"} for n in MONITORING}}}
    if apis is not None:
        over["cluster"] = {"apis": apis}
    plan = api.plan(api.load_profile("gpu-onprem", over))
    return plan, api.render(plan, mirror=str(mirror_dir), skip_helm=True)


def _crd_missing(rendered):
    report = api.validate(rendered)
    return [(f.kind, f.name) for f in report.errors if f.rule == "crd-missing"]


def test_servicemonitor_without_its_crd_fails_validation_and_the_graph(mirror_dir):
    plan, rendered = _render(mirror_dir)
    assert _crd_missing(rendered) == [("ServiceMonitor", "dcgm-exporter")]
    report = api.validate(rendered)
    assert "cluster.apis" in next(f.message for f in report.errors if f.rule == "crd-missing")
    assert build_graph(rendered).unresolved == [SM]
    with pytest.raises(KubeforgeError) as e:
        stack_graph(plan, StackSettings(profile="gpu-onprem"), file="Pulumi.test.yaml", mirror=str(mirror_dir))
    assert e.value.field == "cluster.apis" and SM in e.value.message


def test_with_the_operator_crds_component_it_validates(mirror_dir):
    plan, rendered = _render(mirror_dir, crds=True)
    assert _crd_missing(rendered) == []
    assert [f.line() for f in api.validate(rendered).errors] == []
    assert build_graph(rendered).unresolved == []


@pytest.mark.parametrize("apis", [["monitoring.coreos.com"], ["monitoring.coreos.com/ServiceMonitor"]])
def test_declared_cluster_apis_are_taken_as_given(mirror_dir, apis):
    _, rendered = _render(mirror_dir, apis)
    assert _crd_missing(rendered) == []
    assert build_graph(rendered).unresolved == []


def test_another_kind_of_the_group_is_not_enough(mirror_dir):
    _, rendered = _render(mirror_dir, ["monitoring.coreos.com/PodMonitor"])
    assert _crd_missing(rendered) == [("ServiceMonitor", "dcgm-exporter")]
    assert build_graph(rendered).unresolved == [SM]


@pytest.mark.parametrize("bad", ["Monitoring", "monitoring", "monitoring.coreos.com/servicemonitor", ""])
def test_bad_api_entries_name_the_field(bad):
    with pytest.raises(KubeforgeError) as e:
        api.load_profile("dev", {"cluster": {"apis": [bad]}})
    assert e.value.field == "cluster.apis"


def test_a_stack_says_what_its_cluster_serves():
    """kubeforge:cluster in Pulumi.<env>.yaml merges over the profile's cluster (GKE and AKS ship
    metrics-server: kube-prometheus then leaves prometheus-adapter out)."""
    from kubeforge.pulumi.settings import parse

    s = parse({"profile": "serving", "cluster": {"apis": ["metrics.k8s.io"]}}, file="Pulumi.x.yaml")
    assert api.load_profile(s.profile, s.overrides).cluster.provides("metrics.k8s.io")
    with pytest.raises(KubeforgeError) as e:
        parse({"profile": "serving", "cluster": ["metrics.k8s.io"]}, file="Pulumi.x.yaml")
    assert e.value.field == "config.kubeforge:cluster"


def test_render_validates_with_the_profiles_cluster_apis(mirror_dir):
    """`kubeforge render` validates through the cached report: it takes cluster.apis as given too."""
    from kubeforge.render import render_key
    from kubeforge.validate import validate_cached

    plan, rendered = _render(mirror_dir, ["monitoring.coreos.com"])
    report, _ = validate_cached(rendered, render_key(plan, skip_helm=True), use_cache=False)
    assert [f for f in report.errors if f.rule == "crd-missing"] == []
