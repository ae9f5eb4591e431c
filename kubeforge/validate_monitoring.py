"""Render-time checks of monitoring objects, before any cluster exists (called by kubeforge.validate).

- `promql`: every PrometheusRule expression parses with a real PromQL parser (promql-parser, the
  Rust parser of the GreptimeDB project), function argument types included;
- `rule-labels`: every alerting rule has a `severity` label and a `summary` annotation;
- `rule-metrics`: the metrics alerts read are exported by an exporter in the render: DCGM fields
  must be among the counters the DCGM exporter is configured with (its CSV), `kube_*` needs
  kube-state-metrics and `node_*` node-exporter;
- `monitor-target`: every ServiceMonitor selects a Service of the render (or one every cluster
  has) with the port each endpoint names; every PodMonitor selects pods with that port;
- `monitor-access`: Prometheus may discover targets (services, endpoint slices, pods) in every
  namespace a monitor reaches (RBAC of the render);
- `monitor-netpol`: where a NetworkPolicy isolates a target pod, one admits Prometheus on its port;
- `dashboard`: every dashboard Grafana is provisioned with parses, and every datasource it names is
  one the render provisions (by uid or name), a datasource variable, or Grafana's own; every
  ConfigMap or Secret Grafana mounts exists.

Findings are (severity, rule, message, object, path) tuples; kubeforge.validate turns them into
its Findings. Nothing is imported at module load.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

ERROR = "error"
RULES = {
    "promql": "every PrometheusRule expression parses as PromQL",
    "rule-labels": "every alerting rule has a severity label and a summary annotation",
    "rule-metrics": "alerts read metrics that an exporter of the render exports (DCGM fields: its counters CSV)",
    "monitor-target": "every ServiceMonitor/PodMonitor selects a Service/pods of the render with the port it names",
    "monitor-access": "Prometheus may discover targets in every namespace a monitor reaches",
    "monitor-netpol": "a NetworkPolicy that isolates a scrape target admits Prometheus on its port",
    "dashboard": "Grafana dashboards parse and name provisioned datasources; Grafana's volumes exist",
}

MON = "monitoring.coreos.com/"
# Services every cluster has, which the render cannot contain: (namespace, name) -> labels, port
# names. default/kubernetes is the API server's own; kube-dns is kubeadm's CoreDNS Service (the
# managed clouds name theirs alike); kubelet is the Service the Prometheus Operator maintains
# itself (`--kubelet-service=kube-system/kubelet` in kube-prometheus' operator Deployment).
CLUSTER_SERVICES = {
    ("default", "kubernetes"): ({"component": "apiserver", "provider": "kubernetes"}, {"https"}),
    ("kube-system", "kube-dns"): ({"k8s-app": "kube-dns"}, {"dns", "dns-tcp", "metrics"}),
    ("kube-system", "kubelet"): ({"app.kubernetes.io/name": "kubelet", "k8s-app": "kubelet"},
                                 {"https-metrics", "http-metrics", "cadvisor"}),
}
# Series Prometheus makes itself, and families whose exporter a render shows by a workload name.
SYNTHETIC = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped",
                       "scrape_samples_post_metric_relabeling", "scrape_series_added", "time"})
FAMILIES = {"kube_": ("kube-state-metrics", "Deployment"), "node_": ("node-exporter", "DaemonSet")}
DCGM_PREFIX = "DCGM_"
# Labels the Prometheus Operator puts on every Prometheus pod, besides spec.podMetadata.labels.
OPERATOR_POD_LABELS = ("app.kubernetes.io/name", "prometheus"), ("app.kubernetes.io/managed-by", "prometheus-operator")
GRAFANA_BUILTIN = frozenset({"-- Grafana --", "-- Mixed --", "-- Dashboard --", "grafana", "default"})
_VAR = re.compile(r"^\$\{?([A-Za-z0-9_]+)(:[a-z]+)?\}?$")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")

Finding = tuple[str, str, str, dict, str]


def check(objects: list[dict]) -> list[Finding]:
    objs = [o for o in objects if isinstance(o, dict) and isinstance(o.get("metadata"), dict)]
    idx = _Index(objs)
    out: list[Finding] = []
    out += _rules(idx)
    for o in idx.of(MON, "ServiceMonitor", "PodMonitor"):
        out += _monitor(o, idx)
    out += _dashboards(idx)
    return out


# --- an index of the render ---------------------------------------------------------------------

class _Index:
    def __init__(self, objs: list[dict]):
        self.objs = objs
        self.by_kind: dict[str, list[dict]] = {}
        for o in objs:
            self.by_kind.setdefault(o.get("kind", ""), []).append(o)
        self.namespace_labels = {o["metadata"].get("name"): dict(_labels(o)) for o in self.by_kind.get("Namespace", [])}

    def of(self, group_prefix: str, *kinds: str) -> list[dict]:
        return [o for k in kinds for o in self.by_kind.get(k, [])
                if str(o.get("apiVersion", "")).startswith(group_prefix)]

    def kind(self, kind: str, namespace: str | None = None) -> list[dict]:
        return [o for o in self.by_kind.get(kind, []) if namespace is None or _ns(o) == namespace]

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return next((o for o in self.by_kind.get(kind, []) if _ns(o) == namespace
                     and o["metadata"].get("name") == name), None)

    def ns_labels(self, ns: str) -> dict:
        return {**self.namespace_labels.get(ns, {}), "kubernetes.io/metadata.name": ns}

    def namespaces(self) -> set[str]:
        return {_ns(o) for o in self.objs if _ns(o)} | set(self.namespace_labels)


def _ns(o: dict) -> str:
    return str(o["metadata"].get("namespace") or "")


def _labels(o: dict) -> dict:
    return o["metadata"].get("labels") or {}


def _d(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def selects(selector: dict | None, labels: dict) -> bool:
    """A Kubernetes label selector (matchLabels + matchExpressions) against labels; {} selects all."""
    sel = _d(selector)
    for k, v in _d(sel.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# --- rules ---------------------------------------------------------------------------------------

def _parse(expr: str):
    import promql_parser

    return promql_parser.parse(expr)


def _metric_names(ast) -> set[str]:
    import promql_parser

    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for m in node.matchers.matchers:
                if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal:
                    names.add(m.value)
    promql_parser.walk(ast, visit)
    return names


def _rules(idx: _Index) -> Iterator[Finding]:
    rules = idx.of(MON, "PrometheusRule")
    if not rules:
        return
    recorded = {r.get("record") for o in rules for g in _d(o.get("spec")).get("groups") or []
                for r in _d(g).get("rules") or [] if isinstance(r, dict)}
    counters = dcgm_counters(idx)
    for o in rules:
        for gi, g in enumerate(_d(o.get("spec")).get("groups") or []):
            for ri, r in enumerate(_d(g).get("rules") or []):
                if not isinstance(r, dict):
                    continue
                path = f"spec.groups[{gi}].rules[{ri}]"
                what = f"alert {r['alert']}" if r.get("alert") else f"record {r.get('record')}"
                try:
                    ast = _parse(str(r.get("expr", "")))
                except (ValueError, TypeError) as e:
                    yield ERROR, "promql", f"{what} (group {g.get('name')}): expr does not parse: {e}", o, f"{path}.expr"
                    continue
                if not r.get("alert"):
                    continue
                missing = [f for f, ok in (("labels.severity", _d(r.get("labels")).get("severity")),
                                           ("annotations.summary", _d(r.get("annotations")).get("summary"))) if not ok]
                if missing:
                    yield ERROR, "rule-labels", f"{what} has no {' and no '.join(missing)}: Alertmanager routes by " \
                        "severity and receivers show the summary", o, path
                for m in sorted(_metric_names(ast) - recorded - SYNTHETIC):
                    why = _unexported(m, idx, counters)
                    if why:
                        yield ERROR, "rule-metrics", f"{what} reads {m}, {why}", o, f"{path}.expr"


def _unexported(metric: str, idx: _Index, counters: set[str] | None) -> str | None:
    if metric.startswith(DCGM_PREFIX):
        if counters is None:
            return "but no DCGM exporter in the render is configured with a counters CSV it can see"
        if metric not in counters:
            return "which is not among the DCGM exporter's counters (add the field to its counters CSV)"
        return None
    for prefix, (name, kind) in FAMILIES.items():
        if metric.startswith(prefix) and not any(o["metadata"].get("name") == name for o in idx.kind(kind)):
            return f"but the render has no {name} {kind} to export it"
    return None


def parse_counters(text: str) -> set[str]:
    """Field names of a dcgm-exporter counters CSV (`FIELD, type, help`; '#' starts a comment)."""
    out = set()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.add(line.split(",", 1)[0].strip())
    return out


def dcgm_counters(idx: _Index) -> set[str] | None:
    """Fields the render's DCGM exporters collect: each exporter DaemonSet's collectors file,
    followed through its env, volume mount and ConfigMap; else (the GPU Operator runs the
    exporter) the ConfigMaps labelled as its counters. None: nothing the render shows."""
    from kubeforge.gpu import dcgm

    found: set[str] | None = None
    exporters = [(o, c) for o in idx.kind("DaemonSet")
                 for c in _d(_d(_d(o.get("spec")).get("template")).get("spec")).get("containers") or []
                 if "dcgm-exporter" in str(c.get("image", ""))]
    for ds, c in exporters:
        path = next((e.get("value") for e in c.get("env") or [] if e.get("name") == dcgm.COLLECTORS_ENV), None)
        text = _mounted_file(ds, c, path, idx) if path else None
        if text is None:
            return None            # the image's built-in counters: not visible in the render
        found = (found or set()) | parse_counters(text)
    if not exporters:
        for cm in idx.kind("ConfigMap"):
            if _labels(cm).get(dcgm.LABEL) == "true":
                found = (found or set()) | {f for v in (cm.get("data") or {}).values() for f in parse_counters(v)}
    return found


def _mounted_file(ds: dict, container: dict, path: str, idx: _Index) -> str | None:
    pod = ds["spec"]["template"]["spec"]
    for m in container.get("volumeMounts") or []:
        mp = str(m.get("mountPath", "")).rstrip("/")
        if path.startswith(mp + "/"):
            key = m.get("subPath") or path[len(mp) + 1:]
            vol = next((v for v in pod.get("volumes") or [] if v.get("name") == m.get("name")), {})
            cm = idx.get("ConfigMap", _ns(ds), _d(vol.get("configMap")).get("name", ""))
            if cm is not None:
                return (cm.get("data") or {}).get(key)
    return None


# --- monitors ------------------------------------------------------------------------------------

def _target_namespaces(mon: dict, idx: _Index) -> list[str] | None:
    """None means every namespace (namespaceSelector.any)."""
    sel = _d(_d(mon.get("spec")).get("namespaceSelector"))
    if sel.get("any"):
        return None
    return list(sel.get("matchNames") or [_ns(mon)])


def _pods_of(idx: _Index, ns: str, selector: dict, empty_selects_all: bool = False) -> list[tuple[dict, dict]]:
    """(workload, pod template) of the render in ns whose pod labels the selector matches (a
    Service without a selector selects no pods; a PodMonitor's empty selector selects all)."""
    out = []
    for kind in WORKLOADS:
        for w in idx.kind(kind, ns):
            tpl = _d(_d(w.get("spec")).get("template"))
            if (selector or empty_selects_all) and selects(selector, _d(_d(tpl.get("metadata")).get("labels"))):
                out.append((w, tpl))
    return out


def _container_port(tpl: dict, port: Any) -> tuple[int | None, str | None]:
    """(number, name) of a pod template's container port given by name or number."""
    for c in _d(tpl.get("spec")).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == port or p.get("containerPort") == port:
                return p.get("containerPort"), p.get("name")
    return (port, None) if isinstance(port, int) else (None, None)


def _monitor(mon: dict, idx: _Index) -> Iterator[Finding]:
    spec = _d(mon.get("spec"))
    kind = mon["kind"]
    namespaces = _target_namespaces(mon, idx)
    selector = _d(spec.get("selector"))
    eps = spec.get("endpoints") if kind == "ServiceMonitor" else spec.get("podMetricsEndpoints")
    targets: list[tuple[str, dict, Any]] = []        # (namespace, pod template, port) per endpoint
    scope = namespaces if namespaces is not None else sorted(idx.namespaces())
    for i, ep in enumerate(eps or []):
        if kind == "ServiceMonitor":
            port = ep.get("port") or ep.get("targetPort")
            hits = 0
            for ns in scope:
                for svc in idx.kind("Service", ns):
                    if not selects(selector, _labels(svc)):
                        continue
                    sp = next((p for p in _d(svc.get("spec")).get("ports") or []
                               if p.get("name") == port or (ep.get("targetPort") is not None
                                                            and p.get("targetPort") == ep.get("targetPort"))), None)
                    if sp is None:
                        continue
                    hits += 1
                    svc_selector = _d(_d(svc.get("spec")).get("selector"))
                    for _, tpl in _pods_of(idx, ns, {"matchLabels": svc_selector} if svc_selector else {}):
                        targets.append((ns, tpl, sp.get("targetPort", sp.get("port"))))
                for (cns, _name), (labels, ports) in CLUSTER_SERVICES.items():
                    if cns == ns and selects(selector, labels) and port in ports:
                        hits += 1
            if not hits:
                yield ERROR, "monitor-target", (
                    f"endpoint {i} (port {port!r}) matches no Service of the render in "
                    f"{'any namespace' if namespaces is None else ', '.join(namespaces)} with selector "
                    f"{json.dumps(selector, sort_keys=True)} and that port: Prometheus would scrape nothing"), \
                    mon, f"spec.endpoints[{i}]"
        else:
            port = ep.get("port") or ep.get("portNumber")
            hits = 0
            for ns in scope:
                for _, tpl in _pods_of(idx, ns, selector, empty_selects_all=True):
                    if port is None or _container_port(tpl, port)[0] is not None:
                        hits += 1
                        if port is not None:
                            targets.append((ns, tpl, port))
            if not hits:
                yield ERROR, "monitor-target", (
                    f"podMetricsEndpoints[{i}] (port {port!r}) matches no pods of the render in "
                    f"{'any namespace' if namespaces is None else ', '.join(namespaces)} with selector "
                    f"{json.dumps(selector, sort_keys=True)} and that port"), mon, f"spec.podMetricsEndpoints[{i}]"
    yield from _access(mon, namespaces, idx)
    yield from _netpol(mon, targets, idx)


def _prometheuses(idx: _Index) -> list[dict]:
    return idx.of(MON, "Prometheus")


def _grants(rules: list[dict], group: str, resource: str) -> bool:
    for r in rules or []:
        groups, res, verbs = r.get("apiGroups") or [], r.get("resources") or [], r.get("verbs") or []
        if (group in groups or "*" in groups) and (resource in res or "*" in res) \
                and ({"list", "watch"} <= set(verbs) or "*" in verbs):
            return True
    return False


def _needed(prom: dict) -> list[tuple[str, str]]:
    sd = _d(prom.get("spec")).get("serviceDiscoveryRole") or "Endpoints"
    eps = ("discovery.k8s.io", "endpointslices") if sd == "EndpointSlice" else ("", "endpoints")
    return [("", "services"), eps, ("", "pods")]


def _access(mon: dict, namespaces: list[str] | None, idx: _Index) -> Iterator[Finding]:
    for prom in _prometheuses(idx):
        sa = (_d(prom.get("spec")).get("serviceAccountName") or "default", _ns(prom))
        cluster_rules = _bound_rules(idx, "ClusterRoleBinding", None, sa)
        for ns in ([None] if namespaces is None else namespaces):
            rules = cluster_rules + ([] if ns is None else _bound_rules(idx, "RoleBinding", ns, sa))
            lacking = [f"{g or 'core'}/{r}" for g, r in _needed(prom) if not _grants(rules, g, r)]
            if lacking:
                where = "cluster-wide (namespaceSelector.any)" if ns is None else f"in namespace {ns}"
                yield ERROR, "monitor-access", (
                    f"Prometheus {sa[1]}/{prom['metadata']['name']} (ServiceAccount {sa[0]}) may not list/watch "
                    f"{', '.join(lacking)} {where}: add a Role and RoleBinding for it there"), mon, "spec"


def _bound_rules(idx: _Index, kind: str, ns: str | None, sa: tuple[str, str]) -> list[dict]:
    out: list[dict] = []
    for b in idx.kind(kind, ns):
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa[0]
                   and (s.get("namespace") or _ns(b)) == sa[1] for s in b.get("subjects") or []):
            continue
        ref = _d(b.get("roleRef"))
        role = idx.get("ClusterRole", "", ref.get("name", "")) if ref.get("kind") == "ClusterRole" \
            else idx.get("Role", ns or "", ref.get("name", ""))
        if role is not None:
            out += role.get("rules") or []
    return out


