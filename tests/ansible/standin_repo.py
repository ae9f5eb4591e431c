"""A signed local apt repository of STAND-IN vendor packages for the test hosts.

The real vendor repositories (NVIDIA CUDA/driver, NVIDIA container toolkit, pkgs.k8s.io) cannot
be reached here, so this builds packages *named and versioned like the real ones* with `dpkg-deb`,
indexes them with `dpkg-scanpackages`, writes a `Release`, signs it (`InRelease`, ed25519 key,
exported `key.asc`) and lays them out as flat repositories like the vendors'. The roles then take
their real path: fetch the key, `deb822_repository` with `signed_by`, apt with exact version pins.

Nothing in these packages is a driver: `nvidia-smi` prints what a real H100 node printed
(copied from ../shared/fixtures/gpu at build time), `kubelet` waits, `kubeadm` validates config
files and refuses to form a cluster. Tests that use them say "stand-in" in their names.
"""
from __future__ import annotations

import email.utils
import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# Where each stand-in repository lives under the repo root (mirrors the vendors' flat layouts).
CUDA = "cuda/repos/debian12/x86_64"
TOOLKIT = "libnvidia-container/stable/deb/amd64"
K8S_MINOR = "1.34"
K8S = f"kubernetes/core:/stable:/v{K8S_MINOR}/deb"

DRIVER_BRANCH = "580"
DRIVER_OLD = "580.126.09"   # converge installs this one ...
DRIVER_NEW = "580.159.04"   # ... upgrade-driver.yml moves to this one (the version the fixtures show)
TOOLKIT_VERSION = "1.18.0-1"
K8S_VERSION = "1.34.2"
K8S_REVISION = "1.1"
FIXTURE_DRIVER = "580.159.04"   # what the captured H100 outputs print

STANDIN_NOTE = "STAND-IN for tests: not the real package"


def build(root: Path, gpu_fixture_dir: Path) -> dict[str, str]:
    """Build every stand-in repository under `root`; return the URLs' paths and pins for inventories."""
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kubeforge-standin-"))
    try:
        gnupg = work / "gnupg"
        gnupg.mkdir(mode=0o700)
        env = {**os.environ, "GNUPGHOME": str(gnupg)}
        subprocess.run(["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key",
                        "kubeforge stand-in repository <standin@kubeforge.invalid>", "ed25519", "sign", "never"],
                       check=True, env=env, capture_output=True)
        for version in (DRIVER_OLD, DRIVER_NEW):
            _driver(work, root / CUDA, version, gpu_fixture_dir)
        _toolkit(work, root / TOOLKIT)
        _kubernetes(work, root / K8S)
        for repo in (CUDA, TOOLKIT, K8S):
            _index_and_sign(root / repo, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"cuda": CUDA, "toolkit": TOOLKIT, "kubernetes": K8S}


def _deb(work: Path, out: Path, name: str, version: str, files: dict[str, tuple[str | bytes, int]],
         depends: str = "", extra: str = "") -> None:
    pkg = work / f"{name}_{version}"
    for rel, (content, mode) in files.items():
        p = pkg / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        p.chmod(mode)
    control = pkg / "DEBIAN/control"
    control.parent.mkdir(parents=True, exist_ok=True)
    control.write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: kubeforge tests "
        f"<standin@kubeforge.invalid>\n" + (f"Depends: {depends}\n" if depends else "") + extra
        + f"Description: {STANDIN_NOTE} ({name})\n")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "-b", str(pkg),
                    str(out / f"{name}_{version}_amd64.deb")], check=True, capture_output=True)


