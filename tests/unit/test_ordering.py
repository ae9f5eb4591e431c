"""kubeforge.ordering against facts it does not produce: the API groups real Kubernetes serves
(kubernetes-validate's bundled OpenAPI schemas of every supported minor, and the groups the
`kubernetes` client has API classes for), and CRD groups of well-known projects."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from kubeforge.ordering import (
    APPLY_PHASES,
    BUILTIN_GROUPS,
    CUSTOM_RANK,
    apply_order,
    apply_phase,
    is_custom,
    kind_rank,
    references,
)


def _pkg_dir(name: str) -> Path:
    return Path(next(iter(importlib.util.find_spec(name).submodule_search_locations)))


def _schema_groups() -> dict[str, set[str]]:
    """Kubernetes minor -> the API groups of its OpenAPI definitions (x-kubernetes-group-version-kind)."""
    out = {}
    root = _pkg_dir("kubernetes_validate") / "kubernetes-json-schema"
    for d in sorted(root.glob("v*.0-local-strict")):
        defs = json.loads((d / "_definitions.json").read_text())["$defs"]
        out[d.name] = {g["group"] for x in defs.values() for g in x.get("x-kubernetes-group-version-kind", ())}
    return out


def test_builtin_groups_are_those_kubernetes_serves():
    per_version = _schema_groups()
    assert len(per_version) >= 10, per_version.keys()
    union = set().union(*per_version.values())
    assert set(BUILTIN_GROUPS) == union
    # The kubernetes client's group API classes (resource_path='/apis/<group>/') agree.
    client = {m for f in (_pkg_dir("kubernetes") / "client" / "api").glob("*_api.py")
              for m in re.findall(r"resource_path='/apis/([a-z0-9.-]+)/'", f.read_text())}
    assert client and client <= BUILTIN_GROUPS, client - BUILTIN_GROUPS


@pytest.mark.parametrize("api, kind", [
    ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
    ("batch/v1", "CronJob"), ("batch/v1", "Job"), ("apps/v1", "Deployment"), ("v1", "ConfigMap"),
    ("networking.k8s.io/v1", "NetworkPolicy"), ("storage.k8s.io/v1", "CSIDriver"),
    ("apiregistration.k8s.io/v1", "APIService"), ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
])
def test_builtin_kinds_are_not_custom(api, kind):
    obj = {"apiVersion": api, "kind": kind}
    assert not is_custom(obj) and kind_rank(obj) < CUSTOM_RANK
    assert apply_phase(obj) == {"CustomResourceDefinition": "crds", "APIService": "webhooks"}.get(kind, "workloads")


@pytest.mark.parametrize("api, kind", [
    # CRD groups under k8s.io, maintained by Kubernetes SIGs but installed as CRDs.
    ("gateway.networking.k8s.io/v1", "HTTPRoute"), ("snapshot.storage.k8s.io/v1", "VolumeSnapshot"),
    ("cluster.x-k8s.io/v1beta1", "Cluster"), ("jobset.x-k8s.io/v1alpha2", "JobSet"),
    # A custom kind spelled like a built-in one is still custom (Knative's Service).
    ("serving.knative.dev/v1", "Service"), ("cert-manager.io/v1", "Certificate"), ("kubeflow.org/v1", "PyTorchJob"),
])
def test_crd_groups_are_custom(api, kind):
    obj = {"apiVersion": api, "kind": kind}
    assert is_custom(obj) and kind_rank(obj) == CUSTOM_RANK and apply_phase(obj) == "custom-resources"


def test_apply_phases_are_crds_workloads_webhooks_custom_resources_then_created_namespaces():
    assert APPLY_PHASES == ("crds", "workloads", "webhooks", "custom-resources", "in-created-namespaces")


def test_the_phase_follows_the_edges_of_the_wave():
    """With the stack graph's edges known: a custom resource of a CRD applied in an earlier wave
    (KServe's cert-manager Certificate, which its controller mounts) goes with the workloads; one
    the graph orders after a controller, Service or webhook of its wave, last."""
    cert = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate"}
    assert apply_phase(cert, []) == "workloads" and apply_phase(cert, ["Namespace"]) == "workloads"
    for kind in ("Deployment", "Service", "ValidatingWebhookConfiguration"):
        assert apply_phase(cert, ["CustomResourceDefinition", kind]) == "custom-resources"
    hook = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration"}
    assert apply_phase(hook, ["Deployment", "Service"]) == "webhooks"


def _obj(api, kind, name, ns=None, **spec):
    md = {"name": name, **({"namespace": ns} if ns else {})}
    return {"apiVersion": api, "kind": kind, "metadata": md, **({"spec": spec} if spec else {})}


def test_references_issuer_gateways_and_owners():
    cert = _obj("cert-manager.io/v1", "Certificate", "c", "ns", issuerRef={"name": "ca"})
    cluster_cert = _obj("cert-manager.io/v1", "Certificate", "c2", "ns", issuerRef={"name": "ca", "kind": "ClusterIssuer"})
    vs = _obj("networking.istio.io/v1", "VirtualService", "v", "ns", gateways=["mesh", "istio-system/gw", "local"])
    owned = _obj("v1", "ConfigMap", "m", "ns")
    owned["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"}]
    assert references(cert) == [("cert-manager.io", "Issuer", "ns", "ca")]
    assert references(cluster_cert) == [("cert-manager.io", "ClusterIssuer", "", "ca")]
    assert references(vs) == [("networking.istio.io", "Gateway", "istio-system", "gw"),
                              ("networking.istio.io", "Gateway", "ns", "local")]
    assert references(owned) == [("apps", "Deployment", "ns", "d")]


def test_apply_order_puts_what_is_referenced_first_within_a_rank():
    # Alphabetically (and so by the plain sort key) Certificates come before Issuers, and
    # "a-cert" before "z-cert": references override that, ranks still come first.
    issuer = _obj("cert-manager.io/v1", "Issuer", "z-issuer", "ns")
    cluster_issuer = _obj("cert-manager.io/v1", "ClusterIssuer", "root")
    a = _obj("cert-manager.io/v1", "Certificate", "a-cert", "ns", issuerRef={"name": "z-issuer"})
    b = _obj("cert-manager.io/v1", "Certificate", "b-cert", "ns", issuerRef={"name": "root", "kind": "ClusterIssuer"})
    chained = _obj("cert-manager.io/v1", "Issuer", "a-issuer", "ns")
    loop1 = _obj("example.com/v1", "Thing", "one", "ns")
    loop2 = _obj("example.com/v1", "Thing", "two", "ns")
    loop1["metadata"]["ownerReferences"] = [{"apiVersion": "example.com/v1", "kind": "Thing", "name": "two"}]
    loop2["metadata"]["ownerReferences"] = [{"apiVersion": "example.com/v1", "kind": "Thing", "name": "one"}]
    cm = _obj("v1", "ConfigMap", "m", "ns")
    cm["metadata"]["ownerReferences"] = [{"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "name": "z-issuer"}]
    batch = [a, b, chained, issuer, cluster_issuer, loop1, loop2, cm]
    order = [(o["kind"], o["metadata"]["name"]) for o in apply_order(batch)]
    pos = {k: i for i, k in enumerate(order)}
    assert pos[("Issuer", "z-issuer")] < pos[("Certificate", "a-cert")]
    assert pos[("ClusterIssuer", "root")] < pos[("Certificate", "b-cert")]
    assert order[0] == ("ConfigMap", "m")          # rank first: a reference upwards is not followed
    assert {("Thing", "one"), ("Thing", "two")} <= set(order) and len(order) == len(batch)   # a cycle terminates
    assert [(o["kind"], o["metadata"]["name"]) for o in apply_order(list(reversed(batch)))] == order


def test_objects_in_a_namespace_a_custom_resource_creates_go_last():
    """A Profile (its controller creates namespace t at runtime, kubeforge.io/creates-namespace)
    puts what is rendered into t after every custom resource, and in the phase after them; only
    custom resources may claim a namespace, and only for the objects of the same batch/wave."""
    from kubeforge.ordering import CREATES_NAMESPACE, created_namespace

    prof = _obj("kubeflow.org/v1", "Profile", "t")
    prof["metadata"]["annotations"] = {CREATES_NAMESPACE: "t"}
    rb = _obj("rbac.authorization.k8s.io/v1", "RoleBinding", "r", "t")
    cr = _obj("cert-manager.io/v1", "Certificate", "c", "other")
    assert created_namespace(prof) == "t" and created_namespace(rb) is None
    fake = _obj("v1", "ConfigMap", "claims", "x")
    fake["metadata"]["annotations"] = {CREATES_NAMESPACE: "t"}
    assert created_namespace(fake) is None, "a built-in object creates no namespace"
    assert [o["kind"] for o in apply_order([rb, cr, prof])] == ["Certificate", "Profile", "RoleBinding"]
    assert [o["kind"] for o in apply_order([rb, cr])] == ["RoleBinding", "Certificate"]
    assert apply_phase(rb, ["Profile"], {"t"}) == "in-created-namespaces"
    assert apply_phase(rb, ["Profile"]) == "workloads"
    assert apply_phase(prof, ["Deployment"], {"t"}) == "custom-resources"


def test_created_namespace_readiness():
    from kubeforge.verify.readiness import created_namespace_problems

    assert created_namespace_problems("Profile t", "t", None) == [
        "namespace t does not exist yet (the controller of Profile t creates it)"]
    assert created_namespace_problems("Profile t", "t", {"metadata": {"name": "t"}}) == []
    gone = {"metadata": {"name": "t", "deletionTimestamp": "now"}}
    assert created_namespace_problems("Profile t", "t", gone) == ["namespace t (of Profile t) is terminating"]