def prometheus_pod_labels(prom: dict) -> dict:
    labels = dict(_d(_d(_d(prom.get("spec")).get("podMetadata")).get("labels")))
    labels.update(dict(OPERATOR_POD_LABELS))
    labels.update({"app.kubernetes.io/instance": prom["metadata"]["name"], "prometheus": prom["metadata"]["name"],
                   "operator.prometheus.io/name": prom["metadata"]["name"]})
    return labels


def _isolates(np: dict, pod_labels: dict) -> bool:
    spec = _d(np.get("spec"))
    types = spec.get("policyTypes") or ["Ingress"]
    return "Ingress" in types and selects(spec.get("podSelector") or {}, pod_labels)


def _admits(np: dict, src_ns: str, src_ns_labels: dict, src_labels: dict, port: tuple[Any, Any]) -> bool:
    for rule in _d(np.get("spec")).get("ingress") or []:
        peers = rule.get("from") or []
        ok_from = not peers or any(_peer(p, _ns(np), src_ns, src_ns_labels, src_labels) for p in peers)
        ports = rule.get("ports") or []
        ok_port = not ports or any(p.get("port") is None or p.get("port") in port
                                   or (isinstance(p.get("port"), int) and isinstance(port[0], int)
                                       and p.get("endPort") and p["port"] <= port[0] <= p["endPort"])
                                   for p in ports if (p.get("protocol") or "TCP") == "TCP")
        if ok_from and ok_port:
            return True
    return False


