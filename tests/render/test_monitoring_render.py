"""The monitoring components as rendered from the mirror: what kubeforge changes in kube-prometheus
and why, the DCGM counters, kubeforge's GPU rules from the profile, monitors only for what is
enabled. Expected values come from the upstream files or the issue, not from the generators."""
from __future__ import annotations

import json

import pytest

from kubeforge import api
from kubeforge.errors import KubeforgeError

KP = "github/prometheus-operator/kube-prometheus/v0.18.0/manifests"
COUNTERS = "github/NVIDIA/dcgm-exporter/4.5.3-4.8.2/etc/default-counters.csv"


def _render(mirror_dir, profile="gpu-onprem", over=None):
    plan = api.plan(api.load_profile(profile, over))
    return api.render(plan, mirror=str(mirror_dir), skip_helm=True)


@pytest.fixture(scope="module")
def onprem(mirror_dir):
    return _render(mirror_dir)


def objs(rendered, component, kind=None):
    return [o for o in rendered.components[component].objects if kind is None or o["kind"] == kind]


def one(rendered, component, kind, name):
    (o,) = [o for o in objs(rendered, component, kind) if o["metadata"]["name"] == name]
    return o


def test_monitoring_namespace_is_privileged_for_node_exporter(onprem, mirror_dir):
    ns = one(onprem, "kube-prometheus", "Namespace", "monitoring")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    ds = one(onprem, "kube-prometheus", "DaemonSet", "node-exporter")["spec"]["template"]["spec"]
    assert ds["hostNetwork"] and ds["hostPID"]                # why privileged: upstream's own settings


def test_grafana_admin_password_is_the_installs_own(onprem):
    from kubeforge.secrets import store_for

    secret = one(onprem, "kube-prometheus", "Secret", "grafana-admin")
    password = secret["stringData"]["admin-password"]
    assert password == store_for(onprem.plan.profile).peek("grafana-admin-password")
    assert len(password) == 24 and password.isalnum() and password != "admin"
    (c,) = one(onprem, "kube-prometheus", "Deployment", "grafana")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["GF_SECURITY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "grafana-admin",
                                                                              "key": "admin-password"}
    assert onprem.components["kube-prometheus"].secrets == ["grafana-admin-password"]


def test_prometheus_datasource_has_an_explicit_uid(onprem):
    doc = json.loads(one(onprem, "kube-prometheus", "Secret", "grafana-datasources")["stringData"]["datasources.yaml"])
    (ds,) = doc["datasources"]
    assert (ds["uid"], ds["name"], ds["url"]) == ("prometheus", "Prometheus", "http://prometheus-k8s.monitoring.svc:9090")


def test_upstream_lists_become_their_items(onprem, mirror_dir):
    from kubeforge.kustomize import parse

    (dashboards,) = parse((mirror_dir / KP / "grafana-dashboardDefinitions.yaml").read_bytes())
    kinds = {o["kind"] for o in objs(onprem, "kube-prometheus")}
    assert not any(k.endswith("List") for k in kinds)
    names = {o["metadata"]["name"] for o in objs(onprem, "kube-prometheus", "ConfigMap")}
    assert {i["metadata"]["name"] for i in dashboards["items"]} <= names


def test_no_control_plane_monitors_or_alerts_without_a_service(onprem):
    monitors = {o["metadata"]["name"] for o in objs(onprem, "kube-prometheus", "ServiceMonitor")}
    assert {"kube-apiserver", "kubelet", "coredns"} <= monitors
    assert not monitors & {"kube-scheduler", "kube-controller-manager"}
    alerts = {r.get("alert") for o in objs(onprem, "kube-prometheus", "PrometheusRule")
              for g in o["spec"]["groups"] for r in g["rules"]}
    assert "KubeAPIDown" in alerts and not alerts & {"KubeSchedulerDown", "KubeControllerManagerDown"}


def test_prometheus_adapter_only_without_metrics_server(onprem, mirror_dir):
    assert one(onprem, "kube-prometheus", "APIService", "v1beta1.metrics.k8s.io")
    assert one(onprem, "kube-prometheus", "Deployment", "prometheus-adapter")
    with_ms = _render(mirror_dir, "monitoring", {"cluster": {"apis": ["metrics.k8s.io"]}})
    kp = objs(with_ms, "kube-prometheus")
    assert not [o for o in kp if "prometheus-adapter" in o["metadata"]["name"]
                or o["kind"] == "APIService"]
    assert api.validate(with_ms).errors == []


