"""nodecheck.py run as the node runs it: a subprocess, standard library only (-I -S), from a folder
holding just nodecheck.py and parsers.py, as the role gpu_node_validate copies them.

nvidia-smi is a stand-in (a shell script printing the real H100's `nvidia-smi -q -x` output): the
real tool needs a GPU, which this machine lacks. The containerd config and CDI spec are files the
test writes in the formats containerd and `nvidia-ctk cdi generate` use.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kubeforge.gpu import nodecheck

PKG = Path(nodecheck.__file__).resolve().parent
UUID = "GPU-fcfb90f9-00a6-92d0-5a6a-aa757e554a89"

CONTAINERD_V2 = """version = 2
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
    BinaryName = "/usr/bin/nvidia-container-runtime"
    SystemdCgroup = true
"""

# containerd 2.x: config version 3, the runtime in a drop-in that nvidia-ctk writes
CONTAINERD_V3_MAIN = 'version = 3\nimports = ["conf.d/*.toml"]\n'
CONTAINERD_V3_DROPIN = """version = 3
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.nvidia.options]
    BinaryName = "/usr/bin/nvidia-container-runtime"
"""

CDI = f"""---
cdiVersion: 0.5.0
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
  - path: /dev/nvidia-uvm
devices:
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: "0"
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: {UUID}
- containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
  name: all
kind: nvidia.com/gpu
"""


@pytest.fixture
def node(tmp_path, h100):
    """A folder like the node's: the two scripts, a stand-in nvidia-smi, containerd config, CDI spec."""
    for f in ("nodecheck.py", "parsers.py"):
        shutil.copy(PKG / f, tmp_path / f)
    xml = tmp_path / "nvidia-smi-q.xml"
    shutil.copy(h100 / "nvidia-smi-q.xml", xml)
    smi = tmp_path / "nvidia-smi-stand-in"
    smi.write_text(f'#!/bin/sh\n[ "$1 $2" = "-q -x" ] || {{ echo "stand-in knows only -q -x" >&2; exit 64; }}\n'
                   f'cat "{xml}"\n')
    smi.chmod(0o755)
    (tmp_path / "config.toml").write_text(CONTAINERD_V2)
    (tmp_path / "nvidia.yaml").write_text(CDI)
    return tmp_path


def run(node: Path, h100: Path, **over):
    opts = {"expect-driver": "580.159.04", "expect-gpu-count": "1", "expect-model": "H100",
            "expect-persistence": "on", "expect-mig": "disabled",
            "containerd-config": str(node / "config.toml"), "cdi-spec": str(node / "nvidia.yaml"),
            "nvidia-smi": str(node / "nvidia-smi-stand-in"),
            "proc-version": str(h100 / "proc-driver-nvidia-version"), "host": "gpu-1",
            "out": str(node / "report.json")}
    opts.update({k.replace("_", "-"): v for k, v in over.items()})
    argv = [a for k, v in opts.items() if v is not None for a in (f"--{k}", v)]
    # -I -S: no site-packages and no PYTHONPATH, so kubeforge cannot be imported: stdlib only
    p = subprocess.run([sys.executable, "-I", "-S", str(node / "nodecheck.py"), *argv],
                       capture_output=True, text=True, cwd=node, timeout=60)
    report = json.loads((node / "report.json").read_text()) if (node / "report.json").exists() else None
    return p, report


def by_name(report):
    return {c["name"]: c for c in report["checks"]}


def test_passes_on_a_configured_h100_node(node, h100):
    p, report = run(node, h100)
    assert p.returncode == 0, p.stdout + p.stderr
    assert report["host"] == "gpu-1" and report["ok"] is True
    checks = by_name(report)
    assert list(checks) == ["driver-version", "kernel-module", "gpu-count", "gpu-model", "persistence-mode",
                            "mig-mode", "containerd-nvidia-runtime", "cdi-spec"]
    assert all(c["ok"] for c in checks.values())
    assert checks["gpu-model"]["actual"] == ["NVIDIA H100 80GB HBM3"]
    assert checks["mig-mode"]["actual"] == {"0": {"current": "disabled", "pending": "disabled"}}
    assert checks["containerd-nvidia-runtime"]["actual"] == {
        "runtimes": ["nvidia", "runc"], "nvidia BinaryName": "/usr/bin/nvidia-container-runtime"}
    assert checks["cdi-spec"]["actual"] == {"kind": "nvidia.com/gpu", "devices": ["0", UUID, "all"]}
    assert set(checks["driver-version"]) == {"name", "ok", "expected", "actual", "message"}


def test_containerd_2_drop_in_is_followed(node, h100):
    (node / "config.toml").write_text(CONTAINERD_V3_MAIN)
    (node / "conf.d").mkdir()
    (node / "conf.d" / "99-nvidia.toml").write_text(CONTAINERD_V3_DROPIN)
    p, report = run(node, h100)
    assert p.returncode == 0, p.stdout
    assert by_name(report)["containerd-nvidia-runtime"]["actual"]["runtimes"] == ["nvidia"]


@pytest.mark.parametrize("over,failed,message", [
    ({"expect_driver": "580.105.08"}, {"driver-version", "kernel-module"}, "upgrade-driver.yml"),
    ({"expect_gpu_count": "8"}, {"gpu-count"}, "1 GPU(s) visible, 8 expected"),
    ({"expect_model": "A100"}, {"gpu-model"}, "not matching 'A100': 0: NVIDIA H100 80GB HBM3"),
    ({"expect_persistence": "off"}, {"persistence-mode"}, "GPU(s) 0 not off"),
    ({"expect_mig": "enabled"}, {"mig-mode"}, "GPU 0 MIG is disabled"),
])
def test_each_unmet_expectation_fails_its_check(node, h100, over, failed, message):
    p, report = run(node, h100, **over)
    assert p.returncode == 1
    assert report["ok"] is False
    assert {n for n, c in by_name(report).items() if not c["ok"]} == failed
    assert any(message in by_name(report)[n]["message"] for n in failed)
    assert f"FAIL {sorted(failed)[0]}" in p.stdout


