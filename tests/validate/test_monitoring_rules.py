"""Render-time monitoring validation (kubeforge.validate_monitoring) on the real render of
gpu-onprem (kube-prometheus, gpu-monitoring, platform-monitors, all from the mirror): it passes as
rendered, and each rule catches a broken input, planted by editing a copy of the real objects."""
from __future__ import annotations

import copy
import json

import pytest

from kubeforge import api
from kubeforge.validate import validate
from kubeforge.validate_monitoring import RULES, check, dcgm_counters, parse_counters

MONITORING_RULES = set(RULES)
V = "1.34"


@pytest.fixture(scope="module")
def rendered_objects(mirror_dir) -> list[dict]:
    plan = api.plan(api.load_profile("gpu-onprem"))
    return api.render(plan, mirror=str(mirror_dir)).objects()


@pytest.fixture
def objs(rendered_objects) -> list[dict]:
    return copy.deepcopy(rendered_objects)


def one(objs, kind, name, namespace=None):
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name
            and (namespace is None or o["metadata"].get("namespace") == namespace)]
    assert len(hits) == 1, (kind, name, len(hits))
    return hits[0]


def rule(objs, alert):
    for o in objs:
        if o["kind"] == "PrometheusRule":
            for g in o["spec"]["groups"]:
                for r in g["rules"]:
                    if r.get("alert") == alert:
                        return r
    raise AssertionError(alert)


def findings(objs, rule_name=None):
    out = [f for f in validate(objs, V).errors if f.rule in MONITORING_RULES]
    return [f for f in out if rule_name is None or f.rule == rule_name]


def test_the_real_render_passes_and_the_checks_saw_it(objs):
    assert findings(objs) == []
    kinds = {o["kind"] for o in objs}
    assert {"PrometheusRule", "ServiceMonitor", "PodMonitor", "Prometheus"} <= kinds
    # The counters were followed from the exporter DaemonSet to kubeforge's ConfigMap: the ECC
    # field upstream ships commented out is among them, alongside an upstream default.
    from kubeforge.validate_monitoring import _Index

    counters = dcgm_counters(_Index(objs))
    assert {"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_GPU_TEMP"} <= counters


def test_a_rule_that_does_not_parse(objs):
    rule(objs, "GPUTemperatureHigh")["expr"] = "max(DCGM_FI_DEV_GPU_TEMP > 85"
    (f,) = findings(objs)
    assert (f.rule, f.name, f.path) == ("promql", "gpu-rules", "spec.groups[0].rules[3].expr")
    assert "GPUTemperatureHigh" in f.message


def test_a_function_given_the_wrong_argument_type(objs):
    # rate() needs a range vector: a real parser checks types, a regex would not.
    rule(objs, "GPUPowerThrottling")["expr"] = "rate(DCGM_FI_DEV_POWER_VIOLATION) > 0"
    (f,) = findings(objs)
    assert f.rule == "promql" and "matrix" in f.message


@pytest.mark.parametrize("drop", ["severity", "summary"])
def test_an_alert_without_severity_or_summary(objs, drop):
    r = rule(objs, "DCGMExporterDown")
    (r["labels"] if drop == "severity" else r["annotations"]).pop(drop)
    (f,) = findings(objs)
    assert f.rule == "rule-labels" and drop in f.message and "DCGMExporterDown" in f.message


def test_an_alert_on_a_dcgm_field_the_exporter_does_not_collect(objs):
    cm = one(objs, "ConfigMap", "dcgm-exporter-counters")
    (key,) = cm["data"]
    cm["data"][key] = "\n".join(line for line in cm["data"][key].splitlines()
                                if not line.startswith("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"))
    (f,) = findings(objs)
    assert f.rule == "rule-metrics" and "GPUUncorrectableECCErrors" in f.message
    assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" in f.message


def test_an_exporter_on_its_image_defaults_cannot_be_checked(objs):
    ds = one(objs, "DaemonSet", "dcgm-exporter")
    c = ds["spec"]["template"]["spec"]["containers"][0]
    c["env"] = [e for e in c["env"] if e["name"] != "DCGM_EXPORTER_COLLECTORS"]
    errs = findings(objs, "rule-metrics")
    assert errs and all("no DCGM exporter" in f.message for f in errs)


def test_a_kube_state_metrics_alert_without_kube_state_metrics(objs):
    objs.remove(one(objs, "Deployment", "kube-state-metrics"))
    names = {f.message.split(" reads ")[0] for f in findings(objs, "rule-metrics")}
    assert "alert GPUUnhealthy" in names


def test_parse_counters_reads_the_upstream_format(mirror_dir):
    text = (mirror_dir / "github/NVIDIA/dcgm-exporter/4.5.3-4.8.2/etc/default-counters.csv").read_text()
    fields = parse_counters(text)
    assert "DCGM_FI_DEV_GPU_UTIL" in fields and "DCGM_FI_DEV_DEC_UTIL" in fields   # "DEC_UTIL ," in the file
    assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" not in fields                            # commented out upstream


def test_a_servicemonitor_on_a_port_name_the_service_lacks(objs):
    one(objs, "ServiceMonitor", "dcgm-exporter")["spec"]["endpoints"][0]["port"] = "metric"
    (f,) = findings(objs)
    assert (f.rule, f.name, f.namespace) == ("monitor-target", "dcgm-exporter", "dcgm-exporter")
    assert "'metric'" in f.message


def test_a_servicemonitor_whose_selector_matches_no_service(objs):
    one(objs, "ServiceMonitor", "katib", "monitoring")["spec"]["selector"]["matchLabels"] = {"app": "katib"}
    (f,) = findings(objs)
    assert f.rule == "monitor-target" and f.name == "katib"


