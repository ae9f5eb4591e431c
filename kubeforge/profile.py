"""Profiles: layered YAML (`extends:`), deep-merged (later wins), schema-validated.

A profile names a target (Kubernetes version, GPU mode, storage, registry and sources mirror) and
the components it enables with their values. Errors name the file, the field and the fix.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kubeforge.errors import KubeforgeError
from kubeforge.paths import profiles_dir


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class GpuSharing(_Strict):
    strategy: Literal["none", "time-slicing", "mps"] = "none"
    replicas: int = Field(4, ge=2, le=64, description="Replicas per physical GPU when shared.")


class GpuMig(_Strict):
    strategy: Literal["none", "single", "mixed"] = "none"


class Gpu(_Strict):
    mode: Literal["none", "host", "operator", "provider"] = Field(
        "none", description="none: CPU only; host: driver on the node, device plugin + GFD in the "
        "cluster; operator: NVIDIA GPU Operator manages driver and plugins; provider: the cloud "
        "installs the driver and runs its own device plugin (GKE-installed drivers), so the "
        "platform installs no GPU advertiser.")
    sharing: GpuSharing = GpuSharing()
    mig: GpuMig = GpuMig()
    tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    nodeSelector: dict[str, str] = Field(default_factory=dict)


class Storage(_Strict):
    default: Literal["local-path", "nfs", "aws-ebs", "gce-pd", "azure-disk"] = "local-path"
    nfs: dict[str, str] = Field(default_factory=dict, description="server and share for the NFS CSI class")


_API = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+(/[A-Z][A-Za-z0-9]*)?")


class Cluster(_Strict):
    """What the target cluster already has without kubeforge."""

    apis: list[str] = Field(default_factory=list, description=(
        "API groups (monitoring.coreos.com) or kinds (monitoring.coreos.com/ServiceMonitor) the "
        "cluster already serves: custom resources of them validate and deploy without their CRD "
        "among kubeforge's objects (an existing Prometheus Operator, Gateway API). metrics.k8s.io "
        "says metrics-server is there."))

    @field_validator("apis")
    @classmethod
    def _apis(cls, v: list[str]) -> list[str]:
        for a in v:
            if not _API.fullmatch(a):
                raise ValueError(f"{a!r} is not an API group (monitoring.coreos.com) or group/Kind "
                                 "(monitoring.coreos.com/ServiceMonitor)")
        return v

    def provides(self, group: str, kind: str = "") -> bool:
        """Whether the cluster serves this group (and kind) itself."""
        return group in self.apis or (bool(kind) and f"{group}/{kind}" in self.apis)


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _email(v: str) -> str:
    if not _EMAIL.fullmatch(v):
        raise ValueError(f"{v!r} is not an e-mail address (the identity Dex and the profile controller use)")
    return v.lower()


_URL = re.compile(r"(https?)://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s?#]*)?")


def _issuer_url(v: str, *, https: bool) -> str:
    """An OIDC issuer: an absolute http(s) URL, compared by Dex, oauth2-proxy and Istio as a string,
    so no trailing slash, query or fragment."""
    m = _URL.fullmatch(v)
    if not m or v.endswith("/"):
        raise ValueError(f"{v!r} is not an issuer URL (e.g. https://login.example.com, no trailing '/')")
    if https and m.group(1) != "https":
        raise ValueError(f"{v!r}: an external OpenID provider's issuer is an https:// URL")
    return v


def _once(items: list, keys: list[str], what: str) -> list:
    """`items` unchanged when no key repeats; else the error names the first one given twice."""
    seen: set[str] = set()
    for k in keys:
        if k in seen:
            raise ValueError(f"{what} {k!r} is declared twice")
        seen.add(k)
    return items


class StaticUser(_Strict):
    """A Dex static user. Its password is a per-install secret (`kubeforge secrets get`), never here."""

    email: str
    name: str = Field("", description="Display name; the e-mail's local part when empty.")

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        return _email(v)


class ExternalOIDC(_Strict):
    """An external OpenID Connect provider that Dex federates to (its client secret is a per-install
    secret set with `kubeforge secrets set`, never in the profile)."""

    issuer: str = Field(description="The provider's issuer URL, e.g. https://login.example.com")
    clientID: str = Field(min_length=1)
    name: str = Field("External", description="The button label on Dex's login page.")

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        return _issuer_url(v, https=True)


class Auth(_Strict):
    provider: Literal["dex"] = Field("dex", description="Dex in the cluster (static users and/or an "
                                     "external OIDC connector) behind oauth2-proxy.")
    issuer: str = Field("http://dex.auth.svc.cluster.local:5556/dex", description=(
        "The OIDC issuer oauth2-proxy and Istio trust; Dex's in-cluster URL by default."))
    staticUsers: list[StaticUser] = Field(default_factory=list)
    externalOIDC: ExternalOIDC | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, v: str) -> str:
        return _issuer_url(v, https=False)

    @field_validator("staticUsers")
    @classmethod
    def _unique_users(cls, v: list[StaticUser]) -> list[StaticUser]:
        return _once(v, [u.email for u in v], "static user")


class Tenant(_Strict):
    """A team: a Kubeflow Profile (its namespace), an owner and contributors."""

    name: str = Field(description="The Profile and its namespace, a DNS-1123 label.")
    owner: str = Field(description="The owner's e-mail (the profile controller's owner annotation).")
    contributors: list[str] = Field(default_factory=list, description="E-mails with edit access.")
    resourceQuota: dict[str, Any] | None = Field(None, description="A ResourceQuotaSpec, e.g. "
                                                 "{hard: {cpu: '8', requests.nvidia.com/gpu: '1'}}")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if len(v) > 63 or not _DNS_LABEL.fullmatch(v):
            raise ValueError(f"{v!r} is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)")
        return v

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: str) -> str:
        return _email(v)

    @field_validator("contributors")
    @classmethod
    def _contributors(cls, v: list[str]) -> list[str]:
        return [_email(x) for x in v]


class Kubeflow(_Strict):
    """Who logs in to the Kubeflow user layer and which teams exist (docs/kubeflow.md)."""

    auth: Auth = Auth()
    tenants: list[Tenant] = Field(default_factory=list)

    @field_validator("tenants")
    @classmethod
    def _unique(cls, v: list[Tenant]) -> list[Tenant]:
        return _once(v, [t.name for t in v], "tenant")

    def users(self) -> list[str]:
        """Every e-mail the tenants name, owners first, in declaration order."""
        out: list[str] = []
        for t in self.tenants:
            for e in [t.owner, *t.contributors]:
                if e not in out:
                    out.append(e)
        return out


class ComponentSettings(_Strict):
    enabled: bool = True
    values: dict[str, Any] = Field(default_factory=dict)


class Profile(_Strict):
    name: str = ""
    description: str = ""
    extends: str | list[str] | None = None
    kubernetesVersion: str = Field("1.34", description="Target Kubernetes minor version, e.g. 1.34")
    gpu: Gpu = Gpu()
    storage: Storage = Storage()
    cluster: Cluster = Cluster()
    registry: str | None = Field(None, description="Container registry that replaces every image's "
                                 "registry (air-gap), e.g. registry.example.com:5000/mirror")
    mirror: str | None = Field(None, description="Sources mirror: a directory or http(s) URL laid out "
                               "github/<owner>/<repo>/<ref>/<path>")
    kubeflow: Kubeflow = Kubeflow()
    components: dict[str, ComponentSettings] = Field(default_factory=dict)
    # Where the profile came from (files in extends order), for messages.
    files: list[str] = Field(default_factory=list, exclude=True)

    @field_validator("kubernetesVersion")
    @classmethod
    def _k8s_version(cls, v: str) -> str:
        if not re.fullmatch(r"1\.\d{1,2}(\.\d+)?", v):
            raise ValueError("must look like 1.34 (a Kubernetes minor version)")
        return ".".join(v.split(".")[:2])

    def enabled(self) -> list[str]:
        return sorted(n for n, c in self.components.items() if c.enabled)

    @property
    def source_file(self) -> str:
        return self.files[-1] if self.files else f"profiles/{self.name}.yaml"


def profile_schema() -> dict[str, Any]:
    schema = Profile.model_json_schema()
    schema["properties"].pop("files", None)
    schema["title"] = "kubeforge profile"
    return schema


def deep_merge(base: Any, over: Any) -> Any:
    """Maps merge key by key; anything else (lists included) is replaced by the later layer."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else v
        return out
    return over


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _find(name_or_path: str, relative_to: Path | None = None) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_absolute() and relative_to is not None and not p.exists():
            p = relative_to / p
        if p.exists():
            return p
        raise KubeforgeError(f"profile file {name_or_path} does not exist",
                             fix="give a path to a profile YAML or a name from profiles/")
    cand = (relative_to or profiles_dir()) / f"{name_or_path}.yaml"
    if not cand.exists():
        cand = profiles_dir() / f"{name_or_path}.yaml"
    if cand.exists():
        return cand
    known = ", ".join(sorted(x.stem for x in profiles_dir().glob("*.yaml")))
    raise KubeforgeError(f"unknown profile {name_or_path!r}", field="profile",
                         fix=f"use one of: {known} (or a path to a .yaml file)")


