"""Real upstream objects for the validation tests: `kubectl kustomize` of mirror trees (built once
per session, offline) and plain upstream manifests, parsed as kubeforge parses them."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from kubeforge.kustomize import parse

KF = "github/kubeflow/manifests/26.03"
TREES = {
    "cert-manager": f"{KF}/common/cert-manager/base",
    "istio-crds": f"{KF}/common/istio/istio-crds/base",
    "istio-namespace": f"{KF}/common/istio/istio-namespace/base",
    "istio-install": f"{KF}/common/istio/istio-install/base",
    "knative-serving": f"{KF}/common/knative/knative-serving/base",
    "kserve": f"{KF}/applications/kserve/kserve",
    "katib": f"{KF}/applications/katib/upstream/installs/katib-standalone",
    "training-operator": f"{KF}/applications/training-operator/upstream/overlays/standalone",
    "argo-workflows": "github/argoproj/argo-workflows/v3.7.3/manifests/cluster-install",
}
FILES = {
    "local-path": "github/rancher/local-path-provisioner/v0.0.37/deploy/local-path-storage.yaml",
    "device-plugin": "github/NVIDIA/k8s-device-plugin/v0.20.0/deployments/static/nvidia-device-plugin.yml",
    "gpu-feature-discovery":
        "github/NVIDIA/k8s-device-plugin/v0.20.0/deployments/static/gpu-feature-discovery-daemonset.yaml",
    "dcgm-exporter": "github/NVIDIA/dcgm-exporter/4.5.3-4.8.2/dcgm-exporter.yaml",
}
@pytest.fixture(scope="session")
def upstream_sets(mirror_dir: Path, upstream_builds) -> dict[str, list[dict]]:
    """name -> objects, in upstream order. Callers get deep copies via `upstream`."""
    upstream_builds.prebuild(TREES.values())
    built = {name: upstream_builds(rel) for name, rel in TREES.items()}
    for name, rel in FILES.items():
        built[name] = parse((mirror_dir / rel).read_text())
    return built


@pytest.fixture
def upstream(upstream_sets):
    """A function name -> fresh deep copy of that upstream set's objects."""
    return lambda name: copy.deepcopy(upstream_sets[name])


@pytest.fixture
def find():
    def _find(objs: list[dict], kind: str, name: str) -> dict:
        hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(hits) == 1, f"{kind} {name}: {len(hits)} found"
        return hits[0]
    return _find