_NVIDIA_SMI = r'''#!/usr/bin/python3
"""STAND-IN nvidia-smi for tests: prints what a real H100 node printed; no GPU is touched."""
import pathlib, sys
D = pathlib.Path("/usr/share/kubeforge-standin/nvidia-smi")
a = sys.argv[1:]
def out(name):
    sys.stdout.write((D / name).read_text()); sys.exit(0)
if not a:
    out("nvidia-smi.txt")
if a == ["-L"]:
    out("nvidia-smi-L.txt")
if sorted(a) in (["-q", "-x"], ["--query", "--xml-format"]):
    out("nvidia-smi-q.xml")
if a[:2] == ["mig", "-lgip"]:
    out("nvidia-smi-mig-lgip.txt")
q = [x.split("=", 1)[1] for x in a if x.startswith("--query-gpu=")]
if q:
    fmt = next((x.split("=", 1)[1] for x in a if x.startswith("--format=")), "")
    if "csv" not in fmt:
        sys.exit("stand-in nvidia-smi: --query-gpu needs --format=csv")
    lines = (D / "nvidia-smi-query-gpu.csv").read_text().splitlines()
    head = [h.strip() for h in lines[0].split(",")]
    keys = [h.split(" [")[0] for h in head]
    rows = [[v.strip() for v in line.split(",")] for line in lines[1:] if line.strip()]
    want = [f.strip() for f in q[0].split(",") if f.strip()]
    for f in want:
        if f not in keys:
            print(f'Field "{f}" is not a valid field to query.'); sys.exit(2)
    idx = [keys.index(f) for f in want]
    nounits = "nounits" in fmt
    def clean(v, h):
        if nounits and " [" in h:
            return v.rsplit(" ", 1)[0]
        return v
    if "noheader" not in fmt:
        print(", ".join(keys[i] if nounits else head[i] for i in idx))
    for r in rows:
        print(", ".join(clean(r[i], head[i]) for i in idx))
    sys.exit(0)
if a[:1] == ["--version"]:
    print("NVIDIA-SMI version  : @VERSION@ (stand-in)"); sys.exit(0)
sys.stderr.write("stand-in nvidia-smi: unsupported arguments %r\n" % a); sys.exit(2)
'''

_NVIDIA_CTK = r'''#!/usr/bin/python3
"""STAND-IN nvidia-ctk for tests: `cdi generate` writes a CDI spec for the captured H100's device nodes."""
import sys
a = sys.argv[1:]
if a[:1] == ["--version"]:
    print("NVIDIA Container Toolkit CLI version @VERSION@ (stand-in)"); sys.exit(0)
if a[:2] == ["cdi", "generate"]:
    dest = next((x.split("=", 1)[1] for x in a if x.startswith("--output=")), None)
    spec = """---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
  - path: /dev/nvidia-uvm
  - path: /dev/nvidia-uvm-tools
"""
    if dest:
        open(dest, "w").write(spec)
    else:
        sys.stdout.write(spec)
    sys.exit(0)
sys.stderr.write("stand-in nvidia-ctk: unsupported arguments %r\n" % a); sys.exit(2)
'''

_WAIT = "#!/bin/sh\n# STAND-IN daemon for tests: stays up like the real one, does nothing.\nexec sleep infinity\n"


def _driver(work: Path, out: Path, version: str, fixtures: Path) -> None:
    share = "usr/share/kubeforge-standin/nvidia-smi"
    files: dict[str, tuple[str | bytes, int]] = {}
    for name in ("nvidia-smi.txt", "nvidia-smi-L.txt", "nvidia-smi-q.xml", "nvidia-smi-query-gpu.csv",
                 "nvidia-smi-mig-lgip.txt"):
        # The captured outputs name the captured driver; the stand-in reports its own package version.
        files[f"{share}/{name}"] = ((fixtures / name).read_text().replace(FIXTURE_DRIVER, version), 0o644)
    files["usr/bin/nvidia-smi"] = (_NVIDIA_SMI.replace("@VERSION@", version), 0o755)
    files["usr/bin/nvidia-persistenced"] = (_WAIT, 0o755)
    files["lib/systemd/system/nvidia-persistenced.service"] = (
        "[Unit]\nDescription=NVIDIA Persistence Daemon (stand-in)\n\n[Service]\n"
        "ExecStart=/usr/bin/nvidia-persistenced\n\n[Install]\nWantedBy=multi-user.target\n", 0o644)
    _deb(work, out, f"nvidia-open-{DRIVER_BRANCH}", f"{version}-1", files)


def _toolkit(work: Path, out: Path) -> None:
    v = TOOLKIT_VERSION
    upstream = v.split("-")[0]
    _deb(work, out, "libnvidia-container1", v, {"usr/share/doc/libnvidia-container1/STANDIN": (STANDIN_NOTE, 0o644)})
    _deb(work, out, "libnvidia-container-tools", v,
         {"usr/share/doc/libnvidia-container-tools/STANDIN": (STANDIN_NOTE, 0o644)},
         depends=f"libnvidia-container1 (= {v})")
    _deb(work, out, "nvidia-container-toolkit-base", v,
         {"usr/bin/nvidia-ctk": (_NVIDIA_CTK.replace("@VERSION@", upstream), 0o755)})
    _deb(work, out, "nvidia-container-toolkit", v,
         {"usr/bin/nvidia-container-runtime": ("#!/bin/sh\necho 'stand-in nvidia-container-runtime' >&2\n"
                                               "exit 1\n", 0o755)},
         depends=f"nvidia-container-toolkit-base (= {v}), libnvidia-container-tools (= {v})")