def test_a_podmonitor_on_a_port_the_pods_lack(objs):
    one(objs, "PodMonitor", "argo-workflows")["spec"]["podMetricsEndpoints"][0]["port"] = "web"
    (f,) = findings(objs)
    assert f.rule == "monitor-target" and f.kind == "PodMonitor"


def test_cluster_services_count_as_targets(objs):
    """kube-prometheus' apiserver/kubelet/CoreDNS monitors select Services every cluster has."""
    for name in ("kube-apiserver", "kubelet", "coredns"):
        assert one(objs, "ServiceMonitor", name)
    one(objs, "ServiceMonitor", "coredns")["spec"]["endpoints"][0]["port"] = "metrics-x"
    (f,) = findings(objs)
    assert f.rule == "monitor-target" and f.name == "coredns"


def test_a_namespace_prometheus_may_not_list(objs):
    # Istio's sidecar PodMonitor needs cluster-wide discovery, which covers knative-serving too:
    # take that away as well, and only the namespaces with their own Role stay reachable.
    objs.remove(one(objs, "RoleBinding", "kubeforge-prometheus", "knative-serving"))
    assert findings(objs) == []
    objs.remove(one(objs, "ClusterRoleBinding", "kubeforge-prometheus-pods"))
    errs = findings(objs)
    assert errs and {f.rule for f in errs} == {"monitor-access"}
    knative = {f.name for f in errs if "in namespace knative-serving" in f.message}
    assert knative == {"knative-serving-controller", "knative-serving-autoscaler",
                       "knative-serving-activator", "knative-serving-webhook"}
    assert {f.name for f in errs} - knative == {"istio-envoy-stats-monitor"}


def test_a_cluster_wide_podmonitor_needs_cluster_wide_access(objs):
    objs.remove(one(objs, "ClusterRoleBinding", "kubeforge-prometheus-pods"))
    (f,) = findings(objs)
    assert (f.rule, f.name) == ("monitor-access", "istio-envoy-stats-monitor") and "cluster-wide" in f.message


def test_an_isolated_namespace_without_an_allow_for_prometheus(objs):
    """knative-serving admits only its own namespace (kubeflow/manifests' default-allow-same-
    namespace): without kubeforge's NetworkPolicy the scrape of every Knative component fails."""
    objs.remove(one(objs, "NetworkPolicy", "kubeforge-allow-prometheus", "knative-serving"))
    errs = findings(objs)
    assert errs and {f.rule for f in errs} == {"monitor-netpol"}
    assert all("default-allow-same-namespace-knative-serving" in f.message for f in errs)
    assert {f.name for f in errs} == {"knative-serving-controller", "knative-serving-autoscaler",
                                      "knative-serving-activator", "knative-serving-webhook"}
    assert all("on port metrics" in f.message for f in errs)   # the containers name 9090 "metrics"


def test_an_allow_on_the_wrong_port(objs):
    np = one(objs, "NetworkPolicy", "kubeforge-allow-prometheus", "knative-serving")
    np["spec"]["ingress"][0]["ports"] = [{"port": 9091, "protocol": "TCP"}]
    assert findings(objs, "monitor-netpol")


def test_an_allow_for_other_pods_than_prometheus(objs):
    np = one(objs, "NetworkPolicy", "kubeforge-allow-prometheus", "istio-system")
    np["spec"]["ingress"][0]["from"][0]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "grafana"}}
    errs = findings(objs, "monitor-netpol")
    assert errs and all(f.name == "istio-istio-component-monitor" for f in errs)


def _dashboards(objs, component):
    return one(objs, "ConfigMap", f"grafana-dashboards-{component}", "monitoring")


def test_a_dashboard_that_is_not_json(objs):
    cm = _dashboards(objs, "gpu-monitoring")
    cm["data"]["dcgm-exporter.json"] = cm["data"]["dcgm-exporter.json"][:-2]
    (f,) = findings(objs)
    assert f.rule == "dashboard" and "dcgm-exporter.json" in f.message and "not valid JSON" in f.message


def test_a_dashboard_naming_a_datasource_uid_grafana_lacks(objs):
    cm = _dashboards(objs, "gpu-monitoring")
    dash = json.loads(cm["data"]["dcgm-exporter.json"])
    dash["panels"][0]["datasource"] = {"type": "prometheus", "uid": "thanos"}
    cm["data"]["dcgm-exporter.json"] = json.dumps(dash)
    (f,) = findings(objs)
    assert f.rule == "dashboard" and '"uid": "thanos"' in f.message


def test_istio_dashboards_name_the_datasource_and_need_it_provisioned_by_that_name(objs):
    """Istio's service and workload dashboards name the datasource "Prometheus" outright; kube-
    prometheus ships it as "prometheus", which kubeforge renames. Undo that: they stop resolving."""
    secret = one(objs, "Secret", "grafana-datasources")
    doc = json.loads(secret["stringData"]["datasources.yaml"])
    doc["datasources"][0]["name"] = "prometheus"
    secret["stringData"]["datasources.yaml"] = json.dumps(doc)
    errs = findings(objs)
    assert {f.rule for f in errs} == {"dashboard"}
    assert {m.split()[1] for m in (f.message for f in errs)} == {"istio-service.json", "istio-workload.json"}


def test_a_dashboards_configmap_grafana_mounts_but_nobody_renders(objs):
    objs.remove(_dashboards(objs, "platform-monitors"))
    (f,) = findings(objs)
    assert (f.rule, f.kind, f.name) == ("dashboard", "Deployment", "grafana")
    assert "grafana-dashboards-platform-monitors" in f.message


def test_rule_names_are_known_to_validate_and_the_allowlist():
    from kubeforge import validate as v

    assert MONITORING_RULES <= set(v.RULES)
    assert check([]) == []
