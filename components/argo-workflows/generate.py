"""Argo Workflows: the kustomize tree tags its images :latest (only the release's install.yaml
pins them); pin controller, server and executor to the component's version.

With Pipelines enabled this is the cluster's one Argo for KFP too (components/pipelines drops
KFP's own copy), configured the way KFP's third-party/argo overlay configures its copy: the
controller-wide artifact repository (KFP's object store, keyed by namespace and workflow; each
tenant namespace also gets its own `artifact-repositories` from KFP's profile controller, which
Argo prefers), the executor's restricted security context, and the controller's requests and
seccomp profile. Argo's cluster install already watches every namespace, which KFP needs:
tenant namespaces appear at runtime with their Profiles.
"""
from __future__ import annotations

import importlib.util
import json

IMAGES = {  # Deployment -> image repository
    "workflow-controller": "quay.io/argoproj/workflow-controller",
    "argo-server": "quay.io/argoproj/argocli",
}
EXECUTOR = "quay.io/argoproj/argoexec"


def transform(objects, ctx):
    tag = f"v{ctx.component.version}"
    pinned = set()
    for o in objects:
        name = o["metadata"]["name"]
        if o.get("kind") != "Deployment" or name not in IMAGES:
            continue
        for c in o["spec"]["template"]["spec"]["containers"]:
            if c["image"].split(":")[0] == IMAGES[name]:
                c["image"] = f"{IMAGES[name]}:{tag}"
                pinned.add(name)
                if name == "workflow-controller":
                    # Without it the controller runs argoexec:latest in every workflow pod.
                    c["args"] = [*c.get("args", []), "--executor-image", f"{EXECUTOR}:{tag}"]
    missing = set(IMAGES) - pinned
    if missing:
        raise ValueError(f"argo-workflows: upstream Deployments changed, cannot pin {sorted(missing)}")
    if ctx.enabled("pipelines"):
        _for_pipelines(objects, ctx)
    return objects


# KFP 2.16's third-party/argo/base patches, as data (workflow-controller-configmap-patch.yaml,
# workflow-controller-deployment-patch.yaml).
EXECUTOR_CONFIG = {"imagePullPolicy": "IfNotPresent",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}
KEY_FORMAT = ("private-artifacts/{{workflow.namespace}}/{{workflow.name}}/{{workflow.creationTimestamp.Y}}/"
              "{{workflow.creationTimestamp.m}}/{{workflow.creationTimestamp.d}}/{{pod.name}}")
CONTROLLER_REQUESTS = {"cpu": "100m", "memory": "500Mi"}


def _pipelines_module(ctx):
    path = ctx.plan.components["pipelines"].component.generate_py
    spec = importlib.util.spec_from_file_location("kubeforge_components.pipelines_for_argo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def artifact_repository(ctx) -> dict:
    """Argo's controller-wide artifact repository for KFP (its object store, KFP's bucket)."""
    kfp = _pipelines_module(ctx)
    store = kfp.object_store(ctx.plan.components["pipelines"].values)
    return {"archiveLogs": True,
            "s3": {"endpoint": f"{store['host']}:{store['port']}", "bucket": kfp.BUCKET,
                   "keyFormat": KEY_FORMAT, "insecure": not store["secure"],
                   **({"region": store["region"]} if store["secure"] else {}),
                   "accessKeySecret": {"name": kfp.S3_SECRET, "key": "accesskey"},
                   "secretKeySecret": {"name": kfp.S3_SECRET, "key": "secretkey"}}}


def _for_pipelines(objects, ctx) -> None:
    for o in objects:
        name = o["metadata"]["name"]
        if o.get("kind") == "ConfigMap" and name == "workflow-controller-configmap":
            data = o.setdefault("data", None) or {}
            data["artifactRepository"] = json.dumps(artifact_repository(ctx), indent=2) + "\n"
            data["executor"] = json.dumps(EXECUTOR_CONFIG, indent=2) + "\n"
            o["data"] = data
        if o.get("kind") == "Deployment" and name == "workflow-controller":
            spec = o["spec"]["template"]["spec"]
            spec.setdefault("securityContext", {})["seccompProfile"] = {"type": "RuntimeDefault"}
            c = spec["containers"][0]
            c.setdefault("resources", {}).setdefault("requests", dict(CONTROLLER_REQUESTS))
            c["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
