"""Reviewed summaries of the cloud cluster stacks' resource graphs, one per environment.

tests/pulumi/graphs/cluster-<cloud>-<env>.json holds, for the real program under the mock
runtime (cloudmocks.py stands in for the providers): resource counts by type, every resource's
dependencies, and what each node group is made of. test_clusters.py compares the live graph with
them, so a change to the clusters shows up in review. Regenerate after an intended change with

    .venv/bin/python tests/pulumi/cluster_summary.py --write              # all environments
    .venv/bin/python tests/pulumi/cluster_summary.py --write eks-prod     # one
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GRAPHS = HERE / "graphs"
sys.path.insert(0, str(HERE))

# What a node group is made of, per type: the inputs worth a reviewer's eye.
GROUP_FIELDS = {
    "aws:eks/nodeGroup:NodeGroup": ("instanceTypes", "amiType", "capacityType", "scalingConfig", "labels", "taints",
                                    "releaseVersion", "diskSize", "updateConfig"),
    "gcp:container/nodePool:NodePool": ("nodeLocations", "autoscaling", "placementPolicy", "nodeConfig"),
    "azure-native:containerservice:AgentPool": ("vmSize", "count", "minCount", "maxCount", "availabilityZones",
                                                "nodeLabels", "nodeTaints", "gpuProfile", "gpuInstanceProfile",
                                                "scaleSetPriority", "mode"),
}
DROP = ("serviceAccount",)     # mock-made values that say nothing about the graph


def environments() -> list[tuple[str, str]]:
    return sorted((p.parent.name[len("cluster-"):], p.name[len("Pulumi."):-len(".yaml")])
                  for c in ("eks", "gke", "aks") for p in (REPO / "stacks" / f"cluster-{c}").glob("Pulumi.*.yaml"))


def _short(r) -> str:
    return f"{r.type.split(':', 1)[1]}::{r.name}"


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in sorted(v.items()) if k not in DROP}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def summarize(cloud: str, env: str, res) -> dict[str, Any]:
    regs = res.registrations
    skip = {u for u, r in regs.items() if r.type.startswith(("pulumi:providers:", "kubeforge:cluster:"))}
    edges = {}
    for u, r in regs.items():
        if u in skip:
            continue
        edges[_short(r)] = sorted({_short(regs[d]) for d in r.dependencies if d in regs and d not in skip})
    groups = {_short(r): {k: _clean(r.inputs[k]) for k in GROUP_FIELDS[r.type] if k in r.inputs}
              for r in regs.values() if r.type in GROUP_FIELDS}
    return {"stack": f"cluster-{cloud}/{env}",
            "resources": dict(sorted(Counter(r.type for u, r in regs.items() if u not in skip).items())),
            "dependsOn": dict(sorted(edges.items())), "nodeGroups": dict(sorted(groups.items())),
            "invokes": res.invokes, "outputs": sorted(res.outputs),
            "gpuCapacity": res.outputs.get("gpuCapacity")}


def dumps(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=1, ensure_ascii=False) + "\n"


def path(cloud: str, env: str) -> Path:
    return GRAPHS / f"cluster-{cloud}-{env}.json"


def main(argv: list[str]) -> int:
    from test_clusters import run_cluster

    write = "--write" in argv
    wanted = [a for a in argv if not a.startswith("--")]
    for cloud, env in environments():
        if wanted and f"{cloud}-{env}" not in wanted:
            continue
        res, _ = run_cluster(cloud, env)
        s, p = dumps(summarize(cloud, env, res)), path(cloud, env)
        if write:
            p.write_text(s)
            print(f"wrote {p.relative_to(REPO)}")
        else:
            print(f"{cloud}-{env}: {'unchanged' if p.exists() and p.read_text() == s else 'DIFFERS from ' + str(p.relative_to(REPO))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