def test_mig_any_accepts_disabled(node, h100):
    p, report = run(node, h100, expect_mig="any")
    assert p.returncode == 0 and by_name(report)["mig-mode"]["ok"]


def test_pending_mig_change_fails(node, h100):
    xml = node / "nvidia-smi-q.xml"   # a copy of the real output, edited by the test
    xml.write_text(xml.read_text().replace("<pending_mig>Disabled</pending_mig>", "<pending_mig>Enabled</pending_mig>"))
    p, report = run(node, h100, expect_mig="any")
    assert p.returncode == 1
    assert "GPU 0 has MIG enabled pending: reset the GPU or reboot" in by_name(report)["mig-mode"]["message"]


def test_loaded_module_older_than_userspace(node, h100):
    proc = node / "version"
    proc.write_text((h100 / "proc-driver-nvidia-version").read_text().replace("580.159.04", "580.105.08"))
    p, report = run(node, h100, proc_version=str(proc))
    assert p.returncode == 1
    c = by_name(report)["kernel-module"]
    assert (c["ok"], c["actual"]) == (False, "580.105.08") and "reboot" in c["message"]


def test_containerd_without_nvidia_runtime(node, h100):
    (node / "config.toml").write_text(CONTAINERD_V2.split('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]')[0])
    p, report = run(node, h100)
    assert p.returncode == 1
    c = by_name(report)["containerd-nvidia-runtime"]
    assert not c["ok"] and "no 'nvidia' runtime" in c["message"] and c["actual"]["runtimes"] == ["runc"]


def test_missing_containerd_config_and_cdi_spec(node, h100):
    p, report = run(node, h100, containerd_config=str(node / "absent.toml"), cdi_spec=str(node / "absent.yaml"))
    assert p.returncode == 1
    checks = by_name(report)
    assert "absent.toml does not exist" in checks["containerd-nvidia-runtime"]["message"]
    assert "nvidia-ctk cdi generate" in checks["cdi-spec"]["message"]


def test_cdi_spec_missing_the_gpu(node, h100):
    (node / "nvidia.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: all\n")
    p, report = run(node, h100)
    assert p.returncode == 1
    assert f"lacks GPU 0 ({UUID})" in by_name(report)["cdi-spec"]["message"]


def test_cdi_spec_json(node, h100):
    (node / "nvidia.json").write_text(json.dumps({"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu",
                                                  "devices": [{"name": "0"}, {"name": "all"}]}))
    p, report = run(node, h100, cdi_spec=str(node / "nvidia.json"))
    assert p.returncode == 0, p.stdout


@pytest.mark.parametrize("over,error", [
    ({"nvidia_smi": "/nonexistent/nvidia-smi"}, "not found: the NVIDIA driver is not installed"),
    ({"expect_gpu_count": "-1"}, "--expect-gpu-count must be >= 0"),
])
def test_could_not_run_exits_2_with_a_report(node, h100, over, error):
    p, report = run(node, h100, **over)
    assert p.returncode == 2
    assert report["ok"] is False and report["checks"] == [] and error in report["error"]
    assert error in p.stderr


def test_nvidia_smi_failing_exits_2(node, h100):
    smi = node / "nvidia-smi-stand-in"
    smi.write_text("#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the "
                   "NVIDIA driver.\"\nexit 9\n")
    p, report = run(node, h100)
    assert p.returncode == 2
    assert "exited 9: NVIDIA-SMI has failed" in report["error"]


def test_unreadable_nvidia_smi_output_exits_2(node, h100):
    (node / "nvidia-smi-q.xml").write_text("<nvidia_smi_log><gpu>")
    p, report = run(node, h100)
    assert p.returncode == 2 and "not XML" in report["error"]


def test_bad_arguments_exit_2(node, h100):
    p, report = run(node, h100, expect_mig="maybe")
    assert p.returncode == 2 and report is None and "invalid choice: 'maybe'" in p.stderr


def test_report_to_stdout_without_out(node, h100):
    p, _ = run(node, h100, out=None)
    assert p.returncode == 0
    assert json.loads(p.stdout)["ok"] is True


def test_yaml_scan_reads_other_indentation():
    kind, names = nodecheck.cdi_devices(
        "cdiVersion: 0.7.0\nkind: nvidia.com/gpu\ndevices:\n    - name: all\n      containerEdits:\n"
        "        deviceNodes:\n            - path: /dev/nvidia0\n      annotations:\n        name: not-a-device\n")
    assert (kind, names) == ("nvidia.com/gpu", ["all"])


def test_containerd_scan_without_tomllib_matches_tomllib(tmp_path):
    """Ubuntu 22.04 nodes run Python 3.10 (no tomllib): the text scan must find the same runtimes."""
    import tomllib

    from kubeforge.gpu.nodecheck import _runtimes_from_text, _runtimes_from_toml
    for text in (CONTAINERD_V2, CONTAINERD_V3_DROPIN):
        doc = tomllib.loads(text)
        want = {k: (v.get("options") or {}).get("BinaryName") for k, v in _runtimes_from_toml(doc).items()}
        got = {k: (v.get("options") or {}).get("BinaryName") for k, v in _runtimes_from_text(text).items()}
        assert got == want