def _peer(peer: dict, np_ns: str, src_ns: str, ns_labels: dict, pod_labels: dict) -> bool:
    if "ipBlock" in peer:
        return False                 # the pod IP is not known at render time
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    ns_ok = selects(ns_sel, ns_labels) if ns_sel is not None else src_ns == np_ns
    return ns_ok and (pod_sel is None or selects(pod_sel, pod_labels))


def _netpol(mon: dict, targets: list[tuple[str, dict, Any]], idx: _Index) -> Iterator[Finding]:
    seen = set()
    for prom in _prometheuses(idx):
        src_ns, src_labels = _ns(prom), prometheus_pod_labels(prom)
        for ns, tpl, port in targets:
            labels = _d(_d(tpl.get("metadata")).get("labels"))
            number, name = _container_port(tpl, port)
            policies = [np for np in idx.kind("NetworkPolicy", ns) if _isolates(np, labels)]
            if not policies or any(_admits(np, src_ns, idx.ns_labels(src_ns), src_labels, (number, name))
                                   for np in policies):
                continue
            key = (ns, json.dumps(labels, sort_keys=True), str(port))
            if key in seen:
                continue
            seen.add(key)
            yield ERROR, "monitor-netpol", (
                f"pods {json.dumps(labels, sort_keys=True)} in {ns} are isolated by NetworkPolicy "
                f"{', '.join(np['metadata']['name'] for np in policies)} and none admits Prometheus "
                f"{src_ns}/{prom['metadata']['name']} on port {name or number}: the scrape would time out"), \
                mon, "spec"


