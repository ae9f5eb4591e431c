"""Validation of real upstream output: the kustomize builds and plain manifests kubeforge installs."""
from __future__ import annotations

import importlib.util

import pytest

from kubeforge.plan import make_plan
from kubeforge.profile import load_profile
from kubeforge.render import Context
from kubeforge.secrets import Store
from kubeforge.validate import PSA_PREFIX, validate

VERSIONS = ["1.32", "1.33", "1.34", "1.35"]


def _as_rendered(sets: dict[str, list[dict]]) -> list[dict]:
    """All upstream sets together, with what the spine does that validation depends on: each
    Namespace once (katib and training-operator both ship `kubeflow`) with a Pod Security level
    (what components' `namespaces:` give; upstream labels are kept), and the image-pinning
    transforms of argo-workflows (its kustomize tree tags images :latest) and storage (the
    local-path helper pod's image is untagged), and katib's (its MySQL password, upstream's
    "test", becomes a per-install secret)."""
    out, seen = [], set()
    pinned_by = {"argo-workflows": "argo-workflows", "local-path": "storage", "katib": "katib"}
    for name, objs in sets.items():
        if name in pinned_by:
            objs = _component_transform(pinned_by[name], objs)
        for o in objs:
            if o["kind"] == "Namespace":
                if o["metadata"]["name"] in seen:
                    continue
                seen.add(o["metadata"]["name"])
                o["metadata"].setdefault("labels", {}).setdefault(PSA_PREFIX + "enforce", "baseline")
            out.append(o)
    return out


def _component_transform(name: str, objs: list[dict]) -> list[dict]:
    """The component's real generate.py transform, with the dev profile's plan as context."""
    plan = make_plan(load_profile("dev"))
    pc = plan.components[name]
    spec = importlib.util.spec_from_file_location(f"test_validate_{name.replace('-', '_')}",
                                                  pc.component.generate_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.transform(objs, Context(plan.profile, plan, pc, pc.values, store=Store()))


@pytest.fixture
def everything(upstream, upstream_sets):
    return {name: upstream(name) for name in upstream_sets}


@pytest.mark.parametrize("version", VERSIONS)
def test_upstream_validates_with_zero_errors(everything, version):
    objs = _as_rendered(everything)
    report = validate(objs, version)
    assert report.errors == [], "\n" + report.text()
    assert report.objects == len(objs) > 300
    # Only KServe's ART explainer image (a :latest default inside inferenceservice-config) needs
    # the allowlist, and none of its entries is stale.
    assert [(f.rule, f.kind, f.name) for f in report.allowed] == [
        ("image-latest", "ConfigMap", "inferenceservice-config")]
    assert not [f for f in report.warnings if f.rule == "allowlist-stale"]
    # Upstream CRDs over 256 KiB are flagged for server-side apply (KServe, training operator).
    big = {f.name for f in report.warnings if f.rule == "object-size"}
    assert {"inferenceservices.serving.kserve.io", "pytorchjobs.kubeflow.org"} <= big
    assert all(n.endswith((".kserve.io", ".kubeflow.org")) for n in big)


def test_every_custom_resource_was_checked_against_its_crd(everything):
    """No custom resource slips through: a wrong field in each of them is reported."""
    objs = _as_rendered(everything)
    crs = [o for o in objs if "." in o["apiVersion"].split("/")[0]
           and not o["apiVersion"].split("/")[0].endswith(".k8s.io")]
    assert {o["kind"] for o in crs} >= {"Certificate", "Issuer", "ClusterServingRuntime", "Gateway",
                                        "AuthorizationPolicy", "Image"}
    for o in crs:
        o["spec"]["notAField"] = 1
    report = validate(objs, "1.34")
    flagged = {(f.kind, f.namespace, f.name) for f in report.errors
               if f.rule == "crd-schema" and f.path == "spec.notAField"}
    assert flagged == {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in crs}
    assert {f.message for f in report.errors} == {'unknown field "notAField"'}


def test_raw_argo_workflows_tree_uses_latest_images(upstream):
    """Argo's kustomize tree (unlike its release install.yaml) tags images :latest; the
    argo-workflows component pins them, so the rendered objects pass."""
    raw = validate(upstream("argo-workflows"), "1.34")
    assert sorted((f.rule, f.name, f.path) for f in raw.errors) == [
        ("image-latest", "argo-server", "spec.template.spec.containers[0].image"),
        ("image-latest", "workflow-controller", "spec.template.spec.containers[0].image")]
    assert validate(_component_transform("argo-workflows", upstream("argo-workflows")), "1.34").ok


def test_raw_upstream_namespaces_without_pod_security_labels_fail(upstream):
    """Upstream as shipped: Katib's kubeflow and local-path-storage have no PSA label (the
    spine's namespace transform adds it); cert-manager's, Istio's and Knative's do."""
    objs = upstream("katib") + upstream("local-path") + upstream("cert-manager") \
        + upstream("istio-namespace") + upstream("istio-crds") + upstream("knative-serving")
    report = validate(objs, "1.34")
    psa = [f for f in report.errors if f.rule == "namespace-psa"]
    assert sorted(f.name for f in psa) == ["kubeflow", "local-path-storage"]
    assert "has no pod-security.kubernetes.io/enforce label" in psa[0].message
    # The only other errors: rancher's untagged helper-pod image (the storage component pins it)
    # and Katib's MySQL password "test" (a per-install secret in kubeforge).
    others = sorted((f.rule, f.name) for f in report.errors if f.rule != "namespace-psa")
    assert others == [("default-secret", "katib-mysql-secrets"), ("image-latest", "local-path-config")]


def test_kserve_alone_lacks_the_cert_manager_crds(upstream):
    """KServe's webhook certificate is a cert-manager custom resource: without cert-manager's
    CRDs in the same set, validation says which kind is missing and how to fix it."""
    report = validate(upstream("kserve"), "1.34")
    missing = sorted((f.kind, f.name) for f in report.errors if f.rule == "crd-missing")
    assert missing == [("Certificate", "llmisvc-serving-cert"), ("Certificate", "serving-cert"),
                       ("Issuer", "selfsigned-issuer")]
    msg = next(f.message for f in report.errors if f.rule == "crd-missing")
    assert "custom resource Certificate (cert-manager.io/v1) has no CustomResourceDefinition" in msg
    assert "enable the component that provides the cert-manager.io CRDs" in msg
    assert {f.rule for f in report.errors} == {"crd-missing"}
    with_cm = validate(upstream("kserve") + upstream("cert-manager"), "1.34")
    assert not [f for f in with_cm.errors if f.rule == "crd-missing"]


def test_target_version_matters_katib_webhook_match_conditions(upstream):
    """Katib's webhook uses matchConditions, which the 1.25 API does not have."""
    old = validate(upstream("katib"), "1.25")
    hits = [f for f in old.errors if f.rule == "schema"]
    assert [(f.kind, f.path, f.message) for f in hits] == [
        ("MutatingWebhookConfiguration", "webhooks[1].matchConditions", 'unknown field "matchConditions"')]
    assert not [f for f in validate(upstream("katib"), "1.34").errors if f.rule == "schema"]
