"""The NVIDIA device plugin's config file, from the profile's GPU sharing and MIG settings.

One place for the config ConfigMap the device plugin's transform renders (from the gpu-sharing
component's values) and mounts (file name, mount path, MPS paths), so the two cannot drift. The file format is
the plugin's `version: v1` config (docs/customizing.md of NVIDIA/k8s-device-plugin v0.20.0): the
same file configures GPU Feature Discovery, which labels nodes with the replicas and MPS state.

Settings come from the profile (`gpu.sharing.strategy|replicas`, `gpu.mig.strategy`) and from the
gpu-sharing component's values (`renameByDefault`, `failRequestsGreaterThanOne`, `mig.layout`,
`mig.card` | `mig.profilesFile`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError

from .mig import Card, MigLayoutError, card_from_profiles, layout_problems, resource_names
from .parsers import ParseError, parse_mig_lgip

CONFIGMAP_NAME = "nvidia-device-plugin-config"
CONFIG_KEY = "config.yaml"
CONFIG_DIR = "/config"                        # mount path in the plugin and GFD containers
CONFIG_FILE = f"{CONFIG_DIR}/{CONFIG_KEY}"    # their CONFIG_FILE env
MPS_ROOT = "/run/nvidia/mps"                  # host directory of the MPS pipes (upstream default)
CARDS_DIR = Path(__file__).resolve().parent / "cards"
VALUES_FILE = "components/gpu-sharing/component.yaml"


def setting(obj: Any, *path: str, default: Any = None) -> Any:
    """Attribute or key lookup through pydantic models, namespaces and dicts alike."""
    for key in path:
        if obj is None:
            return default
        obj = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
    return default if obj is None else obj


def profile_file(profile: Any) -> str:
    """The profile file errors name."""
    return setting(profile, "source_file", default="the profile")


@dataclass(frozen=True)
class Settings:
    strategy: str              # none | time-slicing | mps
    replicas: int
    mig_strategy: str          # none | single | mixed
    layout: dict[str, int]     # MIG devices per GPU, {} when not given
    rename_by_default: bool
    fail_requests_greater_than_one: bool
    card: Card | None


def known_cards() -> list[str]:
    return sorted(p.name.removesuffix(".lgip.txt") for p in CARDS_DIR.glob("*.lgip.txt"))


def load_card(values: dict[str, Any], profile_file: str) -> Card | None:
    mig = values.get("mig") or {}
    name, path = mig.get("card"), mig.get("profilesFile")
    if name and path:
        raise KubeforgeError("give either mig.card or mig.profilesFile, not both", file=profile_file,
                             field="components.gpu-sharing.values.mig", fix="drop one of them")
    if name:
        src = CARDS_DIR / f"{name}.lgip.txt"
        if not src.is_file():
            raise KubeforgeError(f"no MIG profile table for card {name!r}", file=profile_file,
                                 field="components.gpu-sharing.values.mig.card",
                                 fix=f"use one of {', '.join(known_cards())}, or capture `nvidia-smi mig -lgip` "
                                     "on a node and set mig.profilesFile to it")
    elif path:
        src = Path(path)
        if not src.is_file():
            raise KubeforgeError(f"{path} does not exist", file=profile_file,
                                 field="components.gpu-sharing.values.mig.profilesFile",
                                 fix="save `nvidia-smi mig -lgip` of one GPU node to that file")
    else:
        return None
    try:
        return card_from_profiles(parse_mig_lgip(src.read_text(), str(src)))
    except (ParseError, MigLayoutError) as e:
        raise KubeforgeError(str(e), file=profile_file, field="components.gpu-sharing.values.mig",
                             fix="the file must be `nvidia-smi mig -lgip` of a MIG-capable GPU") from None


def settings(profile: Any, values: dict[str, Any]) -> Settings:
    """Checked settings; KubeforgeError naming the profile field for what the plugin cannot do."""
    pfile = profile_file(profile)
    strategy = setting(profile, "gpu", "sharing", "strategy", default="none")
    replicas = int(setting(profile, "gpu", "sharing", "replicas", default=1))
    mig_strategy = setting(profile, "gpu", "mig", "strategy", default="none")
    layout = dict((values.get("mig") or {}).get("layout") or {})
    if strategy not in ("none", "time-slicing", "mps"):
        raise KubeforgeError(f"unknown sharing strategy {strategy!r}", file=pfile, field="gpu.sharing.strategy",
                             fix="use none, time-slicing or mps")
    if strategy != "none" and replicas < 2:
        raise KubeforgeError(f"{strategy} with {replicas} replica shares nothing", file=pfile,
                             field="gpu.sharing.replicas", fix="set 2 or more, or strategy none")
    if strategy == "mps" and mig_strategy != "none":
        # GFD refuses: "MPS sharing is not supported for mig devices" (its labeler, internal/lm).
        raise KubeforgeError("the device plugin cannot share MIG devices with MPS", file=pfile,
                             field="gpu.sharing.strategy",
                             fix="use time-slicing with MIG, or gpu.mig.strategy none with MPS")
    card = load_card(values, pfile)
    if layout or mig_strategy != "none":
        problems = layout_problems(card, layout, mig_strategy) if layout else []
        if strategy == "time-slicing" and mig_strategy == "mixed" and not layout:
            problems.append("time-slicing with MIG strategy mixed needs mig.layout to name the MIG resources")
        if problems:
            raise KubeforgeError("MIG layout: " + "; ".join(problems), file=pfile,
                                 field="components.gpu-sharing.values.mig.layout",
                                 fix="choose profiles and counts the card offers (see `nvidia-smi mig -lgip`), "
                                     "or change gpu.mig.strategy")
    return Settings(strategy=strategy, replicas=replicas, mig_strategy=mig_strategy, layout=layout,
                    rename_by_default=bool(values.get("renameByDefault", False)),
                    fail_requests_greater_than_one=bool(values.get("failRequestsGreaterThanOne", False)),
                    card=card)


def plugin_config(s: Settings) -> dict[str, Any]:
    """The `version: v1` config document the plugin and GFD read from CONFIG_FILE."""
    cfg: dict[str, Any] = {"version": "v1", "flags": {"migStrategy": s.mig_strategy}}
    if s.strategy == "none":
        return cfg
    names = resource_names(s.layout, s.mig_strategy) if s.mig_strategy != "none" else ["nvidia.com/gpu"]
    key = "timeSlicing" if s.strategy == "time-slicing" else "mps"
    cfg["sharing"] = {key: {
        "renameByDefault": s.rename_by_default,
        "failRequestsGreaterThanOne": s.fail_requests_greater_than_one,
        "resources": [{"name": n, "replicas": s.replicas} for n in names],
    }}
    return cfg


def config_text(cfg: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)


def config_sha256(text: str) -> str:
    """Annotated on the plugin and GFD pod templates, so a changed config rolls them."""
    return hashlib.sha256(text.encode()).hexdigest()


def configmap(namespace: str, text: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_NAME, "namespace": namespace},
            "data": {CONFIG_KEY: text}}
