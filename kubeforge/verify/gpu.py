"""GPU conformance checks shared by the device-plugin path and the GPU Operator path.

The parsing and judging is pure (tested on real H100 output in ../shared/fixtures/gpu); the
`*_check` functions run it against the cluster.
"""
from __future__ import annotations

from typing import Any

GPU_RESOURCE = "nvidia.com/gpu"
# Labels GPU Feature Discovery puts on every GPU node.
GFD_LABELS = ("nvidia.com/gpu.product", "nvidia.com/gpu.count", "nvidia.com/gpu.memory",
              "nvidia.com/cuda.driver.major", "nvidia.com/gpu.compute.major")
VECTORADD_OK = "Test PASSED"


def gpu_mode_on(plan: Any) -> bool | str:
    mode = plan.profile.gpu.mode
    return True if mode != "none" else "the profile has no GPUs (gpu.mode: none)"


def sharing_on(plan: Any) -> bool | str:
    """Time-slicing or MPS replicas to check (MIG strategies advertise other resources)."""
    if plan.profile.gpu.mode == "none":
        return "the profile has no GPUs (gpu.mode: none)"
    strategy = plan.profile.gpu.sharing.strategy
    if strategy not in ("time-slicing", "mps"):
        return f"GPU sharing strategy is {strategy}: no replicas to check"
    if plan.profile.gpu.mig.strategy != "none":
        return "with MIG the shared replicas are MIG resources, checked by the MIG layout"
    return True


def gpu_resource(plan: Any) -> str:
    """The resource a pod asks for one GPU with: nvidia.com/gpu, or nvidia.com/gpu.shared when the
    gpu-sharing component renames shared GPUs (renameByDefault)."""
    pc = plan.components.get("gpu-sharing")
    shared = plan.profile.gpu.sharing.strategy in ("time-slicing", "mps")
    if pc is not None and shared and pc.values.get("renameByDefault"):
        return GPU_RESOURCE + ".shared"
    return GPU_RESOURCE


def parse_nvidia_smi_list(text: str) -> list[str]:
    """GPU names from `nvidia-smi -L`, through the one parser kubeforge has for it."""
    from kubeforge.gpu.parsers import ParseError, parse_smi_list

    try:
        return [g.name for g in parse_smi_list(text.strip())]
    except ParseError:
        return []


def gpu_nodes(nodes: list[dict], resource: str = GPU_RESOURCE) -> dict[str, int]:
    """node name -> allocatable GPUs (of `resource`), for nodes that offer any."""
    out = {}
    for n in nodes:
        alloc = ((n.get("status") or {}).get("allocatable") or {}).get(resource)
        if alloc and int(alloc) > 0:
            out[n["metadata"]["name"]] = int(alloc)
    return out


INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")


def expected_gpus(node: dict, profile: Any) -> tuple[str, int, str] | None:
    """(instance type, allocatable GPUs it must show, why) for a node of a type in
    kubeforge/gpu/instances.yaml; None for unknown types and under MIG (the layout decides)."""
    from kubeforge.gpu import instances

    labels = node.get("metadata", {}).get("labels") or {}
    itype = next((labels[k] for k in INSTANCE_TYPE_LABELS if labels.get(k)), None)
    t = instances.find(itype) if itype else None
    if t is None or profile.gpu.mig.strategy != "none":
        return None
    shared = profile.gpu.sharing.strategy in ("time-slicing", "mps")
    replicas = profile.gpu.sharing.replicas if shared else 1
    return itype, t.count * replicas, f"{t.count} {t.model}" + (f" x {replicas} replicas" if shared else "")


def count_problems(nodes: list[dict], profile: Any, resource: str = GPU_RESOURCE) -> list[str]:
    """Nodes of a known GPU type whose allocatable GPUs differ from what the type has."""
    out = []
    for n in nodes:
        want = expected_gpus(n, profile)
        if want is None:
            continue
        itype, count, why = want
        got = int(((n.get("status") or {}).get("allocatable") or {}).get(resource, "0") or 0)
        if got != count:
            out.append(f"node {n['metadata']['name']} ({itype}): allocatable {resource} is {got}, want {count} ({why})")
    return out


def missing_gfd_labels(node: dict) -> list[str]:
    labels = node.get("metadata", {}).get("labels") or {}
    return [label for label in GFD_LABELS if label not in labels]


