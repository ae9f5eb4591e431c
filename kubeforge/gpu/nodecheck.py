#!/usr/bin/env python3
"""Validate a GPU node against its pins: driver, GPUs, persistence, MIG, containerd, CDI.

Standard library only, Python >= 3.10. The Ansible role gpu_node_validate copies this file and
parsers.py (beside it) to each GPU node and runs it there; kubeforge need not be installed.

    python3 nodecheck.py --expect-driver 580.159.04 --expect-gpu-count 8 --expect-model H100 \\
        --expect-persistence on --expect-mig disabled \\
        --containerd-config /etc/containerd/config.toml --cdi-spec /etc/cdi/nvidia.yaml \\
        --out /var/lib/kubeforge/gpu-node-report.json

Writes {host, ok, checks: [{name, ok, expected, actual, message}]} (plus `error` when it could not
run). Exit status: 0 every check passed, 1 a check failed, 2 could not run (bad arguments,
nvidia-smi missing or printing something unreadable).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__:
    from .parsers import ParseError, SmiReport, parse_proc_driver_version, parse_smi_xml
else:  # run as a script: parsers.py sits beside this file (on the node, or in the package)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from parsers import ParseError, SmiReport, parse_proc_driver_version, parse_smi_xml

NVIDIA_SMI_TIMEOUT_S = 60


class CannotRun(Exception):
    """The checks could not be evaluated at all (exit 2)."""


@dataclass
class Check:
    name: str
    ok: bool
    expected: object
    actual: object
    message: str


# --- containerd ------------------------------------------------------------------------------------

def _load_toml(path: Path) -> dict | None:
    """Parsed TOML, or None where tomllib is missing (Python 3.10 on Ubuntu 22.04)."""
    try:
        import tomllib  # novermin (3.11+; the ImportError branch serves 3.10)
    except ImportError:
        return None
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def _runtimes_from_toml(doc: dict) -> dict[str, dict]:
    """Runtimes under any CRI plugin: config v2 `io.containerd.grpc.v1.cri`, v3 `io.containerd.cri.v1.runtime`."""
    found: dict[str, dict] = {}
    for plugin in (doc.get("plugins") or {}).values():
        if isinstance(plugin, dict):
            runtimes = (plugin.get("containerd") or {}).get("runtimes") or {}
            for name, rt in runtimes.items():
                if isinstance(rt, dict):
                    found[name] = rt
    return found


_RT_TABLE = re.compile(r'^\s*\[plugins\.\S+\.containerd\.runtimes\.(?:"([^"]+)"|([\w.-]+))\]\s*$', re.M)
_BINARY = re.compile(r'^\s*BinaryName\s*=\s*"([^"]*)"', re.M)


def _runtimes_from_text(text: str) -> dict[str, dict]:
    """The same, by scanning table headers, for nodes without tomllib."""
    found: dict[str, dict] = {}
    heads = list(_RT_TABLE.finditer(text))
    for i, m in enumerate(heads):
        name = m.group(1) or m.group(2)
        if "." in name:      # a sub-table such as runtimes.nvidia.options
            base, _, sub = name.partition(".")
            if sub == "options":
                end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
                b = _BINARY.search(text, m.end(), end)
                if b:
                    found.setdefault(base, {}).setdefault("options", {})["BinaryName"] = b.group(1)
            continue
        found.setdefault(name, {})
    return found


def _containerd_files(path: Path) -> list[Path]:
    """The config and the drop-ins its `imports` names (nvidia-ctk writes conf.d/99-nvidia.toml)."""
    files = [path]
    text = path.read_text()
    m = re.search(r"^\s*imports\s*=\s*\[(.*?)\]", text, re.M | re.S)
    if m:
        for pattern in re.findall(r'"([^"]+)"', m.group(1)):
            p = pattern if os.path.isabs(pattern) else str(path.parent / pattern)
            files.extend(Path(f) for f in sorted(glob.glob(p)))
    return files


def check_containerd(path: Path) -> Check:
    name, expected = "containerd-nvidia-runtime", "a runtime 'nvidia' running nvidia-container-runtime"
    if not path.is_file():
        return Check(name, False, expected, None, f"{path} does not exist: containerd is not configured; "
                     "run `nvidia-ctk runtime configure --runtime=containerd` (role nvidia_container_toolkit)")
    runtimes: dict[str, dict] = {}
    try:
        for f in _containerd_files(path):
            doc = _load_toml(f)
            runtimes.update(_runtimes_from_toml(doc) if doc is not None else _runtimes_from_text(f.read_text()))
    except (OSError, ValueError) as e:  # tomllib.TOMLDecodeError is a ValueError
        return Check(name, False, expected, None, f"cannot read {path}: {e}")
    nvidia = runtimes.get("nvidia")
    binary = ((nvidia or {}).get("options") or {}).get("BinaryName", "")
    actual = {"runtimes": sorted(runtimes), "nvidia BinaryName": binary or None}
    if nvidia is None:
        return Check(name, False, expected, actual, "containerd has no 'nvidia' runtime: pods get no GPU "
                     "(the node shows 0 nvidia.com/gpu)")
    if "nvidia-container-runtime" not in binary:
        return Check(name, False, expected, actual, "the 'nvidia' runtime does not run nvidia-container-runtime")
    return Check(name, True, expected, actual, "containerd knows the nvidia runtime")


# --- CDI -------------------------------------------------------------------------------------------

def cdi_devices(text: str) -> tuple[str | None, list[str]]:
    """(kind, device names) of a CDI spec, YAML (as `nvidia-ctk cdi generate` writes it) or JSON.

    No YAML library on the node, so the YAML is read by layout: the `name:` keys of the items of the
    top-level `devices:` sequence, whatever the indentation.
    """
    if text.lstrip().startswith("{"):
        doc = json.loads(text)
        return doc.get("kind"), [str(d.get("name")) for d in doc.get("devices") or []]
    kind = None
    names: list[str] = []
    in_devices = False
    item_col = key_col = None
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or s == "---":
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0 and not s.startswith("- "):
            in_devices = s.startswith("devices:")
            item_col = key_col = None
            if s.startswith("kind:"):
                kind = s.split(":", 1)[1].strip().strip("\"'")
            continue
        if not in_devices:
            continue
        m = re.match(r"(\s*)-\s+(.*)$", line)
        if m and (item_col is None or len(m.group(1)) == item_col):
            item_col = len(m.group(1))
            key_col = len(line) - len(m.group(2))
            s = m.group(2)
        elif indent != key_col:
            continue
        if s.startswith("name:"):
            names.append(s.split(":", 1)[1].strip().strip("\"'"))
    return kind, names


def check_cdi(path: Path, smi: SmiReport) -> Check:
    name = "cdi-spec"
    expected = {"kind": "nvidia.com/gpu", "devices": [str(g.index) for g in smi.gpus] + ["all"]}
    if not path.is_file():
        return Check(name, False, expected, None, f"{path} does not exist: generate it with "
                     "`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`")
    try:
        kind, names = cdi_devices(path.read_text())
    except (OSError, ValueError) as e:
        return Check(name, False, expected, None, f"cannot read {path}: {e}")
    actual = {"kind": kind, "devices": names}
    if kind != "nvidia.com/gpu":
        return Check(name, False, expected, actual, f"{path} is not an nvidia.com/gpu CDI spec")
    missing = [f"GPU {g.index} ({g.uuid})" for g in smi.gpus
               if str(g.index) not in names and g.uuid not in names]
    if missing:
        return Check(name, False, expected, actual, f"the CDI spec lacks {', '.join(missing)}: regenerate it "
                     "after a driver or GPU change")
    return Check(name, True, expected, actual, f"the CDI spec lists all {len(smi.gpus)} GPU(s)")


# --- GPU checks ------------------------------------------------------------------------------------

def gpu_checks(smi: SmiReport, args: argparse.Namespace) -> list[Check]:
    checks = [Check("driver-version", smi.driver_version == args.expect_driver, args.expect_driver,
                    smi.driver_version,
                    "driver matches the pin" if smi.driver_version == args.expect_driver else
                    "nvidia-smi reports another driver than the pin: upgrade with playbooks/upgrade-driver.yml")]
    if args.proc_version:
        p = Path(args.proc_version)
        if not p.is_file():
            checks.append(Check("kernel-module", False, args.expect_driver, None,
                                f"{p} does not exist: the nvidia kernel module is not loaded"))
        else:
            try:
                mod = parse_proc_driver_version(p.read_text(), str(p)).version
                ok = mod == args.expect_driver
                checks.append(Check("kernel-module", ok, args.expect_driver, mod,
                                    "loaded kernel module matches the pin" if ok else
                                    "the loaded kernel module differs from the pin: reboot the node to load "
                                    "the installed driver"))
            except ParseError as e:
                checks.append(Check("kernel-module", False, args.expect_driver, None, str(e)))
    n = len(smi.gpus)
    checks.append(Check("gpu-count", n == args.expect_gpu_count, args.expect_gpu_count, n,
                        f"{n} GPU(s) visible" + ("" if n == args.expect_gpu_count else
                                                 f", {args.expect_gpu_count} expected: a GPU fell off "
                                                 "the bus or the inventory is wrong")))
    names = [g.name for g in smi.gpus]
    wrong = [f"{g.index}: {g.name}" for g in smi.gpus if args.expect_model.lower() not in g.name.lower()]
    checks.append(Check("gpu-model", bool(names) and not wrong, args.expect_model, names,
                        "every GPU matches" if names and not wrong else
                        f"GPU(s) not matching {args.expect_model!r}: {', '.join(wrong) or 'none found'}"))
    want = args.expect_persistence == "on"
    off = [str(g.index) for g in smi.gpus if g.persistence is not want]
    checks.append(Check("persistence-mode", not off, args.expect_persistence,
                        {str(g.index): {True: "on", False: "off", None: "n/a"}[g.persistence] for g in smi.gpus},
                        "persistence mode as expected" if not off else
                        f"GPU(s) {', '.join(off)} not {args.expect_persistence}: "
                        "enable nvidia-persistenced (role nvidia_driver)"))
    actual_mig = {str(g.index): {"current": g.mig_current or "n/a", "pending": g.mig_pending or "n/a"}
                  for g in smi.gpus}
    problems = []
    for g in smi.gpus:
        if g.mig_pending and g.mig_current != g.mig_pending:
            problems.append(f"GPU {g.index} has MIG {g.mig_pending} pending: reset the GPU or reboot")
        elif args.expect_mig == "enabled" and g.mig_current != "enabled":
            problems.append(f"GPU {g.index} MIG is {g.mig_current or 'not supported'}")
        elif args.expect_mig == "disabled" and g.mig_current == "enabled":
            problems.append(f"GPU {g.index} MIG is enabled")
    checks.append(Check("mig-mode", not problems, args.expect_mig, actual_mig,
                        "MIG mode as configured" if not problems else "; ".join(problems)))
    return checks


def run_nvidia_smi(exe: str) -> SmiReport:
    try:
        out = subprocess.run([exe, "-q", "-x"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S)
    except FileNotFoundError:
        raise CannotRun(f"{exe} not found: the NVIDIA driver is not installed (role nvidia_driver)") from None
    except PermissionError:
        raise CannotRun(f"{exe} is not executable") from None
    except subprocess.TimeoutExpired:
        raise CannotRun(f"{exe} -q -x did not answer in {NVIDIA_SMI_TIMEOUT_S} s: the driver is hung") from None
    if out.returncode != 0:
        msg = (out.stdout + out.stderr).strip().splitlines()
        raise CannotRun(f"{exe} -q -x exited {out.returncode}: {msg[-1] if msg else '(no output)'}")
    try:
        return parse_smi_xml(out.stdout, f"{exe} -q -x")
    except ParseError as e:
        raise CannotRun(str(e)) from None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--expect-driver", required=True, help="the pinned driver version, e.g. 580.159.04")
    ap.add_argument("--expect-gpu-count", required=True, type=int)
    ap.add_argument("--expect-model", required=True, help="substring of every GPU's name, e.g. H100")
    ap.add_argument("--expect-persistence", required=True, choices=["on", "off"])
    ap.add_argument("--expect-mig", required=True, choices=["enabled", "disabled", "any"])
    ap.add_argument("--containerd-config", default="/etc/containerd/config.toml")
    ap.add_argument("--cdi-spec", default="/etc/cdi/nvidia.yaml")
    ap.add_argument("--nvidia-smi", default="nvidia-smi")
    ap.add_argument("--proc-version", default="/proc/driver/nvidia/version",
                    help="the loaded module's version file; '' skips the check")
    ap.add_argument("--host", default=None, help="name in the report (default: this host's name)")
    ap.add_argument("--out", help="write the JSON report here (default: stdout)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:  # argparse already printed the usage error
        return 0 if e.code == 0 else 2
    report: dict = {"host": args.host or socket.gethostname(), "ok": False, "checks": []}
    code = 2
    try:
        if args.expect_gpu_count < 0:
            raise CannotRun("--expect-gpu-count must be >= 0")
        smi = run_nvidia_smi(args.nvidia_smi)
        checks = gpu_checks(smi, args)
        checks.append(check_containerd(Path(args.containerd_config)))
        checks.append(check_cdi(Path(args.cdi_spec), smi))
        report["checks"] = [asdict(c) for c in checks]
        report["ok"] = all(c.ok for c in checks)
        code = 0 if report["ok"] else 1
    except CannotRun as e:
        report["error"] = str(e)
    text = json.dumps(report, indent=2, sort_keys=False) + "\n"
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, out)   # a reader never sees half a report
        for c in report["checks"]:
            print(f"{'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['message']}")
        if "error" in report:
            print(f"error: {report['error']}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        if "error" in report:
            print(f"error: {report['error']}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
