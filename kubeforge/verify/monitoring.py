"""Monitoring conformance: what Prometheus, Alertmanager and Grafana report once installed.

Every request goes through the API server's service proxy (`Cluster.proxy`), so the checks need
no port-forward and no pod of their own. The `*_problems` functions are the logic: pure, over
the JSON those APIs return (Prometheus /api/v1/targets, /api/v1/rules and /api/v1/query,
Alertmanager /api/v2/alerts, Grafana /api/health, /api/search and datasource health); the tests
feed them responses shaped on the upstream API documentation. The fetchers below them ask the
cluster and are what components/*/checks.py call.
"""
from __future__ import annotations

import base64
import json
from typing import Any

NS = "monitoring"
PROMETHEUS = ("prometheus-k8s", 9090)          # kube-prometheus' Services and ports
ALERTMANAGER = ("alertmanager-main", 9093)
GRAFANA = ("grafana", 3000)
ADMIN_SECRET = "grafana-admin"
NEVER = "0001-01-01T00:00:00Z"                 # Prometheus' lastEvaluation of a never-evaluated group


# -- logic ------------------------------------------------------------------------------------

def _data(resp: dict) -> Any:
    if not isinstance(resp, dict) or resp.get("status") != "success":
        raise ValueError(f"Prometheus answered {str(resp)[:200]}")
    return resp["data"]


def pool_monitor(pool: str) -> tuple[str, str, str] | None:
    """("ServiceMonitor"|"PodMonitor", namespace, name) of a scrape pool the operator generated
    ("serviceMonitor/<ns>/<name>/<endpoint index>")."""
    parts = pool.split("/")
    kinds = {"serviceMonitor": "ServiceMonitor", "podMonitor": "PodMonitor"}
    if len(parts) == 4 and parts[0] in kinds:
        return kinds[parts[0]], parts[1], parts[2]
    return None


def target_problems(targets: dict, monitors: list[tuple[str, str, str]]) -> list[str]:
    """Each monitor (kind, namespace, name) has at least one active target and all are up."""
    active = _data(targets).get("activeTargets") or []
    by_monitor: dict[tuple[str, str, str], list[dict]] = {}
    for t in active:
        m = pool_monitor(t.get("scrapePool", ""))
        if m:
            by_monitor.setdefault(m, []).append(t)
    out = []
    for m in monitors:
        ts = by_monitor.get(tuple(m), [])
        if not ts:
            out.append(f"{m[0]} {m[1]}/{m[2]} has no active target")
        for t in ts:
            if t.get("health") != "up":
                out.append(f"{m[0]} {m[1]}/{m[2]}: {t.get('scrapeUrl')} is {t.get('health')}"
                           + (f" ({t['lastError']})" if t.get("lastError") else ""))
    return out


def core_job_problems(targets: dict, nodes: list[str]) -> list[str]:
    """node-exporter on every node, the kubelet of every node, kube-state-metrics and the operator."""
    active = _data(targets).get("activeTargets") or []

    def up(job: str, path: str | None = None) -> list[dict]:
        return [t for t in active if (t.get("labels") or {}).get("job") == job and t.get("health") == "up"
                and (path is None or (t.get("labels") or {}).get("metrics_path") == path)]
    out = []
    by_node = {(t.get("labels") or {}).get("node") for t in up("kubelet", "/metrics")}
    if len(up("node-exporter")) != len(nodes):
        out.append(f"node-exporter: {len(up('node-exporter'))} target(s) up for {len(nodes)} node(s)")
    missing = sorted(set(nodes) - by_node)
    if missing:
        out.append(f"kubelet /metrics not up for node(s) {', '.join(missing)}")
    for job in ("kube-state-metrics", "prometheus-operator"):
        if not up(job):
            out.append(f"no {job} target is up")
    return out


def vector(resp: dict) -> list[tuple[dict, float]]:
    """An instant query's result as (labels, value)."""
    data = _data(resp)
    if data.get("resultType") != "vector":
        raise ValueError(f"expected a vector, got {data.get('resultType')}")
    return [(r.get("metric") or {}, float(r["value"][1])) for r in data.get("result") or []]


