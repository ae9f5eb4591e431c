"""`kubeforge apply` over the in-process API server STAND-IN (apiserver_standin.py: the cluster
boundary this machine cannot reach), loaded with the real rendered objects of every shipped
profile. The stand-in refuses what a real API server refuses when the order is wrong (a custom
resource before its CRD is Established, an object a webhook admits before the webhook serves), so
"zero refusals" is the one-pass, zero-ordering-errors promise, checked here and not assumed."""
from __future__ import annotations

import copy
import json

import pytest
from apiserver_standin import BUILTIN_GROUPS, ApiServerStandIn
from lifecycle_helpers import PROFILES

from kubeforge.lifecycle import apply as ap
from kubeforge.ordering import APPLY_PHASES
from kubeforge.pulumi.graph import build_graph, object_key
from kubeforge.verify.cluster import ApiRejected


def _apply(cluster, rendered, **kw):
    lines: list[str] = []
    kw.setdefault("wait_s", 300.0)
    res = ap.Applier(cluster, clock=cluster.clock, sleep=cluster.advance, echo=lines.append, **kw).run(rendered)
    return res, lines


def _rendered_keys(rendered):
    return {(o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for rc in rendered.components.values() for o in rc.objects}


def _installable(render_profile, name):
    rendered = render_profile(name)
    if rendered.unrendered:
        pytest.skip(f"{', '.join(rendered.unrendered)} is a Helm chart and `helm` is not on PATH: "
                    "kubeforge apply refuses it before touching a cluster (test_apply_cli)")
    return rendered


@pytest.mark.parametrize("profile", PROFILES)
def test_one_pass_no_ordering_errors_and_a_second_apply_changes_nothing(render_profile, profile):
    rendered = _installable(render_profile, profile)
    n = sum(len(rc.objects) for rc in rendered.components.values())
    cluster = ApiServerStandIn()
    res, lines = _apply(cluster, rendered)
    assert res.ok, res.stopped
    assert cluster.rejections == [], "the stand-in refused writes: an ordering error"
    assert cluster.unadmitted == [], "objects went in before the webhooks that admit them"
    assert res.counts() == {"created": n}
    assert _rendered_keys(rendered) <= set(cluster.store)
    # Each custom resource (the stand-in's own notion: not a built-in API group) was written once,
    # after its CRD: one pass, no retry.
    applied = [ref for verb, ref, _ in cluster.writes if verb == "apply"]
    assert len(applied) == len(set(applied)) == n
    customs = [o for rc in rendered.components.values() for o in rc.objects
               if o["apiVersion"].rpartition("/")[0] not in BUILTIN_GROUPS]
    for o in customs:
        crd = cluster._crd(o["apiVersion"].split("/")[0], o["kind"])
        assert crd is not None and applied.index(f"CustomResourceDefinition {crd['metadata']['name']}") < \
            applied.index(ap._ref(o))
    assert all(w.ok for w in res.waits) and res.waits
    crd_waves = {pc.wave for n, pc in rendered.plan.components.items()
                 if any(o["kind"] == "CustomResourceDefinition" for o in rendered.components[n].objects)}
    assert {w.wave for w in res.waits if w.phase == "crds" and "CRD(s) Established" in w.what} == crd_waves
    assert any(line.startswith("  [wave 0] ") and "applying" in line for line in lines)

    before = cluster.rvs()
    again, _ = _apply(cluster, rendered)
    assert again.ok and again.counts() == {"unchanged": n}
    assert cluster.rvs() == before, "a second apply must leave every resourceVersion as it was"


def test_kubectl_style_single_pass_is_refused_by_the_stand_in(render_profile):
    """What kubeforge apply avoids, shown on the same stand-in: everything in render order in one
    pass (kubectl apply -f DIR) races the CRDs and the webhooks."""
    rendered = render_profile("dev")
    cluster = ApiServerStandIn()

    def one_pass() -> list[str]:
        refused = []
        for o in rendered.objects():
            try:
                cluster.apply(o)
            except ApiRejected as exc:
                refused.append(exc.message)
        return refused
    assert any("no matches for kind" in m for m in one_pass())
    cluster.advance(30)
    second = one_pass()
    assert any("failed calling webhook" in m for m in second), second[:3]


@pytest.mark.parametrize("profile", PROFILES)
def test_the_phases_follow_the_stack_graph(render_profile, profile):
    """Every edge of the Pulumi stack's graph points back in (wave, phase) order, and where the
    stack waits on a controller, Service or webhook of the same wave, a phase wait lies between."""
    rendered = _installable(render_profile, profile)
    graph = build_graph(rendered)
    where = {}
    for wp in ap.plan_apply(rendered):
        for i, phase in enumerate(APPLY_PHASES):
            for _comp, o in wp.phases[phase]:
                where[object_key(o)] = (wp.wave, i)
    assert set(where) == set(graph.nodes)
    for key, node in graph.nodes.items():
        for d in node.deps:
            assert where[d] <= where[key], (key, d)
            if graph.nodes[d].kind in ("Deployment", "StatefulSet", "DaemonSet", "Service",
                                       "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
                assert where[d] < where[key], (key, d)


def test_interrupted_apply_picks_up_where_it_stopped(render_profile):
    rendered = render_profile("dev")
    n = sum(len(rc.objects) for rc in rendered.components.values())
    cluster = ApiServerStandIn()
    cluster.interrupt_after = 120          # Ctrl-C in the middle of wave 1
    first, _ = _apply(cluster, rendered)
    assert not first.ok and first.stopped.startswith("interrupted after 120 object(s)")
    done = {o.object for o in first.objects if o.action == "created"}
    assert len(done) == 120
    cluster.interrupt_after = None
    second, _ = _apply(cluster, rendered)
    assert second.ok and cluster.rejections == []
    by = {o.object: o.action for o in second.objects}
    assert {by[r] for r in done} == {"unchanged"}, "what the first run applied keeps its resourceVersion"
    assert sum(1 for a in by.values() if a == "created") == n - 120


def test_an_api_server_that_goes_away_mid_run_stops_the_run_and_a_rerun_finishes(render_profile):
    import urllib3

    rendered = render_profile("training")
    cluster = ApiServerStandIn()
    real = cluster.apply
    calls = []

    def flaky(obj, *a, **kw):
        calls.append(1)
        if len(calls) == 30:
            raise urllib3.exceptions.MaxRetryError(None, "/apis", reason="Connection refused")
        return real(obj, *a, **kw)
    cluster.apply = flaky
    first, _ = _apply(cluster, rendered)
    assert not first.ok and first.stopped.startswith("lost the API server after 29 object(s)")
    cluster.apply = real
    second, _ = _apply(cluster, rendered)
    assert second.ok and second.counts()["unchanged"] == 29


def test_dry_run_persists_nothing_and_names_what_it_needs(render_profile):
    rendered = render_profile("dev")
    cluster = ApiServerStandIn()
    empty = cluster.rvs()
    res, _ = _apply(cluster, rendered, dry_run=True)
    assert cluster.rvs() == empty and not res.waits
    assert res.ok and set(res.counts()) == {"created", "skipped"}
    namespaces = {o["metadata"]["name"] for rc in rendered.components.values() for o in rc.objects
                  if o["kind"] == "Namespace"}
    for o in res.objects:
        if o.action == "skipped":
            need = o.message.split(",")[0]
            assert need.startswith("needs CRD ") or need.split()[-1] in namespaces, o
    assert all(dry for _verb, _ref, dry in cluster.writes)

    _apply(cluster, rendered)
    installed = cluster.rvs()
    edited = copy.deepcopy(rendered)
    cm = next(o for o in edited.components["katib"].objects if o["kind"] == "ConfigMap")
    cm["data"] = {**(cm.get("data") or {}), "kubeforge-test": "changed"}
    again, _ = _apply(cluster, edited, dry_run=True)
    changed = [o.object for o in again.objects if o.action != "unchanged"]
    assert changed == [ap._ref(cm)] and again.objects[0].action == "unchanged"
    assert [o.action for o in again.objects if o.object == ap._ref(cm)] == ["configured"]
    assert cluster.rvs() == installed, "dryRun=All persists nothing"


def test_a_field_another_manager_owns_is_a_conflict_unless_forced(render_profile):
    rendered = render_profile("training")
    cluster = ApiServerStandIn()
    assert _apply(cluster, rendered)[0].ok
    dep = copy.deepcopy(next(o for o in rendered.components["katib"].objects if o["kind"] == "Deployment"))
    dep["spec"]["replicas"] = 3
    cluster.apply(dep, force=True, field_manager="kubectl")     # someone took the field over
    res, lines = _apply(cluster, rendered)
    assert not res.ok and [e.object for e in res.errors] == [ap._ref(dep)]
    assert 'conflict with "kubectl": .spec.replicas' in res.errors[0].message
    assert "refused by the API server" in res.stopped and any("REFUSED" in line for line in lines)
    forced, _ = _apply(cluster, rendered, force_conflicts=True)
    assert forced.ok
    assert [o.action for o in forced.objects if o.object == ap._ref(dep)] == ["configured"]
    live = cluster.get("apps/v1", "Deployment", dep["metadata"]["name"], dep["metadata"]["namespace"])
    assert live["spec"]["replicas"] == next(o for o in rendered.components["katib"].objects
                                            if o["kind"] == "Deployment")["spec"].get("replicas", 1)


def test_a_wait_names_the_workload_and_its_pods_waiting_reason(render_profile):
    rendered = render_profile("training")
    dep = next(o for o in rendered.components["katib"].objects if o["kind"] == "Deployment")
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    cluster = ApiServerStandIn(unpullable=[image])
    res, lines = _apply(cluster, rendered, wait_s=60)
    ref = f"Deployment {dep['metadata']['namespace']}/{dep['metadata']['name']}"
    assert not res.ok and res.stopped.startswith("wave 1 workloads: timed out waiting for ")
    assert "workload(s) available" in res.stopped and ref in res.stopped
    assert "ErrImagePull" in res.stopped and image in res.stopped
    assert [w.ok for w in res.waits][-1] is False and res.waits[-1].seconds >= 60 - 3
    assert any("waiting for" in line and "workload(s) available" in line for line in lines)
    # nothing of the next phase went out while the wait failed
    assert not [o for o in res.objects if o.wave == 1 and o.phase in ("webhooks", "custom-resources")]


def test_a_wait_names_the_webhook_whose_service_has_no_endpoints(render_profile):
    rendered = copy.deepcopy(render_profile("serving"))
    svc = next(o for o in rendered.components["kserve"].objects
               if o["kind"] == "Service" and o["metadata"]["name"] == "kserve-webhook-server-service")
    svc["spec"]["selector"] = {"app": "nothing-runs-here"}
    res, _ = _apply(ApiServerStandIn(), rendered, wait_s=30)
    assert not res.ok and "webhooks: timed out waiting for " in res.stopped
    assert "Service kubeflow/kserve-webhook-server-service has no ready endpoints" in res.stopped


def test_full_on_a_gpu_node_in_one_pass(render_profile):
    """The device plugin's pods mount the sharing ConfigMap: it must be applied before them (it used
    to come a wave later, from gpu-sharing, and the install could never pass the plugin's wait)."""
    res, _ = _apply(ApiServerStandIn(gpu_node=True), render_profile("full"), wait_s=60)
    assert res.ok, res.stopped


def test_upgrade_and_teardown_work_on_a_cluster_installed_this_way(render_profile, tmp_path, monkeypatch):
    from kubeforge.lifecycle import teardown as td
    from kubeforge.lifecycle import upgrade as up

    rendered = render_profile("training")
    cluster = ApiServerStandIn()
    assert _apply(cluster, rendered)[0].ok
    assert ap.detect_installer(cluster, rendered) == "kubeforge"
    lock = tmp_path / "training.lock.json"
    lock.write_text(json.dumps(up.lock_of(up.side_from_rendered(rendered, "apply"))))
    old = up.load_from(str(lock))
    assert old.versions == {n: rc.version for n, rc in rendered.components.items()}
    analysis = up.analyze(old, up.side_from_rendered(rendered, "profile training"))
    assert analysis.ok and {c.change for c in analysis.components} == {"same"}

    results = td.Executor(cluster, rendered, wait_s=1, echo=lambda s: None).run(td.plan_teardown(rendered))
    assert td.report(results)["ok"]
    assert not _rendered_keys(rendered) & set(cluster.store)
