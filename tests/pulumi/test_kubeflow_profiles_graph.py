"""The real platform program for the kubeflow profile under Pulumi's mock runtime: Profiles come
after the profile controller (destroy removes them while it still runs, so profile-finalizer is
removed), Pulumi waits for the controller's reconcile of each Profile, and the contributor access
in a Profile's namespace comes after that Profile."""
from __future__ import annotations

import pytest
from graph_summary import run_profile

BOB = "team-a/user-bob-example-com-clusterrole-edit"


@pytest.fixture(scope="module")
def run(mirror_dir):
    return run_profile("kubeflow", mirror_dir)


def _reg(run, type_, name):
    hits = [r for r in run.registrations.values() if r.type == type_ and r.name == name]
    assert len(hits) == 1, (type_, name, len(hits))
    return hits[0]


def test_profiles_come_after_the_profile_controller(run):
    controller = _reg(run, "kubernetes:apps/v1:Deployment", "kubeflow/profiles-deployment")
    for team in ("team-a", "team-b"):
        prof = _reg(run, "kubernetes:kubeflow.org/v1:Profile", team)
        assert controller.urn in prof.dependencies
        assert prof.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == \
            "jsonpath={.metadata.finalizers[0]}=profile-finalizer"
        assert prof.provider == controller.provider and "kubernetes" in prof.provider


def test_contributor_access_comes_after_the_profile_that_creates_its_namespace(run):
    prof = _reg(run, "kubernetes:kubeflow.org/v1:Profile", "team-a")
    for type_ in ("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
                  "kubernetes:security.istio.io/v1beta1:AuthorizationPolicy"):
        reg = _reg(run, type_, BOB)
        assert prof.urn in reg.dependencies
        assert prof.urn in run.ancestors(reg.urn)


def test_the_dashboard_comes_after_the_profiles_component(run):
    gate = next(r for r in run.registrations.values() if r.name == "kubeflow-profiles-ready")
    dash = _reg(run, "kubernetes:apps/v1:Deployment", "kubeflow/centraldashboard")
    assert gate.urn in run.ancestors(dash.urn)
