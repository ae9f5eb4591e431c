"""The platform stack program (stacks/platform/__main__.py calls `main()`).

Stack config -> profile -> plan -> render -> one ComponentResource per component whose children
are the rendered objects, all on one explicit Kubernetes provider (server-side apply, stable
cluster identity). The same `deploy()` serves the program, the mock-runtime tests and the
benchmark.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from kubeforge.errors import KubeforgeError
from kubeforge.pulumi import settings as stack_settings
from kubeforge.pulumi.graph import Graph, HelmChart, stack_graph
from kubeforge.pulumi.resources import KubernetesObject, PlatformComponent

INGRESS_SERVICE = ("istio-system", "istio-ingressgateway")
SECRETS_KEY = "secrets"
_OBJECT_KEYS = ("gpu", "storage", "values", "replicas")


def read_config() -> tuple[dict[str, Any], pulumi.Output | None]:
    """The kubeforge:* config of the running stack; the kubeconfig comes back as a secret Output."""
    cfg = pulumi.Config(stack_settings.NS)
    out: dict[str, Any] = {}
    for key in stack_settings.KNOWN_KEYS:
        if key in ("kubeconfig", "secrets"):     # secret Outputs / read by read_secrets()
            continue
        raw = cfg.get(key)
        if raw is None:
            continue
        if key in _OBJECT_KEYS:
            try:
                out[key] = json.loads(raw)
            except ValueError:
                out[key] = raw      # parse() reports "must be an object"
        else:
            out[key] = raw
    return out, cfg.get_secret("kubeconfig")


def read_secrets():
    """The stack's per-install secrets (`kubeforge:secrets`, a Pulumi secret that `kubeforge up`
    fills before the program runs): read-only here, so a missing one is an error, not a new value."""
    from kubeforge.secrets import ConfigStore

    raw = pulumi.Config(stack_settings.NS).get_object(SECRETS_KEY) or {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise KubeforgeError("kubeforge:secrets must be an object of name: value", field="config.kubeforge:secrets",
                             fix="remove it and run `kubeforge up` to make the install's secrets again")
    return ConfigStore(raw)


def resolve_kubeconfig(settings: stack_settings.StackSettings, secret: pulumi.Output | None) -> pulumi.Output:
    """kubeforge:kubeconfig, else the cluster stack's kubeconfig output, else $KUBECONFIG."""
    base = Path.cwd()
    if secret is not None:
        return pulumi.Output.secret(secret.apply(
            lambda v: stack_settings.kubeconfig_text(v, base=base, field="config.kubeforge:kubeconfig")))
    if settings.cluster_stack:
        ref = pulumi.StackReference(settings.cluster_stack)
        return pulumi.Output.secret(ref.require_output("kubeconfig"))
    env = os.environ.get("KUBECONFIG", "")
    for part in env.split(os.pathsep):
        if part and Path(part).is_file():
            return pulumi.Output.secret(Path(part).read_text())
    raise KubeforgeError(
        "no kubeconfig for this stack", field="config.kubeforge:kubeconfig",
        fix="set kubeforge:kubeconfig (pulumi config set --secret kubeforge:kubeconfig \"$(cat admin.conf)\"), "
        "kubeforge:clusterStack (the cluster stack's name) or KUBECONFIG")


@dataclass
class StackResources:
    graph: Graph
    components: dict[str, PlatformComponent]
    objects: dict[str, KubernetesObject]
    charts: dict[str, list[pulumi.Resource]]
    gates: dict[str, pulumi.Resource]
    ingress: KubernetesObject | None


def _topological(graph: Graph, keys: list[str]) -> list[str]:
    """`keys` (one component's objects, apply order) reordered so dependencies come first."""
    mine = set(keys)
    order: list[str] = []
    state: dict[str, int] = {}
    for key in keys:
        if key in state:
            continue
        state[key] = 1
        stack = [(key, iter(graph.nodes[key].deps))]
        while stack:
            cur, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                state[cur] = 2
                order.append(cur)
            elif nxt not in mine:
                continue          # another component's object: created before, or an error below
            elif state.get(nxt) == 1:
                raise KubeforgeError(f"dependency cycle through {cur} and {nxt}",
                                     fix="report this: the object graph must be acyclic")
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(graph.nodes[nxt].deps)))
    return order


def _chart(chart: HelmChart, provider: k8s.Provider, opts: pulumi.ResourceOptions) -> pulumi.Resource:
    return k8s.helm.v4.Chart(
        chart.chart,
        chart=chart.chart,
        version=chart.version,            # pinned by the catalog, never "latest"
        repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=chart.repo_url),
        namespace=chart.namespace,
        values=chart.values,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(provider=provider)),
    )


