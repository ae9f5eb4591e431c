"""NVIDIA device plugin + GPU Feature Discovery conformance (host GPU mode)."""
from kubeforge.verify import check
from kubeforge.verify.gpu import allocatable_check, gfd_labels_check, gpu_mode_on, gpu_pod_check


@check("gpu-allocatable", timeout=300, when=gpu_mode_on)
def gpu_allocatable(ctx):
    """At least one node offers nvidia.com/gpu in its allocatable resources."""
    return allocatable_check(ctx)


@check("gpu-pod-nvidia-smi-vectoradd", timeout=600, when=gpu_mode_on)
def gpu_pod(ctx):
    """A pod requesting one GPU sees exactly one in nvidia-smi -L and passes a CUDA vectorAdd."""
    return gpu_pod_check(ctx)


@check("gfd-labels", timeout=300, when=gpu_mode_on)
def gfd_labels(ctx):
    """GPU Feature Discovery labels every GPU node with product, count, memory and driver/compute versions."""
    return gfd_labels_check(ctx)
