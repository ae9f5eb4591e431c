"""Transforms on real upstream objects (kustomize output of the mirror trees, NVIDIA and rancher
manifests): registry rewrite and image listing, Pod Security namespaces, labels, GPU scheduling."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from kubeforge.errors import KubeforgeError
from kubeforge.images import parse_image
from kubeforge.transforms import (
    common_labels,
    ensure_namespaces,
    gpu_scheduling,
    list_images,
    rewrite_registry,
)

REG = "registry.example.com:5000/mirror"
TREES = ["kserve", "knative-serving", "katib", "istio", "cert-manager", "argo-workflows", "argo-kfp",
         "jupyter-web-app", "nvidia-device-plugin", "dcgm-exporter", "local-path"]
# Registry hosts of the upstream images; after the rewrite none may remain outside documentation.
UPSTREAM_HOSTS = re.compile(r"(?<![\w.-])(?:(?:gcr|quay|ghcr|nvcr|docker)\.io|registry\.k8s\.io)/[a-z0-9]")


def _dump(objs) -> str:
    return json.dumps(objs, sort_keys=False)


def _find(objs, kind, name):
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert found, f"{kind}/{name} not in the upstream set"
    return found[0]


def _strings(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, (*path, i))
    elif isinstance(node, str):
        yield path, node


def _moved(old: str, new: str) -> bool:
    """Independent oracle for one rewritten token: REG/<old without its registry host>."""
    if not new.startswith(REG + "/"):
        return False
    tail = new[len(REG) + 1:]
    host = old[: -len(tail) - 1] if old.endswith("/" + tail) else None
    return old == tail or tail == "library/" + old or (host is not None and ("." in host or ":" in host))


def _diffs(a, b, path=()):
    """(path, old, new) of every differing leaf; structure (keys, order, lengths, types) must match."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        for k in a:
            yield from _diffs(a[k], b[k], (*path, k))
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _diffs(x, y, (*path, i))
    elif a != b:
        assert isinstance(a, str) and isinstance(b, str), path
        yield path, a, b


@pytest.mark.parametrize("tree", TREES)
def test_every_image_moves_to_the_mirror_and_nothing_else_changes(upstream, tree):
    before = upstream[tree]
    snapshot = _dump(before)
    images = list_images(before)
    assert images, f"{tree}: no images found"
    after = rewrite_registry(before, REG)

    moved = list_images(after)
    assert len(moved) == len(images)
    assert all(i.startswith(REG + "/") for i in moved), [i for i in moved if not i.startswith(REG + "/")]
    assert _dump(before) == snapshot, "the input objects were modified"

    changed = 0
    for old_obj, new_obj in zip(before, after, strict=True):
        for path, old, new in _diffs(old_obj, new_obj):
            # Text may hold an image among other words (JSON/YAML in ConfigMaps, `--flag=IMAGE`):
            # split on separators; every differing token must be an image moved by the rule.
            old_tokens, new_tokens = (re.split(r"([\s\"'=,]+)", s) for s in (old, new))
            assert len(old_tokens) == len(new_tokens), (old_obj["metadata"]["name"], path)
            for o, n in zip(old_tokens, new_tokens, strict=True):
                if o != n:
                    assert parse_image(o) and _moved(o, n), (old_obj["kind"], old_obj["metadata"]["name"], path, o, n)
                    changed += 1
    assert changed >= len(images)


def test_every_image_field_is_listed(all_objects):
    """Brute force: every string under a key named `image` anywhere outside CRDs is in the list."""
    listed = set(list_images(all_objects))
    seen = {s for o in all_objects if o["kind"] != "CustomResourceDefinition"
            for path, s in _strings(o) if path and path[-1] == "image" and s != "auto"}
    assert seen
    assert {parse_image(s).canonical() for s in seen} <= listed


def test_no_upstream_registry_left_but_istios_documentary_values(all_objects):
    after = rewrite_registry(all_objects, REG)
    left = {(o["kind"], o["metadata"]["name"], path[:2])
            for o in after if o["kind"] != "CustomResourceDefinition"
            for path, s in _strings(o) if UPSTREAM_HOSTS.search(s)}
    # istio-system/values records the Helm values for debugging; its own annotation says editing
    # it has no effect, so it is left as upstream wrote it (the live hub is istio-sidecar-injector).
    assert left == {("ConfigMap", "values", ("data", "merged-values")),
                    ("ConfigMap", "values", ("data", "original-values"))}


