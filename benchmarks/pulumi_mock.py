"""Pulumi mock-run benchmark: the real platform program under Pulumi's mock runtime, per profile.

Prints, per shipped profile: objects, registered resources, warm render time, mock-run time of
the program (render excluded), seconds per 1000 registered resources (CPU and wall), and for
comparison the same objects registered as one `kubernetes:yaml/v2:ConfigGroup` per component.

Then the cloud cluster stacks (stacks/cluster-eks|gke|aks, every environment) under the same
runtime with the provider stand-ins of tests/pulumi/cloudmocks.py: seconds per 1000 registered
resources, printed beside the platform stack's figure from the same run.

Under mocks a ConfigGroup is one opaque registration: its children are created by the provider
plugin, which mocks do not run, so its figure is a lower bound that hides every object from the
graph tests. Never asserts: it prints. Usage:

    .venv/bin/python benchmarks/pulumi_mock.py [--mirror DIR] [--profile NAME ...] [--no-clusters]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "pulumi"))

import mockrun  # noqa: E402  (the recording mock monitor of the tests)


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t):
    w, c = _clock()
    return w - t[0], c - t[1]


def bench(profile: str, mirror: str) -> dict:
    import pulumi
    import pulumi_kubernetes as k8s

    from kubeforge import api
    from kubeforge.pulumi import platform
    from kubeforge.pulumi.graph import build_graph, helm_charts
    from kubeforge.pulumi.resources import PlatformComponent

    plan = api.plan(api.load_profile(profile))
    api.render(plan, mirror=mirror, skip_helm=True)          # warm the render cache
    t = _clock()
    rendered = api.render(plan, mirror=mirror, skip_helm=True)
    render_wall, _ = _since(t)
    graph = build_graph(rendered, charts={n: helm_charts(pc, plan) for n, pc in plan.components.items()})

    def per_object():
        prov = platform.make_provider("apiVersion: v1\nkind: Config\n", "kubeforge-bench")
        platform.deploy(graph, prov)

    def config_groups():
        prov = k8s.Provider("kubernetes", kubeconfig="apiVersion: v1\nkind: Config\n",
                            enable_server_side_apply=True, cluster_identifier="kubeforge-bench")
        prev = None
        for name, rc in rendered.components.items():
            comp = PlatformComponent(name, rc.version, rc.wave, pulumi.ResourceOptions(
                depends_on=[prev] if prev is not None else []))
            k8s.yaml.v2.ConfigGroup(name, objs=rc.objects, opts=pulumi.ResourceOptions(
                parent=comp, provider=prov))
            prev = comp

    mockrun.run(per_object, stack="bench")                   # warm imports and caches
    t = _clock()
    res = mockrun.run(per_object, stack="bench")
    obj_wall, obj_cpu = _since(t)
    t = _clock()
    cg = mockrun.run(config_groups, stack="bench")
    cg_wall, cg_cpu = _since(t)
    n = len(res.registrations)
    return {"profile": profile, "objects": len(graph.nodes), "resources": n, "render_s": render_wall,
            "mock_s": obj_wall, "mock_cpu_s": obj_cpu, "per_1000_s": 1000 * obj_wall / n,
            "per_1000_cpu_s": 1000 * obj_cpu / n, "cg_resources": len(cg.registrations), "cg_s": cg_wall,
            "cg_cpu_s": cg_cpu}


def bench_clusters(repeat: int) -> list[dict]:
    """Each cloud cluster environment's program, `repeat` runs after a warm-up (the graphs are small)."""
    import importlib

    import cloudmocks
    import yaml

    rows = []
    for cloud in ("eks", "gke", "aks"):
        program = importlib.import_module(f"kubeforge.pulumi.{cloud}").main
        for f in sorted((REPO / "stacks" / f"cluster-{cloud}").glob("Pulumi.*.yaml")):
            env = f.name[len("Pulumi."):-len(".yaml")]
            config = yaml.safe_load(f.read_text())["config"]

            def once(program=program, config=config, cloud=cloud, env=env):
                m = cloudmocks.CloudMocks()
                return mockrun.run(program, config=config, project=f"kubeforge-cluster-{cloud}", stack=env,
                                   resources=m, invokes=m.invokes())
            once()
            t = _clock()
            for _ in range(repeat):
                res = once()
            wall, cpu = _since(t)
            rows.append({"stack": f"cluster-{cloud}/{env}", "resources": len(res.registrations), "runs": repeat,
                         "wall_s": wall / repeat, "cpu_s": cpu / repeat})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default=os.environ.get("KUBEFORGE_TEST_MIRROR", str(REPO.parent / "shared" / "mirror")))
    ap.add_argument("--profile", action="append")
    ap.add_argument("--no-clusters", action="store_true", help="skip the cloud cluster stacks")
    ap.add_argument("--repeat", type=int, default=10, help="runs per cluster environment (default 10)")
    args = ap.parse_args()
    profiles = args.profile or sorted(p.stem for p in (REPO / "profiles").glob("*.yaml"))
    print(f"{'profile':<13}{'objects':>8}{'resources':>10}{'render':>8}{'mock-run':>10}{'cpu':>7}"
          f"{'s/1000':>8}{'cpu/1000':>9} | {'ConfigGroup: regs':>17}{'run':>7}{'cpu':>7}{'ratio':>7}")
    rows = [bench(p, args.mirror) for p in profiles]
    for r in rows:
        print(f"{r['profile']:<13}{r['objects']:>8}{r['resources']:>10}{r['render_s']:>7.2f}s"
              f"{r['mock_s']:>9.2f}s{r['mock_cpu_s']:>6.2f}s{r['per_1000_s']:>7.2f}s{r['per_1000_cpu_s']:>8.2f}s"
              f" | {r['cg_resources']:>17}{r['cg_s']:>6.2f}s{r['cg_cpu_s']:>6.2f}s"
              f"{r['mock_cpu_s'] / max(r['cg_cpu_s'], 1e-9):>6.1f}x")
    total_res = sum(r["resources"] for r in rows)
    total_cpu = sum(r["mock_cpu_s"] for r in rows)
    total_wall = sum(r["mock_s"] for r in rows)
    print(f"all profiles: {total_res} resources, mock-run {total_wall:.1f}s wall / {total_cpu:.1f}s CPU: "
          f"{1000 * total_wall / total_res:.2f}s wall, {1000 * total_cpu / total_res:.2f}s CPU per 1000 resources")
    if args.no_clusters:
        return 0
    platform_cpu = 1000 * total_cpu / total_res
    print(f"\n{'cluster stack':<24}{'resources':>10}{'runs':>6}{'run':>9}{'cpu':>8}{'s/1000':>9}{'cpu/1000':>10}")
    crow = bench_clusters(args.repeat)
    for r in crow:
        print(f"{r['stack']:<24}{r['resources']:>10}{r['runs']:>6}{r['wall_s']:>8.3f}s{r['cpu_s']:>7.3f}s"
              f"{1000 * r['wall_s'] / r['resources']:>8.2f}s{1000 * r['cpu_s'] / r['resources']:>9.2f}s")
    c_res = sum(r["resources"] for r in crow)
    c_cpu = sum(r["cpu_s"] for r in crow)
    c_wall = sum(r["wall_s"] for r in crow)
    print(f"all cluster stacks: {c_res} resources per pass, {1000 * c_wall / c_res:.2f}s wall, "
          f"{1000 * c_cpu / c_res:.2f}s CPU per 1000 resources; platform stack {platform_cpu:.2f}s CPU per 1000 "
          f"(cluster/platform {1000 * c_cpu / c_res / platform_cpu:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
