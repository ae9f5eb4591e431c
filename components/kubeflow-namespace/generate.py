"""The shared kubeflow namespace. Labels that the components installed into it expect are added
here, since only one component may own a Namespace object."""
from __future__ import annotations


def generate(ctx):
    labels = {}
    if ctx.enabled("katib"):
        # Katib injects its metrics collector into trial pods of labelled namespaces.
        labels["katib.kubeflow.org/metrics-collector-injection"] = "enabled"
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "kubeflow", "labels": labels}}]
