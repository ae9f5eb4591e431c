"""The object graph the platform stack registers, as plain data (no Pulumi import).

One Pulumi resource per rendered object. Besides the plan's component DAG (every object depends
on the components its component depends on), these object-level edges make Pulumi apply things
when the API server can accept them and tear them down in the reverse order:

- a namespaced object after its Namespace (when the stack creates it), or after the custom
  resource whose controller creates that namespace at runtime (kubeforge.ordering.created_namespace:
  a Kubeflow Profile, which carries a `pulumi.com/waitFor` for its controller's reconcile);
- a custom resource after the CRD that defines it, after the controllers (Deployments,
  StatefulSets) of the component that defines the CRD, after the webhook configurations whose
  rules match it and after the workloads that serve those webhooks (admission and CRD
  conversion); `destroy` reverses this, so custom resources go while their controllers can
  still remove finalizers;
- a webhook configuration or APIService after the workloads behind its Service, so admission
  never points at a backend that is not running yet;
- a workload after the ServiceAccount it runs as;
- an object after the objects of its rank it references (kubeforge.ordering.references: owners,
  a Certificate's issuer, a VirtualService's gateways), as in the render order.

Readiness that the provider's built-in await logic does not cover is added as the
`pulumi.com/waitFor` annotation: webhook configurations and conversion-webhook CRDs whose
caBundle someone else injects (cert-manager's cainjector, istiod, Knative's webhook) wait for
the caBundle, so nothing after them calls a webhook with no trusted certificate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeforge.errors import KubeforgeError
from kubeforge.model import Rendered
from kubeforge.ordering import created_namespace, identity, is_custom, kind_rank, references, resolve

WAIT_FOR = "pulumi.com/waitFor"
SKIP_AWAIT = "pulumi.com/skipAwait"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
CONTROLLER_KINDS = ("Deployment", "StatefulSet")
# Namespaces every cluster has; objects there need no Namespace resource of the stack.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


def split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


def type_token(obj: dict[str, Any]) -> str:
    """The Pulumi type token pulumi-kubernetes uses: kubernetes:<group|core>/<version>:<Kind>."""
    group, version = split_api_version(obj["apiVersion"])
    return f"kubernetes:{group or 'core'}/{version}:{obj['kind']}"


def object_key(obj: dict[str, Any]) -> str:
    """Identity of an object in the cluster (the API version does not change identity)."""
    group, _ = split_api_version(obj.get("apiVersion", ""))
    md = obj.get("metadata", {})
    return f"{group or 'core'}/{obj.get('kind')}/{md.get('namespace', '')}/{md.get('name')}"


def resource_name(obj: dict[str, Any]) -> str:
    """The Pulumi logical name: <namespace>/<name>, or <name> when cluster-scoped (as ConfigFile)."""
    md = obj["metadata"]
    return f"{md['namespace']}/{md['name']}" if md.get("namespace") else md["name"]


def component_type(name: str) -> str:
    """kubeforge:component:<Name>, e.g. cert-manager -> kubeforge:component:CertManager."""
    return "kubeforge:component:" + "".join(p[:1].upper() + p[1:] for p in name.replace("_", "-").split("-"))


@dataclass
class Node:
    key: str
    component: str
    obj: dict[str, Any]              # the object as Pulumi registers it (annotations added)
    deps: list[str] = field(default_factory=list)   # keys of objects it must come after
    chart_deps: list[str] = field(default_factory=list)  # components whose Helm chart it needs
    secret: bool = False             # carries a per-install secret: every field but identity is secret

    @property
    def kind(self) -> str:
        return self.obj["kind"]


@dataclass
class HelmChart:
    component: str
    chart: str
    version: str
    repo_url: str
    namespace: str
    values: dict[str, Any]


@dataclass
class Graph:
    nodes: dict[str, Node]                  # key -> node, in apply order
    components: dict[str, list[str]]        # component -> keys of its objects, apply order
    charts: dict[str, list[HelmChart]]      # component -> Helm charts it installs
    component_deps: dict[str, list[str]]    # the plan's DAG
    waves: list[list[str]]
    versions: dict[str, str]
    unresolved: list[str]                   # custom resources whose CRD nobody provides

    def edges(self) -> list[tuple[str, str]]:
        return [(n.key, d) for n in self.nodes.values() for d in n.deps]


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return ((spec.get("template") or {}).get("spec")) or {}


def _template_labels(obj: dict[str, Any]) -> dict[str, str]:
    spec = obj.get("spec") or {}
    return (((spec.get("template") or {}).get("metadata")) or {}).get("labels") or {}


class _Index:
    """Lookups over every object of the stack (all components), built once."""

    def __init__(self, nodes: dict[str, Node]):
        self.namespaces: dict[str, str] = {}
        self.crds: dict[tuple[str, str], Node] = {}
        self.plurals: dict[tuple[str, str], str] = {}
        self.services: dict[tuple[str, str], Node] = {}
        self.workloads: dict[str, list[Node]] = {}
        self.accounts: dict[tuple[str, str], str] = {}
        self.webhooks: list[Node] = []
        self.identities = {identity(n.obj): n for n in nodes.values()}
        created: dict[str, str] = {}
        for node in nodes.values():
            o, md = node.obj, node.obj.get("metadata", {})
            kind, ns = o.get("kind"), md.get("namespace", "")
            if kind == "Namespace":
                self.namespaces[md["name"]] = node.key
            elif kind == "CustomResourceDefinition":
                spec = o.get("spec") or {}
                names = spec.get("names") or {}
                gk = (spec.get("group", ""), names.get("kind", ""))
                self.crds[gk] = node
                self.plurals[gk] = names.get("plural", "")
            elif kind == "Service":
                self.services[(ns, md["name"])] = node
            elif kind in WORKLOAD_KINDS:
                self.workloads.setdefault(ns, []).append(node)
            elif kind == "ServiceAccount":
                self.accounts[(ns, md["name"])] = node.key
            elif kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
                self.webhooks.append(node)
            if (made := created_namespace(o)) is not None:
                created.setdefault(made, node.key)
        for ns, key in created.items():   # a Namespace the stack renders itself comes first
            self.namespaces.setdefault(ns, key)

    def backends(self, ref: dict[str, Any] | None) -> list[str]:
        """Workloads behind a service reference {namespace, name}: the Service and what it selects."""
        if not ref:
            return []
        svc = self.services.get((ref.get("namespace", ""), ref.get("name", "")))
        if svc is None:
            return []
        selector = (svc.obj.get("spec") or {}).get("selector") or {}
        out = [svc.key]
        if selector:
            for w in self.workloads.get(ref.get("namespace", ""), []):
                labels = _template_labels(w.obj)
                if all(labels.get(k) == v for k, v in selector.items()):
                    out.append(w.key)
        return out

    def matching_webhooks(self, group: str, plural: str) -> list[Node]:
        out = []
        for hook in self.webhooks:
            for wh in hook.obj.get("webhooks") or []:
                if any(_rule_matches(r, group, plural) for r in wh.get("rules") or []):
                    out.append(hook)
                    break
        return out


def _rule_matches(rule: dict[str, Any], group: str, plural: str) -> bool:
    ops = rule.get("operations") or ["*"]
    if not ({"*", "CREATE"} & set(ops)):
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and group not in groups:
        return False
    resources = [r.split("/")[0] for r in rule.get("resources") or []]
    return "*" in resources or plural in resources


def _needs_injected_ca(hooks: list[dict[str, Any]]) -> bool:
    return any((h.get("clientConfig") or {}).get("service") and not (h.get("clientConfig") or {}).get("caBundle")
               for h in hooks)


def _annotate(obj: dict[str, Any], key: str, value: str) -> None:
    md = obj.setdefault("metadata", {})
    ann = dict(md.get("annotations") or {})
    ann.setdefault(key, value)   # an annotation the upstream object sets itself wins
    md["annotations"] = ann


def await_annotations(obj: dict[str, Any], await_load_balancers: bool = False) -> None:
    """Add the waitFor/skipAwait annotations where the provider's own await logic falls short."""
    kind = obj.get("kind")
    if kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        hooks = obj.get("webhooks") or []
        if hooks and _needs_injected_ca(hooks):
            _annotate(obj, WAIT_FOR, "jsonpath={.webhooks[0].clientConfig.caBundle}")
    elif kind == "CustomResourceDefinition":
        conv = ((obj.get("spec") or {}).get("conversion")) or {}
        cc = ((conv.get("webhook") or {}).get("clientConfig")) or {}
        if conv.get("strategy") == "Webhook" and cc.get("service") and not cc.get("caBundle"):
            _annotate(obj, WAIT_FOR, "jsonpath={.spec.conversion.webhook.clientConfig.caBundle}")
    elif kind == "Service" and not await_load_balancers:
        # On bare metal nothing may hand out load-balancer addresses: waiting for one would hang
        # `pulumi up`. kubeforge:awaitLoadBalancers=true restores the provider's wait.
        if (obj.get("spec") or {}).get("type") == "LoadBalancer":
            _annotate(obj, SKIP_AWAIT, "true")


