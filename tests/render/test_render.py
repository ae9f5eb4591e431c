"""Render and validate every shipped profile from the real upstream mirror.

Object counts and kinds are checked against an independent `kubectl kustomize` of the same
mirror trees (and a plain YAML read of the manifests), so the render drops or invents nothing
beyond the documented differences: namespaces owned by another component, and generated objects.
"""
from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
from shipped_profiles import distinct

from kubeforge.errors import KubeforgeError
from kubeforge.model import LABEL_COMPONENT, LABEL_PART_OF
from kubeforge.plan import make_plan
from kubeforge.profile import load_profile
from kubeforge.render import render, selected_sources, write_dir
from kubeforge.transforms import list_images
from kubeforge.validate import validate

# Without `helm` the GPU Operator's chart cannot render (tested below); one profile per platform.
RENDERABLE = [p for p in distinct() if p != "gpu-operator"]




@pytest.fixture(scope="module")
def full(cache, mirror_dir):
    plan = make_plan(load_profile("full"))
    stats: dict = {}
    rendered = render(plan, mirror=str(mirror_dir), stats=stats)
    assert stats["hits"] == 0  # a cold render: nothing came from the cache
    return rendered


def _upstream(plan, name, mirror: Path, builds) -> list[dict]:
    """The component's upstream objects, read independently of kubeforge's sources/render."""
    import yaml

    out = []
    for s in selected_sources(plan.components[name]):
        base = s.repo.mirror_path("")
        if s.kind == "kustomize":
            out += builds(f"{base}{s.root}/{s.path}")
        elif not s.raw:             # raw sources are files generate.py reads, not manifests
            out += [d for d in yaml.safe_load_all((mirror / base / s.path).read_text()) if d]
    return out


def _kinds(objs) -> collections.Counter:
    return collections.Counter(o["kind"] for o in objs)


@pytest.mark.parametrize("name", ["cert-manager", "istio", "knative-serving", "kserve", "katib",
                                  "training-operator", "argo-workflows", "storage",
                                  "nvidia-device-plugin", "dcgm-exporter"])
def test_component_objects_match_upstream(full, mirror_dir, upstream_builds, name):
    plan = full.plan
    comp = plan.components[name].component
    ours = full.components[name].objects
    up = _upstream(plan, name, mirror_dir, upstream_builds)
    expected = _kinds(up)
    # Documented differences: upstream Namespaces of namespaces this component does not own are
    # dropped; Namespaces it owns but upstream lacks are added; generated objects are added.
    for o in up:
        if o["kind"] == "Namespace" and o["metadata"]["name"] not in comp.namespaces:
            expected["Namespace"] -= 1
    upstream_ns = {o["metadata"]["name"] for o in up if o["kind"] == "Namespace"}
    expected["Namespace"] += len(set(comp.namespaces) - upstream_ns)
    # With gpu-monitoring on, dcgm-exporter makes the ConfigMap of its counters (kubeforge.gpu.dcgm);
    # with gpu-sharing on, the device plugin makes the sharing config its pods mount; no other of
    # these components generates extra objects in the full profile.
    if name in ("dcgm-exporter", "nvidia-device-plugin"):
        expected["ConfigMap"] += 1
    assert _kinds(ours) == +expected, name


def test_known_anchor_counts(full):
    k = {n: _kinds(c.objects) for n, c in full.components.items()}
    assert k["kserve"]["CustomResourceDefinition"] == 13
    assert k["kserve"]["ClusterServingRuntime"] == 11
    assert k["cert-manager"]["CustomResourceDefinition"] == 6
    assert k["istio"]["CustomResourceDefinition"] == 14
    assert k["knative-serving"]["CustomResourceDefinition"] == 12
    assert k["argo-workflows"]["CustomResourceDefinition"] == 8
    assert k["training-operator"]["CustomResourceDefinition"] == 6
    assert k["katib"]["CustomResourceDefinition"] == 3
    # Exactly one owner of the shared kubeflow namespace.
    owners = [n for n, c in full.components.items()
              for o in c.objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "kubeflow"]
    assert owners == ["kubeflow-namespace"]


def test_every_object_is_labelled_and_namespaces_carry_pod_security(full):
    for name, rc in full.components.items():
        for o in rc.objects:
            labels = o["metadata"].get("labels", {})
            assert labels.get(LABEL_PART_OF) == "kubeforge" and labels.get(LABEL_COMPONENT) == name, o["metadata"]
            if o["kind"] == "Namespace":
                assert labels.get("pod-security.kubernetes.io/enforce") in ("privileged", "baseline", "restricted")


