"""NVIDIA GPU Operator conformance: the operator's stack exposes GPUs that pods can use."""
from kubeforge.verify import check
from kubeforge.verify.gpu import allocatable_check, gfd_labels_check, gpu_mode_on, gpu_pod_check


@check("gpu-allocatable", timeout=900, when=gpu_mode_on)
def gpu_allocatable(ctx):
    """At least one node offers nvidia.com/gpu (the operator installed driver, toolkit and plugin)."""
    return allocatable_check(ctx)


@check("gpu-pod-nvidia-smi-vectoradd", timeout=600, when=gpu_mode_on)
def gpu_pod(ctx):
    """A pod requesting one GPU sees exactly one in nvidia-smi -L and passes a CUDA vectorAdd."""
    return gpu_pod_check(ctx)


@check("gfd-labels", timeout=300, when=gpu_mode_on)
def gfd_labels(ctx):
    """The operator's GPU Feature Discovery labels every GPU node."""
    return gfd_labels_check(ctx)
