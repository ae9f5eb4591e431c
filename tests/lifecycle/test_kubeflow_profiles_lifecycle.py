"""Kubeflow Profiles over the API server STAND-IN (apiserver_standin.py, whose profile controller
is a stand-in for kubeflow/kubeflow v1.10.0's): the contributor access kubeforge renders into a
namespace that only the profile controller creates goes in once that namespace exists, in one
pass; teardown removes the Profiles while their controller still runs, so no tenant namespace is
left behind; and the profile-reconciles check judges what the controller made."""
from __future__ import annotations

import copy
import importlib.util

import pytest
from apiserver_standin import PROFILE_FINALIZER, ApiServerStandIn
from lifecycle_helpers import REPO

from kubeforge.lifecycle import apply as ap
from kubeforge.lifecycle import teardown as td
from kubeforge.verify.cluster import ApiRejected
from kubeforge.verify.context import CheckContext, CheckError

TENANTS = ("team-a", "team-b")          # profiles/kubeflow.yaml
CONTRIBUTOR = "user-bob-example-com-clusterrole-edit"   # bob in team-a, named as KFAM names it
CONTROLLER = "Deployment profiles-deployment"


@pytest.fixture(scope="module")
def kubeflow(render_profile):
    return render_profile("kubeflow")


def _installed(rendered):
    cluster = ApiServerStandIn()
    res = ap.Applier(cluster, clock=cluster.clock, sleep=cluster.advance, echo=lambda _l: None).run(rendered)
    return cluster, res


