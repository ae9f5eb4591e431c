"""Stack configuration -> what the platform program needs, in one place (no Pulumi import).

The same mapping serves the Pulumi program (reading `pulumi.Config("kubeforge")`) and
`kubeforge up` (reading `stacks/platform/Pulumi.<env>.yaml` before any Pulumi operation starts),
so a bad stack file fails the same way in both, before anything touches a cluster.

Keys (namespace `kubeforge:`):
  profile            required: a profile name from profiles/ or a path
  kubernetesVersion  overrides the profile's target minor version
  gpu                object merged over the profile's `gpu` (mode, sharing, mig, ...)
  storage            object merged over the profile's `storage`
  registry           image registry mirror (air-gap)
  mirror             sources mirror (directory or URL)
  values             {component: {values}} merged over the profile's component values
  replicas           {"<namespace>/<deployment>": n}: per-environment replica counts
  kubeconfig         kubeconfig content or path (secret); else clusterStack; else $KUBECONFIG
  clusterStack       a stack reference (e.g. organization/kubeforge-cluster-onprem/prod) whose
                     `kubeconfig` output is used
  clusterIdentifier  stable provider identity (default kubeforge-<stack>): a rotated kubeconfig
                     must not look like a new cluster and replace every object
  awaitLoadBalancers wait for LoadBalancer addresses (default false: bare metal has none)
  secrets            the install's per-install secrets (a Pulumi secret, JSON object of name:
                     value) that `kubeforge up` makes once and the program reads; never edited by hand
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError

NS = "kubeforge"
KNOWN_KEYS = ("profile", "kubernetesVersion", "gpu", "storage", "registry", "mirror", "values",
              "replicas", "kubeconfig", "clusterStack", "clusterIdentifier", "awaitLoadBalancers", "secrets")


@dataclass
class StackSettings:
    profile: str
    overrides: dict[str, Any] = field(default_factory=dict)
    replicas: dict[str, int] = field(default_factory=dict)
    mirror: str | None = None
    kubeconfig: str | None = None          # content or path; None when secret and unreadable here
    kubeconfig_secret: bool = False        # set in config as a secret (cannot be checked here)
    cluster_stack: str | None = None
    cluster_identifier: str | None = None
    await_load_balancers: bool = False


def parse(config: dict[str, Any], *, file: str, secret_keys: frozenset[str] = frozenset()) -> StackSettings:
    """Stack settings from `kubeforge:*` config values (plain Python values, objects decoded)."""
    unknown = sorted(k for k in config if k not in KNOWN_KEYS)
    if unknown:
        raise KubeforgeError(f"unknown config key kubeforge:{unknown[0]}", file=file,
                             field=f"config.kubeforge:{unknown[0]}",
                             fix=f"use one of: {', '.join('kubeforge:' + k for k in KNOWN_KEYS)}")
    profile = config.get("profile")
    if not profile or not isinstance(profile, str):
        raise KubeforgeError("the stack names no profile", file=file, field="config.kubeforge:profile",
                             fix="add `kubeforge:profile: <name>` (one of profiles/*.yaml) under config:")

    def obj(key: str) -> dict[str, Any]:
        v = config.get(key) or {}
        if not isinstance(v, dict):
            raise KubeforgeError(f"kubeforge:{key} must be an object, got {type(v).__name__}", file=file,
                                 field=f"config.kubeforge:{key}", fix="write it as a YAML mapping")
        return v

    overrides: dict[str, Any] = {}
    if isinstance(config.get("kubernetesVersion"), float):
        raise KubeforgeError("kubeforge:kubernetesVersion is a YAML number (1.30 would read as 1.3)", file=file,
                             field="config.kubeforge:kubernetesVersion", fix='quote it, e.g. "1.34"')
    if config.get("kubernetesVersion"):
        overrides["kubernetesVersion"] = str(config["kubernetesVersion"])
    for key in ("gpu", "storage"):
        if obj(key):
            overrides[key] = obj(key)
    for key in ("registry", "mirror"):
        if config.get(key):
            overrides[key] = str(config[key])
    values = obj("values")
    if values:
        bad = [k for k, v in values.items() if not isinstance(v, dict)]
        if bad:
            raise KubeforgeError(f"kubeforge:values.{bad[0]} must be an object of component values",
                                 file=file, field=f"config.kubeforge:values.{bad[0]}",
                                 fix="e.g. kubeforge:values: {kserve: {deploymentMode: Standard}}")
        overrides["components"] = {name: {"values": v} for name, v in values.items()}
    replicas = obj("replicas")
    for k, v in replicas.items():
        if "/" not in k or not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise KubeforgeError(f"kubeforge:replicas.{k}: want \"<namespace>/<deployment>\": <count>",
                                 file=file, field=f"config.kubeforge:replicas.{k}",
                                 fix="e.g. kubeforge:replicas: {kubeflow/kserve-controller-manager: 2}")
    kubeconfig = config.get("kubeconfig")
    await_lb = config.get("awaitLoadBalancers", False)
    if isinstance(await_lb, str) and await_lb.lower() in ("true", "false"):
        await_lb = await_lb.lower() == "true"     # `pulumi config set` stores strings
    if not isinstance(await_lb, bool):
        raise KubeforgeError(f"kubeforge:awaitLoadBalancers must be true or false, got {await_lb!r}", file=file,
                             field="config.kubeforge:awaitLoadBalancers", fix="set it to true or false")
    return StackSettings(
        profile=profile, overrides=overrides, replicas=dict(replicas),
        mirror=str(config["mirror"]) if config.get("mirror") else None,
        kubeconfig=kubeconfig if isinstance(kubeconfig, str) else None,
        kubeconfig_secret="kubeconfig" in secret_keys or isinstance(kubeconfig, dict),
        cluster_stack=config.get("clusterStack") or None,
        cluster_identifier=config.get("clusterIdentifier") or None,
        await_load_balancers=await_lb,
    )


def read_stack_file(path: Path) -> tuple[dict[str, Any], frozenset[str]]:
    """`kubeforge:*` config of a Pulumi.<stack>.yaml: (values, keys stored as secrets)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise KubeforgeError(f"malformed YAML: {exc}", file=str(path), fix="fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise KubeforgeError("a stack file must be a mapping with a `config:` key", file=str(path),
                             fix="see stacks/platform/Pulumi.dev.yaml")
    cfg = data.get("config") or {}
    out: dict[str, Any] = {}
    secrets: set[str] = set()
    for key, value in cfg.items():
        ns, _, name = str(key).partition(":")
        if ns != NS:
            continue
        if isinstance(value, dict) and set(value) == {"secure"}:
            secrets.add(name)   # encrypted by the stack's secrets provider
        out[name] = value
    return out, frozenset(secrets)


