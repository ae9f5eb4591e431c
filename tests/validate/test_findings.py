"""Each check reports the right rule, path and message: edited copies of real upstream objects
(named by what they were copied from) and small crafted objects where a rule needs one."""
from __future__ import annotations

import copy
import json
import re

import pytest

from kubeforge.errors import KubeforgeError
from kubeforge.validate import allowlist_file, bench, load_allowlist, parse_allowlist, validate

V = "1.34"


def _errors(report, rule=None):
    return {(f.rule, f.path, f.message) for f in report.errors if rule is None or f.rule == rule}


def _crd(schema: dict, *, kind="Widget", plural="widgets", group="example.kubeforge.io",
         scope="Namespaced") -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": scope,
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                               "listKind": kind + "List"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema}}]}}


def _widget(spec: dict, **meta) -> dict:
    return {"apiVersion": "example.kubeforge.io/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "ns", **meta}, "spec": spec}


# --- built-in schema ------------------------------------------------------------------------------

def test_unknown_field_wrong_type_and_missing_field_in_katib_controller_deployment(upstream, find):
    dep = find(upstream("katib"), "Deployment", "katib-controller")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    c["imagePullPolcy"] = "Always"
    del c["name"]
    dep["spec"]["replicas"] = "two"
    assert _errors(validate([dep], V), "schema") == {
        ("schema", "spec.template.spec.containers[0].imagePullPolcy", 'unknown field "imagePullPolcy"'),
        ("schema", "spec.template.spec.containers[0]", 'missing required field "name"'),
        ("schema", "spec.replicas", 'expected integer, got string "two"'),
    }


def test_int_or_string_in_katib_ui_service(upstream, find):
    svc = find(upstream("katib"), "Service", "katib-ui")
    svc["spec"]["ports"][0]["targetPort"] = [80]
    (f,) = validate([svc], V).errors
    assert (f.rule, f.kind, f.path) == ("schema", "Service", "spec.ports[0].targetPort")
    assert f.message == "[80] must match exactly one of 2 alternatives (matches 0)"
    svc["spec"]["ports"][0]["targetPort"] = "http"
    assert validate([svc], V).ok


def test_apis_the_target_version_does_not_serve():
    report = validate([
        {"apiVersion": "apps/v1", "kind": "Deploymnt", "metadata": {"name": "a", "namespace": "n"}},
        {"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "b", "namespace": "n"}},
    ], V)
    assert _errors(report) == {
        ("unknown-kind", "", "apps/v1 Deploymnt is not served: no such kind in Kubernetes 1.34; "
                             "did you mean apps/v1 Deployment?"),
        ("unknown-kind", "", "batch/v1beta1 CronJob is not served: Kubernetes 1.34 serves it as "
                             "batch/v1 CronJob; use apiVersion batch/v1"),
    }


def test_object_without_kind_or_not_a_mapping():
    report = validate([{"apiVersion": "v1", "metadata": {"name": "x"}}, ["not", "an", "object"]], V)
    assert {(f.rule, f.message) for f in report.errors} == {
        ("object-identity", "the object has no kind"),
        ("object-identity", "object #1 is a list, not a mapping")}


# --- custom resources -----------------------------------------------------------------------------

@pytest.fixture
def sklearn_runtime_pair(upstream, find):
    """Edited copies of KServe's real ClusterServingRuntime CRD and its sklearn runtime."""
    objs = upstream("kserve")
    return (find(objs, "CustomResourceDefinition", "clusterservingruntimes.serving.kserve.io"),
            find(objs, "ClusterServingRuntime", "kserve-sklearnserver"))


def test_wrong_type_in_edited_copy_of_kserve_sklearn_runtime(sklearn_runtime_pair):
    crd, runtime = sklearn_runtime_pair
    runtime["spec"]["supportedModelFormats"][0]["priority"] = "high"
    runtime["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    runtime["metadata"]["labels"] = {"tier": 5}
    assert _errors(validate([crd, runtime], V)) == {
        ("crd-schema", "spec.supportedModelFormats[0].priority", 'expected integer, got string "high"'),
        ("crd-schema", "spec.containers[0].imagePullPolcy", 'unknown field "imagePullPolcy"'),
        ("crd-schema", "metadata.labels.tier", "expected string, got integer 5"),   # ObjectMeta
    }


def test_quantities_in_kserve_runtime_are_int_or_string(sklearn_runtime_pair):
    crd, runtime = sklearn_runtime_pair
    requests = runtime["spec"]["containers"][0]["resources"]["requests"]
    requests["cpu"] = 2
    assert validate([crd, runtime], V).ok
    requests["cpu"] = [2]
    assert ("crd-schema", "spec.containers[0].resources.requests.cpu",
            "expected integer or string, got array [2]") in _errors(validate([crd, runtime], V))


def test_custom_resource_version_its_crd_does_not_serve(sklearn_runtime_pair):
    crd, runtime = sklearn_runtime_pair
    runtime["apiVersion"] = "serving.kserve.io/v1beta1"
    assert _errors(validate([crd, runtime], V)) == {
        ("crd-schema", "", "CRD clusterservingruntimes.serving.kserve.io does not serve version v1beta1 "
                           "(served: v1alpha1); use apiVersion serving.kserve.io/v1alpha1")}


def test_custom_resource_without_its_crd():
    (f,) = validate([_widget({})], V).errors
    assert (f.rule, f.kind) == ("crd-missing", "Widget")
    assert f.message == ("custom resource Widget (example.kubeforge.io/v1) has no CustomResourceDefinition "
                         "among the objects: enable the component that provides the example.kubeforge.io "
                         "CRDs, add the CRD to this component's sources, or declare `cluster.apis: "
                         "[example.kubeforge.io]` in the profile if the cluster already serves it")


WIDGET_SCHEMA = {
    "type": "object",
    "properties": {"spec": {
        "type": "object", "required": ["size"],
        "properties": {
            "size": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "note": {"type": "string", "nullable": True},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "count": {"type": "integer", "minimum": 1},
            "name": {"type": "string", "pattern": "^[a-z]+$"},
            "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                         "x-kubernetes-preserve-unknown-fields": True},
        }}},
}


def test_kubernetes_schema_extensions_accept_what_the_apiserver_accepts():
    good = [_widget({"size": 3}), _widget({"size": "3Gi", "note": None, "mode": "b", "count": 2,
                                           "config": {"any": {"thing": [1, "x"]}},
                                           "template": {"apiVersion": "v1", "kind": "Pod",
                                                        "metadata": {"name": "p"}, "spec": {"x": 1}}})]
    for i, w in enumerate(good):
        w["metadata"]["name"] = f"w{i}"
    report = validate([_crd(WIDGET_SCHEMA), *good], V)
    assert report.ok and not report.warnings, report.text()


def test_kubernetes_schema_extensions_reject_what_the_apiserver_rejects():
    bad = _widget({"size": True, "mode": "c", "count": 0, "name": "ABC", "template": {"spec": {}},
                   "extra": 1})
    assert _errors(validate([_crd(WIDGET_SCHEMA), bad], V)) == {
        ("crd-schema", "spec.size", "expected integer or string, got boolean true"),
        ("crd-schema", "spec.mode", '"c" is not one of ["a", "b"]'),
        ("crd-schema", "spec.count", "0 is less than the minimum of 1"),
        ("crd-schema", "spec.name", "\"ABC\" does not match the pattern '^[a-z]+$'"),
        ("crd-schema", "spec.template", 'missing required field "apiVersion"'),
        ("crd-schema", "spec.template", 'missing required field "kind"'),
        ("crd-schema", "spec.extra", 'unknown field "extra"'),
    }
    missing = _errors(validate([_crd(WIDGET_SCHEMA), _widget({})], V))
    assert missing == {("crd-schema", "spec", 'missing required field "size"')}


# --- policies -------------------------------------------------------------------------------------

def test_latest_and_untagged_images_in_every_pod_template(upstream, find):
    dep = find(upstream("katib"), "Deployment", "katib-controller")
    pod = dep["spec"]["template"]["spec"]
    pod["containers"][0]["image"] = "ghcr.io/kubeflow/katib/katib-controller:latest"
    pod["initContainers"] = [{"name": "a", "image": "localhost:5000/busybox"},
                             {"name": "b", "image": "busybox:1.36"},
                             {"name": "c", "image": "busybox:latest@sha256:" + "0" * 64}]
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "n"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "x", "image": "busybox",
                                "resources": {"requests": {"cpu": "1m"}}}]}}}}}}
    assert _errors(validate([dep, cron], V)) == {
        ("image-latest", "spec.template.spec.containers[0].image",
         'image "ghcr.io/kubeflow/katib/katib-controller:latest" uses the :latest tag; pin a version '
         "tag or a digest"),
        ("image-untagged", "spec.template.spec.initContainers[0].image",
         'image "localhost:5000/busybox" has no tag, so it means :latest; pin a version tag or a digest'),
        ("image-untagged", "spec.jobTemplate.spec.template.spec.containers[0].image",
         'image "busybox" has no tag, so it means :latest; pin a version tag or a digest'),
    }