def test_known_hidden_images_are_rewritten(upstream):
    kserve = rewrite_registry(upstream["kserve"], REG)
    sklearn = _find(kserve, "ClusterServingRuntime", "kserve-sklearnserver")
    assert sklearn["spec"]["containers"][0]["image"] == f"{REG}/kserve/sklearnserver:v0.16.0"
    hf = _find(kserve, "ClusterServingRuntime", "kserve-huggingfaceserver-multinode")
    assert hf["spec"]["workerSpec"]["containers"][0]["image"] == f"{REG}/kserve/huggingfaceserver:v0.16.0-gpu"
    isvc = {k: json.loads(v) for k, v in _find(kserve, "ConfigMap", "inferenceservice-config")["data"].items()
            if not k.startswith("_")}
    assert isvc["storageInitializer"]["image"] == f"{REG}/kserve/storage-initializer:v0.16.0"
    assert {isvc[k]["image"] for k in ("logger", "batcher", "agent")} == {f"{REG}/kserve/agent:v0.16.0"}
    assert isvc["router"]["image"] == f"{REG}/kserve/router:v0.16.0"
    assert isvc["localModel"]["defaultJobImage"] == f"{REG}/kserve/storage-initializer:v0.16.0"
    assert isvc["explainers"]["art"] == {"image": f"{REG}/kserve/art-explainer", "defaultImageVersion": "latest"}
    assert isvc["ingress"]["kserveIngressGateway"] == "kserve/kserve-ingress-gateway"   # a gateway, not an image
    assert _find(kserve, "ClusterStorageContainer", "default")["spec"]["container"]["image"] == \
        f"{REG}/kserve/storage-initializer:v0.16.0"

    queue = f"{REG}/knative-releases/knative.dev/serving/cmd/queue@sha256:"
    knative = rewrite_registry(upstream["knative-serving"], REG)
    assert _find(knative, "ConfigMap", "config-deployment")["data"]["queue-sidecar-image"].startswith(queue)
    assert _find(knative, "Image", "queue-proxy")["spec"]["image"].startswith(queue)

    katib = rewrite_registry(upstream["katib"], REG)
    config = _find(katib, "ConfigMap", "katib-config")["data"]["katib-config.yaml"]
    assert f"image: {REG}/kubeflow/katib/file-metrics-collector:v0.19.0" in config
    assert f"image: {REG}/kubeflow/katib/suggestion-hyperopt:v0.19.0" in config
    assert f"image: {REG}/kubeflow/katib/earlystopping-medianstop:v0.19.0" in config
    trials = _find(katib, "ConfigMap", "trial-templates")["data"]
    assert f"image: {REG}/kubeflow/katib/pytorch-mnist-cpu:v0.19.0" in trials["defaultTrialTemplate.yaml"]

    argo = rewrite_registry(upstream["argo-kfp"], REG)
    args = _find(argo, "Deployment", "workflow-controller")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--executor-image") + 1] == f"{REG}/argoproj/argoexec:v3.7.3"

    cm = rewrite_registry(upstream["cert-manager"], REG)
    ctl = _find(cm, "Deployment", "cert-manager")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--acme-http01-solver-image={REG}/jetstack/cert-manager-acmesolver:v1.19.4" in ctl

    istio = rewrite_registry(upstream["istio"], REG)
    injector = _find(istio, "ConfigMap", "istio-sidecar-injector")["data"]
    assert json.loads(injector["values"])["global"]["hub"] == f"{REG}/istio-release"
    assert f"image: {REG}/library/busybox:1.28" in injector["config"]   # grpc-simple template

    jwa = rewrite_registry(upstream["jupyter-web-app"], REG)
    spawner_cm, = [o for o in jwa if o["kind"] == "ConfigMap" and "spawner_ui_config.yaml" in o.get("data", {})]
    assert spawner_cm["metadata"]["name"].startswith("jupyter-web-app-config-")   # kustomize hash suffix
    text = spawner_cm["data"]["spawner_ui_config.yaml"]
    spawner = yaml.safe_load(text)["spawnerFormDefaults"]
    nb = f"{REG}/kubeflow/kubeflow/notebook-servers"
    assert spawner["image"]["value"] == f"{nb}/jupyter-scipy:v1.10.0"
    assert f"{nb}/jupyter-pytorch-cuda-full:v1.10.0" in spawner["image"]["options"]
    assert spawner["imageGroupOne"]["options"] == [f"{nb}/codeserver-python:v1.10.0"]
    assert spawner["imageGroupTwo"]["value"] == f"{nb}/rstudio-tidyverse:v1.10.0"
    assert "# Configuration file for the Kubeflow Notebooks UI." in text   # edited in place
    assert "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-pytorch-cuda-full:v1.10.0" in \
        list_images(upstream["jupyter-web-app"])

    local = rewrite_registry(upstream["local-path"], REG)
    assert f"image: {REG}/library/busybox\n" in _find(local, "ConfigMap", "local-path-config")["data"]["helperPod.yaml"]