_KUBEADM = r'''#!/bin/sh
# STAND-IN kubeadm for tests: answers version, checks config files, cleans up on reset; cannot form a cluster.
case "$1 $2" in
  "version -o"|"version ") echo "v@VERSION@"; exit 0 ;;
  "config validate")
    f=$(echo "$@" | sed -n 's/.*--config[= ]\([^ ]*\).*/\1/p')
    [ -r "$f" ] || { echo "stand-in kubeadm: cannot read config $f" >&2; exit 1; }
    grep -q '^kind: ClusterConfiguration' "$f" && grep -q '^apiVersion: kubeadm.k8s.io/' "$f" \
      || { echo "stand-in kubeadm: $f lacks a kubeadm ClusterConfiguration" >&2; exit 1; }
    exit 0 ;;
esac
case "$1" in
  reset) rm -rf /etc/kubernetes/manifests/* /etc/kubernetes/pki /etc/kubernetes/*.conf /var/lib/kubelet/config.yaml
         echo "[reset] stand-in: cleaned kubeadm state"; exit 0 ;;
esac
echo "stand-in kubeadm cannot run '$*' (no real cluster in test hosts)" >&2
exit 2
'''

_KUBELET = r'''#!/bin/sh
# STAND-IN kubelet for tests: like the real one it fails until kubeadm has written its config.
[ "$1" = "--version" ] && { echo "Kubernetes v@VERSION@"; exit 0; }
[ -r /var/lib/kubelet/config.yaml ] || { echo "failed to load kubelet config file /var/lib/kubelet/config.yaml" >&2; exit 1; }
exec sleep infinity
'''

# The unit and drop-in the real kubelet package ships (the role relies on /etc/default/kubelet).
_KUBELET_UNIT = """[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
_KUBELET_DROPIN = """[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""


def _kubernetes(work: Path, out: Path) -> None:
    v = f"{K8S_VERSION}-{K8S_REVISION}"
    _deb(work, out, "cri-tools", f"1.34.0-{K8S_REVISION}", {"usr/bin/crictl": ("#!/bin/sh\necho stand-in crictl\n", 0o755)})
    _deb(work, out, "kubernetes-cni", f"1.7.1-{K8S_REVISION}", {"opt/cni/bin/STANDIN": (STANDIN_NOTE, 0o644)})
    _deb(work, out, "kubelet", v, {
        "usr/bin/kubelet": (_KUBELET.replace("@VERSION@", K8S_VERSION), 0o755),
        "usr/lib/systemd/system/kubelet.service": (_KUBELET_UNIT, 0o644),
        "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": (_KUBELET_DROPIN, 0o644),
    }, depends="kubernetes-cni (>= 1.2.0), iptables, iproute2, mount")
    _deb(work, out, "kubeadm", v, {"usr/bin/kubeadm": (_KUBEADM.replace("@VERSION@", K8S_VERSION), 0o755)},
         depends="cri-tools (>= 1.30.0)")
    _deb(work, out, "kubectl", v, {"usr/bin/kubectl": (
        f"#!/bin/sh\necho 'Client Version: v{K8S_VERSION} (stand-in)'\n", 0o755)})


def _index_and_sign(repo: Path, env: dict[str, str]) -> None:
    packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo, check=True,
                              capture_output=True, text=True).stdout
    (repo / "Packages").write_text(packages)
    with gzip.GzipFile(repo / "Packages.gz", "wb", mtime=0) as gz:
        gz.write(packages.encode())
    lines = ["Origin: kubeforge-standin", "Label: kubeforge stand-in (tests only)", "Architectures: amd64",
             f"Date: {email.utils.formatdate(usegmt=True)}", "SHA256:"]
    for name in ("Packages", "Packages.gz"):
        data = (repo / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    (repo / "Release").write_text("\n".join(lines) + "\n")
    subprocess.run(["gpg", "--batch", "--yes", "--clearsign", "-o", "InRelease", "Release"], cwd=repo,
                   check=True, env=env, capture_output=True)
    key = subprocess.run(["gpg", "--armor", "--export"], check=True, env=env, capture_output=True).stdout
    (repo / "key.asc").write_bytes(key)