def test_images_of_custom_resources_are_checked_too(sklearn_runtime_pair):
    crd, runtime = sklearn_runtime_pair
    runtime["spec"]["containers"][0]["image"] = "kserve/sklearnserver"
    assert _errors(validate([crd, runtime], V)) == {
        ("image-untagged", "spec.containers[0].image",
         'image "kserve/sklearnserver" has no tag, so it means :latest; pin a version tag or a digest')}


def _ns(labels=None):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team", "labels": labels or {}}}


def test_namespaces_need_pod_security_labels():
    assert _errors(validate([_ns()], V)) == {
        ("namespace-psa", "metadata.labels",
         "Namespace team has no pod-security.kubernetes.io/enforce label; set it to one of privileged, "
         "baseline, restricted (the component's namespaces: level)")}
    bad = _ns({"pod-security.kubernetes.io/enforce": "strict",
               "pod-security.kubernetes.io/enforce-version": "1.34"})
    assert _errors(validate([bad], V)) == {
        ("namespace-psa", 'metadata.labels["pod-security.kubernetes.io/enforce"]',
         "pod-security.kubernetes.io/enforce is 'strict'; it must be one of privileged, baseline, restricted"),
        ("namespace-psa", 'metadata.labels["pod-security.kubernetes.io/enforce-version"]',
         "pod-security.kubernetes.io/enforce-version is '1.34'; it must be latest or v1.N")}
    good = _ns({"pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "v1.34",
                "pod-security.kubernetes.io/warn": "restricted"})
    assert validate([good], V).findings == []


