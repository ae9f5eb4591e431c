"""Parsers for what NVIDIA tools print on a GPU node, into small dataclasses.

Standard library only, Python >= 3.10: this file is copied to GPU nodes beside nodecheck.py by the
Ansible role gpu_node_validate, where kubeforge is not installed. It is the one place each of these
formats is parsed; kubeforge code and nodecheck.py both import it.

Every parser raises ParseError (a ValueError) naming the input and what was wrong with it, never
returns half-parsed data.
"""
from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


class ParseError(ValueError):
    """Input that does not look like what the named tool prints."""

    def __init__(self, source: str, message: str):
        super().__init__(f"{source}: {message}")
        self.source = source
        self.detail = message


@dataclass(frozen=True)
class MigDevice:
    """A MIG device as `nvidia-smi -L` lists it below its GPU."""

    profile: str          # e.g. "1g.10gb"
    index: int            # device index within the GPU
    uuid: str


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    bus_id: str | None = None
    memory_total_mib: int | None = None
    persistence: bool | None = None      # persistence mode on/off; None where not reported
    mig_current: str | None = None       # "enabled" | "disabled"; None: GPU is not MIG-capable (N/A)
    mig_pending: str | None = None
    driver_version: str | None = None    # per-GPU column of --query-gpu, when asked for
    mig_devices: tuple[MigDevice, ...] = ()
    extra: dict[str, str] = field(default_factory=dict, compare=False)  # other --query-gpu columns


@dataclass(frozen=True)
class SmiReport:
    """`nvidia-smi -q -x` or the `nvidia-smi` summary table: driver, CUDA and the GPUs."""

    driver_version: str
    cuda_version: str
    gpus: tuple[Gpu, ...]


@dataclass(frozen=True)
class MigProfile:
    """One GPU instance profile from `nvidia-smi mig -lgip`."""

    gpu: int
    name: str             # e.g. "1g.10gb", "1g.10gb+me" (the "MIG " prefix dropped)
    id: int
    instances_free: int
    instances_total: int
    memory_gib: float
    p2p: bool
    sm: int
    dec: int
    enc: int
    ce: int
    jpeg: int
    ofa: int

    @property
    def compute_slices(self) -> int:
        """The N of "Ng": GPU compute slices one instance takes."""
        return int(self.name.split("g.", 1)[0])


@dataclass(frozen=True)
class DriverInfo:
    """/proc/driver/nvidia/version: the kernel module actually loaded."""

    version: str
    open_kernel_module: bool
    arch: str | None
    gcc: str | None


@dataclass(frozen=True)
class DeviceNode:
    path: str             # absolute, e.g. /dev/nvidia0, /dev/nvidia-caps/nvidia-cap1
    type: str             # "c" character device, "d" directory, ...
    mode: str             # e.g. "rw-rw-rw-"
    major: int | None
    minor: int | None


@dataclass(frozen=True)
class DevNodes:
    nodes: tuple[DeviceNode, ...]

    def paths(self) -> list[str]:
        return [n.path for n in self.nodes]

    @property
    def gpu_minors(self) -> list[int]:
        """Minor numbers of /dev/nvidiaN, one per GPU the driver created a node for."""
        return sorted(int(m.group(1)) for n in self.nodes
                      if (m := re.fullmatch(r"/dev/nvidia(\d+)", n.path)))

    def has(self, path: str) -> bool:
        return path in self.paths()


@dataclass(frozen=True)
class CudaSmoke:
    """Output of the CUDA smoke test: a vectorAdd checked on the host and a bf16 matmul rate."""

    torch_version: str
    cuda_version: str
    available: bool
    device: str
    sm_count: int
    memory_gib: float
    compute_capability: str
    vector_add_elements: int
    vector_add_ok: bool
    matmul_tflops: float | None


# --- nvidia-smi -q -x -----------------------------------------------------------------------------

def _text(el: ET.Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    t = el.text.strip()
    return None if t in ("", "N/A", "[N/A]") else t


def _mig_mode(value: str | None) -> str | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v not in ("enabled", "disabled"):
        raise ValueError(f"MIG mode {value!r} is neither Enabled nor Disabled")
    return v


def _on_off(value: str | None, source: str, what: str) -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("enabled", "on"):
        return True
    if v in ("disabled", "off"):
        return False
    raise ParseError(source, f"{what} {value!r} is neither Enabled/On nor Disabled/Off")


def _mib(value: str | None, source: str, what: str) -> int | None:
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)\s*MiB", value.strip())
    if not m:
        raise ParseError(source, f"{what} {value!r} is not '<n> MiB'")
    return int(m.group(1))