def test_istio_sidecar_image_is_listed_from_hub_and_tag(upstream):
    # The injected proxy comes from the injector's values (hub/proxyv2:tag), not from any
    # Deployment; in kubeflow/manifests 26.03 it differs from the gateway's image tag.
    images = list_images(upstream["istio"])
    assert "gcr.io/istio-release/proxyv2:1.29.0" in images
    assert "docker.io/library/busybox:1.28" in images


def test_transforms_are_deterministic_and_pure(all_objects):
    snapshot = _dump(all_objects)

    def render(objs):
        objs = ensure_namespaces(objs, {"kubeflow": "baseline", "argo": "baseline", "cert-manager": "restricted"})
        objs = common_labels(objs, "everything", "1.0")
        objs = rewrite_registry(objs, REG)
        return _dump(gpu_scheduling(objs, [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                                    {"nvidia.com/gpu.present": "true"}))

    assert render(all_objects) == render(all_objects)
    assert _dump(all_objects) == snapshot


def test_ensure_namespaces_creates_and_labels(upstream):
    level = {"knative-serving": "restricted", "serving-extra": "baseline"}
    out = ensure_namespaces(upstream["knative-serving"], level)
    assert len(out) == len(upstream["knative-serving"]) + 1
    created = out[0]
    assert created == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "serving-extra", "labels": {
        "pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "baseline"}}}
    ns = _find(out, "Namespace", "knative-serving")["metadata"]["labels"]
    assert ns["istio-injection"] == "enabled"                          # upstream labels kept
    assert ns["app.kubernetes.io/version"] == "1.21.1"
    assert (ns["pod-security.kubernetes.io/enforce"], ns["pod-security.kubernetes.io/warn"]) == ("restricted", "restricted")
    # Katib ships the kubeflow Namespace with the label its metrics collector webhook needs.
    katib = _find(ensure_namespaces(upstream["katib"], {"kubeflow": "baseline"}), "Namespace", "kubeflow")
    assert katib["metadata"]["labels"]["katib.kubeflow.org/metrics-collector-injection"] == "enabled"
    assert katib["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    # Argo's cluster install ships no Namespace: it is created.
    argo = ensure_namespaces(upstream["argo-workflows"], {"argo": "baseline"})
    assert [o["metadata"]["name"] for o in argo if o["kind"] == "Namespace"] == ["argo"]


KFP_NAMESPACE = "github/kubeflow/manifests/26.03/applications/pipeline/upstream/cluster-scoped-resources/namespace.yaml"


def test_the_declared_level_wins_over_a_weaker_upstream_one(mirror_dir):
    """Kubeflow Pipelines ships its namespace with enforce: baseline (and warn: restricted). A
    component declaring that namespace restricted gets enforce: restricted, not upstream's baseline;
    upstream's other labels stay. The name is the `$(kfp-cluster-scoped-namespace)` var, which the
    kustomization resolves to its `namespace: kubeflow` (the build itself needs remote Argo bases)."""
    ns = yaml.safe_load((mirror_dir / KFP_NAMESPACE).read_text())
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    ns["metadata"]["name"] = "kubeflow"
    out = ensure_namespaces([ns], {"kubeflow": "restricted"}, file="components/x/component.yaml")
    labels = _find(out, "Namespace", "kubeflow")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline", "input untouched"
    # Declared as strict as upstream: the same level comes out.
    same = ensure_namespaces([ns], {"kubeflow": "baseline"})
    assert _find(same, "Namespace", "kubeflow")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_ensure_namespaces_never_loosens_upstream(upstream):
    with pytest.raises(KubeforgeError) as err:
        ensure_namespaces(upstream["knative-serving"], {"knative-serving": "baseline"},
                          file="components/knative-serving/component.yaml")
    e = err.value
    assert "upstream enforces restricted" in e.message
    assert (e.file, e.field) == ("components/knative-serving/component.yaml", "namespaces.knative-serving")
    assert "knative-serving: restricted" in e.fix


@pytest.mark.parametrize("namespaces, field", [
    ({"kubeflow": "strict"}, "namespaces.kubeflow"),
    ({"Kube_Flow": "baseline"}, "namespaces"),
])
def test_ensure_namespaces_bad_input(namespaces, field):
    with pytest.raises(KubeforgeError) as err:
        ensure_namespaces([], namespaces, file="components/x/component.yaml")
    assert (err.value.field, err.value.file) == (field, "components/x/component.yaml")


def test_common_labels_touch_metadata_only(upstream):
    before = upstream["istio"] + upstream["nvidia-device-plugin"]
    after = common_labels(before, "istio", "1.29.0")
    ours = {"app.kubernetes.io/part-of": "kubeforge", "kubeforge.io/component": "istio",
            "kubeforge.io/component-version": "1.29.0"}
    for old, new in zip(before, after, strict=True):
        assert new["metadata"]["labels"].items() >= ours.items()
        kept = {k: v for k, v in (old["metadata"].get("labels") or {}).items() if k not in ours}
        assert {k: v for k, v in new["metadata"]["labels"].items() if k not in ours} == kept
        # Everything but metadata.labels is identical: selectors and pod templates included.
        strip = lambda o: {**o, "metadata": {k: v for k, v in o["metadata"].items() if k != "labels"}}  # noqa: E731
        assert strip(new) == strip(old)


@pytest.mark.parametrize("component, version, field", [("", "1.0", "name"), ("istio", "1.29.0+build/x", "version")])
def test_common_labels_bad_values(component, version, field):
    with pytest.raises(KubeforgeError) as err:
        common_labels([], component, version)
    assert err.value.field == field


def test_gpu_scheduling_on_nvidia_daemonsets(upstream):
    objs = upstream["nvidia-device-plugin"] + upstream["dcgm-exporter"]
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    extra = {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
    selector = {"nvidia.com/gpu.present": "true"}
    once = gpu_scheduling(objs, [gpu, extra, extra], selector)
    twice = gpu_scheduling(once, [gpu, extra], selector)
    assert _dump(once) == _dump(twice)                               # idempotent, no duplicates
    daemonsets = 0
    for old, new in zip(objs, once, strict=True):
        if old["kind"] != "DaemonSet":
            assert new is old
            continue
        daemonsets += 1
        pod, old_pod = new["spec"]["template"]["spec"], old["spec"]["template"]["spec"]
        tolerations = pod["tolerations"]
        assert tolerations.count(gpu) == 1 and tolerations.count(extra) == 1
        assert tolerations[: len(old_pod.get("tolerations") or [])] == (old_pod.get("tolerations") or [])
        assert pod["nodeSelector"].items() >= selector.items()
        assert new["spec"]["selector"] == old["spec"]["selector"]
    assert daemonsets >= 5


@pytest.mark.parametrize("tolerations, node_selector, field", [
    ([{"key": "nvidia.com/gpu", "operator": "Maybe"}], {}, "gpu.tolerations[0]"),
    ([{"key": "nvidia.com/gpu", "effect": "NoRun"}], {}, "gpu.tolerations[0]"),
    ([{"color": "green"}], {}, "gpu.tolerations[0]"),
    ("nvidia.com/gpu", {}, "gpu.tolerations"),
    ([], {"nvidia.com/gpu.present": True}, "gpu.nodeSelector"),
])
def test_gpu_scheduling_bad_input(tolerations, node_selector, field):
    with pytest.raises(KubeforgeError) as err:
        gpu_scheduling([], tolerations, node_selector, file="profiles/gpu-onprem.yaml")
    assert (err.value.field, err.value.file) == (field, "profiles/gpu-onprem.yaml")