def gpu_problems(counts: dict[str, dict], capacity: dict[str, int], per_gpu: int = 1) -> list[str]:
    """counts: metric -> the response of `count by (Hostname) (<metric>)`; capacity: node ->
    nvidia.com/gpu capacity (per_gpu schedulable units per physical GPU when shared).
    DCGM_FI_DEV_GPU_UTIL must count every GPU of every GPU node, and the other metrics as many."""
    out = []
    want = {n: c // per_gpu for n, c in capacity.items() if c > 0}
    for metric, resp in counts.items():
        got = {m.get("Hostname", ""): int(v) for m, v in vector(resp)}
        for node, n in sorted(want.items()):
            if got.get(node, 0) != n:
                out.append(f"{metric}: {got.get(node, 0)} GPU series on {node}, which has {n} GPU(s)")
    return out


def rule_problems(rules: dict, expected_groups: set[str]) -> list[str]:
    groups = _data(rules).get("groups") or []
    out = []
    names = {g.get("name") for g in groups}
    for missing in sorted(expected_groups - names):
        out.append(f"rule group {missing} is not loaded")
    for g in groups:
        if g.get("lastEvaluation", NEVER).startswith("0001-"):
            out.append(f"rule group {g.get('name')} was never evaluated")
        for r in g.get("rules") or []:
            if r.get("health") != "ok":
                out.append(f"rule {g.get('name')}/{r.get('name')} is {r.get('health')}: {r.get('lastError')}")
    return out


def alert_problems(alerts: list[dict]) -> list[str]:
    """No critical alert active (firing, not silenced or inhibited), and Watchdog is (the
    always-firing alert that proves the alerting pipeline works end to end)."""
    active = [a for a in alerts if (a.get("status") or {}).get("state") == "active"]
    out = [f"critical alert {a['labels'].get('alertname')} is firing: "
           f"{(a.get('annotations') or {}).get('summary', '')}".rstrip(": ")
           for a in active if (a.get("labels") or {}).get("severity") == "critical"]
    if not any((a.get("labels") or {}).get("alertname") == "Watchdog" for a in active):
        out.append("Watchdog is not firing: alerts do not reach Alertmanager")
    return out


def operator_problems(rejected: dict, prom_reload: dict, am_reload: dict) -> list[str]:
    """Nothing rejected by the operator (prometheus_operator_rejected_resources), every
    Prometheus and Alertmanager loaded its last configuration."""
    out = [f"the operator rejected {int(v)} {m.get('resource', 'resource')}(s) (see its logs)"
           for m, v in vector(rejected) if v > 0]
    for name, resp in (("Prometheus", prom_reload), ("Alertmanager", am_reload)):
        series = vector(resp)
        if not series:
            out.append(f"no {name} reports its config reload status")
        out += [f"{name} {m.get('pod', m.get('instance'))} failed to reload its configuration"
                for m, v in series if v != 1]
    return out


def resource_problems(kind: str, obj: dict | None) -> list[str]:
    """A Prometheus or Alertmanager custom resource is Available and Reconciled (operator status)."""
    if obj is None:
        return [f"{kind} is missing"]
    name = f"{kind} {obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
    conds = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
    out = []
    for t in ("Available", "Reconciled"):
        c = conds.get(t)
        if not c or c.get("status") != "True":
            out.append(f"{name} is not {t}" + (f" ({c.get('reason')}: {c.get('message')})" if c else ""))
    return out


def grafana_problems(health: dict, datasource: dict, search: list[dict], titles: set[str]) -> list[str]:
    out = []
    if health.get("database") != "ok":
        out.append(f"Grafana's database is {health.get('database')!r}")
    if str(datasource.get("status", "")).upper() != "OK":
        out.append(f"the Prometheus datasource is unhealthy: {datasource.get('message')}")
    listed = {d.get("title") for d in search if d.get("type") == "dash-db"}
    for t in sorted(titles - listed):
        out.append(f"dashboard {t!r} is not listed in Grafana")
    return out


def dashboard_titles(objects: list[dict]) -> set[str]:
    """Titles of the dashboards in a component's rendered dashboards ConfigMaps."""
    out = set()
    for o in objects:
        if o.get("kind") == "ConfigMap" and o["metadata"]["name"].startswith("grafana-dashboard"):
            for k, v in (o.get("data") or {}).items():
                if k.endswith(".json"):
                    out.add(json.loads(v).get("title"))
    return out - {None}


def monitors_of(objects: list[dict]) -> list[tuple[str, str, str]]:
    return [(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects
            if o.get("kind") in ("ServiceMonitor", "PodMonitor")]


def rule_groups_of(objects: list[dict]) -> set[str]:
    return {g["name"] for o in objects if o.get("kind") == "PrometheusRule" for g in o["spec"]["groups"]}


# -- fetchers (the cluster boundary) ----------------------------------------------------------

def _json(resp: Any, what: str) -> Any:
    from kubeforge.verify.context import NotYet

    if resp.status >= 300:
        raise NotYet(f"{what}: HTTP {resp.status} {resp.text[:200]}")
    try:
        return json.loads(resp.text)
    except ValueError as e:
        raise NotYet(f"{what}: not JSON ({e})") from None


def prometheus(ctx: Any, path: str, **params: str) -> Any:
    name, port = PROMETHEUS
    return _json(ctx.cluster.proxy(NS, name, port, path, params=params), f"Prometheus {path}")


def query(ctx: Any, promql: str) -> dict:
    return prometheus(ctx, "/api/v1/query", query=promql)


def alertmanager_alerts(ctx: Any) -> list[dict]:
    name, port = ALERTMANAGER
    return _json(ctx.cluster.proxy(NS, name, port, "/api/v2/alerts"), "Alertmanager /api/v2/alerts")


class Grafana:
    """Grafana through the service proxy, logged in as its admin with the install's generated
    password (read from the Secret kube-prometheus renders). The API server drops the caller's
    Authorization header after authenticating it, so the session is a login cookie."""

    def __init__(self, ctx: Any):
        self.ctx = ctx
        secret = ctx.get("v1", "Secret", ADMIN_SECRET, NS)
        if secret is None:
            ctx.fail(f"Secret {NS}/{ADMIN_SECRET} is missing")
        data = secret.get("data") or {}
        self.user = base64.b64decode(data["admin-user"]).decode()
        self.password = base64.b64decode(data["admin-password"]).decode()
        self.cookie = ""

    def _call(self, path: str, method: str = "GET", body: Any = None, params: dict | None = None) -> Any:
        name, port = GRAFANA
        headers = {"Cookie": self.cookie} if self.cookie else {}
        resp = self.ctx.cluster.proxy(NS, name, port, path, method=method, body=body, headers=headers,
                                      params=params)
        return resp, _json(resp, f"Grafana {path}")

    def login(self) -> None:
        resp, _ = self._call("/login", "POST", {"user": self.user, "password": self.password})
        cookies = [c.split(";", 1)[0] for c in resp.headers.get("Set-Cookie", "").split(",") if "=" in c]
        self.cookie = "; ".join(c.strip() for c in cookies if c.strip().startswith("grafana_session"))
        if not self.cookie:
            self.ctx.fail("Grafana accepted the login but set no grafana_session cookie")

    def get(self, path: str, **params: str) -> Any:
        return self._call(path, params=params or None)[1]


# -- the checks components/*/checks.py share ----------------------------------------------------

SETTLE_S = 180.0          # alerts with `for:` need time after install before "nothing critical" means anything


def own_targets_up(ctx: Any) -> str:
    """Every monitor this component rendered has an active target and every target is up."""
    mons = monitors_of(ctx.objects)
    ctx.wait_clean(f"{len(mons)} monitor(s) scraping", lambda: target_problems(prometheus(ctx, "/api/v1/targets"), mons))
    return f"{len(mons)} monitor(s): every target up"


def own_rules_loaded(ctx: Any) -> str:
    """This component's rule groups are loaded and evaluated, and every rule in them is healthy."""
    groups = rule_groups_of(ctx.objects)

    def problems() -> list[str]:
        resp = prometheus(ctx, "/api/v1/rules")
        mine = {"status": "success", "data": {"groups": [g for g in _data(resp).get("groups") or []
                                                        if g.get("name") in groups]}}
        return rule_problems(mine, groups)
    ctx.wait_clean(f"{len(groups)} rule group(s) evaluated", problems)
    return f"{len(groups)} rule group(s) loaded and healthy"


def own_dashboards_listed(ctx: Any) -> str:
    """Grafana lists this component's dashboards (logged in with the generated admin password)."""
    titles = dashboard_titles(ctx.objects)
    g = Grafana(ctx)

    def problems() -> list[str]:
        g.login()
        listed = g.get("/api/search", type="dash-db")
        return [f"dashboard {t!r} is not listed in Grafana" for t in sorted(titles - {d.get("title") for d in listed})]
    ctx.wait_clean(f"{len(titles)} dashboard(s) listed in Grafana", problems)
    return f"{len(titles)} dashboard(s) listed"