def parse_smi_xml(text: str, source: str = "nvidia-smi -q -x") -> SmiReport:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ParseError(source, f"not XML ({e})") from None
    if root.tag != "nvidia_smi_log":
        raise ParseError(source, f"root element is <{root.tag}>, expected <nvidia_smi_log>")
    driver = _text(root.find("driver_version"))
    cuda = _text(root.find("cuda_version"))
    if not driver:
        raise ParseError(source, "no <driver_version>")
    if not cuda:
        raise ParseError(source, "no <cuda_version>")
    gpus = []
    for i, g in enumerate(root.findall("gpu")):
        uuid = _text(g.find("uuid"))
        name = _text(g.find("product_name"))
        if not uuid or not name:
            raise ParseError(source, f"GPU #{i} has no <uuid> or <product_name>")
        try:
            mig_cur = _mig_mode(_text(g.find("mig_mode/current_mig")))
            mig_pend = _mig_mode(_text(g.find("mig_mode/pending_mig")))
        except ValueError as e:
            raise ParseError(source, f"GPU #{i}: {e}") from None
        gpus.append(Gpu(
            index=i,  # nvidia-smi lists GPUs in index order; the XML has no index element
            uuid=uuid, name=name,
            bus_id=_text(g.find("pci/pci_bus_id")) or g.get("id"),
            memory_total_mib=_mib(_text(g.find("fb_memory_usage/total")), source, "fb_memory_usage/total"),
            persistence=_on_off(_text(g.find("persistence_mode")), source, "persistence_mode"),
            mig_current=mig_cur, mig_pending=mig_pend))
    attached = _text(root.find("attached_gpus"))
    if attached is not None and attached.isdigit() and int(attached) != len(gpus):
        raise ParseError(source, f"attached_gpus says {attached} but {len(gpus)} <gpu> elements follow")
    return SmiReport(driver_version=driver, cuda_version=cuda, gpus=tuple(gpus))


# --- nvidia-smi --query-gpu=... --format=csv -----------------------------------------------------

_UNIT = re.compile(r"\s*\[[^\]]*\]\s*$")