def test_crds_over_256_kib_are_server_side_apply_only(upstream, find):
    objs = upstream("kserve")
    big = find(objs, "CustomResourceDefinition", "inferenceservices.serving.kserve.io")
    small = find(objs, "CustomResourceDefinition", "trainedmodels.serving.kserve.io")
    report = validate([big, small], V)
    (f,) = report.warnings
    assert (f.rule, f.severity, f.name) == ("object-size", "warning", big["metadata"]["name"])
    assert re.fullmatch(r"CustomResourceDefinition is \d{3} KiB serialized, over the 256 KiB annotation "
                        r"limit of client-side apply \(last-applied-configuration\): server-side-apply only",
                        f.message)
    assert report.ok
    # The same small CRD grown past the limit (an edited copy) is flagged as well.
    padded = copy.deepcopy(small)
    padded["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = "x" * 270_000
    assert [w.rule for w in validate([padded], V).warnings] == ["object-size"]


def test_duplicate_objects():
    a = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}
    report = validate([a, copy.deepcopy(a), {**a, "metadata": {"name": "c", "namespace": "m"}}], V)
    assert _errors(report) == {
        ("duplicate-object", "", "the same object is also object #0; the later one would overwrite it")}


def test_names_labels_and_crd_names():
    objs = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "Katib_UI", "namespace": "n"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:katib", "labels": {"app.kubernetes.io/version": "1.0+build",
                                                         "bad key": "x"}}},
        _crd({"type": "object"}),
    ]
    objs[2]["metadata"]["name"] = "widget.example.kubeforge.io"
    assert _errors(validate(objs, V)) == {
        ("metadata-name", "metadata.name", "Service name 'Katib_UI' must be a DNS-1123 label (lower-case "
                                           "alphanumerics and '-', at most 63)"),
        ("label", 'metadata.labels["app.kubernetes.io/version"]',
         "label value '1.0+build' is invalid (at most 63 characters: alphanumerics, '-', '_', '.', "
         "starting and ending alphanumeric)"),
        ("label", 'metadata.labels["bad key"]', "label key 'bad key' is not a valid qualified name"),
        ("crd-name", "metadata.name", "a CRD must be named <plural>.<group>: 'widgets.example.kubeforge.io'"),
    }