def build_graph(rendered: Rendered, *, charts: dict[str, list[HelmChart]] | None = None,
                await_load_balancers: bool = False) -> Graph:
    """The stack's resource graph from the rendered objects and the plan's DAG.

    `charts`: the Helm charts per component when `rendered` came from a plan with its Helm
    sources taken out (`render(..., skip_helm=True)`); by default they come from `rendered.plan`."""
    plan = rendered.plan
    given_charts = charts
    nodes: dict[str, Node] = {}
    components: dict[str, list[str]] = {}
    charts = {}
    for name, rc in rendered.components.items():
        keys = components.setdefault(name, [])
        for src in rc.objects:
            # Only metadata.annotations is changed: copy that level, share the rest (CRDs are big).
            obj = {k: v for k, v in src.items() if k != "status"}
            obj["metadata"] = dict(src.get("metadata") or {})
            await_annotations(obj, await_load_balancers)
            key = object_key(obj)
            if key in nodes:
                other = nodes[key].component
                raise KubeforgeError(
                    f"{key} is rendered by both {other} and {name}; one object, one owner",
                    field=f"components.{name}", fix=f"drop the object from one of {other} and {name}")
            nodes[key] = Node(key, name, obj)
            keys.append(key)
        charts[name] = (given_charts or {}).get(name, []) if given_charts is not None \
            else helm_charts(plan.components[name], plan)

    idx = _Index(nodes)
    deps_of = {n: list(pc.depends_on) for n, pc in plan.components.items()}
    closure = _closure(deps_of)
    unresolved: list[str] = []
    for node in nodes.values():
        o, md = node.obj, node.obj.get("metadata", {})
        deps: list[str] = []
        ns = md.get("namespace")
        if ns and ns in idx.namespaces:
            deps.append(idx.namespaces[ns])
        kind = o.get("kind")
        if is_custom(o):
            group, _ = split_api_version(o["apiVersion"])
            crd = idx.crds.get((group, kind))
            if crd is not None:
                deps.append(crd.key)
                # The component that defines the CRD runs its controller: the resource is created
                # once that controller is ready, and deleted before it (finalizers get handled,
                # namespaces do not hang in Terminating).
                deps += [w.key for ws in idx.workloads.values() for w in ws
                         if w.component == crd.component and w.kind in CONTROLLER_KINDS]
                conv = ((crd.obj.get("spec") or {}).get("conversion")) or {}
                deps += idx.backends(((conv.get("webhook") or {}).get("clientConfig") or {}).get("service"))
                for hook in idx.matching_webhooks(group, idx.plurals[(group, kind)]):
                    if hook.key != node.key:
                        deps.append(hook.key)
                        for wh in hook.obj.get("webhooks") or []:
                            deps += idx.backends((wh.get("clientConfig") or {}).get("service"))
            else:
                # A CRD installed by a Helm chart of this component or one it depends on.
                providers = [c for c in [node.component, *closure[node.component]] if charts.get(c)]
                if providers:
                    node.chart_deps = providers[:1]
                elif not plan.profile.cluster.provides(group, kind):   # else the cluster has it
                    unresolved.append(node.key)
        elif kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
            for wh in o.get("webhooks") or []:
                deps += idx.backends((wh.get("clientConfig") or {}).get("service"))
        elif kind == "APIService":
            deps += idx.backends((o.get("spec") or {}).get("service"))
        for ref in references(o):
            target = resolve(ref, idx.identities)
            if target is not None and kind_rank(target.obj) == kind_rank(o):
                deps.append(target.key)
        if kind in WORKLOAD_KINDS or kind in ("Job", "CronJob"):
            sa = _pod_spec(o).get("serviceAccountName")
            if sa and (ns or "", sa) in idx.accounts:
                deps.append(idx.accounts[(ns or "", sa)])
        # Objects of components this one depends on are ordered through those components' gates
        # already (see platform.deploy): keep only the edges the DAG does not imply.
        upstream = set(closure[node.component])
        seen: set[str] = set()
        node.deps = [d for d in deps if d != node.key and nodes[d].component not in upstream
                     and not (d in seen or seen.add(d))]

    return Graph(nodes=nodes, components=components, charts=charts, component_deps=deps_of,
                 waves=[list(w) for w in plan.waves],
                 versions={n: rc.version for n, rc in rendered.components.items()},
                 unresolved=unresolved)


