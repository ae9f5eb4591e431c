"""Earlier releases kubeforge renders and upgrades from, kept as data beside today's pins.

A release is a ref of a repository in components/_repos.yaml, named under that repository's
`previous:` (kubeflow-manifests lists v1.11.0 with its commit). Each component that pins such a
repository says what it was at the release, in its own component.yaml:

    previous:
      v1.11.0:
        version: 1.16.2                              # the one place this version lives
        compat: {istio: ["1.28"], kserve: ["0.15"]}  # the tuple that release tested together
        sources:
          knative-serving: <tree hash at v1.11.0>    # or {sha256: ..., root: ..., path: ...}

The kustomize file lists of those trees sit in the component's sources.lock as "<id>@<release>"
(`python -m kubeforge.lockfile` writes both). A component that pins no released repository and
says nothing of the release is the same at it (storage, Argo Workflows, the GPU components).
"""
from __future__ import annotations

import copy
from typing import Any

from kubeforge.errors import KubeforgeError

KEY = "previous"
# What a release entry may say of a component; everything else (namespaces, dependencies,
# values, health) is today's, since kubeforge renders the old trees with today's code.
FIELDS = {"version", "compat", "sources", "notes"}


def names(repos: dict[str, Any]) -> list[str]:
    """Every earlier release some repository of _repos.yaml names, in file order."""
    out: list[str] = []
    for repo in repos.values():
        for name in (repo.get(KEY) or {}) if isinstance(repo, dict) else ():
            if name not in out:
                out.append(str(name))
    return out


def current(repos: dict[str, Any]) -> str:
    """The name of today's release: the ref of the (first) repository that has earlier releases."""
    return next((str(r["ref"]) for r in repos.values() if isinstance(r, dict) and r.get(KEY)), "")


def lock_id(source_id: str, release: str | None) -> str:
    """The key of a source's file list in sources.lock."""
    return f"{source_id}@{release}" if release else source_id


def check(release: str | None, repos: dict[str, Any]) -> str | None:
    """None for today's release (None or its name); the release name when it is a known one."""
    if release is None or release == current(repos):
        return None
    if release not in names(repos):
        known = ", ".join([current(repos), *names(repos)])
        raise KubeforgeError(f"unknown release {release!r}", field="--release",
                             fix=f"use one of {known} (releases are listed under `previous:` in "
                                 "components/_repos.yaml)")
    return release


def released_repo(repo_ref: Any, repos: dict[str, Any], release: str) -> dict[str, Any] | None:
    """The repository mapping of a source at the release, when its repository has that release."""
    if not isinstance(repo_ref, str) or repo_ref not in repos:
        return None
    at = (repos[repo_ref].get(KEY) or {}).get(release)
    if at is None:
        return None
    return {**{k: v for k, v in repos[repo_ref].items() if k != KEY}, "ref": release, **dict(at)}


def at_release(doc: dict[str, Any], repos: dict[str, Any], release: str | None, file: str) -> dict[str, Any]:
    """The component document as it was at the release (the document itself for today's)."""
    if release is None:
        return doc
    entry = (doc.get(KEY) or {}).get(release)
    pins_released = [s for s in doc.get("sources") or [] if released_repo(s.get("repo"), repos, release)]
    if entry is None:
        if pins_released:
            raise KubeforgeError(
                f"{doc.get('name')} pins {pins_released[0]['repo']}, which has release {release}, but does "
                f"not say what it was at {release}", file=file, field=f"{KEY}.{release}",
                fix=f"add `{KEY}: {{{release}: {{version: ..., sources: {{{pins_released[0]['id']}: "
                    f"'{'0' * 64}'}}}}}}` and run `python -m kubeforge.lockfile --mirror MIRROR {doc.get('name')}`")
        return doc
    if not isinstance(entry, dict) or set(entry) - FIELDS:
        raise KubeforgeError(f"a release entry may set only {sorted(FIELDS)}", file=file,
                             field=f"{KEY}.{release}", fix="drop the other fields (they are today's)")
    out = copy.deepcopy({k: v for k, v in doc.items() if k != KEY})
    for k in ("version", "compat"):
        if k in entry:
            out[k] = copy.deepcopy(entry[k])
    out["version"] = str(out["version"])
    out["release"] = release
    pins = entry.get("sources") or {}
    for src in out.get("sources") or []:
        if src.get("kind") == "helm":
            continue
        pin = pins.get(src["id"])
        repo = released_repo(src.get("repo"), repos, release)
        changed = repo is not None or "{version}" in str((src.get("repo") or {}).get("ref", "")) \
            and out["version"] != doc["version"]
        if pin is None:
            if changed:
                raise KubeforgeError(f"source {src['id']} has no pin at {release}", file=file,
                                     field=f"{KEY}.{release}.sources.{src['id']}",
                                     fix=f"add `{src['id']}: '{'0' * 64}'` there and run "
                                         f"`python -m kubeforge.lockfile --mirror MIRROR {doc.get('name')}`")
            continue
        pin = {"sha256": pin} if isinstance(pin, str) else dict(pin)
        if repo is not None:
            src["repo"] = repo
        same_tree = pin.get("sha256") == src.get("sha256") and pin.get("root", src.get("root")) == src.get("root")
        src.update({k: pin[k] for k in ("sha256", "root", "path") if k in pin})
        # The same tree as today's (Katib, the training operator at v1.11.0) shares today's file list.
        src["lock"] = src["id"] if same_tree else lock_id(src["id"], release)
    return out