def test_namespace_scope_warnings(sklearn_runtime_pair):
    crd, runtime = sklearn_runtime_pair
    runtime["metadata"]["namespace"] = "kubeflow"                   # ClusterServingRuntime: Cluster
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r", "namespace": "kubeflow"}}
    report = validate([crd, runtime, cm, role], V)
    assert report.ok
    assert {(f.kind, f.message) for f in report.warnings} == {
        ("ClusterServingRuntime", "ClusterServingRuntime is cluster-scoped; metadata.namespace 'kubeflow' "
                                  "is ignored"),
        ("ConfigMap", "ConfigMap is namespaced but sets no metadata.namespace: it would land in the "
                      "kubeconfig's current namespace"),
        ("ClusterRole", "ClusterRole is cluster-scoped; metadata.namespace 'kubeflow' is ignored")}


# --- allowlist --------------------------------------------------------------------------------------

def _latest_katib(upstream, find):
    dep = find(upstream("katib"), "Deployment", "katib-controller")
    dep["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/kubeflow/katib/katib-controller:latest"
    return dep


ENTRY = {"rule": "image-latest", "kind": "Deployment", "name": "katib-controller", "namespace": "kubeflow",
         "path": "spec.template.spec.containers[0].image", "reason": "test: accepted upstream"}


def test_allowlisted_findings_are_reported_as_allowed(upstream, find):
    report = validate([_latest_katib(upstream, find)], V, allowlist=[ENTRY])
    assert report.ok
    (f,) = report.allowed
    assert (f.rule, f.allowed, f.reason) == ("image-latest", True, "test: accepted upstream")
    assert "(allowed: test: accepted upstream)" in report.text(show_allowed=True)
    assert report.counts()["allowed"] == 1
    star = {**ENTRY, "path": "spec.template.spec.*.image"}
    assert validate([_latest_katib(upstream, find)], V, allowlist=[star]).ok
    other = {**ENTRY, "path": "spec.template.spec.containers0.image"}   # brackets are literal
    assert not validate([_latest_katib(upstream, find)], V, allowlist=[other]).ok


def test_stale_allowlist_entries_are_warnings(upstream, find):
    dep = find(upstream("katib"), "Deployment", "katib-controller")     # pinned image: nothing to allow
    report = validate([dep], V, allowlist=[ENTRY])
    assert [(f.rule, f.message) for f in report.warnings if f.rule == "allowlist-stale"] == [
        ("allowlist-stale", "allowlist entry `image-latest Deployment kubeflow/katib-controller "
                            "spec.template.spec.containers[0].image` matches no finding any more: remove "
                            "it from components/_allowlist.yaml")]
    # An entry for an object this set does not contain (another profile's component) is not stale.
    ns = _ns({"pod-security.kubernetes.io/enforce": "baseline"})
    assert validate([ns], V, allowlist=[ENTRY]).findings == []


@pytest.mark.parametrize("entry,field,text", [
    ({k: v for k, v in ENTRY.items() if k != "reason"}, "entries[0].reason", "`reason` is required"),
    ({**ENTRY, "name": "katib-*"}, "entries[0].name", "`name` must name one object, not a pattern"),
    ({**ENTRY, "rule": "no-latest"}, "entries[0].rule", "unknown rule 'no-latest'"),
    ({**ENTRY, "kinds": "Deployment"}, "entries[0]", "unknown field(s) ['kinds']"),
    ({k: v for k, v in ENTRY.items() if k != "name"}, "entries[0].name", "`name` is required"),
])
def test_bad_allowlist_entries_are_bad_input(entry, field, text):
    with pytest.raises(KubeforgeError) as e:
        parse_allowlist({"entries": [entry]}, file="components/_allowlist.yaml")
    assert (e.value.field, e.value.file) == (field, "components/_allowlist.yaml")
    assert text in e.value.message and e.value.fix


def test_allowlist_file_with_broken_yaml(tmp_path):
    bad = tmp_path / "_allowlist.yaml"
    bad.write_text("entries:\n  - rule: [unclosed\n")
    with pytest.raises(KubeforgeError) as e:
        load_allowlist(bad)
    assert e.value.file == str(bad) and "not valid YAML" in e.value.message


def test_shipped_allowlist_parses_and_every_entry_says_why():
    assert allowlist_file().is_file()
    entries = load_allowlist()          # what validate() uses by default
    assert isinstance(entries, list)
    assert all(len(e.reason) > 40 and e.name for e in entries)


# --- the report -----------------------------------------------------------------------------------

def test_report_is_plain_data_and_input_is_untouched(upstream):
    objs = upstream("katib") + upstream("argo-workflows")
    before = copy.deepcopy(objs)
    report = validate(objs, "v1.34.1")
    assert objs == before
    data = json.loads(json.dumps(report.to_dict()))
    assert data["kubernetesVersion"] == "1.34" and data["ok"] is False
    assert data["counts"]["objects"] == len(objs) == len(report.object_ms)
    # katib's kubeflow Namespace has no PSA label, its MySQL Secret upstream's password "test";
    # Argo's raw tree uses :latest twice.
    assert data["counts"]["by_rule"]["namespace-psa"] == 1 and data["counts"]["by_rule"]["image-latest"] == 2
    assert data["counts"]["by_rule"]["default-secret"] == 1
    assert data["counts"]["errors"] == len(report.errors) == 4
    assert len(data["findings"]) == len(report.findings)
    assert report.text().splitlines()[-1].startswith(f"{len(objs)} objects validated against Kubernetes 1.34: "
                                                     "4 errors, ")


def test_bench_reports_per_object_figures(upstream):
    figures = bench(upstream("katib"), V, repeat=1)
    assert set(figures) >= {"objects", "cold_ms_per_object", "warm_ms_per_object", "target_ms_per_object"}
    assert figures["objects"] == len(upstream("katib")) and figures["errors"] == 2   # PSA, default secret


def test_latest_image_inside_a_configmap_is_an_error(upstream, find):
    """Images controllers read from ConfigMaps count too: an edited copy of Knative's
    config-deployment whose queue-proxy image is untagged (named so) fails the image policy."""
    cm = copy.deepcopy(find(upstream("knative-serving"), "ConfigMap", "config-deployment"))
    image = cm["data"]["queue-sidecar-image"]
    cm["data"]["queue-sidecar-image"] = image.split("@")[0].rsplit(":", 1)[0]
    report = validate([cm], "1.34", allowlist=[])
    (f,) = [f for f in report.errors if f.rule == "image-latest"]
    assert f.path == "data" and "in the ConfigMap's data" in f.message
    assert validate([find(upstream("knative-serving"), "ConfigMap", "config-deployment")], "1.34",
                    allowlist=[]).errors == []


# --- resources (warning) ----------------------------------------------------------------------------

def _resource_warnings(report):
    return {(f.kind, f.name, f.path) for f in report.findings if f.rule == "resources"}


def test_resources_warning_on_containers_without_requests(upstream, find):
    """docs/validation.md: a workload container without resources.requests is a warning (the
    scheduler cannot account for it), never an error. NVIDIA's device plugin DaemonSet ships none."""
    plugin = find(upstream("device-plugin"), "DaemonSet", "nvidia-device-plugin-daemonset")
    assert "resources" not in plugin["spec"]["template"]["spec"]["containers"][0]
    report = validate([plugin], V)
    assert _resource_warnings(report) == {
        ("DaemonSet", "nvidia-device-plugin-daemonset", "spec.template.spec.containers[0]")}
    (f,) = [f for f in report.warnings if f.rule == "resources"]
    assert f.severity == "warning" and "resources.requests" in f.message and report.ok
    # With requests it is quiet; limits alone do not count.
    c = plugin["spec"]["template"]["spec"]["containers"][0]
    c["resources"] = {"limits": {"memory": "64Mi"}}
    assert _resource_warnings(validate([plugin], V)) == {
        ("DaemonSet", "nvidia-device-plugin-daemonset", "spec.template.spec.containers[0]")}
    c["resources"] = {"requests": {"cpu": "10m", "memory": "32Mi"}}
    assert _resource_warnings(validate([plugin], V)) == set()


def test_resources_warning_paths_for_cronjob_and_pod(upstream, find):
    """The pod template sits elsewhere in a CronJob and a Pod: the path says where."""
    pod_spec = copy.deepcopy(find(upstream("device-plugin"), "DaemonSet",
                                  "nvidia-device-plugin-daemonset")["spec"]["template"]["spec"])
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "ns"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
                **pod_spec, "restartPolicy": "OnFailure"}}}}}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": pod_spec}
    assert _resource_warnings(validate([cron, pod], V)) == {
        ("CronJob", "c", "spec.jobTemplate.spec.template.spec.containers[0]"),
        ("Pod", "p", "spec.containers[0]")}