def _closure(deps: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in deps:
        seen: list[str] = []
        todo = list(deps[name])
        while todo:
            d = todo.pop(0)
            if d not in seen:
                seen.append(d)
                todo += deps.get(d, [])
        out[name] = seen
    return out


def helm_charts(pc: Any, plan: Any = None) -> list[HelmChart]:
    """The Helm sources of a planned component whose `when` matches its values.

    Chart values come from the component's generate.py `chart_values(ctx)` when it has one (the
    values the profile implies, e.g. the GPU Operator's MIG strategy), else its `chart` value."""
    from kubeforge.render import Context, _load_generate, selected_sources

    srcs = [s for s in selected_sources(pc) if s.kind == "helm"]
    if not srcs:
        return []
    module = _load_generate(pc)
    if module is not None and hasattr(module, "chart_values") and plan is not None:
        values = module.chart_values(Context(profile=plan.profile, plan=plan, component=pc, values=pc.values))
    else:
        values = dict(pc.values.get("chart") or {})
    namespace = next(iter(pc.component.namespaces), "default")
    return [HelmChart(component=pc.name, chart=s.chart, version=s.version, repo_url=s.repo_url,
                      namespace=namespace, values=values) for s in srcs]


def stack_graph(plan: Any, settings: Any, *, file: str, mirror: str | None = None, secrets: Any = None) -> Graph:
    """Render the plan (Helm charts left to Pulumi), apply the stack's replica counts and build
    the object graph: what the program registers and what `kubeforge up` counts progress by.
    `secrets`: the stack's kubeforge.secrets store (the program's is read-only)."""
    from kubeforge import api
    from kubeforge.pulumi.settings import apply_replicas

    charts = {name: helm_charts(pc, plan) for name, pc in plan.components.items()}
    rendered = api.render(plan, mirror=mirror or settings.mirror or plan.profile.mirror, skip_helm=True,
                          secrets=secrets)
    apply_replicas([o for rc in rendered.components.values() for o in rc.objects], settings.replicas, file=file)
    graph = build_graph(rendered, charts=charts, await_load_balancers=settings.await_load_balancers)
    if graph.unresolved:
        # The API server would reject these at apply time, after everything before them was applied.
        raise KubeforgeError(
            f"{len(graph.unresolved)} custom resource(s) have no CRD among the stack's objects and the "
            f"profile does not say the cluster serves them: {', '.join(graph.unresolved[:3])}",
            file=plan.profile.source_file, field="cluster.apis",
            fix="enable the component that ships the CRDs (e.g. prometheus-operator-crds), or list the "
                "API group under cluster.apis if the cluster already has it")
    mark_secret_nodes(graph, rendered, secrets)
    return graph


def mark_secret_nodes(graph: Graph, rendered: Rendered, store: Any) -> None:
    """Objects whose content holds a per-install secret value (a Secret, and any ConfigMap or
    config a generator wrote one into) are registered with every field but identity secret."""
    import json

    for name, rc in rendered.components.items():
        values = [v for v in (store.peek(n) for n in rc.secrets) if v]
        if not values:
            continue
        for key in graph.components[name]:
            node = graph.nodes[key]
            text = json.dumps(node.obj)
            node.secret = any(v in text for v in values)