def _checks():
    spec = importlib.util.spec_from_file_location("kubeflow_profiles_checks",
                                                  REPO / "components/kubeflow-profiles/checks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_contributor_access_goes_in_once_the_profile_namespace_exists(kubeflow):
    cluster, res = _installed(kubeflow)
    assert res.ok, res.stopped
    assert cluster.rejections == [], "a write was refused: the namespace was not there yet"
    waits = [w for w in res.waits if "namespace(s) their custom resources create" in w.what]
    assert len(waits) == 1 and waits[0].ok and waits[0].phase == "custom-resources"
    applied = [ref for verb, ref, _ in cluster.writes if verb == "apply"]
    assert applied.index("Profile team-a") < applied.index(f"RoleBinding team-a/{CONTRIBUTOR}")
    assert applied.index("Profile team-a") < applied.index(f"AuthorizationPolicy team-a/{CONTRIBUTOR}")
    rb = cluster.get("rbac.authorization.k8s.io/v1", "RoleBinding", CONTRIBUTOR, "team-a")
    assert rb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob@example.com"}]
    ns = cluster.get("v1", "Namespace", "team-a")
    assert ns["metadata"]["annotations"]["owner"] == "alice@example.com"
    assert ns["metadata"]["ownerReferences"][0]["kind"] == "Profile"
    assert cluster.get("v1", "ResourceQuota", "kf-resource-quota", "team-a")["spec"]["hard"]["cpu"] == "8"


def test_without_the_wait_the_api_server_refuses_the_contributor_binding(kubeflow):
    """What the in-created-namespaces phase and its wait avoid: the binding before the profile
    controller made the namespace is a 404, as on a real API server."""
    rb = next(o for o in kubeflow.components["kubeflow-profiles"].objects
              if o["kind"] == "RoleBinding" and o["metadata"]["name"] == CONTRIBUTOR)
    with pytest.raises(ApiRejected) as exc:
        ApiServerStandIn().apply(rb)
    assert exc.value.status == 404 and 'namespaces "team-a" not found' in exc.value.message


def test_the_profile_controller_stand_in_finalizes_and_its_namespace_goes_with_the_profile(kubeflow):
    cluster, _ = _installed(kubeflow)
    prof = cluster.get("kubeflow.org/v1", "Profile", "team-b")
    assert prof["metadata"]["finalizers"] == [PROFILE_FINALIZER]
    cluster.delete("kubeflow.org/v1", "Profile", "team-b")
    cluster.advance(5)
    assert cluster.get("kubeflow.org/v1", "Profile", "team-b") is None
    assert cluster.get("v1", "Namespace", "team-b") is None
    assert cluster.get("v1", "ServiceAccount", "default-editor", "team-b") is None


def _tenant_namespaces(cluster) -> list[str]:
    return [n for n in TENANTS if cluster.get("v1", "Namespace", n) is not None]


def test_teardown_removes_profiles_before_their_controller_and_leaves_no_tenant_namespace(kubeflow):
    cluster, _ = _installed(kubeflow)
    assert _tenant_namespaces(cluster) == list(TENANTS)
    plan = td.plan_teardown(kubeflow)
    step = next(s for s in plan.steps if s.component == "kubeflow-profiles" and s.phase == td.CUSTOM_RESOURCES)
    assert [str(r) for r in step.awaits] == ["Namespace team-a", "Namespace team-b"]
    results = td.Executor(cluster, kubeflow, clock=cluster.clock, sleep=cluster.advance, wait_s=60,
                          echo=lambda _l: None).run(plan)
    assert td.report(results)["ok"], td.report(results)["stuck"]
    assert _tenant_namespaces(cluster) == []
    for t in TENANTS:
        assert cluster.deleted.index(f"Profile {t}") < cluster.deleted.index(CONTROLLER)


def test_removing_the_controller_first_strands_the_profiles_and_their_namespaces(kubeflow):
    """The order teardown must not take (workloads before custom resources), run on purpose: the
    Profiles keep profile-finalizer with nobody to remove it, and their namespaces stay."""
    cluster, _ = _installed(kubeflow)
    plan = td.plan_teardown(kubeflow)
    mine = [s for s in plan.steps if s.component == "kubeflow-profiles"]
    wrong = [s for s in mine if s.phase == td.WORKLOADS] + [s for s in mine if s.phase == td.CUSTOM_RESOURCES]
    ex = td.Executor(cluster, kubeflow, clock=cluster.clock, sleep=cluster.advance, wait_s=30, echo=lambda _l: None)
    results = [ex.run_step(s) for s in wrong]
    stuck = {s.object: s.finalizers for r in results for s in r.stuck}
    assert stuck["Profile team-a"] == [PROFILE_FINALIZER] and stuck["Profile team-b"] == [PROFILE_FINALIZER]
    assert "Namespace team-a" in stuck
    assert _tenant_namespaces(cluster) == list(TENANTS)


def test_profile_check_passes_on_what_the_controller_made(kubeflow):
    cluster, _ = _installed(kubeflow)
    checks = _checks()
    ctx = CheckContext(cluster=cluster, plan=kubeflow.plan, component="kubeflow-profiles",
                       objects=kubeflow.components["kubeflow-profiles"].objects, timeout=60,
                       clock=cluster.clock, sleep=cluster.advance)
    assert checks.profile_reconciles(ctx) == "2 Profile(s) reconciled: team-a, team-b"


def _drop_default_label(cluster, label):
    """The controller's labels file without `label` (an install of applications/profiles/upstream
    instead of its pss overlay, say), and team-a's namespace as that controller leaves it."""
    dep = cluster.get("apps/v1", "Deployment", "profiles-deployment", "kubeflow")
    cm_name = next(v["configMap"]["name"] for v in dep["spec"]["template"]["spec"]["volumes"]
                   if v["name"] == "namespace-labels")
    cm = cluster.store[("v1", "ConfigMap", "kubeflow", cm_name)]
    text = cm["data"]["namespace-labels.yaml"]
    cm["data"]["namespace-labels.yaml"] = "\n".join(x for x in text.splitlines() if not x.startswith(label))
    cluster.store[("v1", "Namespace", None, "team-a")]["metadata"]["labels"].pop(label)


def test_the_controller_stand_in_puts_a_removed_default_label_back(kubeflow):
    """setNamespaceLabels on every reconcile: a default label someone removed comes back (so the
    check's failure below is a controller configured without the label, not a passing edit)."""
    cluster, _ = _installed(kubeflow)
    cluster.store[("v1", "Namespace", None, "team-a")]["metadata"]["labels"].pop("pod-security.kubernetes.io/enforce")
    cluster.advance(1)
    assert cluster.get("v1", "Namespace", "team-a")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] \
        == "baseline"


