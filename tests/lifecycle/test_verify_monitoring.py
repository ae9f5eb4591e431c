"""Monitoring conformance logic (kubeforge.verify.monitoring) on recorded API responses.

No cluster runs here: the responses below are shaped on the upstream API documentation, field for
field - Prometheus' HTTP API (prometheus.io/docs/prometheus/latest/querying/api/: /api/v1/targets,
/api/v1/rules, /api/v1/query), Alertmanager's OpenAPI v2 spec (api/v2/openapi.yaml: GET /alerts,
gettableAlerts), Grafana's HTTP API docs (GET /api/health, GET /api/search, GET
/api/datasources/uid/:uid/health). Each check gets a passing and failing example. The monitors,
rule groups and dashboards they are judged against come from the real render.
"""
from __future__ import annotations

import copy

import pytest

from kubeforge import api
from kubeforge.verify import monitoring as m
from kubeforge.verify.checks import collect


def target(pool: str, job: str, health: str = "up", instance: str = "10.0.0.5:9400", **labels) -> dict:
    return {"discoveredLabels": {"__address__": instance, "job": pool},
            "labels": {"instance": instance, "job": job, **labels},
            "scrapePool": pool, "scrapeUrl": f"http://{instance}/metrics", "globalUrl": f"http://{instance}/metrics",
            "lastError": "" if health == "up" else "Get \"http://10.0.0.5:9400/metrics\": context deadline exceeded",
            "lastScrape": "2026-05-01T10:00:00.000Z", "lastScrapeDuration": 0.012, "health": health,
            "scrapeInterval": "30s", "scrapeTimeout": "10s"}


def targets(*active) -> dict:
    return {"status": "success", "data": {"activeTargets": list(active), "droppedTargets": []}}


@pytest.fixture(scope="module")
def rendered(mirror_dir):
    return api.render(api.plan(api.load_profile("gpu-onprem")), mirror=str(mirror_dir))


def test_pool_names_map_back_to_monitors():
    assert m.pool_monitor("serviceMonitor/dcgm-exporter/dcgm-exporter/0") == ("ServiceMonitor", "dcgm-exporter",
                                                                             "dcgm-exporter")
    assert m.pool_monitor("podMonitor/monitoring/argo-workflows/0") == ("PodMonitor", "monitoring", "argo-workflows")
    assert m.pool_monitor("kubernetes-pods") is None


def test_every_rendered_monitor_needs_an_up_target(rendered):
    mons = m.monitors_of(rendered.components["gpu-monitoring"].objects)
    assert mons == [("ServiceMonitor", "dcgm-exporter", "dcgm-exporter")]
    pool = "serviceMonitor/dcgm-exporter/dcgm-exporter/0"
    assert m.target_problems(targets(target(pool, "dcgm-exporter")), mons) == []
    (p,) = m.target_problems(targets(), mons)
    assert "no active target" in p
    (p,) = m.target_problems(targets(target(pool, "dcgm-exporter"), target(pool, "dcgm-exporter", "down",
                                                                             "10.0.0.6:9400")), mons)
    assert "10.0.0.6:9400" in p and "down" in p and "deadline" in p


def test_core_jobs_cover_every_node():
    nodes = ["gpu-1", "cpu-1"]
    ok = targets(target("serviceMonitor/monitoring/node-exporter/0", "node-exporter", instance="gpu-1:9100"),
                 target("serviceMonitor/monitoring/node-exporter/0", "node-exporter", instance="cpu-1:9100"),
                 *[target("serviceMonitor/monitoring/kubelet/0", "kubelet", instance=f"{n}:10250", node=n,
                          metrics_path="/metrics") for n in nodes],
                 target("serviceMonitor/monitoring/kubelet/1", "kubelet", instance="gpu-1:10250", node="gpu-1",
                        metrics_path="/metrics/cadvisor"),
                 target("serviceMonitor/monitoring/kube-state-metrics/0", "kube-state-metrics"),
                 target("serviceMonitor/monitoring/prometheus-operator/0", "prometheus-operator"))
    assert m.core_job_problems(ok, nodes) == []
    broken = copy.deepcopy(ok)
    active = broken["data"]["activeTargets"]
    active[1]["health"] = "down"                                   # node-exporter on cpu-1
    active[3]["labels"]["metrics_path"] = "/metrics/probes"        # cpu-1's kubelet /metrics gone
    del active[-1]                                                 # the operator
    probs = m.core_job_problems(broken, nodes)
    assert probs == ["node-exporter: 1 target(s) up for 2 node(s)", "kubelet /metrics not up for node(s) cpu-1",
                     "no prometheus-operator target is up"]


def vec(*series) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [1714557600.0, str(v)]} for labels, v in series]}}