def sharing_problems(node: dict, replicas: int, resource: str = GPU_RESOURCE) -> list[str]:
    """Time-slicing/MPS shows as gpu.replicas=N and allocatable = physical GPUs x N."""
    name = node["metadata"]["name"]
    labels = node["metadata"].get("labels") or {}
    got = labels.get("nvidia.com/gpu.replicas")
    out = []
    if got != str(replicas):
        out.append(f"node {name}: nvidia.com/gpu.replicas is {got!r}, want {replicas}")
    count = labels.get("nvidia.com/gpu.count")
    alloc = ((node.get("status") or {}).get("allocatable") or {}).get(resource, "0")
    if count and int(alloc) != int(count) * replicas:
        out.append(f"node {name}: allocatable {resource} is {alloc}, want {count} GPUs x {replicas}")
    return out


# -- checks -------------------------------------------------------------------------------
def allocatable_check(ctx: Any) -> str:
    resource = gpu_resource(ctx.plan)

    def probe() -> dict[str, int]:
        found = gpu_nodes(ctx.cluster.list("v1", "Node"), resource)
        if not found:
            from kubeforge.verify.context import NotYet

            raise NotYet(f"no node has allocatable {resource}")
        return found
    found = ctx.wait(f"allocatable {resource}", probe, timeout=300)
    # Nodes of a known instance type must show all of their GPUs (a node with 0 is the classic failure).
    ctx.wait_clean(f"{resource} per known instance type",
                   lambda: count_problems(ctx.cluster.list("v1", "Node"), ctx.profile, resource), timeout=300)
    return ", ".join(f"{n}: {c}" for n, c in sorted(found.items()))


def _gpu_pod_extra(ctx: Any) -> dict:
    gpu = ctx.profile.gpu
    extra: dict[str, Any] = {"tolerations": list(gpu.tolerations)}
    if gpu.nodeSelector:
        extra["nodeSelector"] = dict(gpu.nodeSelector)
    return extra


def gpu_pod_check(ctx: Any) -> str:
    """A pod that requests one GPU runs nvidia-smi, then a CUDA vectorAdd."""
    limits = {"limits": {gpu_resource(ctx.plan): "1"}}
    with ctx.namespace("gpu") as ns:
        logs = ctx.run_pod(ns, "nvidia-smi", "cuda-base", ["nvidia-smi", "-L"],
                           resources=limits, extra=_gpu_pod_extra(ctx))
        names = parse_nvidia_smi_list(logs)
        if len(names) != 1:
            ctx.fail(f"nvidia-smi -L in a 1-GPU pod listed {len(names)} GPUs: {logs[:300]}")
        logs = ctx.run_pod(ns, "vectoradd", "cuda-vectoradd", None, resources=limits,
                           extra=_gpu_pod_extra(ctx))
        if VECTORADD_OK not in logs:
            ctx.fail(f"vectorAdd did not print {VECTORADD_OK!r}: {logs[-300:]}")
    return f"{names[0]}: nvidia-smi and vectorAdd ok"


def gfd_labels_check(ctx: Any) -> str:
    def problems() -> list[str]:
        resource = gpu_resource(ctx.plan)
        nodes = [n for n in ctx.cluster.list("v1", "Node") if gpu_nodes([n], resource)]
        if not nodes:
            return [f"no node has allocatable {resource}"]
        return [f"node {n['metadata']['name']} lacks {', '.join(missing_gfd_labels(n))}"
                for n in nodes if missing_gfd_labels(n)]
    ctx.wait_clean("GPU Feature Discovery labels", problems, timeout=300)
    return "GFD labels present"


def sharing_check(ctx: Any) -> str:
    replicas = ctx.profile.gpu.sharing.replicas
    resource = gpu_resource(ctx.plan)

    def problems() -> list[str]:
        nodes = [n for n in ctx.cluster.list("v1", "Node")
                 if (n["metadata"].get("labels") or {}).get("nvidia.com/gpu.count")]
        if not nodes:
            return ["no node carries nvidia.com/gpu.count (GPU Feature Discovery)"]
        return [p for n in nodes for p in sharing_problems(n, replicas, resource)]
    ctx.wait_clean(f"{ctx.profile.gpu.sharing.strategy} replicas in allocatable", problems, timeout=300)
    return f"{replicas} {resource} replicas per GPU"