def test_dev_sized_and_prod_sized_prometheus(onprem, mirror_dir):
    prom = one(onprem, "kube-prometheus", "Prometheus", "k8s")["spec"]
    assert (prom["replicas"], prom["retention"], prom.get("storage")) == (1, "10d", None)
    pdbs = {o["metadata"]["name"] for o in objs(onprem, "kube-prometheus", "PodDisruptionBudget")}
    assert "prometheus-k8s" not in pdbs                   # minAvailable 1 of 1 would block every drain
    prod = _render(mirror_dir, "full", {"components": {"kube-prometheus": {"values": {"replicas": 2, "storage": "50Gi"}}}})
    spec = one(prod, "kube-prometheus", "Prometheus", "k8s")["spec"]
    assert spec["replicas"] == 2 and one(prod, "kube-prometheus", "Alertmanager", "main")["spec"]["replicas"] == 2
    claim = spec["storage"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "local-path" and claim["resources"]["requests"]["storage"] == "50Gi"
    assert "prometheus-k8s" in {o["metadata"]["name"] for o in objs(prod, "kube-prometheus", "PodDisruptionBudget")}


def test_bad_storage_value_names_the_field():
    with pytest.raises(KubeforgeError) as e:
        api.plan(api.load_profile("monitoring", {"components": {"kube-prometheus": {"values": {"storage": "fifty"}}}}))
    assert e.value.field == "components.kube-prometheus.values.storage"


def test_dcgm_exporter_reads_upstreams_counters_plus_the_alert_fields(onprem, mirror_dir):
    upstream = (mirror_dir / COUNTERS).read_text()
    csv = one(onprem, "dcgm-exporter", "ConfigMap", "dcgm-exporter-counters")["data"]["dcgm-metrics.csv"]
    assert "# DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, counter, Total number of double-bit volatile ECC errors." in upstream
    assert "\nDCGM_FI_DEV_ECC_DBE_VOL_TOTAL, counter, Total number of double-bit volatile ECC errors.\n" in csv
    # every upstream default row is still there, unchanged
    assert all(line in csv.splitlines() for line in upstream.splitlines() if line and not line.startswith("#"))
    (c,) = one(onprem, "dcgm-exporter", "DaemonSet", "dcgm-exporter")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    mount = next(m for m in c["volumeMounts"] if m["name"] == "dcgm-exporter-counters")
    assert env["DCGM_EXPORTER_COLLECTORS"] == f"{mount['mountPath']}/dcgm-metrics.csv"


def test_without_gpu_monitoring_the_exporter_is_upstreams(mirror_dir):
    r = _render(mirror_dir, "gpu-onprem", {"components": {"gpu-monitoring": {"enabled": False}}})
    assert [o["kind"] for o in objs(r, "dcgm-exporter")].count("ConfigMap") == 0
    (c,) = one(r, "dcgm-exporter", "DaemonSet", "dcgm-exporter")["spec"]["template"]["spec"]["containers"]
    assert "DCGM_EXPORTER_COLLECTORS" not in {e["name"] for e in c["env"]}


def _gpu_rules(rendered):
    return {r["alert"]: r for r in one(rendered, "gpu-monitoring", "PrometheusRule", "gpu-rules")["spec"]["groups"][0]["rules"]}


def test_gpu_rules_follow_the_profile(onprem, mirror_dir):
    rules = _gpu_rules(onprem)
    # gpu-onprem time-slices every GPU into 4 (profiles/gpu-onprem.yaml): capacity / 4 GPUs
    assert '(max by (node) (kube_node_status_capacity{resource="nvidia_com_gpu"}) / 4)' in rules["GPUsMissingFromNode"]["expr"]
    assert rules["DCGMExporterDown"]["expr"] == 'up{job="dcgm-exporter"} == 0'   # the Service's name
    assert "DCGM_FI_DEV_XID_ERRORS == 79" in rules["GPUXidHardwareError"]["expr"]
    assert "DCGM_FI_DEV_XID_ERRORS == 31" in rules["GPUXidApplicationError"]["expr"]
    mig = _render(mirror_dir, "gpu-onprem", {"gpu": {"mig": {"strategy": "single"}, "sharing": {"strategy": "none"}}})
    assert "GPUsMissingFromNode" not in _gpu_rules(mig)


def test_gpu_operator_path_reuses_the_counters_and_the_charts_servicemonitor(mirror_dir, tmp_path):
    from kubeforge.pulumi.graph import helm_charts

    p = tmp_path / "op.yaml"
    p.write_text("extends: [gpu-operator, monitoring]\ncomponents:\n  gpu-monitoring: {enabled: true}\n")
    plan = api.plan(api.load_profile(str(p)))
    r = api.render(plan, mirror=str(mirror_dir), skip_helm=True)
    (chart,) = helm_charts(plan.components["gpu-operator"], plan)
    dcgm = chart.values["dcgmExporter"]
    assert dcgm["config"] == {"name": "dcgm-exporter-counters"} and dcgm["serviceMonitor"] == {"enabled": True}
    assert one(r, "gpu-operator", "ConfigMap", "dcgm-exporter-counters")
    assert not objs(r, "gpu-monitoring", "ServiceMonitor")               # the chart's, not ours
    assert _gpu_rules(r)["DCGMExporterDown"]["expr"] == 'up{job="nvidia-dcgm-exporter"} == 0'
    assert {(o["kind"], o["metadata"]["namespace"]) for o in objs(r, "gpu-monitoring", "Role")} == {("Role", "gpu-operator")}
    assert [f.line() for f in api.validate(r).errors] == []


def test_gpu_monitoring_without_an_exporter_is_a_clear_error(mirror_dir, tmp_path):
    p = tmp_path / "nogpu.yaml"
    p.write_text("extends: monitoring\ngpu: {mode: host}\ncomponents:\n  gpu-monitoring: {enabled: true}\n")
    with pytest.raises(KubeforgeError) as e:
        _render(mirror_dir, str(p))
    assert e.value.field == "components.gpu-monitoring.enabled" and "dcgm-exporter" in e.value.fix


def test_monitors_only_for_enabled_components(mirror_dir, onprem):
    names = {o["metadata"]["name"] for o in objs(onprem, "platform-monitors") if o["kind"].endswith("Monitor")}
    assert {"cert-manager", "kserve", "katib", "training-operator", "argo-workflows",
            "istio-istio-component-monitor", "istio-envoy-stats-monitor", "knative-serving-activator"} <= names
    serving = _render(mirror_dir, "serving", {"components": {
        n: {"enabled": True} for n in ("prometheus-operator-crds", "kube-prometheus", "platform-monitors")}})
    names = {o["metadata"]["name"] for o in objs(serving, "platform-monitors") if o["kind"].endswith("Monitor")}
    assert names == {"cert-manager", "kserve", "istio-istio-component-monitor", "istio-envoy-stats-monitor"}
    assert [f.line() for f in api.validate(serving).errors] == []


def test_knative_exports_prometheus_metrics_only_when_scraped(onprem, mirror_dir):
    cm = one(onprem, "knative-serving", "ConfigMap", "config-observability")
    assert cm["data"]["metrics-protocol"] == "prometheus"
    dev = _render(mirror_dir, "dev")
    assert "metrics-protocol" not in (one(dev, "knative-serving", "ConfigMap", "config-observability").get("data") or {})


def test_grafana_mounts_the_dashboards_of_the_components_that_provide_them(onprem):
    pod = one(onprem, "kube-prometheus", "Deployment", "grafana")["spec"]["template"]["spec"]
    cms = {v["configMap"]["name"]: v["configMap"] for v in pod["volumes"] if "configMap" in v}
    for comp in ("gpu-monitoring", "platform-monitors"):
        assert cms[f"grafana-dashboards-{comp}"]["optional"] is True        # they come after Grafana
        assert one(onprem, comp, "ConfigMap", f"grafana-dashboards-{comp}")
    dash = json.loads(one(onprem, "gpu-monitoring", "ConfigMap", "grafana-dashboards-gpu-monitoring")
                      ["data"]["dcgm-exporter.json"])
    assert (dash["uid"], dash["title"]) == ("Oxed_c6Wz", "NVIDIA DCGM Exporter Dashboard")   # upstream's


def test_monitoring_is_off_in_dev_and_on_in_the_gpu_profiles(tmp_path):
    from kubeforge.plan import make_plan

    mon = {"prometheus-operator-crds", "kube-prometheus", "platform-monitors"}
    assert not mon & set(make_plan(api.load_profile("dev")).components)
    for p in ("gpu-onprem", "training", "full"):
        assert mon | {"gpu-monitoring"} <= set(make_plan(api.load_profile(p)).components), p
    on = tmp_path / "dev-watched.yaml"
    on.write_text("extends: [dev, monitoring]\n")
    assert mon <= set(make_plan(api.load_profile(str(on))).components)
