"""The GPU instance/machine types kubeforge knows (instances.yaml beside this file), per cloud.

What a node pool will offer is read from here, never guessed: an unknown type gets `None` and the
callers turn that into a warning. Loaded on first use (the plan path stays cheap).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

CLOUDS = ("aws", "gcp", "azure")
TABLE = Path(__file__).with_name("instances.yaml")


@dataclass(frozen=True)
class GpuType:
    cloud: str
    name: str            # instance / machine / VM size name, as the cloud spells it
    gpu: str             # e.g. H100
    count: int           # GPUs per node
    memory_gb: int       # per GPU
    mig: bool
    accelerator: str | None = None   # GKE guest accelerator type

    @property
    def model(self) -> str:
        return f"{self.gpu} {self.memory_gb}GB"


@cache
def table() -> dict[str, dict[str, GpuType]]:
    from kubeforge import yamlio

    raw = yamlio.load(TABLE.read_text()) or {}
    out: dict[str, dict[str, GpuType]] = {}
    for cloud, types in raw.items():
        if cloud not in CLOUDS:
            raise ValueError(f"{TABLE}: unknown cloud {cloud!r}")
        out[cloud] = {}
        for name, t in types.items():
            out[cloud][name] = GpuType(cloud, name, str(t["gpu"]), int(t["count"]), int(t["memoryGB"]),
                                       bool(t["mig"]), t.get("accelerator"))
    return out


def lookup(cloud: str, name: str) -> GpuType | None:
    return table().get(cloud, {}).get(name)


def find(name: str) -> GpuType | None:
    """A type by name on any cloud (the names do not collide: p5.48xlarge, a3-highgpu-8g, Standard_...)."""
    for types in table().values():
        if name in types:
            return types[name]
    return None


def capacity(nodes: int, t: GpuType) -> str:
    """`2 × p5.48xlarge = 16 H100 80GB`."""
    return f"{nodes} × {t.name} = {nodes * t.count} {t.model}"
