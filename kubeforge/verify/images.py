"""The container images the conformance checks run, pinned, in one place.

An air-gapped site mirrors these (`kubeforge verify --list-images -p PROFILE` prints them with the
profile's registry applied) and the checks pull them from the profile's `registry` override.
"""
from __future__ import annotations

CHECK_IMAGES = {
    # tiny long-running / shell images
    "pause": "registry.k8s.io/pause:3.10",
    "busybox": "docker.io/library/busybox:1.37.0",
    "curl": "docker.io/curlimages/curl:8.16.0",
    # an HTTP echo server (Istio's httpbin sample uses it): Istio and Knative checks
    "httpbin": "docker.io/mccutchen/go-httpbin:v2.18.3",
    # torch with gloo for the PyTorchJob check (CPU is enough)
    "pytorch": "docker.io/pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
    # GPU checks
    "cuda-vectoradd": "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0",
    "cuda-base": "nvcr.io/nvidia/cuda:12.6.3-base-ubuntu24.04",
}


def with_registry(ref: str, registry: str | None) -> str:
    """The image pulled from `registry` instead of its own: the same rule render applies to every
    platform image (kubeforge.images.rewrite_ref), so one mirror serves both."""
    if not registry:
        return ref
    from kubeforge.images import rewrite_ref, validate_registry

    return rewrite_ref(ref, validate_registry(registry))


def check_image(key: str, registry: str | None) -> str:
    return with_registry(CHECK_IMAGES[key], registry)