# --- Grafana dashboards --------------------------------------------------------------------------

def _grafanas(idx: _Index) -> Iterator[tuple[dict, dict]]:
    for d in idx.kind("Deployment"):
        for c in _d(_d(_d(d.get("spec")).get("template")).get("spec")).get("containers") or []:
            if str(c.get("image", "")).split("/")[-1].startswith("grafana:"):
                yield d, c


def _mounted(d: dict, c: dict, idx: _Index) -> list[tuple[str, str, dict | None, str]]:
    """(mount path, volume name, the ConfigMap/Secret it mounts or None, kind) of a container."""
    vols = {v.get("name"): v for v in _d(d["spec"]["template"].get("spec")).get("volumes") or []}
    out = []
    for m in c.get("volumeMounts") or []:
        v = vols.get(m.get("name"), {})
        if "configMap" in v:
            out.append((m["mountPath"], m["name"], idx.get("ConfigMap", _ns(d), v["configMap"].get("name", "")),
                        "ConfigMap " + v["configMap"].get("name", "")))
        elif "secret" in v:
            out.append((m["mountPath"], m["name"], idx.get("Secret", _ns(d), v["secret"].get("secretName", "")),
                        "Secret " + v["secret"].get("secretName", "")))
    return out


def _files(obj: dict) -> dict[str, str]:
    import base64

    files = dict(obj.get("stringData") or {})
    for k, v in (obj.get("data") or {}).items():
        files.setdefault(k, v if obj["kind"] == "ConfigMap" else base64.b64decode(v).decode(errors="replace"))
    return files


