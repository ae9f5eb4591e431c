"""Teardown execution over an in-memory stand-in for the API server (the cluster boundary this
machine cannot reach), loaded with the real rendered objects of the training profile. It models
what teardown relies on: deletion blocked by finalizers, the namespace controller, label lists."""
from __future__ import annotations

import copy

from lifecycle_helpers import InMemoryCluster

from kubeforge.lifecycle import teardown as td


def _platform(training):
    objs = [o for rc in training.components.values() for o in rc.objects]
    experiment = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
                  "metadata": {"name": "mnist", "namespace": "kubeflow",
                               "finalizers": ["update-prometheus-metrics"]}}
    return InMemoryCluster(objs + [experiment])


def test_teardown_stops_at_a_stuck_custom_resource_and_names_its_finalizer(training):
    cluster = _platform(training)
    ex = td.Executor(cluster, training, wait_s=0.01, echo=lambda s: None)
    results = ex.run(td.plan_teardown(training))
    last = results[-1]
    assert (last.component, last.phase) == ("katib", td.CUSTOM_RESOURCES)
    assert [(s.object, s.finalizers) for s in last.stuck] == [
        ("Experiment kubeflow/mnist", ["update-prometheus-metrics"])]
    # Katib's controller was left running, so it can still finish the Experiment's finalizer.
    assert cluster.get("apps/v1", "Deployment", "katib-controller", "kubeflow") is not None
    assert not td.report(results)["ok"]


def test_force_finalizers_finishes_and_deletes_crds_last(training):
    cluster = _platform(training)
    ex = td.Executor(cluster, training, force_finalizers=True, wait_s=0.01, echo=lambda s: None)
    results = ex.run(td.plan_teardown(training))
    assert td.report(results)["ok"], td.report(results)["stuck"]
    assert any("Experiment kubeflow/mnist" in r.forced for r in results)
    kinds = [d.split()[0] for d in cluster.deleted]
    first_crd = kinds.index("CustomResourceDefinition")
    assert set(kinds[first_crd:]) == {"CustomResourceDefinition"}, "CRDs go last"
    order = cluster.deleted.index
    assert order("Experiment mnist") < order("ValidatingWebhookConfiguration katib.kubeflow.org") < \
        order("Deployment katib-controller") < order("Namespace kubeflow")
    rendered = {td.Ref.of(o) for rc in training.components.values() for o in rc.objects}
    left = [k for k in cluster.store if td.Ref(k[0], k[1], k[3], k[2]) in rendered]
    assert left == []


def test_keep_crds_leaves_them(training):
    cluster = _platform(training)
    cluster.store = {k: o for k, o in cluster.store.items() if o["kind"] != "Experiment"}
    results = td.Executor(cluster, training, wait_s=0.01, echo=lambda s: None).run(
        td.plan_teardown(training, keep_crds=True))
    assert td.report(results)["ok"]
    assert {k[1] for k in cluster.store} == {"CustomResourceDefinition"}


def test_runtime_webhook_and_verify_leftovers_are_removed(training):
    cluster = _platform(training)
    svc = next(o for o in training.components["katib"].objects if o["kind"] == "Service")
    cluster.put({"apiVersion": td.ADMISSION, "kind": "MutatingWebhookConfiguration",
                 "metadata": {"name": "katib-created-at-runtime"},
                 "webhooks": [{"name": "x.katib", "clientConfig": {"service": {
                     "namespace": svc["metadata"]["namespace"], "name": svc["metadata"]["name"]}}}]})
    cluster.put({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": "kf-verify-katib-abc123", "labels": {"kubeforge.io/verify": "true"}}})
    td.Executor(cluster, training, force_finalizers=True, wait_s=0.01, echo=lambda s: None).run(
        td.plan_teardown(training))
    assert "MutatingWebhookConfiguration katib-created-at-runtime" in cluster.deleted
    assert cluster.deleted[0] == "Namespace kf-verify-katib-abc123"
    runtime = cluster.deleted.index("MutatingWebhookConfiguration katib-created-at-runtime")
    assert runtime < cluster.deleted.index("Service " + svc["metadata"]["name"])


def test_installer_is_told_by_the_field_manager(training):
    """Pulumi's provider applies server-side as field manager pulumi-kubernetes-<id>; kubectl
    apply --server-side as kubectl. Teardown and upgrade print the Pulumi follow-up on that."""
    from kubeforge.lifecycle.apply import detect_installer, installer

    dep = next(o for o in training.components["katib"].objects if o["kind"] == "Deployment")
    by_pulumi = copy.deepcopy(dep)
    by_pulumi["metadata"]["managedFields"] = [{"manager": "pulumi-kubernetes-c4bd2b40", "operation": "Apply"}]
    by_kubectl = copy.deepcopy(dep)
    by_kubectl["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Apply"}]
    assert installer(by_pulumi) == "pulumi" and installer(by_kubectl) == "kubectl"
    assert detect_installer(InMemoryCluster([by_pulumi]), training) == "pulumi"


def test_teardown_of_named_components_removes_them_and_nothing_else(render_profile):
    """`kubeforge teardown -p dev --component kserve` (and the removal after an upgrade that drops
    components): KServe's objects and CRDs go, in the order of a full teardown; cert-manager, whose
    CRDs KServe's Certificates use, and every other component stay."""
    dev = render_profile("dev")
    objs = [o for rc in dev.components.values() for o in rc.objects]
    cluster = InMemoryCluster(objs)
    full = [s for s in td.plan_teardown(dev).steps if s.component == "kserve"]
    only = td.plan_teardown(dev, components=["kserve"])
    assert only.components == ["kserve"] and td.LEFTOVERS not in [s.phase for s in only.steps]
    assert [(s.phase, s.objects) for s in only.steps if s.phase != td.CRDS] == [(s.phase, s.objects) for s in full]
    results = td.remove_components(cluster, dev, ["kserve"], wait_s=1, echo=lambda _: None)
    assert td.report(results)["ok"]
    left = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in cluster.store.values()}
    for name, rc in dev.components.items():
        for o in rc.objects:
            key = (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            assert (key in left) is (name != "kserve"), f"{name}: {key}"


def test_named_components_must_be_in_the_profile_and_not_needed_by_what_stays(render_profile):
    import pytest

    from kubeforge.errors import KubeforgeError

    plan = render_profile("dev").plan
    with pytest.raises(KubeforgeError) as e:
        td.check_removable(plan, ["cert-manager"])
    assert "kserve stays and needs cert-manager" in e.value.message and "--component kserve" in e.value.fix
    with pytest.raises(KubeforgeError) as e:
        td.check_removable(plan, ["nvidia-device-plugin"])
    assert e.value.field == "--component" and "kserve" in e.value.fix
    td.check_removable(plan, ["kserve", "cert-manager"])        # together they may go
