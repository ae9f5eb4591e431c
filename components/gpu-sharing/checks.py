"""GPU sharing conformance: time-slicing / MPS replicas show in the nodes' allocatable."""
from kubeforge.verify import check
from kubeforge.verify.gpu import sharing_check, sharing_on


@check("replicas-in-allocatable", timeout=300, when=sharing_on)
def replicas_in_allocatable(ctx):
    """Each GPU node advertises gpu.replicas = the profile's replicas and allocatable = GPUs x replicas
    (on nvidia.com/gpu, or nvidia.com/gpu.shared with renameByDefault)."""
    return sharing_check(ctx)