def parse_query_gpu(text: str, source: str = "nvidia-smi --query-gpu --format=csv") -> list[Gpu]:
    """Rows of `--format=csv` (with its header line). Needs index, uuid and name among the fields."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ParseError(source, "empty output")
    rows = list(csv.reader(io.StringIO("\n".join(lines)), skipinitialspace=True))
    header = [_UNIT.sub("", h).strip() for h in rows[0]]
    missing = [f for f in ("index", "uuid", "name") if f not in header]
    if missing:
        raise ParseError(source, f"header {rows[0]!r} lacks {', '.join(missing)}: query with "
                         "--query-gpu=index,uuid,name,... --format=csv (a header line, not noheader)")
    gpus = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ParseError(source, f"line {n} has {len(row)} fields, the header {len(header)}")
        rec = {h: v.strip() for h, v in zip(header, row, strict=True)}
        if not rec["index"].isdigit():
            raise ParseError(source, f"line {n}: index {rec['index']!r} is not a number")

        def opt(key: str, rec: dict[str, str] = rec) -> str | None:
            v = rec.get(key)
            return None if v is None or v in ("N/A", "[N/A]", "[Not Supported]") else v
        try:
            mig = _mig_mode(opt("mig.mode.current"))
            mig_p = _mig_mode(opt("mig.mode.pending"))
        except ValueError as e:
            raise ParseError(source, f"line {n}: {e}") from None
        known = {"index", "uuid", "name", "pci.bus_id", "memory.total", "persistence_mode",
                 "mig.mode.current", "mig.mode.pending", "driver_version"}
        gpus.append(Gpu(
            index=int(rec["index"]), uuid=rec["uuid"], name=rec["name"], bus_id=opt("pci.bus_id"),
            memory_total_mib=_mib(opt("memory.total"), source, "memory.total"),
            persistence=_on_off(opt("persistence_mode"), source, "persistence_mode"),
            mig_current=mig, mig_pending=mig_p, driver_version=opt("driver_version"),
            extra={k: v for k, v in rec.items() if k not in known}))
    if not gpus:
        raise ParseError(source, "a header but no GPU rows")
    return gpus


# --- nvidia-smi -L ---------------------------------------------------------------------------------

_L_GPU = re.compile(r"GPU (\d+): (.+) \(UUID: (GPU-[0-9a-fA-F-]+)\)")
_L_MIG = re.compile(r"\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)]+)\)")


def parse_smi_list(text: str, source: str = "nvidia-smi -L") -> list[Gpu]:
    gpus: list[Gpu] = []
    migs: list[MigDevice] = []

    def close() -> None:
        if gpus and migs:
            gpus[-1] = Gpu(**{**gpus[-1].__dict__, "mig_devices": tuple(migs)})
        migs.clear()

    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if m := _L_GPU.fullmatch(line.rstrip()):
            close()
            gpus.append(Gpu(index=int(m.group(1)), uuid=m.group(3), name=m.group(2)))
        elif (m := _L_MIG.fullmatch(line.rstrip())) and gpus:
            migs.append(MigDevice(profile=m.group(1), index=int(m.group(2)), uuid=m.group(3)))
        else:
            raise ParseError(source, f"line {n} {line.strip()!r} is neither 'GPU <n>: <name> (UUID: ...)' "
                             "nor a MIG device line")
    close()
    if not gpus:
        raise ParseError(source, "no GPU lines")
    return gpus


# --- nvidia-smi mig -lgip --------------------------------------------------------------------------

_LGIP_1 = re.compile(r"\|\s+(\d+)\s+MIG\s+(\d+g\.\d+gb(?:\+\w+)?)\s+(\d+)\s+(\d+)/(\d+)\s+([\d.]+)\s+"
                     r"(Yes|No)\s+(\d+)\s+(\d+)\s+(\d+)\s+\|")
_LGIP_2 = re.compile(r"\|\s+(\d+)\s+(\d+)\s+(\d+)\s+\|")
_NO_MIG = ("No MIG-supported devices found", "No MIG-enabled devices found")


def parse_mig_lgip(text: str, source: str = "nvidia-smi mig -lgip") -> list[MigProfile]:
    """The GPU instance profiles a card offers. [] when the node has no MIG-capable GPU."""
    if any(s in text for s in _NO_MIG):
        return []
    if "GPU instance profiles:" not in text:
        raise ParseError(source, "no 'GPU instance profiles:' table")
    lines = [ln.rstrip() for ln in text.splitlines()]
    out = []
    i = 0
    while i < len(lines):
        m = _LGIP_1.fullmatch(lines[i])
        if m:
            m2 = _LGIP_2.fullmatch(lines[i + 1]) if i + 1 < len(lines) else None
            if not m2:
                raise ParseError(source, f"line {i + 2}: expected the CE/JPEG/OFA line below profile "
                                 f"{m.group(2)}")
            g = m.groups()
            out.append(MigProfile(gpu=int(g[0]), name=g[1], id=int(g[2]), instances_free=int(g[3]),
                                  instances_total=int(g[4]), memory_gib=float(g[5]), p2p=g[6] == "Yes",
                                  sm=int(g[7]), dec=int(g[8]), enc=int(g[9]), ce=int(m2.group(1)),
                                  jpeg=int(m2.group(2)), ofa=int(m2.group(3))))
            i += 2
            continue
        if re.match(r"\|\s+\d+\s+MIG\s", lines[i]):
            raise ParseError(source, f"line {i + 1}: profile row not understood: {lines[i].strip()!r}")
        i += 1
    if not out:
        raise ParseError(source, "a profile table with no profile rows")
    return out


# --- /proc/driver/nvidia/version -------------------------------------------------------------------

_NVRM = re.compile(r"NVRM version: NVIDIA UNIX (?:(Open) Kernel Module for (\S+)|(\S+) Kernel Module)"
                   r"\s+(\d+\.\d+(?:\.\d+)?)\b")


def parse_proc_driver_version(text: str, source: str = "/proc/driver/nvidia/version") -> DriverInfo:
    m = _NVRM.search(text)
    if not m:
        raise ParseError(source, "no 'NVRM version: NVIDIA UNIX ... Kernel Module <version>' line")
    gcc = re.search(r"GCC version:\s+(.+?)\s*$", text, re.M)
    return DriverInfo(version=m.group(4), open_kernel_module=m.group(1) == "Open",
                      arch=m.group(2) or m.group(3), gcc=gcc.group(1) if gcc else None)


# --- ls -l /dev/nvidia* ----------------------------------------------------------------------------

_LS = re.compile(r"([bcdlps-])([rwxsStT-]{9})[.+@]?\s+\d+\s+\S+\s+\S+\s+"
                 r"(?:(\d+),\s*(\d+)|\d+)\s+\w{3}\s+\d+\s+[\d:]+\s+(\S+)")


def parse_dev_nvidia_ls(text: str, source: str = "ls -l /dev/nvidia*") -> DevNodes:
    nodes = []
    directory = ""
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("total "):
            continue
        if s.endswith(":") and s.startswith("/"):
            directory = s[:-1]
            continue
        m = _LS.fullmatch(s)
        if not m:
            raise ParseError(source, f"line {n} {s!r} is not an `ls -l` entry")
        name = m.group(5)
        path = name if name.startswith("/") else f"{directory}/{name}"
        nodes.append(DeviceNode(path=path, type="-" if m.group(1) == "-" else m.group(1), mode=m.group(2),
                                major=int(m.group(3)) if m.group(3) else None,
                                minor=int(m.group(4)) if m.group(4) else None))
    if not nodes:
        raise ParseError(source, "no device entries")
    return DevNodes(nodes=tuple(nodes))


# --- nvidia-smi (the summary table) ----------------------------------------------------------------

_SUM_HEAD = re.compile(r"Driver Version:\s+(\S+)\s+CUDA Version:\s+(\S+)")
_SUM_ROW1 = re.compile(r"\|\s+(\d+)\s+(.+?)\s+(On|Off)\s+\|\s+(\S+)\s+\S+\s+\|")
_SUM_ROW2 = re.compile(r"\|[^|]*\|\s+\d+MiB\s+/\s+(\d+)MiB\s+\|")
_SUM_ROW3 = re.compile(r"\|\s+\|\s+\|\s+(Enabled|Disabled|N/A)\s+\|")


def parse_smi_summary(text: str, source: str = "nvidia-smi") -> SmiReport:
    head = _SUM_HEAD.search(text)
    if not head:
        raise ParseError(source, "no 'Driver Version: ... CUDA Version: ...' header")
    lines = text.splitlines()
    gpus = []
    for i, line in enumerate(lines):
        m = _SUM_ROW1.match(line)
        if not m:
            continue
        r2 = _SUM_ROW2.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not r2:
            raise ParseError(source, f"line {i + 2}: expected the memory-usage line of GPU {m.group(1)}")
        r3 = _SUM_ROW3.fullmatch(lines[i + 2].rstrip()) if i + 2 < len(lines) else None
        mig = _mig_mode(r3.group(1)) if r3 and r3.group(1) != "N/A" else None
        gpus.append(Gpu(index=int(m.group(1)), uuid="", name=m.group(2), bus_id=m.group(4),
                        memory_total_mib=int(r2.group(1)), persistence=m.group(3) == "On",
                        mig_current=mig))
    if not gpus:
        raise ParseError(source, "no GPU rows in the table")
    return SmiReport(driver_version=head.group(1), cuda_version=head.group(2), gpus=tuple(gpus))


# --- /etc/os-release -------------------------------------------------------------------------------

def parse_os_release(text: str, source: str = "/etc/os-release") -> dict[str, str]:
    out = {}
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        key, sep, value = s.partition("=")
        if not sep or not re.fullmatch(r"[A-Z0-9_]+", key):
            raise ParseError(source, f"line {n} {s!r} is not KEY=value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    if "ID" not in out:
        raise ParseError(source, "no ID= line")
    return out


# --- CUDA smoke test output ------------------------------------------------------------------------

_SMOKE = {
    "torch": re.compile(r"torch (\S+) cuda (\S+) available (True|False)"),
    "device": re.compile(r"device (.+) sm (\d+) mem_GiB ([\d.]+) cc (\d+\.\d+)"),
    "vectorAdd": re.compile(r"vectorAdd (\d+) (ok|FAIL\b.*)"),
    "matmul": re.compile(r"bf16 matmul TFLOP/s ([\d.]+)"),
}


def parse_cuda_smoke(text: str, source: str = "cuda smoke test") -> CudaSmoke:
    found: dict[str, re.Match[str]] = {}
    for line in text.splitlines():
        for key, rx in _SMOKE.items():
            if m := rx.fullmatch(line.strip()):
                found[key] = m
    missing = [k for k in ("torch", "device", "vectorAdd") if k not in found]
    if missing:
        raise ParseError(source, f"missing the {', '.join(missing)} line(s); the test did not finish")
    t, d, v = found["torch"], found["device"], found["vectorAdd"]
    mm = found.get("matmul")
    return CudaSmoke(torch_version=t.group(1), cuda_version=t.group(2), available=t.group(3) == "True",
                     device=d.group(1), sm_count=int(d.group(2)), memory_gib=float(d.group(3)),
                     compute_capability=d.group(4), vector_add_elements=int(v.group(1)),
                     vector_add_ok=v.group(2) == "ok", matmul_tflops=float(mm.group(1)) if mm else None)
