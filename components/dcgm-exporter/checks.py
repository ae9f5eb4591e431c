"""DCGM exporter conformance: its metrics endpoint serves GPU metrics."""
from kubeforge.verify import check
from kubeforge.verify.context import NotYet
from kubeforge.verify.gpu import gpu_mode_on

PORT = 9400
METRIC = "DCGM_FI_DEV_GPU_UTIL"


def metrics_service(objects: list[dict]) -> tuple[str, str] | None:
    """(namespace, name) of the rendered Service that exposes the exporter's port."""
    for o in objects:
        if o.get("kind") == "Service" and any(p.get("port") == PORT for p in o["spec"].get("ports") or []):
            return o["metadata"].get("namespace", "default"), o["metadata"]["name"]
    return None


@check("serves-gpu-metrics", timeout=300, when=gpu_mode_on)
def serves_gpu_metrics(ctx):
    """GET /metrics on the exporter's Service returns DCGM_FI_DEV_GPU_UTIL samples."""
    svc = metrics_service(ctx.objects)
    if svc is None:
        ctx.fail(f"no rendered Service exposes port {PORT}")
    url = f"http://{svc[1]}.{svc[0]}.svc.cluster.local:{PORT}/metrics"
    with ctx.namespace("dcgm") as ns:
        def metric() -> str:
            body = ctx.http(ns, url)
            if METRIC not in body:
                raise NotYet(f"{url} answered without {METRIC}")
            return body
        body = ctx.wait(f"{METRIC} at {url}", metric, timeout=240)
    samples = [line for line in body.splitlines() if line.startswith(METRIC)]
    return f"{len(samples)} {METRIC} sample(s)"