def apply_replicas(objects: list[dict[str, Any]], replicas: dict[str, int], *, file: str) -> None:
    """Set per-environment replica counts on Deployments/StatefulSets (in place); unknown names fail."""
    if not replicas:
        return
    found: set[str] = set()
    for o in objects:
        if o.get("kind") in ("Deployment", "StatefulSet"):
            md = o.get("metadata", {})
            key = f"{md.get('namespace', '')}/{md.get('name')}"
            if key in replicas:
                o.setdefault("spec", {})["replicas"] = replicas[key]
                found.add(key)
    missing = sorted(set(replicas) - found)
    if missing:
        raise KubeforgeError(f"no Deployment or StatefulSet {missing[0]} in this profile's render",
                             file=file, field=f"config.kubeforge:replicas.{missing[0]}",
                             fix="use <namespace>/<name> of a rendered Deployment (`kubeforge render`)")


def kubeconfig_text(value: str, *, base: Path, field: str) -> str:
    """A kubeconfig config value is the content itself or a path (relative to the stack directory)."""
    import os

    if "\n" in value or value.lstrip().startswith(("apiVersion", "{")):
        return value
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise KubeforgeError(f"kubeconfig file {value} does not exist", field=field,
                             fix="point it at a kubeconfig (e.g. the cluster stack's admin.conf)")
    return path.read_text()
