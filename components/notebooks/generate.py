"""Notebooks: the Jupyter web app's spawner offers what the platform can schedule.

Upstream's `spawner_ui_config.yaml` lists NVIDIA, AMD and Intel Gaudi as GPU vendors and CUDA and
Gaudi notebook images on every install. kubeforge's platform has NVIDIA GPUs only, and only when
the profile's gpu.mode is not none: there the spawner offers `nvidia.com/gpu` (the default vendor,
0 GPUs unless picked) and the CUDA images; on CPU profiles no vendor (the GPU field read-only) and
no CUDA image. Gaudi is never offered. The file is edited in place (its comments document the
options for admins); the ConfigMap gets a new content-hash suffix, as kustomize would name it, so
the web app rolls when the offer changes.
"""
from __future__ import annotations

import hashlib
import re

CONFIG_KEY = "spawner_ui_config.yaml"
CONFIG_PREFIX = "jupyter-web-app-config-"
NVIDIA = {"limitsKey": "nvidia.com/gpu", "uiName": "NVIDIA"}
CUDA = re.compile(r"-cuda\b")
GAUDI = re.compile(r"-gaudi\b")
IMAGE_GROUPS = ("image", "imageGroupOne", "imageGroupTwo")


def gpu_offered(ctx) -> bool:
    choice = ctx.values["gpu"]
    return ctx.profile.gpu.mode != "none" if choice == "auto" else choice == "enabled"


def spawner_defaults(doc: dict, gpu: bool) -> dict:
    """The intended spawner document (a new one; `doc` is left alone)."""
    import copy

    out = copy.deepcopy(doc)
    form = out["spawnerFormDefaults"]
    for key in IMAGE_GROUPS:
        group = form[key]
        keep = [i for i in group["options"] if not GAUDI.search(i) and (gpu or not CUDA.search(i))]
        if group["value"] not in keep:
            raise ValueError(f"the spawner's default {key} {group['value']} is not offered")
        group["options"] = keep
    gpus = form["gpus"]
    gpus["value"]["vendors"] = [dict(NVIDIA)] if gpu else []
    gpus["value"]["vendor"] = NVIDIA["limitsKey"] if gpu else ""
    gpus["value"]["num"] = "none"
    gpus["readOnly"] = not gpu
    return out


def _edit_text(text: str, doc: dict, gpu: bool) -> str:
    """The upstream text with the same changes spawner_defaults makes, comments kept."""
    form = doc["spawnerFormDefaults"]
    for key in IMAGE_GROUPS:
        for image in form[key]["options"]:
            if GAUDI.search(image) or (not gpu and CUDA.search(image)):
                text = re.sub(rf"^[ \t]*- {re.escape(image)}[ \t]*\n", "", text, flags=re.M)
    for v in form["gpus"]["value"]["vendors"]:
        if gpu and v == NVIDIA:
            continue
        text = re.sub(rf'^([ \t]*)- limitsKey: "?{re.escape(v["limitsKey"])}"?[ \t]*\n\1  uiName: .*\n', "",
                      text, flags=re.M)
    if not gpu:
        text = re.sub(r"^([ \t]*)vendors:[ \t]*\n", r"\1vendors: []\n", text, flags=re.M)
    text = re.sub(r'^([ \t]*)vendor: ""', rf'\1vendor: "{NVIDIA["limitsKey"] if gpu else ""}"', text, flags=re.M)
    text = re.sub(r"^(  gpus:[ \t]*\n[ \t]*readOnly:) \w+", rf"\1 {'false' if gpu else 'true'}", text, flags=re.M)
    return text


def spawner_text(text: str, gpu: bool) -> str:
    import yaml

    doc = yaml.safe_load(text)
    want = spawner_defaults(doc, gpu)
    edited = _edit_text(text, doc, gpu)
    if yaml.safe_load(edited) == want:
        return edited
    # Upstream's layout changed: correct content, comments lost.
    return "# kubeforge: the Kubeflow spawner config, GPU offer set from the profile\n" + \
        yaml.safe_dump(want, sort_keys=False)


def transform(objects, ctx):
    gpu = gpu_offered(ctx)
    found = [o for o in objects if o.get("kind") == "ConfigMap" and CONFIG_KEY in (o.get("data") or {})
             and o["metadata"]["name"].startswith(CONFIG_PREFIX)]
    if len(found) != 1:
        raise ValueError(f"notebooks: expected one {CONFIG_PREFIX}* ConfigMap with {CONFIG_KEY}, "
                         f"upstream has {len(found)}; update components/notebooks/generate.py")
    cm = found[0]
    old = cm["metadata"]["name"]
    cm["data"][CONFIG_KEY] = spawner_text(cm["data"][CONFIG_KEY], gpu)
    new = CONFIG_PREFIX + hashlib.sha256(cm["data"][CONFIG_KEY].encode()).hexdigest()[:10]
    cm["metadata"]["name"] = new
    refs = 0
    for o in objects:
        if o.get("kind") == "Deployment":
            for vol in ((o["spec"].get("template") or {}).get("spec") or {}).get("volumes") or []:
                if (vol.get("configMap") or {}).get("name") == old:
                    vol["configMap"]["name"] = new
                    refs += 1
    if refs != 1:
        raise ValueError(f"notebooks: expected the web app to mount {old} once, found {refs}")
    return objects
