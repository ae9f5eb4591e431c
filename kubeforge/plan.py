"""Plan: the profile's enabled components and their dependencies -> DAG -> waves, with
constraints checked (Kubernetes range, conflicts, capabilities, the Istio/Knative/KServe tuple).
"""
from __future__ import annotations

from typing import Any

from kubeforge.errors import KubeforgeError
from kubeforge.model import Component, Plan, PlannedComponent
from kubeforge.profile import Profile, deep_merge


def _minor(v: str) -> tuple[int, int]:
    parts = v.split(".")
    return int(parts[0]), int(parts[1])


def _matches(values: dict[str, Any], cond: dict[str, Any]) -> bool:
    return all(values.get(k) == v for k, v in cond.items())


def _validate_values(comp: Component, values: dict[str, Any], file: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(comp.values_schema)
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        path = ".".join(str(p) for p in e.absolute_path)
        field = f"components.{comp.name}.values" + (f".{path}" if path else "")
        allowed = sorted((comp.values_schema.get("properties") or {}).keys())
        fix = (f"allowed values keys for {comp.name}: {', '.join(allowed) or '(none)'}"
               if e.validator == "additionalProperties" else
               f"see components/{comp.name}/component.yaml values.schema")
        raise KubeforgeError(e.message, file=file, field=field, fix=fix)


def _defaults(comp: Component, enabled: list[str]) -> dict[str, Any]:
    """The component's defaults, then each `defaultsWhen` rule whose component is enabled (in file
    order): one component chooses its multi-user overlay by values, without a copy of it."""
    out = comp.defaults
    for rule in comp.defaults_when:
        if rule["enabled"] in enabled:
            out = deep_merge(out, rule["values"])
    return out


def _from_profile(comp: Component, profile: Profile, given: dict[str, Any], file: str) -> dict[str, Any]:
    """Values a component takes from the profile's global settings (`valuesFromProfile`), so one
    fact such as the MIG strategy is set once, in the profile."""
    out: dict[str, Any] = {}
    for key, dotted in (comp.raw.get("valuesFromProfile") or {}).items():
        node: Any = profile
        for part in dotted.split("."):
            node = getattr(node, part)
        if key in given and given[key] != node:
            raise KubeforgeError(f"{key}={given[key]!r} contradicts {dotted}={node!r}", file=file,
                                 field=f"components.{comp.name}.values.{key}",
                                 fix=f"drop it: {comp.name} takes {key} from {dotted}")
        out[key] = node
    return out


def make_plan(profile: Profile, catalog: dict[str, Component] | None = None, release: str | None = None) -> Plan:
    """release: plan the profile with the components as they were at an earlier release
    (kubeforge/releases.py), e.g. to render what an older install holds."""
    from kubeforge.catalog import load_catalog

    catalog = load_catalog(release=release) if catalog is None else catalog
    file = profile.source_file
    warnings: list[str] = []

    for name in profile.components:
        if name not in catalog:
            raise KubeforgeError(f"unknown component {name!r}", file=file, field=f"components.{name}",
                                 fix=f"use one of: {', '.join(sorted(catalog))}")
    enabled = profile.enabled()

    values: dict[str, dict[str, Any]] = {}
    for name in enabled:
        comp = catalog[name]
        given = profile.components[name].values
        _validate_values(comp, given, file)
        values[name] = deep_merge(deep_merge(_defaults(comp, enabled), _from_profile(comp, profile, given, file)),
                                  given)

    # Hard requirements: static plus value-dependent, all must be enabled.
    deps: dict[str, list[str]] = {}
    for name in enabled:
        comp = catalog[name]
        req = list(comp.requires)
        for rule in comp.requires_when:
            if _matches(values[name], rule.get("values", {})):
                req += rule.get("requires", [])
        for r in req:
            if r not in catalog:
                raise KubeforgeError(f"{name} requires unknown component {r!r}",
                                     file=f"components/{name}/component.yaml", field="requires",
                                     fix="fix the component name")
            if r not in enabled:
                raise KubeforgeError(f"{name} requires {r}, which the profile does not enable", file=file,
                                     field=f"components.{r}.enabled",
                                     fix=f"enable {r} or disable {name}")
        order_only = [a for a in comp.after if a in enabled]
        deps[name] = sorted(set(req) | set(order_only))

    # Conflicts, either direction.
    for name in enabled:
        for other in catalog[name].conflicts:
            if other in enabled:
                raise KubeforgeError(f"{name} conflicts with {other}: both are enabled", file=file,
                                     field=f"components.{other}.enabled",
                                     fix=f"disable one of {name} and {other} (the GPU Operator manages "
                                         "the device plugin itself; use the gpu-operator profile for it)"
                                     if "gpu-operator" in (name, other) else f"disable {name} or {other}")

    # Capabilities provided by more than one component.
    providers: dict[str, list[str]] = {}
    for name in enabled:
        for cap in catalog[name].provides:
            providers.setdefault(cap, []).append(name)
    for cap, names in providers.items():
        if len(names) > 1 and cap.startswith("default-"):
            raise KubeforgeError(f"{' and '.join(names)} both provide {cap}", file=file,
                                 field=f"components.{names[1]}.enabled", fix="enable only one of them")

    # GPU mode gates.
    gpu_components = [n for n in enabled if catalog[n].gpu]
    if profile.gpu.mode == "none" and gpu_components:
        raise KubeforgeError(f"GPU components {gpu_components} are enabled but gpu.mode is none", file=file,
                             field="gpu.mode", fix="set gpu.mode: host (or operator), or disable them")
    # One GPU advertiser per node: in provider mode the cloud runs its own device plugin.
    advertisers = providers.get("gpu", [])
    if profile.gpu.mode == "provider" and advertisers:
        raise KubeforgeError(
            f"gpu.mode is provider (the cloud runs its own device plugin on every GPU node), but "
            f"{', '.join(advertisers)} also advertises nvidia.com/gpu", file=file,
            field=f"components.{advertisers[0]}.enabled",
            fix=f"disable {', '.join(advertisers)} (one GPU advertiser per node), or use gpu.mode host/operator "
                "with a node pool whose driver setting leaves the device plugin to the platform")

    # Kubernetes version range.
    target = _minor(profile.kubernetesVersion)
    for name in enabled:
        comp = catalog[name]
        if not (_minor(comp.kubernetes_min) <= target <= _minor(comp.kubernetes_max)):
            raise KubeforgeError(
                f"{name} {comp.version} supports Kubernetes {comp.kubernetes_min}-{comp.kubernetes_max}, "
                f"not {profile.kubernetesVersion}", file=file, field="kubernetesVersion",
                fix=f"target a Kubernetes version in {comp.kubernetes_min}-{comp.kubernetes_max} "
                    f"or disable {name}")

    # Compatibility tuple: versions tested together; anything else is allowed with a warning.
    for name in enabled:
        comp = catalog[name]
        for other, versions in comp.compat.items():
            if other in enabled:
                ov = catalog[other].version
                if not any(ov == v or ov.startswith(v + ".") for v in versions):
                    warnings.append(f"{name} {comp.version} was tested with {other} {', '.join(versions)} "
                                    f"(kubeflow/manifests 26.03 tuple), not {ov}: untested combination")

    order, waves = _topo(enabled, deps, file)
    wave_of = {n: i for i, w in enumerate(waves) for n in w}
    planned = {
        n: PlannedComponent(name=n, version=catalog[n].version, wave=wave_of[n], values=values[n],
                            depends_on=deps[n], component=catalog[n])
        for n in order
    }
    return Plan(profile=profile, components=planned, waves=waves, warnings=warnings, release=release)


def _topo(nodes: list[str], deps: dict[str, list[str]], file: str) -> tuple[list[str], list[list[str]]]:
    """Kahn's algorithm by levels: a wave is every component whose dependencies are all earlier."""
    remaining = {n: set(deps[n]) for n in nodes}
    waves: list[list[str]] = []
    done: set[str] = set()
    while remaining:
        ready = sorted(n for n, d in remaining.items() if d <= done)
        if not ready:
            cycle = _find_cycle({n: d - done for n, d in remaining.items()})
            raise KubeforgeError(f"dependency cycle: {' -> '.join(cycle)}",
                                 file=f"components/{cycle[0]}/component.yaml", field="requires/after",
                                 fix="remove one of these requires/after links")
        waves.append(ready)
        done.update(ready)
        for n in ready:
            del remaining[n]
    return [n for w in waves for n in w], waves


def _find_cycle(graph: dict[str, set[str]]) -> list[str]:
    start = sorted(graph)[0]
    path: list[str] = []
    node = start
    while node not in path:
        path.append(node)
        node = sorted(graph[node])[0]
    return path[path.index(node):] + [node]


# ---- presentation -------------------------------------------------------------------------

def plan_dict(plan: Plan) -> dict[str, Any]:
    p = plan.profile
    return {
        "profile": p.name,
        "kubernetesVersion": p.kubernetesVersion,
        "gpuMode": p.gpu.mode,
        "waves": plan.waves,
        "components": [
            {"name": c.name, "version": c.version, "wave": c.wave, "dependsOn": c.depends_on,
             "values": c.values}
            for c in plan.components.values()
        ],
        "warnings": plan.warnings,
    }


def plan_mermaid(plan: Plan) -> str:
    lines = ["graph LR"]
    for c in plan.components.values():
        lines.append(f'  {_id(c.name)}["{c.name} {c.version}"]')
    for c in plan.components.values():
        for d in c.depends_on:
            lines.append(f"  {_id(d)} --> {_id(c.name)}")
    return "\n".join(lines) + "\n"


def plan_dot(plan: Plan) -> str:
    lines = ["digraph kubeforge {", "  rankdir=LR;"]
    for i, wave in enumerate(plan.waves):
        lines.append(f"  subgraph cluster_wave{i} {{ label=\"wave {i}\";")
        for n in wave:
            lines.append(f'    "{n}" [label="{n}\\n{plan.components[n].version}"];')
        lines.append("  }")
    for c in plan.components.values():
        for d in c.depends_on:
            lines.append(f'  "{d}" -> "{c.name}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _id(name: str) -> str:
    return name.replace("-", "_")
