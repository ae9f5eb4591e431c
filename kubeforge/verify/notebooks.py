"""A Notebook in a tenant namespace becomes Ready with a PodDefault injected: the objects the check
creates, and the judgements over what the API server returns (pure, tested offline).

The check does what the Jupyter web app does when a user ticks a PodDefault ("configuration") in
the spawner: the Notebook carries the PodDefault's selector label, the notebook-controller copies
the Notebook's labels onto its StatefulSet's pods, and the PodDefaults webhook (which admits pods
of namespaces labelled app.kubernetes.io/part-of=kubeflow-profile) merges the PodDefault's env,
volumes and volume mounts into the pod.
"""
from __future__ import annotations

from typing import Any

NOTEBOOK_API = "kubeflow.org/v1"
PODDEFAULT_API = "kubeflow.org/v1alpha1"
SELECTOR_LABEL = "kubeforge.io/verify-poddefault"
ENV_NAME = "KUBEFORGE_PODDEFAULT"
VOLUME = "kubeforge-verify"
MOUNT_PATH = "/home/jovyan/kubeforge-verify"
SERVICE_ACCOUNT = "default-editor"     # what the profile controller makes in each tenant namespace
SPAWNER_KEY = "spawner_ui_config.yaml"


def spawner_image(objects: list[dict]) -> str:
    """The spawner's default notebook image, as rendered (registry rewrite included)."""
    import yaml

    for o in objects:
        if o.get("kind") == "ConfigMap" and SPAWNER_KEY in (o.get("data") or {}):
            return yaml.safe_load(o["data"][SPAWNER_KEY])["spawnerFormDefaults"]["image"]["value"]
    raise ValueError(f"no ConfigMap with {SPAWNER_KEY} among the notebooks objects")


def poddefault(name: str, token: str) -> dict:
    return {"apiVersion": PODDEFAULT_API, "kind": "PodDefault", "metadata": {"name": name},
            "spec": {"desc": "kubeforge verify probe", "selector": {"matchLabels": {SELECTOR_LABEL: token}},
                     "env": [{"name": ENV_NAME, "value": token}],
                     "volumes": [{"name": VOLUME, "emptyDir": {"sizeLimit": "1Mi"}}],
                     "volumeMounts": [{"name": VOLUME, "mountPath": MOUNT_PATH}]}}


def notebook(name: str, image: str, token: str) -> dict:
    """A Notebook as the Jupyter web app writes one (container named after the Notebook, the
    tenant's default-editor account), small and restricted-Pod-Security clean."""
    return {"apiVersion": NOTEBOOK_API, "kind": "Notebook",
            "metadata": {"name": name, "labels": {"app": name, SELECTOR_LABEL: token}},
            "spec": {"template": {"spec": {
                "serviceAccountName": SERVICE_ACCOUNT,
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                  "limits": {"cpu": "1", "memory": "1Gi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}}}}


def notebook_problems(nb: dict | None, name: str) -> list[str]:
    """The Notebook has a ready pod (status.readyReplicas, which the controller copies from its
    StatefulSet); else what its status says about the container."""
    if nb is None:
        return [f"Notebook {name} not found"]
    st = nb.get("status") or {}
    if (st.get("readyReplicas") or 0) >= 1:
        return []
    state = st.get("containerState") or {}
    waiting = state.get("waiting") or {}
    why = f"{waiting.get('reason')}: {waiting.get('message') or ''}".strip() if waiting else \
        next((f"{c.get('type')}={c.get('status')} {c.get('reason') or ''}".strip()
              for c in st.get("conditions") or [] if c.get("status") != "True"), "no pod ready yet")
    return [f"Notebook {name} is not ready ({why})"]


def injection_problems(pod: dict | None, pd: dict, container: str) -> list[str]:
    """What of the PodDefault the notebook's container lacks (env, volume, mount)."""
    if pod is None:
        return ["the Notebook's pod is missing"]
    spec = pod.get("spec") or {}
    ref = f"pod {pod['metadata'].get('namespace')}/{pod['metadata']['name']}"
    c = next((c for c in spec.get("containers") or [] if c.get("name") == container), None)
    if c is None:
        return [f"{ref} has no container {container}"]
    out = []
    env = {e.get("name"): e.get("value") for e in c.get("env") or []}
    for e in pd["spec"].get("env") or []:
        if env.get(e["name"]) != e["value"]:
            out.append(f"{ref}: container {container} lacks env {e['name']}={e['value']} from PodDefault "
                       f"{pd['metadata']['name']} (got {env.get(e['name'])!r}): the PodDefaults webhook did not inject it")
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    for v in pd["spec"].get("volumes") or []:
        if v["name"] not in volumes:
            out.append(f"{ref} lacks volume {v['name']} from PodDefault {pd['metadata']['name']}")
    mounts = {(m.get("name"), m.get("mountPath")) for m in c.get("volumeMounts") or []}
    for m in pd["spec"].get("volumeMounts") or []:
        if (m["name"], m["mountPath"]) not in mounts:
            out.append(f"{ref}: container {container} lacks the mount {m['mountPath']} of volume {m['name']}")
    return out


def tenant_namespace(profile: Any) -> str | bool:
    """The first tenant's namespace, or a reason to skip (a `when` for the check)."""
    tenants = profile.kubeflow.tenants
    return tenants[0].name if tenants else False
