"""The image reference grammar, the mirror rule and the registry check, on literal references."""
from __future__ import annotations

import json

import pytest

from kubeforge.errors import KubeforgeError
from kubeforge.images import parse_image, rewrite_ref, validate_registry
from kubeforge.transforms import list_images, rewrite_registry

QUEUE = ("gcr.io/knative-releases/knative.dev/serving/cmd/queue"
         "@sha256:40957d3ced3b185b7a78bbd771be69b0a13137dcbee5ff7f82ae738b56037d9c")


@pytest.mark.parametrize("ref, canonical", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("docker.io/busybox:1.36", "docker.io/library/busybox:1.36"),
    ("index.docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36"),
    ("kserve/sklearnserver:v0.16.0", "docker.io/kserve/sklearnserver:v0.16.0"),
    ("docker.io/kserve/sklearnserver:v0.16.0", "docker.io/kserve/sklearnserver:v0.16.0"),
    (QUEUE, QUEUE),
    ("nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless", "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/team/app:1", "localhost:5000/team/app:1"),
    ("[fd00::1]:5000/app:1", "[fd00::1]:5000/app:1"),
    ("quay.io/a/b:tag@sha256:" + "0" * 64, "quay.io/a/b:tag@sha256:" + "0" * 64),
])
def test_parse_and_canonical_form(ref, canonical):
    parsed = parse_image(ref)
    assert parsed is not None, ref
    assert parsed.canonical() == canonical


@pytest.mark.parametrize("text", [
    "", "IfNotPresent", "Always", "http://registry/x", "$(IMAGE)", "{{ .ProxyImage }}", "a//b", "a/",
    "busybox:", "busybox@sha256:123", "kserve/X", "x:-bad", "has space:1", "/abs/path",
])
def test_not_images(text):
    assert parse_image(text) is None


@pytest.mark.parametrize("ref, moved", [
    ("docker.io/kserve/sklearnserver:v0.16.0", "REG/kserve/sklearnserver:v0.16.0"),
    ("kserve/sklearnserver:v0.16.0", "REG/kserve/sklearnserver:v0.16.0"),
    (QUEUE, "REG/knative-releases/knative.dev/serving/cmd/queue@" + QUEUE.split("@")[1]),
    ("busybox:1.36", "REG/library/busybox:1.36"),
    ("docker.io/library/busybox", "REG/library/busybox"),          # no tag stays no tag
    ("localhost:5000/team/app:1", "REG/team/app:1"),
])
def test_mirror_rule(ref, moved):
    registry = "registry.example.com:5000/mirror"
    assert rewrite_ref(ref, registry) == moved.replace("REG", registry)


def test_rewriting_twice_changes_nothing():
    registry = "registry.example.com/mirror"
    once = rewrite_ref("busybox:1.36", registry)
    assert rewrite_ref(once, registry) == once


@pytest.mark.parametrize("value, normalized", [
    ("registry.example.com", "registry.example.com"),
    ("registry.example.com/", "registry.example.com"),
    ("registry.local:5000", "registry.local:5000"),
    ("registry.example.com/mirror/ml", "registry.example.com/mirror/ml"),
    ("localhost", "localhost"),
    ("10.0.0.5:5000", "10.0.0.5:5000"),
    ("harbor.corp.example.com/kubeforge", "harbor.corp.example.com/kubeforge"),
])
def test_valid_registries(value, normalized):
    assert validate_registry(value) == normalized


@pytest.mark.parametrize("value, words", [
    ("", "empty"),
    (None, "empty"),
    ("https://registry.example.com", "is a URL"),
    ("mirror", "Docker Hub namespace"),
    ("registry.example.com/Mirror", "not a valid registry name"),
    ("registry.example.com/mirror:1.0", "not a valid registry name"),
    ("registry.example.com:99999", "invalid port"),
    ("registry example.com", "not a valid registry name"),
    ("registry.example.com//x", "not a valid registry name"),
])
def test_bad_registry_is_a_clear_error(value, words):
    with pytest.raises(KubeforgeError) as err:
        validate_registry(value, file="profiles/airgap.yaml")
    e = err.value
    assert words in e.message
    assert (e.file, e.field, e.exit_code) == ("profiles/airgap.yaml", "registry", 2)
    assert e.fix and e.render().startswith("error: profiles/airgap.yaml: registry: ")


def test_rewrite_registry_checks_the_registry_before_touching_anything():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    with pytest.raises(KubeforgeError, match="Docker Hub namespace"):
        rewrite_registry([pod], "mirror", file="profiles/airgap.yaml")
    assert pod["spec"]["containers"][0]["image"] == "busybox:1.36"


def test_two_sources_landing_on_one_mirror_reference_is_an_error():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "quay.io/org/app:1"},
                                   {"name": "b", "image": "ghcr.io/org/app:1"}]}}
    with pytest.raises(KubeforgeError, match="would both become registry.local/org/app:1"):
        rewrite_registry([pod], "registry.local")