def _load(text: str) -> Any:
    from kubeforge import yamlio

    return yamlio.load(text)


def _dashboards(idx: _Index) -> Iterator[Finding]:
    for d, c in _grafanas(idx):
        mounts = _mounted(d, c, idx)
        for _path, vol, obj, what in mounts:
            if obj is None:
                yield ERROR, "dashboard", f"Grafana mounts {what} (volume {vol}) which the render does not have " \
                    "(its pod would not start, or, if optional, start without it)", d, "spec.template.spec.volumes"
        datasources, providers = [], []
        for path, _vol, obj, _what in mounts:
            if obj is None:
                continue
            for fname, text in _files(obj).items():
                try:
                    if path.rstrip("/") == "/etc/grafana/provisioning/datasources":
                        datasources += _d(_load(text)).get("datasources") or []
                    elif path.rstrip("/") == "/etc/grafana/provisioning/dashboards":
                        providers += [str(_d(p.get("options")).get("path", "")).rstrip("/")
                                      for p in _d(_load(text)).get("providers") or []]
                except Exception as e:  # the provisioning file itself is broken
                    yield ERROR, "dashboard", f"Grafana provisioning file {fname} does not parse: {e}", obj, "data"
        uids = {str(ds.get("uid")) for ds in datasources if ds.get("uid")}
        names = {str(ds.get("name")) for ds in datasources if ds.get("name")}
        types = {str(ds.get("type")) for ds in datasources}
        for path, _vol, obj, _what in mounts:
            if obj is None or obj["kind"] != "ConfigMap" or not any(
                    path.rstrip("/") == p or path.startswith(p + "/") for p in providers):
                continue
            for fname, text in _files(obj).items():
                if not fname.endswith(".json"):
                    continue
                try:
                    dash = json.loads(text)
                except ValueError as e:
                    yield ERROR, "dashboard", f"dashboard {fname} is not valid JSON: {e}", obj, f"data.{fname}"
                    continue
                for bad in _bad_datasources(dash, uids, names, types):
                    yield ERROR, "dashboard", f"dashboard {fname} ({dash.get('title')}) names datasource {bad}, " \
                        f"which Grafana is not provisioned with (uids: {', '.join(sorted(uids)) or 'none'})", \
                        obj, f"data.{fname}"


