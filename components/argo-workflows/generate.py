"""Argo Workflows: the kustomize tree tags its images :latest (only the release's install.yaml
pins them); pin controller, server and executor to the component's version."""
from __future__ import annotations

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
    return objects
