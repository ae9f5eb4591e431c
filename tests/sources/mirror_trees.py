"""The upstream trees of the default tuple, as Source objects made by hand from the shared mirror.

Independent of components/ on purpose: the sources stage is tested on real upstream trees without
depending on how the catalog declares them.
"""
from __future__ import annotations

import functools
from pathlib import Path

from kubeforge.lockfile import file_sha256, scan_tree, tree_hash
from kubeforge.model import Repo, Source

KUBEFLOW = Repo("kubeflow-manifests", "kubeflow", "manifests", "26.03", "d68ebc7fab366ab40ddd1541d2ec22febb31bc83")
ARGO = Repo("argo-workflows", "argoproj", "argo-workflows", "v3.7.3", "bded09fe4abd37cb98d7fc81b4c14a6f5034e9ab")
DEVICE_PLUGIN = Repo("k8s-device-plugin", "NVIDIA", "k8s-device-plugin", "v0.20.0",
                     "1b826acc6af3079d8923bac395c3124b8861a9a6")
DCGM = Repo("dcgm-exporter", "NVIDIA", "dcgm-exporter", "4.5.3-4.8.2", "691c92762eb551313c825f6efe4ceeee20982801")
LOCAL_PATH = Repo("local-path-provisioner", "rancher", "local-path-provisioner", "v0.0.37",
                  "49b2be8e26d6d34c9afaa21fa33108d2e82f8955")

# id -> (repo, root, build path below root): the kustomize trees the default profiles build.
TREES = {
    "cert-manager": (KUBEFLOW, "common/cert-manager", "base"),
    "istio-crds": (KUBEFLOW, "common/istio/istio-crds", "base"),
    # The oauth2-proxy overlay of Istio uses a component from common/oauth2-proxy: a second tree,
    # fetched, never built itself (a kustomize Component: only an overlay that uses it builds).
    "istio-install": (KUBEFLOW, "common/istio/istio-install", "overlays/oauth2-proxy"),
    "oauth2-proxy": (KUBEFLOW, "common/oauth2-proxy", "components/istio-external-auth-patches"),
    "knative-serving": (KUBEFLOW, "common/knative/knative-serving", "overlays/gateways"),
    "kserve": (KUBEFLOW, "applications/kserve/kserve", "."),
    "katib": (KUBEFLOW, "applications/katib/upstream", "installs/katib-standalone"),
    "training-operator": (KUBEFLOW, "applications/training-operator/upstream", "overlays/standalone"),
    "argo-workflows": (ARGO, "manifests", "cluster-install"),
}
# id -> (repo, file)
MANIFESTS = {
    "local-path": (LOCAL_PATH, "deploy/local-path-storage.yaml"),
    "device-plugin": (DEVICE_PLUGIN, "deployments/static/nvidia-device-plugin.yml"),
    "gfd": (DEVICE_PLUGIN, "deployments/static/gpu-feature-discovery-daemonset.yaml"),
    "dcgm-exporter": (DCGM, "dcgm-exporter.yaml"),
}
# Kubeflow Pipelines' Argo install references argo-workflows v3.7.3 remotely.
PIPELINE_ARGO = (KUBEFLOW, "applications/pipeline/upstream/third-party/argo", "installs/cluster")


@functools.cache
def _scan(directory: Path) -> tuple[tuple[str, str], ...]:
    return tuple(scan_tree(directory))


def kustomize_source(mirror: Path, sid: str, repo: Repo, root: str, path: str = ".") -> Source:
    files = _scan(mirror / repo.mirror_path(root))
    return Source(id=sid, kind="kustomize", repo=repo, root=root, path=path, sha256=tree_hash(files), files=files)


def manifest_source(mirror: Path, sid: str, repo: Repo, path: str) -> Source:
    return Source(id=sid, kind="manifest", repo=repo, path=path,
                  sha256=file_sha256(mirror / repo.mirror_path(path)))


def default_sources(mirror: Path) -> list[Source]:
    return ([kustomize_source(mirror, sid, *t) for sid, t in TREES.items()]
            + [manifest_source(mirror, sid, *m) for sid, m in MANIFESTS.items()])


def whole_mirror_sources(mirror: Path) -> list[Source]:
    """Every file of the mirror (the cold-sync worst case): one kustomize tree per top folder of the
    kustomize repositories (built at its first kustomization), every other file a manifest."""
    out = []
    for repo in (KUBEFLOW, ARGO):
        base = mirror / repo.mirror_path("")
        for top in sorted(p.name for p in base.iterdir()):
            first = min(k.parent for k in (base / top).rglob("kustomization.yaml"))
            out.append(kustomize_source(mirror, f"{repo.name}-{top}", repo, top,
                                        first.relative_to(base / top).as_posix()))
    for repo in (DEVICE_PLUGIN, DCGM, LOCAL_PATH):
        base = mirror / repo.mirror_path("")
        for f in sorted(p for p in base.rglob("*") if p.is_file()):
            rel = f.relative_to(base).as_posix()
            out.append(manifest_source(mirror, f"{repo.name}:{rel}", repo, rel))
    return out
