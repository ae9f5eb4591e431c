"""Converge time of playbooks/site.yml on 1 test host vs 3, and the idempotent re-run time.

Target (issue 4): 3 hosts converge in at most 1.5x the time of one (forks, pipelining, one ssh
connection per host). Runs on the real booted-systemd test hosts of tests/ansible (root, nspawn);
the apt proxy cache is warmed first so both sides download nothing from the mirror.

    .venv/bin/python benchmarks/nodes.py            # prints timings and the ratio
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "ansible"))
sys.path.insert(0, str(REPO))

import hostlab  # noqa: E402
import standin_repo  # noqa: E402
from labinventory import GPU_FIXTURE, write_inventory  # noqa: E402

from kubeforge.nodes import run_playbook  # noqa: E402

SHARED = REPO.parent / "shared" / "fixtures" / "gpu" / GPU_FIXTURE


def converge(names: list[str], control_plane: list[str], gpu: list[str]) -> dict:
    with hostlab.Lab(names) as lab, tempfile.TemporaryDirectory() as tmp:
        standin_repo.build(lab.repo_dir, SHARED)
        inv = write_inventory(Path(tmp) / "inv", lab, control_plane, gpu)
        t0 = time.perf_counter()
        first = run_playbook(inv, "site")
        t1 = time.perf_counter()
        second = run_playbook(inv, "site")
        t2 = time.perf_counter()
        if not (first.ok and second.ok):
            raise SystemExit(f"converge failed: {first.as_dict()} {second.as_dict()}")
        return {"hosts": len(names), "converge_s": round(t1 - t0, 1), "rerun_s": round(t2 - t1, 1),
                "rerun_changed": second.changed}


def main() -> int:
    why = hostlab.missing_requirements()
    if why:
        print(f"skipped: {why}")
        return 0
    hostlab.ensure_base_image()
    # Warm the apt proxy cache first (not timed) so both measurements download the same: nothing.
    cache = hostlab.CACHE / "apt-proxy"
    if not cache.is_dir() or len(list(cache.iterdir())) < 20:
        converge(["kf-gpu1"], ["kf-gpu1"], ["kf-gpu1"])
    one = converge(["kf-gpu1"], ["kf-gpu1"], ["kf-gpu1"])
    three = converge(["kf-cp1", "kf-gpu1", "kf-gpu2"], ["kf-cp1"], ["kf-gpu1", "kf-gpu2"])
    ratio = three["converge_s"] / one["converge_s"]
    print(json.dumps({"one_host": one, "three_hosts": three, "ratio_3_to_1": round(ratio, 2)}, indent=2))
    print(f"converge: 1 host {one['converge_s']} s, 3 hosts {three['converge_s']} s -> {ratio:.2f}x "
          f"(target <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})")
    print(f"idempotent re-run: 1 host {one['rerun_s']} s, 3 hosts {three['rerun_s']} s, "
          f"changed={three['rerun_changed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