def _bad_datasources(dash: dict, uids: set[str], names: set[str], types: set[str]) -> list[str]:
    variables = {v.get("name"): v for v in _d(dash.get("templating")).get("list") or []
                 if isinstance(v, dict) and v.get("type") == "datasource"}
    bad: list[str] = []

    def ok(ref: Any) -> bool:
        if ref is None or ref == "":
            return True                               # the dashboard's default datasource
        if isinstance(ref, dict):
            uid = ref.get("uid")
            if uid is None:
                return ref.get("type") in types or ref.get("type") in ("datasource", "grafana", None)
            ref = uid
            by_uid = True
        else:
            by_uid = False
        ref = str(ref)
        m = _VAR.match(ref)
        if m:
            var = variables.get(m.group(1))
            return var is not None and (var.get("query") in types)
        return ref in GRAFANA_BUILTIN or ref in uids or (not by_uid and ref in names)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "datasource" in node and not ok(node["datasource"]):
                bad.append(json.dumps(node["datasource"], sort_keys=True))
            for k, v in node.items():
                if k != "datasource":
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk({k: v for k, v in dash.items() if k != "templating"})
    for v in _d(dash.get("templating")).get("list") or []:
        if isinstance(v, dict) and v.get("type") != "datasource":
            walk(v)
    return sorted(set(bad))