def test_kserve_mode_and_default_storage_class(full):
    import json

    cm = next(o for o in full.components["kserve"].objects
              if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "inferenceservice-config")
    assert json.loads(cm["data"]["deploy"]) == {"defaultDeploymentMode": "Knative"}
    sc = next(o for o in full.components["storage"].objects if o["kind"] == "StorageClass")
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    helper = next(o for o in full.components["storage"].objects
                  if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "local-path-config")
    assert "busybox:1.37.0" in helper["data"]["helperPod.yaml"]


def test_apply_order_puts_namespaces_and_crds_first_in_each_wave(full):
    objs = full.objects()
    wave_of = {n: c.wave for n, c in full.components.items()}
    seen_other = set()
    for o in objs:
        w = wave_of[o["metadata"]["labels"][LABEL_COMPONENT]]
        if o["kind"] in ("Namespace", "CustomResourceDefinition"):
            assert w not in seen_other, f"{o['kind']} {o['metadata']['name']} after other objects of wave {w}"
        else:
            seen_other.add(w)
    waves = [wave_of[o["metadata"]["labels"][LABEL_COMPONENT]] for o in objs]
    assert waves == sorted(waves)


@pytest.mark.parametrize("profile", RENDERABLE)
def test_profile_renders_and_validates_with_zero_errors(full, mirror_dir, profile):
    plan = make_plan(load_profile(profile))
    rendered = render(plan, mirror=str(mirror_dir))
    report = validate(rendered.objects(), plan.profile.kubernetesVersion)
    assert report.errors == [], report.summary()
    assert {n for n in rendered.components} == set(plan.components)


def test_render_is_deterministic_and_cached(full, mirror_dir, tmp_path):
    plan = full.plan
    stats: dict = {}
    again = render(plan, mirror=str(mirror_dir), stats=stats)
    assert stats == {"hits": len(plan.components), "misses": []}
    fresh = render(plan, mirror=str(mirror_dir), use_cache=False)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_dir(full, a)
    write_dir(again, b)
    write_dir(fresh, c)
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir()) == sorted(p.name for p in c.iterdir())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes() == (c / f).read_bytes(), f


def test_registry_override_rewrites_every_image(cache, mirror_dir, tmp_path):
    p = tmp_path / "airgap.yaml"
    p.write_text("extends: full\nregistry: registry.example.internal:5000/mirror\n")
    rendered = render(make_plan(load_profile(str(p))), mirror=str(mirror_dir))
    images = list_images(rendered.objects())
    assert len(images) > 40
    assert all(i.startswith("registry.example.internal:5000/mirror/") for i in images), images
    report = validate(rendered.objects(), "1.34")
    assert report.errors == []


def test_bad_registry_is_a_clear_error(cache, mirror_dir, tmp_path):
    p = tmp_path / "badreg.yaml"
    p.write_text("extends: base\nregistry: 'https://Registry Example/'\n")
    with pytest.raises(KubeforgeError) as e:
        render(make_plan(load_profile(str(p))), mirror=str(mirror_dir))
    assert e.value.field == "registry" and e.value.file.endswith("badreg.yaml")


def test_gpu_operator_without_helm_is_a_clear_error(cache, mirror_dir, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(os.__file__))  # no helm anywhere on PATH
    with pytest.raises(KubeforgeError) as e:
        render(make_plan(load_profile("gpu-operator")), mirror=str(mirror_dir))
    assert "needs the `helm` executable" in e.value.message and "kubeforge up" in e.value.fix


def test_skip_helm_keeps_the_components_generated_objects(cache, mirror_dir, monkeypatch):
    """Pulumi installs the chart itself and teardown finds it by label: both render with skip_helm."""
    monkeypatch.setenv("PATH", os.path.dirname(os.__file__))
    rendered = render(make_plan(load_profile("gpu-operator")), mirror=str(mirror_dir), skip_helm=True)
    ops = rendered.components["gpu-operator"].objects
    assert [o["metadata"]["name"] for o in ops if o["kind"] == "Namespace"] == ["gpu-operator"]
    assert not [o for o in ops if o["kind"] in ("DaemonSet", "Deployment")]  # the chart's, not rendered
