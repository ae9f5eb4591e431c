"""Render benchmark: `kubeforge render` timed as the user runs it, against `kubectl kustomize` of
the same upstream trees, measured side by side in the same run.

- `kubeforge plan` wall time, cold process (target < 0.5 s);
- for `dev`, `full`, the largest shipped profile (by rendered objects) and `kubeflow`:
  `kubectl kustomize TREE -o FILE` of every kustomize tree of the profile, one new process after
  another, straight from the mirror (the anchor); then `kubeforge render -p P -o DIR` as a new
  process with an empty cache (cold: sync, kustomize, transforms, YAML) and again with the cache
  warm (median of 3). Ratios: cold/kustomize (target <= 1.2x) and kustomize/warm (target >= 10x);
- validation time per object (target < 2 ms).

Every command runs with bytecode caching on (some sandboxes set PYTHONDONTWRITEBYTECODE, which
recompiles every module at every start; users' shells do not) after one unmeasured start.
Never asserts: it prints. Usage: python benchmarks/render.py [--mirror DIR] [--profile NAME ...]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env or ENV)
    return time.perf_counter() - t0


def plan_cold(profile: str, runs: int = 5) -> float:
    cmd = [str(BIN / "kubeforge"), "plan", "-p", profile, "-f", "json"]
    run_timed(cmd)   # writes the .pyc files
    return statistics.median(run_timed(cmd) for _ in range(runs))


def kustomize_trees(plan, mirror: Path, out: Path) -> tuple[float, int]:
    """`kubectl kustomize` of every kustomize tree of the plan, from the mirror, output to files.

    A tree with remote bases (Pipelines' Argo refs) cannot build from the mirror offline: it is
    built from kubeforge's synced copy of the same files, its references rewritten to the mirror's
    Argo tree (synced before the clock starts). Trees fetched only for such references
    (`build: false`) are not builds of their own."""
    from kubeforge.kustomize import kustomize_bin
    from kubeforge.render import selected_sources
    from kubeforge.sources import sync

    total, n = 0.0, 0
    for pc in plan.components.values():
        srcs = selected_sources(pc)
        synced = sync(srcs, mirror=str(mirror)) if any(not s.build for s in srcs) else {}
        for s in srcs:
            if s.kind == "kustomize" and s.build:
                tree = synced.get(s.id) or mirror / s.repo.mirror_path(s.root) / s.path
                total += run_timed([str(kustomize_bin()), "kustomize", str(tree), "-o", str(out / f"{n}.yaml")])
                n += 1
    return total, n


def render_command(profile: str, mirror: Path, cache: Path, out: Path) -> float:
    env = dict(ENV, KUBEFORGE_CACHE=str(cache))
    return run_timed([str(BIN / "kubeforge"), "render", "-p", profile, "--mirror", str(mirror), "-o", str(out)], env)


def object_counts(profiles: list[str], mirror: Path) -> dict[str, int]:
    from kubeforge import api
    from kubeforge.lifecycle.rendered import render_available

    out = {}
    for name in profiles:
        rendered, missing = render_available(api.plan(api.load_profile(name)), mirror=str(mirror))
        if not missing:   # a Helm chart without `helm` cannot be rendered to a directory
            out[name] = sum(len(rc.objects) for rc in rendered.components.values())
    return out


def time_profile(name: str, mirror: Path, counts: dict[str, int]) -> None:
    """kubectl kustomize of the profile's trees, then kubeforge render cold and warm, same run."""
    from kubeforge.plan import make_plan
    from kubeforge.profile import load_profile

    plan = make_plan(load_profile(name))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "kz").mkdir()
        t_kz, n_trees = kustomize_trees(plan, mirror, tmp / "kz")
        t_cold = render_command(name, mirror, tmp / "cache", tmp / "out")
        t_warm = statistics.median(render_command(name, mirror, tmp / "cache", tmp / "out") for _ in range(3))
    print(f"{name}: {counts.get(name, '?')} objects, {n_trees} kustomize trees")
    print(f"  kubectl kustomize of those trees, one after another:  {t_kz:6.2f} s")
    print(f"  kubeforge render, cold cache (new process):           {t_cold:6.2f} s   "
          f"cold/kustomize = {t_cold / t_kz:.2f}x (target <= 1.2x)")
    print(f"  kubeforge render, warm cache (new process, median 3): {t_warm:6.2f} s   "
          f"kustomize/warm = {t_kz / t_warm:.1f}x faster (target >= 10x)")


def bench_kubeflow(mirror: Path, counts: dict[str, int], done: list[str]) -> None:
    """The multi-user Kubeflow profile (with Pipelines), cold and warm, against kubectl kustomize
    of the same trees in the same run; skipped when the run timed it already."""
    if "kubeflow" in done or "kubeflow" not in counts:
        return
    time_profile("kubeflow", mirror, counts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirror", default=os.environ.get("KUBEFORGE_MIRROR") or str(REPO.parent / "shared" / "mirror"))
    ap.add_argument("--profile", action="append", help="profiles to time (default: dev, full, the largest)")
    args = ap.parse_args()
    mirror = Path(args.mirror).resolve()
    from kubeforge.profile import list_profiles

    counts = object_counts(list_profiles(), mirror)
    largest = max(counts, key=counts.get)
    profiles = args.profile or list(dict.fromkeys(["dev", "full", largest]))

    print(f"plan (cold process, median of 5):   {plan_cold('full'):.3f} s   target < 0.5 s")
    print(f"largest profile: {largest} ({counts[largest]} objects)")
    for name in profiles:
        time_profile(name, mirror, counts)
    bench_kubeflow(mirror, counts, done=profiles)

    from kubeforge import api
    from kubeforge.validate import bench as validate_bench

    rendered = api.render(api.plan(api.load_profile("full")), mirror=str(mirror))
    v = validate_bench(rendered.objects(), rendered.plan.profile.kubernetesVersion)
    print(f"validate full ({v['errors']} errors): cold {v['cold_ms_per_object']:.2f} ms/object, "
          f"warm {v['warm_ms_per_object']:.2f} ms/object (target < 2 ms)")


if __name__ == "__main__":
    main()
