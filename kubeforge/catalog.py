"""The component catalog: one folder per component under components/ (see docs/internals.md).

Adding a component means adding a folder; the planner, renderer and stacks read only this data.
"""
from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError
from kubeforge.model import Component, Repo, Source
from kubeforge.paths import components_dir

_KEYS = {"name", "version", "description", "namespaces", "requires", "after", "provides",
         "conflicts", "requiresWhen", "defaultsWhen", "kubernetes", "compat", "gpu", "sources", "values", "health",
         "helm", "notes", "valuesFromProfile", "secrets", "previous", "upgrade"}
_SOURCE_KINDS = ("manifest", "kustomize", "helm")


def _rel(p: Path) -> str:
    try:
        return os.path.relpath(p)
    except ValueError:
        return str(p)


def _repos(root: Path) -> dict[str, Any]:
    from kubeforge import yamlio

    path = root / "_repos.yaml"
    return yamlio.load(path.read_text()) if path.exists() else {}


def _source(raw: dict[str, Any], comp: dict[str, Any], repos: dict[str, Any],
            locks: dict[str, list[tuple[str, str]]], file: str) -> Source:
    from kubeforge.lockfile import resolve_repo

    sid = raw.get("id")
    kind = raw.get("kind")
    where = f"sources[{sid or '?'}]"
    if not sid or kind not in _SOURCE_KINDS:
        raise KubeforgeError(f"each source needs an id and a kind in {_SOURCE_KINDS}", file=file,
                             field=where, fix="see docs/internals.md for the source fields")
    if kind == "helm":
        version = str(raw.get("version", "")).format(version=comp["version"])
        return Source(id=sid, kind=kind, chart=raw.get("chart", ""), version=version,
                      repo_url=raw.get("repo_url", ""), sha256=raw.get("sha256") or "",
                      when=raw.get("when") or {})
    repo_ref = raw.get("repo")
    if isinstance(repo_ref, str) and repo_ref not in repos:
        raise KubeforgeError(f"unknown repo {repo_ref!r}", file=file, field=f"{where}.repo",
                             fix=f"use a key of components/_repos.yaml ({', '.join(repos)}) or an inline mapping")
    r = resolve_repo(repo_ref, repos, comp)
    repo = Repo(key=repo_ref if isinstance(repo_ref, str) else f"{r['owner']}/{r['name']}@{r['ref']}",
                owner=r["owner"], name=r["name"], ref=r["ref"], commit=r.get("commit", ""))
    sha = raw.get("sha256") or ""
    if len(sha) != 64:
        raise KubeforgeError("every upstream source is pinned by a sha256", file=file,
                             field=f"{where}.sha256",
                             fix="run `python -m kubeforge.lockfile --mirror MIRROR COMPONENT`")
    files: tuple[tuple[str, str], ...] = ()
    if kind == "kustomize":
        lock = raw.get("lock") or sid   # "<id>@<release>" for an earlier release's tree
        if lock not in locks:
            raise KubeforgeError(f"no file list for kustomize source {lock!r} in sources.lock", file=file,
                                 field=f"{where}", fix="run `python -m kubeforge.lockfile --mirror MIRROR`")
        files = tuple(locks[lock])
    if raw.get("raw") and kind != "manifest":
        raise KubeforgeError("only a manifest source can be raw (one file handed to generate.py)", file=file,
                             field=f"{where}.raw", fix="drop `raw:` or make it a manifest source")
    build = raw.get("build", True)
    if not isinstance(build, bool) or (not build and kind != "kustomize"):
        raise KubeforgeError("`build:` is true or false, and false only on a kustomize source (a tree fetched "
                             "for the remote references of the component's other sources)", file=file,
                             field=f"{where}.build", fix="drop `build:` or make it `build: false` on a kustomize source")
    return Source(id=sid, kind=kind, repo=repo, path=raw.get("path", ""), root=raw.get("root", ""),
                  sha256=sha, files=files, when=raw.get("when") or {}, raw=bool(raw.get("raw")), build=build)


