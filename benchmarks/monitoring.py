"""Monitoring render benchmark: `kubeforge render` of the monitoring components, cold (empty
source and render cache) and warm, against `kubectl kustomize` of the same upstream manifests,
all measured in this run on this machine. Both sides are full commands (process start, YAML
written). Never asserts: it prints.

The monitoring sources are plain manifests (kube-prometheus has no kustomization for
`manifests/` without its CRDs), so the kustomize side builds a kustomization listing exactly the
files kubeforge renders, copied from the mirror.

Usage: python benchmarks/monitoring.py [--mirror DIR] [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROFILE = """\
extends: monitoring
description: the monitoring components and the GPU exporter they watch (benchmark)
gpu: {mode: host}
components:
  dcgm-exporter: {enabled: true}
  gpu-monitoring: {enabled: true}
"""
MONITORING = ("prometheus-operator-crds", "kube-prometheus", "gpu-monitoring", "platform-monitors")


def run(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0


def kustomize_tree(plan, mirror: str | None, into: Path) -> int:
    """A kustomization of the manifest files the monitoring components render (fetched and
    verified like kubeforge's, then copied)."""
    from kubeforge import sources
    from kubeforge.render import selected_sources

    wanted = [s for name in MONITORING for s in selected_sources(plan.components[name])
              if s.kind == "manifest" and not s.raw]
    paths = sources.sync(wanted, mirror=mirror)
    files = []
    for s in wanted:
        dest = into / f"{len(files):03d}-{Path(s.path).name}"
        shutil.copyfile(paths[s.id], dest)
        files.append(dest.name)
    (into / "kustomization.yaml").write_text("resources:\n" + "".join(f"- {f}\n" for f in files))
    return len(files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default=os.environ.get("KUBEFORGE_MIRROR"), help="sources mirror (default: upstream)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from kubeforge import api
    from kubeforge.kustomize import kustomize_bin

    with tempfile.TemporaryDirectory(prefix="kf-bench-mon-") as tmp:
        t = Path(tmp)
        prof = t / "profiles" / "bench-monitoring.yaml"
        prof.parent.mkdir()
        prof.write_text(PROFILE)
        plan = api.plan(api.load_profile(str(prof)))     # extends: resolved from profiles/
        (t / "tree").mkdir()
        n_files = kustomize_tree(plan, args.mirror, t / "tree")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(KUBEFORGE_SECRETS_DIR=str(t / "secrets"))
        render = [str(BIN / "kubeforge"), "render", "-p", str(prof), "-o", str(t / "out"),
                  *(["--mirror", args.mirror] if args.mirror else [])]
        cold = []
        for i in range(args.runs):
            env["KUBEFORGE_CACHE"] = str(t / f"cache-{i}")     # empty: fetch, verify, parse, transform
            cold.append(run(render, env))
        warm = [run(render, env) for _ in range(args.runs)]   # the last cache: every component a hit
        kust = [run([str(kustomize_bin()), "kustomize", str(t / "tree")], env) for _ in range(args.runs)]
        objects = sum(1 for line in (t / "out" / "index.json").read_text().splitlines() if '"kind"' in line)
    c, w, k = statistics.median(cold), statistics.median(warm), statistics.median(kust)
    print(f"monitoring render ({', '.join(MONITORING)} + dcgm-exporter): {objects} objects; "
          f"kubectl kustomize of the same {n_files} upstream manifests (medians of {args.runs})")
    print(f"  kubectl kustomize            {k:6.2f} s")
    print(f"  kubeforge render, cold cache {c:6.2f} s   {c / k:5.2f}x the kustomize time")
    print(f"  kubeforge render, warm cache {w:6.2f} s   {k / w:5.2f}x faster than kustomize")


if __name__ == "__main__":
    main()
