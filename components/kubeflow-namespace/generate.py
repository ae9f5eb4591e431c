"""The shared kubeflow namespace. Labels that the components installed into it expect are added
here, since only one component may own a Namespace object. In multi-user mode (values.multiUser,
on while kubeflow-auth is enabled) it gets Istio sidecars and upstream's NetworkPolicies."""
from __future__ import annotations


def generate(ctx):
    labels = {}
    if ctx.enabled("katib"):
        # Katib injects its metrics collector into trial pods of labelled namespaces.
        labels["katib.kubeflow.org/metrics-collector-injection"] = "enabled"
    if ctx.values.get("multiUser"):
        # The web apps' AuthorizationPolicies act in their sidecars: without one, nothing checks
        # the kubeflow-userid header a request claims.
        labels["istio-injection"] = "enabled"
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "kubeflow", "labels": labels}}]


def transform(objs, ctx):
    """Upstream's policies tree carries its own Namespace (restricted, a copy of ours) and, at
    v1.11.0 (common/networkpolicies), policies of other components' namespaces: keep this
    component's Namespace (generated last) and the policies of the kubeflow namespace."""
    ours = [o for o in objs if o.get("kind") == "Namespace"][-1]
    return [o for o in objs
            if o is ours or (o.get("kind") == "NetworkPolicy" and o["metadata"].get("namespace") == "kubeflow")]