def load_component(folder: Path, repos: dict[str, Any] | None = None, release: str | None = None) -> Component:
    """The component as component.yaml describes it today, or as it was at an earlier release
    (kubeforge/releases.py)."""
    from kubeforge import releases, yamlio
    from kubeforge.lockfile import LOCK_NAME, read_lock
    from kubeforge.secrets import parse_specs

    path = folder / "component.yaml"
    file = _rel(path)
    try:
        raw = yamlio.load(path.read_text()) or {}
    except yamlio.YAMLError as exc:
        raise KubeforgeError(f"malformed YAML: {exc}", file=file, fix="fix the YAML syntax") from None
    unknown = set(raw) - _KEYS
    if unknown:
        raise KubeforgeError(f"unknown field(s) {sorted(unknown)}", file=file, field=sorted(unknown)[0],
                             fix=f"allowed fields: {sorted(_KEYS)}")
    for key in ("name", "version"):
        if not raw.get(key):
            raise KubeforgeError(f"missing {key}", file=file, field=key, fix=f"add `{key}:`")
    if raw["name"] != folder.name:
        raise KubeforgeError(f"name {raw['name']!r} differs from its folder {folder.name!r}", file=file,
                             field="name", fix="name the folder after the component")
    raw["version"] = str(raw["version"])
    repos = _repos(folder.parent) if repos is None else repos
    raw = releases.at_release(raw, repos, release, file)
    locks = read_lock(folder / LOCK_NAME)
    k8s = raw.get("kubernetes") or {}
    values = raw.get("values") or {}
    defaults_when = raw.get("defaultsWhen") or []
    for i, rule in enumerate(defaults_when if isinstance(defaults_when, list) else [None]):
        if not (isinstance(rule, dict) and set(rule) == {"enabled", "values"}
                and isinstance(rule["enabled"], str) and isinstance(rule["values"], dict)):
            raise KubeforgeError("each defaultsWhen entry is {enabled: COMPONENT, values: {...}}", file=file,
                                 field=f"defaultsWhen[{i}]",
                                 fix="e.g. defaultsWhen: [{enabled: kubeflow-auth, values: {multiUser: true}}]")
    return Component(
        name=raw["name"],
        version=raw["version"],
        description=raw.get("description", ""),
        folder=folder,
        namespaces=dict(raw.get("namespaces") or {}),
        requires=list(raw.get("requires") or []),
        after=list(raw.get("after") or []),
        provides=list(raw.get("provides") or []),
        conflicts=list(raw.get("conflicts") or []),
        kubernetes_min=str(k8s.get("min", "1.0")),
        kubernetes_max=str(k8s.get("max", "1.99")),
        compat={k: [str(v) for v in vs] for k, vs in (raw.get("compat") or {}).items()},
        sources=[_source(s, raw, repos, locks, file) for s in raw.get("sources") or []],
        values_schema=values.get("schema") or {"type": "object", "additionalProperties": False},
        defaults=values.get("defaults") or {},
        requires_when=list(raw.get("requiresWhen") or []),
        defaults_when=list(defaults_when),
        gpu=bool(raw.get("gpu", False)),
        health=raw.get("health") or {},
        raw=raw,
        secrets=parse_specs(raw.get("secrets"), file=file),
    )


@cache
def _load_catalog(root: Path, release: str | None) -> dict[str, Component]:
    if not root.is_dir():
        raise KubeforgeError(f"no component catalog at {_rel(root)}",
                             fix="run kubeforge from its checkout or set KUBEFORGE_HOME")
    repos = _repos(root)
    out = {}
    for folder in sorted(p for p in root.iterdir() if (p / "component.yaml").exists()):
        comp = load_component(folder, repos, release)
        out[comp.name] = comp
    from kubeforge.secrets import check_shared

    check_shared(out)
    return out


def load_catalog(root: Path | None = None, release: str | None = None) -> dict[str, Component]:
    """The catalog today, or at an earlier release (`previous:` in _repos.yaml and component.yaml)."""
    from kubeforge import releases

    root = (root or components_dir()).resolve()
    return _load_catalog(root, releases.check(release, _repos(root)))


def release_names(root: Path | None = None) -> tuple[str, list[str]]:
    """(today's release, the earlier ones kubeforge knows), from components/_repos.yaml."""
    from kubeforge import releases

    repos = _repos((root or components_dir()).resolve())
    return releases.current(repos), releases.names(repos)
