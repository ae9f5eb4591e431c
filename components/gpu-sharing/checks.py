"""GPU sharing conformance: time-slicing replicas show in the nodes' allocatable."""
from kubeforge.verify import check
from kubeforge.verify.gpu import time_slicing_check, time_slicing_on


@check("time-slicing-replicas", timeout=300, when=time_slicing_on)
def time_slicing_replicas(ctx):
    """Each GPU node advertises gpu.replicas = the profile's replicas and allocatable = GPUs x replicas."""
    return time_slicing_check(ctx)
