"""A stable, reviewable summary of the platform stack's resource graph per shipped profile.

The summaries are checked in under tests/pulumi/graphs/<profile>.json; test_graph.py compares the
graph of the real program (under the mock runtime) with them, so a change to components, object
counts or ordering edges shows up in review. Regenerate after an intended change with

    .venv/bin/python tests/pulumi/graph_summary.py --write        # all profiles
    .venv/bin/python tests/pulumi/graph_summary.py --write dev    # one
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GRAPHS = HERE / "graphs"
sys.path.insert(0, str(HERE))

import mockrun  # noqa: E402

PROVIDER_TYPE = "pulumi:providers:kubernetes"
GATE_TYPE = "pulumi:index:Stash"
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in (REPO / "profiles").glob("*.yaml"))


def stack_secrets(config: dict[str, Any]) -> dict[str, str]:
    """The per-install secrets `kubeforge up` would put into the stack config before the program
    runs (kubeforge.pulumi.automation.ensure_secrets renders into the stack's store; here the
    profile's test secrets file, so every test of a profile renders one install and the render
    cache, which keeps one entry per component, is not rewritten by each run)."""
    from kubeforge import api
    from kubeforge.pulumi.settings import parse
    from kubeforge.secrets import store_for

    s = parse({k.split(":", 1)[1]: v for k, v in config.items()}, file="test")
    plan = api.plan(api.load_profile(s.profile, s.overrides or None))
    store = store_for(plan.profile)
    api.render(plan, mirror=config.get("kubeforge:mirror"), skip_helm=True, secrets=store)
    return store.values()


def with_stack_secrets(config: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Add kubeforge:secrets (a Pulumi secret) when the profile uses per-install secrets."""
    values = stack_secrets(config)
    if values:
        config["kubeforge:secrets"] = values
        return (*secret_keys, "kubeforge:secrets")
    return secret_keys


def run_profile(profile: str, mirror: Path, extra: dict[str, Any] | None = None, *,
                stack: str = "test", stack_outputs: dict | None = None) -> mockrun.RunResult:
    """The real platform program for a profile, under the mock runtime."""
    from kubeforge.pulumi import platform

    config = {"kubeforge:profile": profile, "kubeforge:mirror": str(mirror), **(extra or {})}
    secret: tuple[str, ...] = ()
    if not any(k in config for k in ("kubeforge:kubeconfig", "kubeforge:clusterStack")):
        config["kubeforge:kubeconfig"] = KUBECONFIG
        secret = ("kubeforge:kubeconfig",)
    if "kubeforge:secrets" not in config:
        secret = with_stack_secrets(config, secret)
    return mockrun.run(platform.main, config=config, secret_keys=secret, stack=stack,
                       stack_outputs=stack_outputs)


def component_of(reg: mockrun.Registration, comps: dict[str, str]) -> str | None:
    return comps.get(reg.parent)


def summarize(profile: str, res: mockrun.RunResult) -> dict[str, Any]:
    regs = res.registrations
    comps = {u: r.name for u, r in regs.items() if r.type.startswith("kubeforge:component:")}
    children: dict[str, set[str]] = {}
    for u, r in regs.items():
        if r.parent in comps:
            children.setdefault(comps[r.parent], set()).add(u)
    out: dict[str, Any] = {"profile": profile, "components": {}, "edges": {}, "crossComponentEdges": {}}
    comp_regs = {r.name: r for r in regs.values() if r.type.startswith("kubeforge:component:")}
    for name, creg in comp_regs.items():
        deps = sorted({comps[regs[d].parent] for d in creg.dependencies if d in regs and regs[d].parent in comps})
        kinds = Counter(_kind(r) for u in children.get(name, ()) for r in [regs[u]]
                        if r.custom and r.type.startswith("kubernetes:"))
        charts = [f"{r.inputs.get('chart')}@{r.inputs.get('version')}" for u in children.get(name, ())
                  for r in [regs[u]] if r.remote]
        waits = sum(1 for u in children.get(name, ()) if
                    "pulumi.com/waitFor" in ((regs[u].inputs.get("metadata") or {}).get("annotations") or {}))
        out["components"][name] = {"version": creg.inputs.get("version"), "wave": int(creg.inputs.get("wave", 0)),
                                   "dependsOn": deps, "objects": dict(sorted(kinds.items())),
                                   "total": sum(kinds.values()), "charts": charts, "waitFor": waits}
    # Object-level edges beyond the component DAG, grouped by (component:kind -> component:kind).
    edges: Counter = Counter()
    cross: Counter = Counter()
    for r in regs.values():
        if r.parent not in comps:
            continue
        mine = comps[r.parent]
        for d in r.dependencies:
            if d not in regs or regs[d].parent not in comps or regs[d].type == GATE_TYPE:
                continue   # component-level edges (through the gates) are in dependsOn
            theirs = comps[regs[d].parent]
            key = f"{mine}:{_kind(r)} -> {theirs}:{_kind(regs[d])}"
            (edges if theirs == mine else cross)[key] += 1
    out["edges"] = dict(sorted(edges.items()))
    out["crossComponentEdges"] = dict(sorted(cross.items()))
    out["resources"] = {"total": len(regs), "objects": sum(c["total"] for c in out["components"].values()),
                        "providers": sum(1 for r in regs.values() if r.type == PROVIDER_TYPE),
                        "gates": sum(1 for r in regs.values() if r.type == GATE_TYPE)}
    out["outputs"] = sorted(res.outputs)
    out["components"] = dict(sorted(out["components"].items()))
    return out


def _kind(r: mockrun.Registration) -> str:
    return r.type.rsplit(":", 1)[-1]


def dumps(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=1, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    write = "--write" in argv
    names = [a for a in argv if not a.startswith("--")] or shipped_profiles()
    mirror = Path(os.environ.get("KUBEFORGE_TEST_MIRROR", REPO.parent / "shared" / "mirror"))
    GRAPHS.mkdir(exist_ok=True)
    for name in names:
        s = dumps(summarize(name, run_profile(name, mirror)))
        path = GRAPHS / f"{name}.json"
        if write:
            path.write_text(s)
            print(f"wrote {path.relative_to(REPO)}")
        else:
            same = path.exists() and path.read_text() == s
            print(f"{name}: {'unchanged' if same else 'DIFFERS from ' + str(path.relative_to(REPO))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