def _read_yaml(path: Path) -> dict[str, Any]:
    from kubeforge import yamlio

    try:
        data = yamlio.load(path.read_text())
    except yamlio.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise KubeforgeError(f"malformed YAML{where}: {getattr(exc, 'problem', exc)}",
                             file=_display(path), fix="fix the YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KubeforgeError("a profile must be a YAML mapping", file=_display(path),
                             fix="start the file with keys such as `extends:` and `components:`")
    return data


def _load_layers(path: Path, chain: list[Path]) -> tuple[dict[str, Any], list[Path]]:
    if path.resolve() in [c.resolve() for c in chain]:
        loop = " -> ".join(_display(c) for c in [*chain, path])
        raise KubeforgeError(f"`extends` loop: {loop}", file=_display(path), field="extends",
                             fix="remove one of the extends links so the profiles form a chain")
    data = _read_yaml(path)
    if not data.get("extends") and "components" not in data:
        # An empty file, or one with neither, would be a valid profile of defaults only: almost
        # always a mistake (a file saved empty, a wrong path), so it is refused.
        raise KubeforgeError("the profile is empty" if not data else
                             "the profile has neither `extends` nor `components`", file=_display(path),
                             field="extends", fix="start it with `extends: base` (or dev, full, ...) "
                             "and/or a `components:` mapping of what it enables")
    parents = data.get("extends") or []
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(x, str) for x in parents):
        raise KubeforgeError("extends must be a profile name or a list of names", file=_display(path),
                             field="extends", fix="e.g. `extends: dev`")
    merged: dict[str, Any] = {}
    files: list[Path] = []
    for parent in parents:
        pdata, pfiles = _load_layers(_find(parent, path.parent), [*chain, path])
        merged = deep_merge(merged, pdata)
        files.extend(f for f in pfiles if f not in files)
    merged = deep_merge(merged, data)
    files.append(path)
    return merged, files


def _field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_profile(name_or_path: str, overrides: dict[str, Any] | None = None) -> Profile:
    """Load a profile by name (profiles/<name>.yaml) or path, resolve `extends`, validate."""
    path = _find(name_or_path)
    data, files = _load_layers(path, [])
    if overrides:
        data = deep_merge(data, overrides)
    data.pop("extends", None)
    data["name"] = path.stem
    try:
        profile = Profile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field_path(err["loc"])
        # Find the layer that set the field, so the message names the file to edit.
        culprit = path
        for f in reversed(files):
            if _has_prefix(_read_yaml(f), err["loc"]):
                culprit = f
                break
        fix = ("remove it or fix its spelling; `kubeforge profiles schema` lists the fields"
               if err["type"] == "extra_forbidden" else "see `kubeforge profiles schema`")
        raise KubeforgeError(f"{err['msg']} (got {err.get('input')!r})"
                             if err["type"] != "extra_forbidden" else "unknown field",
                             file=_display(culprit), field=field, fix=fix) from None
    profile.files = [_display(f) for f in files]
    return profile


def _has_prefix(layer: dict, loc: tuple) -> bool:
    """Whether this layer sets the field at `loc` (null counts: it is what failed)."""
    node: Any = layer
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def list_profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))
