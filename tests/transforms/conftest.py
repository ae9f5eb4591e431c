"""Real upstream objects for the transform tests: `kubectl kustomize` of mirror trees, built once per
session (in parallel), plus the plain NVIDIA and rancher manifests. No network."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

KF = "github/kubeflow/manifests/26.03"
ARGO = "github/argoproj/argo-workflows/v3.7.3/manifests"
KUSTOMIZE_TREES = {
    "kserve": f"{KF}/applications/kserve/kserve",
    "knative-serving": f"{KF}/common/knative/knative-serving/base",
    "katib": f"{KF}/applications/katib/upstream/installs/katib-standalone",
    "istio": f"{KF}/common/istio/istio-install/base",
    "cert-manager": f"{KF}/common/cert-manager/base",
    "argo-workflows": f"{ARGO}/cluster-install",
    # the spawner config lists notebook images in a ConfigMap whose name carries a kustomize hash
    "jupyter-web-app": f"{KF}/applications/jupyter/jupyter-web-app/upstream/overlays/istio",
}
MANIFESTS = {
    "nvidia-device-plugin": ("github/NVIDIA/k8s-device-plugin/v0.20.0/deployments/static", "*.y*ml"),
    "dcgm-exporter": ("github/NVIDIA/dcgm-exporter/4.5.3-4.8.2", "*.yaml"),
    "local-path": ("github/rancher/local-path-provisioner/v0.0.37/deploy", "local-path-storage.yaml"),
}
# Kubeflow Pipelines' Argo overlay is what sets the executor image (`--executor-image`); its
# kustomization points at a remote base, so the test rebuilds it on the mirror's Argo tree.
KFP_ARGO_PATCH = f"{KF}/applications/pipeline/upstream/third-party/argo/base/workflow-controller-deployment-patch.yaml"

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _docs(text: str) -> list[dict]:
    return [d for d in yaml.load_all(text, Loader=_LOADER) if d]


def _argo_with_executor(mirror: Path, tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "workflow-controller-deployment-patch.yaml").write_bytes((mirror / KFP_ARGO_PATCH).read_bytes())
    base = os.path.relpath(mirror / ARGO / "cluster-install", tmp)   # kustomize refuses absolute roots
    (tmp / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n- {base}\npatches:\n- path: workflow-controller-deployment-patch.yaml\n")
    return tmp


@pytest.fixture(scope="session")
def upstream(mirror_dir: Path, tmp_path_factory, upstream_builds) -> dict[str, list[dict]]:
    """name -> the objects upstream ships (kustomize output or plain manifests), in file order."""
    upstream_builds.prebuild(KUSTOMIZE_TREES.values())
    out: dict[str, list[dict]] = {name: upstream_builds(rel) for name, rel in KUSTOMIZE_TREES.items()}
    out["argo-kfp"] = upstream_builds(str(_argo_with_executor(mirror_dir, tmp_path_factory.mktemp("argo-kfp"))))
    for name, (rel, pattern) in MANIFESTS.items():
        out[name] = [d for f in sorted((mirror_dir / rel).glob(pattern)) for d in _docs(f.read_text())]
        assert out[name], f"no manifests under {mirror_dir / rel}"
    return out


@pytest.fixture(scope="session")
def all_objects(upstream) -> list[dict]:
    return [o for name in sorted(upstream) for o in upstream[name]]
