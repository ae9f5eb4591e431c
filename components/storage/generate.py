"""Storage: pin the local-path helper image, mark the profile's default StorageClass and generate
the NFS CSI and cloud classes a profile asks for."""
from __future__ import annotations

from kubeforge.errors import KubeforgeError

DEFAULT_ANNOTATION = "storageclass.kubernetes.io/is-default-class"

# Provisioner and parameters per generated class (the CSI driver itself is the cluster's).
CLASSES = {
    "nfs": {"provisioner": "nfs.csi.k8s.io", "parameters": {}},
    "aws-ebs": {"provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3"}},
    "gce-pd": {"provisioner": "pd.csi.storage.gke.io", "parameters": {"type": "pd-balanced"}},
    "azure-disk": {"provisioner": "disk.csi.azure.com", "parameters": {"skuName": "StandardSSD_LRS"}},
}


def _wanted(ctx) -> list[str]:
    default = ctx.profile.storage.default
    extra = [c for c in ctx.values.get("classes", []) if c != "local-path"]
    names = ([default] if default != "local-path" else []) + extra
    return sorted(set(names))


def generate(ctx):
    out = []
    default = ctx.profile.storage.default
    for name in _wanted(ctx):
        spec = CLASSES[name]
        params = dict(spec["parameters"])
        if name == "nfs":
            nfs = ctx.profile.storage.nfs
            if not nfs.get("server") or not nfs.get("share"):
                raise KubeforgeError("the NFS StorageClass needs a server and a share",
                                     file=ctx.profile.source_file, field="storage.nfs",
                                     fix="set storage.nfs.server and storage.nfs.share")
            params.update(server=nfs["server"], share=nfs["share"])
        sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
              "metadata": {"name": name, "annotations": {}},
              "provisioner": spec["provisioner"], "parameters": params,
              "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
              "allowVolumeExpansion": name != "nfs"}
        if name == default:
            sc["metadata"]["annotations"][DEFAULT_ANNOTATION] = "true"
        out.append(sc)
    return out


def transform(objects, ctx):
    helper = ctx.values["helperImage"]
    for o in objects:
        if o.get("kind") == "StorageClass" and o["metadata"]["name"] == "local-path":
            ann = o["metadata"].setdefault("annotations", {})
            ann[DEFAULT_ANNOTATION] = "true" if ctx.profile.storage.default == "local-path" else "false"
        if o.get("kind") == "ConfigMap" and o["metadata"]["name"] == "local-path-config":
            pod = o["data"]["helperPod.yaml"]
            # Upstream leaves the helper image untagged (:latest); pin it.
            pinned = pod.replace("image: docker.io/library/busybox\n", f"image: {helper}\n")
            if pinned == pod:
                raise ValueError("storage: upstream helperPod.yaml changed; update generate.py")
            o["data"]["helperPod.yaml"] = pinned
    return objects