def test_locations_outside_upstream_data():
    """Rules the shipped manifests do not exercise: env *_IMAGE, `--image=`, Argo executor config,
    Istio's gateway `auto` placeholder, a bare word under an *image key (not an image)."""
    objs = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
         "spec": {"template": {"metadata": {"annotations": {"sidecar.istio.io/proxyImage": "docker.io/istio/proxyv2:1.29.0"}},
                               "spec": {"containers": [
                                   {"name": "gw", "image": "auto"},
                                   {"name": "c", "image": "ghcr.io/org/ctl:1",
                                    "args": ["--image=quay.io/org/worker:2", "--image-pull-policy=Always", "--use-image", "true"],
                                    "env": [{"name": "QUEUE_SIDECAR_IMAGE", "value": "gcr.io/org/queue:3"},
                                            {"name": "IMAGE_PULL_POLICY", "value": "IfNotPresent"},
                                            {"name": "NOT_AN_IMAGE_NAME", "value": "gcr.io/org/other:9"}]}]}}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "workflow-controller-configmap"},
         "data": {"executor": "image: quay.io/argoproj/argoexec:v3.7.3\nimagePullPolicy: IfNotPresent\n",
                  "enable-image": "true"}},
    ]
    assert list_images(objs) == sorted([
        "docker.io/istio/proxyv2:1.29.0", "ghcr.io/org/ctl:1", "quay.io/org/worker:2", "gcr.io/org/queue:3",
        "quay.io/argoproj/argoexec:v3.7.3"])
    out = rewrite_registry(objs, "reg.local")
    tpl = out[0]["spec"]["template"]
    c = tpl["spec"]["containers"]
    assert tpl["metadata"]["annotations"]["sidecar.istio.io/proxyImage"] == "reg.local/istio/proxyv2:1.29.0"
    assert c[0]["image"] == "auto"
    assert c[1]["args"] == ["--image=reg.local/org/worker:2", "--image-pull-policy=Always", "--use-image", "true"]
    assert [e["value"] for e in c[1]["env"]] == ["reg.local/org/queue:3", "IfNotPresent", "gcr.io/org/other:9"]
    assert out[1]["data"] == {"executor": "image: reg.local/argoproj/argoexec:v3.7.3\nimagePullPolicy: IfNotPresent\n",
                              "enable-image": "true"}


def _pod(image: str, **extra) -> dict:
    return {"containers": [{"name": "main", "image": image}], **extra}


def test_every_pod_template_kind():
    """Pod templates of every workload kind, including init and ephemeral containers."""
    objs = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
         "spec": _pod("a/pod:1", initContainers=[{"name": "i", "image": "a/init:1"}],
                      ephemeralContainers=[{"name": "e", "image": "a/debug:1"}])},
        *({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": kind.lower()},
           "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"spec": _pod(f"a/{kind.lower()}:1")}}}
          for kind in ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet")),
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
         "spec": {"template": {"spec": _pod("a/job:1")}}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
         "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": _pod("a/cron:1")}}}}},
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": {"spec": _pod("a/tpl:1")}},
    ]
    names = ["pod", "init", "debug", "deployment", "daemonset", "statefulset", "replicaset", "job", "cron", "tpl"]
    assert list_images(objs) == sorted(f"docker.io/a/{n}:1" for n in names)
    assert list_images(rewrite_registry(objs, "reg.local")) == sorted(f"reg.local/a/{n}:1" for n in names)


def test_embedded_yaml_with_several_documents_and_a_schema_is_left_alone():
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"},
           "spec": {"versions": [{"schema": {"openAPIV3Schema": {"properties": {"image": {"default": "a/b:1"}}}}}]}}
    trials = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "my-trials", "labels": {"katib.kubeflow.org/component": "trial-templates"}},
              "data": {"two.yaml": "kind: Job\nspec:\n  template:\n    spec:\n      containers:\n"
                                   "      - {name: a, image: 'a/one:1'}\n---\nkind: Job\nspec:\n  template:\n"
                                   "    spec:\n      containers:\n      - {name: b, image: \"a/two:1\"}\n"}}
    out = rewrite_registry([crd, trials], "reg.local")
    assert out[0] is crd
    assert out[1]["data"]["two.yaml"] == trials["data"]["two.yaml"].replace("a/one", "reg.local/a/one").replace(
        "a/two", "reg.local/a/two")


def test_text_that_cannot_be_edited_in_place_is_reserialized():
    # JSON may escape '/', so the image is not found verbatim in the text: the document is dumped again.
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "inferenceservice-config"},
          "data": {"agent": '{"image": "kserve\\/agent:v0.16.0", "cpuLimit": "1"}'}}
    out = rewrite_registry([cm], "reg.local")[0]["data"]["agent"]
    assert json.loads(out) == {"image": "reg.local/kserve/agent:v0.16.0", "cpuLimit": "1"}
