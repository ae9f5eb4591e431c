"""Training operator conformance: a CPU PyTorchJob (gloo backend) succeeds."""
from kubeforge.verify import check

KF = "kubeflow.org/v1"
# Every rank contributes rank+1; all_reduce must give the same sum on every rank.
SCRIPT = """
import torch, torch.distributed as dist
dist.init_process_group("gloo")
rank, size = dist.get_rank(), dist.get_world_size()
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t)
assert t.item() == size * (size + 1) / 2, (t.item(), size)
print(f"rank {rank}/{size} all_reduce ok: {t.item()}")
"""


def _replica(image: str) -> dict:
    return {"replicas": 1, "restartPolicy": "Never", "template": {
        "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
        "spec": {"containers": [{"name": "pytorch", "image": image, "command": ["python", "-c", SCRIPT],
                                 "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}}}]}}}


@check("pytorchjob-gloo", timeout=900)
def pytorchjob_gloo(ctx):
    """A two-replica PyTorchJob (master + worker, CPU, gloo) runs an all_reduce and Succeeds."""
    image = ctx.image("pytorch")
    with ctx.namespace("training") as ns:
        ctx.create({"apiVersion": KF, "kind": "PyTorchJob", "metadata": {"name": "gloo-probe"},
                    "spec": {"pytorchReplicaSpecs": {"Master": _replica(image), "Worker": _replica(image)}}},
                   ns)
        ctx.wait_condition(KF, "PyTorchJob", "gloo-probe", ns, "Succeeded", timeout=840)
    return "all_reduce over gloo on 2 ranks"
