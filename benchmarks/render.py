"""Render benchmark: prints figures and ratios against the anchors of the spine issue.

- `kubeforge plan` wall time, cold process (target < 0.5 s);
- cold render of the `full` profile (empty cache) vs `kubectl kustomize` of the same upstream
  trees run one after another on this machine (target: cold <= 1.2x kustomize);
- warm render (render cache hit) vs the same kustomize time (target: >= 10x faster);
- validation time per object (target < 2 ms).

Never asserts: it prints. Usage: python benchmarks/render.py [--mirror DIR] [--profile full]
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


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def plan_cold(profile: str, runs: int = 5) -> float:
    """A new process each run, as a user types it: bytecode caching on (some sandboxes turn it off
    with PYTHONDONTWRITEBYTECODE, which recompiles every module on every start); one unmeasured
    run first writes the .pyc files."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [str(BIN / "kubeforge"), "plan", "-p", profile, "-f", "json"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def kustomize_sequential(plan, mirror: Path) -> tuple[float, int]:
    """`kubectl kustomize` of every kustomize tree of the plan, straight from the mirror."""
    from kubeforge.kustomize import kustomize_bin
    from kubeforge.render import selected_sources

    total = 0.0
    n = 0
    for pc in plan.components.values():
        for s in selected_sources(pc):
            if s.kind != "kustomize":
                continue
            d = mirror / s.repo.mirror_path(s.root) / s.path
            t0 = time.perf_counter()
            subprocess.run([str(kustomize_bin()), "kustomize", str(d)], check=True, stdout=subprocess.DEVNULL)
            total += time.perf_counter() - t0
            n += 1
    return total, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirror", default=os.environ.get("KUBEFORGE_MIRROR") or str(REPO.parent / "shared" / "mirror"))
    ap.add_argument("--profile", default="full")
    args = ap.parse_args()
    mirror = Path(args.mirror)

    with tempfile.TemporaryDirectory() as cache:
        os.environ["KUBEFORGE_CACHE"] = cache
        from kubeforge.plan import make_plan
        from kubeforge.profile import load_profile
        from kubeforge.render import render

        t_plan = plan_cold(args.profile)
        plan = make_plan(load_profile(args.profile))
        t_kz, n_trees = kustomize_sequential(plan, mirror)
        t_cold, rendered = timed(render, plan, mirror=str(mirror))
        warm = [timed(render, plan, mirror=str(mirror))[0] for _ in range(3)]
        t_warm = statistics.median(warm)
        objs = rendered.objects()
        from kubeforge.validate import bench as validate_bench

        v = validate_bench(objs, plan.profile.kubernetesVersion)

    n = len(objs)
    print(f"profile {args.profile}: {len(plan.components)} components, {n} objects, {n_trees} kustomize trees")
    print(f"plan (cold process, median of 5):   {t_plan:.3f} s   target < 0.5 s   "
          f"{'OK' if t_plan < 0.5 else 'MISS'}")
    print(f"kubectl kustomize, sequential:      {t_kz:.2f} s")
    print(f"render cold (empty cache):          {t_cold:.2f} s   ratio cold/kustomize = {t_cold / t_kz:.2f}x "
          f"(target <= 1.2x)")
    print(f"render warm (cache hit, median 3):  {t_warm:.3f} s   kustomize/warm = {t_kz / t_warm:.1f}x faster "
          f"(target >= 10x)")
    print(f"validate ({v['errors']} errors): cold {v['cold_ms_per_object']:.2f} ms/object, "
          f"warm {v['warm_ms_per_object']:.2f} ms/object (target < 2 ms)")


if __name__ == "__main__":
    main()