def deploy(graph: Graph, provider: k8s.Provider) -> StackResources:
    """Register the graph: per component in plan order, its objects (dependencies first), its Helm
    charts, then its readiness gate.

    The gate (pulumi:index:Stash: kept in the state by the engine itself, nothing in the cluster)
    depends on every object and chart of its component, and everything of a dependent component
    depends on the gates of the components it needs. That is the plan's DAG with one edge per
    dependent object instead of one per (dependent, object) pair, and `destroy` still removes
    dependents before anything they need."""
    comps: dict[str, PlatformComponent] = {}
    gates: dict[str, pulumi.Resource] = {}
    objects: dict[str, KubernetesObject] = {}
    charts: dict[str, list[pulumi.Resource]] = {}
    ingress = None
    for name, keys in graph.components.items():
        upstream = [gates[d] for d in graph.component_deps[name]]
        comp = PlatformComponent(name, graph.versions[name], _wave(graph, name),
                                 pulumi.ResourceOptions(depends_on=upstream))
        comps[name] = comp
        for key in _topological(graph, keys):
            node = graph.nodes[key]
            missing = [d for d in node.deps if d not in objects and graph.nodes[d].component != name]
            if missing:
                other = graph.nodes[missing[0]].component
                raise KubeforgeError(
                    f"{key} ({name}) must come after {missing[0]} of {other}, but {name} does not "
                    f"depend on {other}", file=f"components/{name}/component.yaml", field="after",
                    fix=f"add {other} to `after:` (or `requires:`) of {name}")
            for c in node.chart_deps:
                if c == name and c not in charts:
                    charts[c] = _charts(graph, name, comp, objects, upstream, provider)
            deps: list[pulumi.Resource] = upstream + [objects[d] for d in node.deps]
            for c in node.chart_deps:
                deps += charts[c]
            md = node.obj.get("metadata", {})
            is_ingress = node.kind == "Service" and (md.get("namespace"), md.get("name")) == INGRESS_SERVICE
            res = KubernetesObject(node.obj, pulumi.ResourceOptions(parent=comp, provider=provider,
                                                                    depends_on=deps),
                                   outputs=("status",) if is_ingress else (), secret=node.secret)
            objects[key] = res
            if is_ingress:
                ingress = res
        if name not in charts:
            charts[name] = _charts(graph, name, comp, objects, upstream, provider)
        members = [objects[k] for k in keys] + charts[name]
        gates[name] = pulumi.Stash(f"{name}-ready", input={"component": name, "version": graph.versions[name]},
                                   opts=pulumi.ResourceOptions(parent=comp, depends_on=members))
        comp.register_outputs({"version": graph.versions[name], "objects": len(keys)})
    return StackResources(graph, comps, objects, charts, gates, ingress)


def _charts(graph: Graph, name: str, comp: PlatformComponent, objects: dict[str, KubernetesObject],
            upstream: list[pulumi.Resource], provider: k8s.Provider) -> list[pulumi.Resource]:
    """The component's Helm charts, after its objects created so far (its Namespace, ConfigMaps)."""
    own = [objects[k] for k in graph.components[name] if k in objects]
    return [_chart(c, provider, pulumi.ResourceOptions(parent=comp, depends_on=upstream + own))
            for c in graph.charts.get(name, [])]


def _wave(graph: Graph, name: str) -> int:
    return next((i for i, w in enumerate(graph.waves) if name in w), 0)


def make_provider(kubeconfig: pulumi.Input[str], identifier: str) -> k8s.Provider:
    return k8s.Provider(
        "kubernetes",
        kubeconfig=kubeconfig,
        enable_server_side_apply=True,     # CRDs too large for client-side apply's annotation
        cluster_identifier=identifier,     # a rotated kubeconfig is the same cluster: no replacement
        opts=pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"]),
    )


def export_outputs(dep: StackResources, profile: str, kubeconfig: pulumi.Output) -> None:
    pulumi.export("profile", profile)
    pulumi.export("versions", dict(dep.graph.versions))
    pulumi.export("waves", dep.graph.waves)
    if dep.ingress is not None:
        def address(status: Any) -> str | None:
            for ing in ((status or {}).get("loadBalancer") or {}).get("ingress") or []:
                return ing.get("ip") or ing.get("hostname")
            return None

        ns, name = INGRESS_SERVICE
        pulumi.export("ingress", {"service": f"{ns}/{name}", "address": dep.ingress.status.apply(address)})
    else:
        pulumi.export("ingress", None)
    pulumi.export("kubeconfig", pulumi.Output.secret(kubeconfig))


def main() -> None:
    """The program: read the stack config, render the profile, register the graph. Bad input is
    reported by Pulumi as one message (RunError), not a Python traceback."""
    try:
        _main()
    except KubeforgeError as exc:
        raise pulumi.RunError(exc.render()) from None


def _main() -> None:
    from kubeforge import api

    cfg, kubeconfig_secret = read_config()
    file = f"Pulumi.{pulumi.get_stack()}.yaml"
    settings = stack_settings.parse(cfg, file=file)
    profile = api.load_profile(settings.profile, settings.overrides or None)
    plan = api.plan(profile)
    graph = stack_graph(plan, settings, file=file, secrets=read_secrets())
    kubeconfig = resolve_kubeconfig(settings, kubeconfig_secret)
    provider = make_provider(kubeconfig, settings.cluster_identifier or f"kubeforge-{pulumi.get_stack()}")
    dep = deploy(graph, provider)
    export_outputs(dep, profile.name, kubeconfig)