@pytest.mark.parametrize("label", ["pod-security.kubernetes.io/enforce", "istio-injection"])
def test_profile_check_fails_on_a_namespace_missing_a_label(kubeflow, label):
    """Pod Security: the controller runs without that default label; istio-injection: the
    controller sets it only when it creates the namespace, so a removed one stays removed."""
    cluster, _ = _installed(kubeflow)
    if label == "istio-injection":
        cluster.store[("v1", "Namespace", None, "team-a")]["metadata"]["labels"].pop(label)
    else:
        _drop_default_label(cluster, label)
    ctx = CheckContext(cluster=cluster, plan=kubeflow.plan, component="kubeflow-profiles",
                       objects=kubeflow.components["kubeflow-profiles"].objects, timeout=20,
                       clock=cluster.clock, sleep=cluster.advance)
    with pytest.raises(CheckError) as exc:
        _checks().profile_reconciles(ctx)
    assert "namespace team-a" in str(exc.value) and label in str(exc.value)
    assert "team-b" not in str(exc.value)


def test_profile_check_names_what_the_controller_did_not_make(kubeflow):
    cluster, _ = _installed(kubeflow)
    checks = _checks()
    objs = kubeflow.components["kubeflow-profiles"].objects
    labels = checks.expected_labels(objs)
    # The labels come from the rendered namespace-labels ConfigMap (applications/profiles/pss).
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline" and labels["istio-injection"] == "enabled"
    prof = next(o for o in objs if o["kind"] == "Profile" and o["metadata"]["name"] == "team-a")
    inside = [o for o in objs if o["metadata"].get("namespace") == "team-a"]
    assert checks.profile_problems(cluster.get, prof, labels, inside) == []
    for key in [("v1", "ServiceAccount", "team-a", "default-editor"),
                ("rbac.authorization.k8s.io/v1", "RoleBinding", "team-a", "namespaceAdmin"),
                ("security.istio.io/v1beta1", "AuthorizationPolicy", "team-a", "ns-owner-access-istio"),
                ("rbac.authorization.k8s.io/v1", "RoleBinding", "team-a", CONTRIBUTOR)]:
        saved = cluster.store.pop(key)
        problems = checks.profile_problems(cluster.get, prof, labels, inside)
        assert len(problems) == 1 and key[3] in problems[0], problems
        cluster.store[key] = saved
    other = copy.deepcopy(prof)
    other["spec"]["owner"]["name"] = "mallory@example.com"
    assert "not the Profile's owner 'mallory@example.com'" in checks.profile_problems(cluster.get, other, labels, [])[0]


def test_a_profile_over_a_namespace_someone_else_owns_fails_and_the_check_says_why(kubeflow):
    cluster, _ = _installed(kubeflow)
    cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "team-c", "annotations": {"owner": "mallory@example.com"}}})
    prof = {"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": "team-c"},
            "spec": {"owner": {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"}}}
    cluster.apply(prof)
    cluster.advance(2)
    checks = _checks()
    problems = checks.profile_problems(cluster.get, prof, checks.expected_labels(
        kubeflow.components["kubeflow-profiles"].objects), [])
    assert problems == ["Profile team-c Failed: namespace already exist, but not owned by profile creator "
                        "alice@example.com"]
    assert cluster.get("v1", "ServiceAccount", "default-editor", "team-c") is None
