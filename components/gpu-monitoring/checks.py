"""GPU monitoring conformance: DCGM series for every GPU of every GPU node, the exporter scraped,
gpu.rules loaded and healthy, the DCGM dashboard in Grafana."""
from kubeforge.verify import check
from kubeforge.verify import monitoring as m
from kubeforge.verify.gpu import gpu_mode_on, gpu_resource

METRICS = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE")


def _per_gpu(plan) -> int:
    """Schedulable units one physical GPU is advertised as (time-slicing/MPS replicas)."""
    s = plan.profile.gpu.sharing
    if s.strategy in ("time-slicing", "mps") and gpu_resource(plan) == "nvidia.com/gpu":
        return s.replicas
    return 1


@check("gpu-series-per-node", timeout=600, when=gpu_mode_on)
def gpu_series_per_node(ctx):
    """count by (Hostname) of DCGM_FI_DEV_GPU_UTIL, FB_USED, GPU_TEMP and POWER_USAGE equals each GPU
    node's nvidia.com/gpu capacity (in physical GPUs)."""
    if ctx.plan.profile.gpu.mig.strategy != "none":
        return "skipped the per-GPU count: with MIG the advertised resources are MIG devices"
    nodes = ctx.cluster.list("v1", "Node")
    capacity = {n["metadata"]["name"]: int(((n.get("status") or {}).get("capacity") or {}).get("nvidia.com/gpu", 0))
                for n in nodes}
    if not any(capacity.values()):
        ctx.fail("no node advertises nvidia.com/gpu")
    per_gpu = _per_gpu(ctx.plan)
    ctx.wait_clean("DCGM series for every GPU", lambda: m.gpu_problems(
        {metric: m.query(ctx, f"count by (Hostname) ({metric})") for metric in METRICS}, capacity, per_gpu))
    return f"{sum(c // per_gpu for c in capacity.values())} GPU(s) on {sum(1 for c in capacity.values() if c)} node(s)"


@check("exporter-scraped", timeout=600, when=gpu_mode_on)
def exporter_scraped(ctx):
    """dcgm-exporter's ServiceMonitor has active targets, all up (device-plugin path)."""
    if not m.monitors_of(ctx.objects):
        return "the GPU Operator's chart owns the exporter's ServiceMonitor: covered by gpu-series-per-node"
    return m.own_targets_up(ctx)


@check("rules-loaded", timeout=600, when=gpu_mode_on)
def rules_loaded(ctx):
    """gpu.rules is loaded, evaluated and healthy."""
    return m.own_rules_loaded(ctx)


@check("dashboard-listed", timeout=300)
def dashboard_listed(ctx):
    """Grafana lists the DCGM dashboard."""
    return m.own_dashboards_listed(ctx)