def test_dcgm_series_match_each_nodes_gpus():
    capacity = {"gpu-1": 32, "gpu-2": 32, "cpu-1": 0}      # time-sliced 4x: 8 physical GPUs each
    good = vec(({"Hostname": "gpu-1"}, 8), ({"Hostname": "gpu-2"}, 8))
    counts = {name: good for name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED")}
    assert m.gpu_problems(counts, capacity, per_gpu=4) == []
    counts["DCGM_FI_DEV_FB_USED"] = vec(({"Hostname": "gpu-1"}, 7))
    assert m.gpu_problems(counts, capacity, per_gpu=4) == [
        "DCGM_FI_DEV_FB_USED: 7 GPU series on gpu-1, which has 8 GPU(s)",
        "DCGM_FI_DEV_FB_USED: 0 GPU series on gpu-2, which has 8 GPU(s)"]
    with pytest.raises(ValueError):
        m.gpu_problems({"x": {"status": "error", "errorType": "bad_data", "error": "parse error"}}, capacity)


def rules_response(groups) -> dict:
    return {"status": "success", "data": {"groups": [
        {"name": name, "file": f"/etc/prometheus/rules/prometheus-k8s-rulefiles-0/monitoring-{name}.yaml",
         "interval": 30, "limit": 0, "evaluationTime": 0.001, "lastEvaluation": last,
         "rules": [{"state": "inactive", "name": rname, "query": "vector(1)", "duration": 600,
                    "keepFiringFor": 0, "labels": {"severity": "warning"}, "annotations": {"summary": "x"},
                    "alerts": [], "health": health, "lastError": err, "type": "alerting",
                    "evaluationTime": 0.0002, "lastEvaluation": last}
                   for rname, health, err in rules]}
        for name, last, rules in groups]}}


def test_rule_groups_loaded_evaluated_healthy(rendered):
    mine = m.rule_groups_of(rendered.components["gpu-monitoring"].objects)
    assert mine == {"gpu.rules"}
    now = "2026-05-01T10:00:00.5Z"
    ok = rules_response([("gpu.rules", now, [("GPUTemperatureHigh", "ok", "")])])
    assert m.rule_problems(ok, mine) == []
    assert m.rule_problems(rules_response([]), mine) == ["rule group gpu.rules is not loaded"]
    bad = rules_response([("gpu.rules", "0001-01-01T00:00:00Z", [("GPUTemperatureHigh", "unknown", "")]),
                          ("node.rules", now, [("x", "err", "many-to-many matching not allowed")])])
    assert m.rule_problems(bad, mine) == [
        "rule group gpu.rules was never evaluated", "rule gpu.rules/GPUTemperatureHigh is unknown: ",
        "rule node.rules/x is err: many-to-many matching not allowed"]


def alert(name: str, severity: str, state: str = "active") -> dict:
    return {"annotations": {"summary": f"{name} summary"}, "endsAt": "2026-05-01T10:04:00.000Z",
            "fingerprint": "a1b2c3d4e5f60718", "receivers": [{"name": "Default"}],
            "startsAt": "2026-05-01T09:00:00.000Z", "updatedAt": "2026-05-01T10:00:00.000Z",
            "generatorURL": "http://prometheus-k8s-0:9090/graph", "labels": {"alertname": name, "severity": severity},
            "status": {"inhibitedBy": [], "silencedBy": [] if state == "active" else ["5f3a"], "state": state}}


def test_nothing_critical_fires_and_watchdog_does():
    assert m.alert_problems([alert("Watchdog", "none"), alert("KubeCPUOvercommit", "warning")]) == []
    assert m.alert_problems([alert("Watchdog", "none"), alert("DCGMExporterDown", "critical", "suppressed")]) == []
    assert m.alert_problems([alert("Watchdog", "none"), alert("GPURowRemapFailure", "critical")]) == [
        "critical alert GPURowRemapFailure is firing: GPURowRemapFailure summary"]
    assert m.alert_problems([]) == ["Watchdog is not firing: alerts do not reach Alertmanager"]


def test_operator_rejected_nothing_and_configs_reloaded():
    zero = vec(({"resource": "servicemonitor"}, 0), ({"resource": "prometheusrule"}, 0))
    ok = vec(({"pod": "prometheus-k8s-0"}, 1))
    am = vec(({"pod": "alertmanager-main-0"}, 1))
    assert m.operator_problems(zero, ok, am) == []
    assert m.operator_problems(vec(({"resource": "servicemonitor"}, 2)), vec(({"pod": "prometheus-k8s-0"}, 0)),
                               vec()) == [
        "the operator rejected 2 servicemonitor(s) (see its logs)",
        "Prometheus prometheus-k8s-0 failed to reload its configuration",
        "no Alertmanager reports its config reload status"]


def test_prometheus_and_alertmanager_resources_reconciled(rendered):
    prom = next(o for o in rendered.components["kube-prometheus"].objects if o["kind"] == "Prometheus")
    live = copy.deepcopy(prom)
    # status as prometheus-operator writes it (ConditionType Available/Reconciled)
    live["status"] = {"conditions": [
        {"type": "Available", "status": "True", "lastTransitionTime": "2026-05-01T09:00:00Z", "observedGeneration": 1},
        {"type": "Reconciled", "status": "True", "lastTransitionTime": "2026-05-01T09:00:00Z", "observedGeneration": 1}],
        "availableReplicas": 1, "replicas": 1, "updatedReplicas": 1, "unavailableReplicas": 0, "paused": False}
    assert m.resource_problems("Prometheus", live) == []
    live["status"]["conditions"][1].update(status="False", reason="ReconciliationFailed",
                                           message="failed to get TLS assets")
    assert m.resource_problems("Prometheus", live) == [
        "Prometheus monitoring/k8s is not Reconciled (ReconciliationFailed: failed to get TLS assets)"]
    assert m.resource_problems("Alertmanager", None) == ["Alertmanager is missing"]


def test_grafana_health_datasource_and_dashboards(rendered):
    titles = m.dashboard_titles(rendered.components["gpu-monitoring"].objects)
    assert titles == {"NVIDIA DCGM Exporter Dashboard"}                 # the title in upstream's JSON
    assert "Istio Control Plane Dashboard" in m.dashboard_titles(rendered.components["platform-monitors"].objects)
    health = {"commit": "a1b2c3d", "database": "ok", "version": "13.0.2"}
    ds_ok = {"message": "Successfully queried the Prometheus API.", "status": "OK"}
    search = [{"id": 7, "uid": "Oxed_c6Wz", "orgId": 1, "title": "NVIDIA DCGM Exporter Dashboard",
               "uri": "db/nvidia-dcgm-exporter-dashboard", "url": "/d/Oxed_c6Wz/nvidia-dcgm-exporter-dashboard",
               "slug": "", "type": "dash-db", "tags": [], "isStarred": False, "folderUid": "gpu-monitoring",
               "folderTitle": "gpu-monitoring", "sortMeta": 0},
              {"id": 3, "uid": "gpu-monitoring", "title": "gpu-monitoring", "type": "dash-folder", "tags": []}]
    assert m.grafana_problems(health, ds_ok, search, titles) == []
    ds_bad = {"message": "Post \"http://prometheus-k8s.monitoring.svc:9090/api/v1/query\": dial tcp: i/o timeout",
              "status": "ERROR"}
    assert m.grafana_problems({"database": "failing"}, ds_bad, search[1:], titles) == [
        "Grafana's database is 'failing'",
        f"the Prometheus datasource is unhealthy: {ds_bad['message']}",
        "dashboard 'NVIDIA DCGM Exporter Dashboard' is not listed in Grafana"]


def test_the_monitoring_components_bring_their_checks(rendered):
    names = {c.name for c in collect(rendered.plan, rendered)}
    assert {"kube-prometheus/operator-reconciled", "kube-prometheus/targets-up", "kube-prometheus/rules-healthy",
            "kube-prometheus/alerts-settled", "kube-prometheus/grafana", "gpu-monitoring/gpu-series-per-node",
            "gpu-monitoring/rules-loaded", "gpu-monitoring/dashboard-listed", "platform-monitors/targets-up",
            "prometheus-operator-crds/crds-established"} <= names


class _FakeProxy:
    """The service proxy boundary: records what was asked, answers what a test says."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def proxy(self, namespace, service, port, path, **kw):
        from kubeforge.verify.cluster import ProxyResponse

        self.calls.append((namespace, service, port, path, kw))
        status, headers, body = self.answers[path]
        return ProxyResponse(status, headers, body)


def test_fetchers_go_through_the_service_proxy_and_log_in_with_the_generated_secret():
    import base64
    import json

    class Ctx:
        def __init__(self, cluster):
            self.cluster = cluster

        def get(self, api_version, kind, name, ns):
            assert (kind, name, ns) == ("Secret", "grafana-admin", "monitoring")
            return {"data": {"admin-user": base64.b64encode(b"admin").decode(),
                             "admin-password": base64.b64encode(b"s3cret-from-the-install").decode()}}

        def fail(self, msg):
            raise AssertionError(msg)

    proxy = _FakeProxy({
        "/api/v1/query": (200, {}, json.dumps(vec(({"pod": "p"}, 1)))),
        "/login": (200, {"Set-Cookie": "grafana_session=abc123; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax"},
                   json.dumps({"message": "Logged in"})),
        "/api/search": (200, {}, "[]")})
    ctx = Ctx(proxy)
    assert m.vector(m.query(ctx, "up")) == [({"pod": "p"}, 1.0)]
    assert proxy.calls[0][:4] == ("monitoring", "prometheus-k8s", 9090, "/api/v1/query")
    g = m.Grafana(ctx)
    g.login()
    assert proxy.calls[1][4]["body"] == {"user": "admin", "password": "s3cret-from-the-install"}
    assert g.get("/api/search", type="dash-db") == []
    assert proxy.calls[2][4]["headers"] == {"Cookie": "grafana_session=abc123"}
    from kubeforge.verify.context import NotYet

    proxy.answers["/api/search"] = (503, {}, "no endpoints available for service \"grafana\"")
    with pytest.raises(NotYet, match="503"):
        g.get("/api/search")
