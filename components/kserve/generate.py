"""KServe: the deployment mode and ingress domain go into inferenceservice-config."""
from __future__ import annotations

import json

CONFIGMAP = "inferenceservice-config"


def transform(objects, ctx):
    mode = ctx.values["deploymentMode"]
    for o in objects:
        if o.get("kind") == "ConfigMap" and o["metadata"]["name"] == CONFIGMAP:
            data = o.setdefault("data", {})
            # `deploy` upstream is JSON with comments only; write the real key.
            data["deploy"] = json.dumps({"defaultDeploymentMode": mode}, indent=2, sort_keys=True)
            ingress = json.loads(data["ingress"])
            ingress["ingressDomain"] = ctx.values["ingressDomain"]
            data["ingress"] = json.dumps(ingress, indent=2, sort_keys=True)
            break
    else:
        raise ValueError(f"kserve: upstream no longer ships ConfigMap {CONFIGMAP}; update generate.py")
    return objects
