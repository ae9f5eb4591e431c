"""`teardown --force-finalizers` when a finalizer's controller is gone: forced at once, not after
waiting out every bound. Over the API server STAND-IN (apiserver_standin.py: the cluster boundary
this machine cannot reach), with the training profile installed by kubeforge apply and its
controllers' finalizers served by the stand-in while those controllers run. Time is the stand-in's
clock (teardown sleeps 2 s a round), so wait rounds are counted, not timed."""
from __future__ import annotations

from apiserver_standin import ApiServerStandIn

from kubeforge.lifecycle import apply as ap
from kubeforge.lifecycle import teardown as td

BOUND = 180.0   # teardown's default --wait
EXPERIMENT = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
              "metadata": {"name": "mnist", "namespace": "kubeflow", "finalizers": ["update-prometheus-metrics"]}}
PYTORCHJOB = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
              "metadata": {"name": "dist", "namespace": "kubeflow",
                           "finalizers": ["kubeflow.org/training-operator-cleanup"]}}
# A leftover in the namespace, labelled for katib, with katib's finalizer: holds the namespace.
LEFTOVER = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "trial-metrics", "namespace": "kubeflow", "finalizers": ["katib.kubeflow.org/cleanup"],
                         "labels": {"kubeforge.io/component": "katib"}}}
SERVED_BY = {"update-prometheus-metrics": ("kubeflow", "katib-controller"),
             "kubeflow.org/training-operator-cleanup": ("kubeflow", "training-operator"),
             "katib.kubeflow.org/cleanup": ("kubeflow", "katib-controller")}


def _installed(training, finalizers=SERVED_BY, extra=(EXPERIMENT, PYTORCHJOB)):
    cluster = ApiServerStandIn(finalizer_controllers=finalizers)
    res = ap.Applier(cluster, clock=cluster.clock, sleep=cluster.advance, echo=lambda s: None).run(training)
    assert res.ok, res.stopped
    for o in extra:
        cluster.apply(o, field_manager="kubectl")
    return cluster


def _teardown(cluster, training, force):
    start = cluster.now
    ex = td.Executor(cluster, training, force_finalizers=force, wait_s=BOUND, echo=lambda s: None,
                     clock=cluster.clock, sleep=cluster.advance)
    results = ex.run(td.plan_teardown(training))
    return td.report(results), ex.rounds, cluster.now - start, results


def test_forced_teardown_with_its_controllers_gone_takes_about_a_clean_teardown(training):
    clean_cluster = _installed(training)
    clean, clean_rounds, clean_s, _ = _teardown(clean_cluster, training, force=False)
    assert clean["ok"], clean["stuck"]

    gone = _installed(training, extra=(EXPERIMENT, PYTORCHJOB, LEFTOVER))
    for comp in ("katib", "training-operator"):   # their workloads are gone (crashed out, deleted by hand)
        for o in training.components[comp].objects:
            if o["kind"] in ("Deployment", "StatefulSet"):
                assert gone.delete("apps/v1", o["kind"], o["metadata"]["name"], o["metadata"]["namespace"])
    forced, rounds, took, results = _teardown(gone, training, force=True)
    print(f"\nclean teardown: {clean_rounds} wait rounds ({clean_s:.0f} s on the stand-in's clock); "
          f"forced with the controllers gone: {rounds} rounds ({took:.0f} s); bound {BOUND:.0f} s per step")
    assert forced["ok"], forced["stuck"]
    done = {f for r in results for f in r.forced}
    assert {"Experiment kubeflow/mnist", "PyTorchJob kubeflow/dist"} <= done
    assert rounds <= 2 * clean_rounds, "forced without waiting out the bounds"
    assert took < BOUND, "no bound was waited out"
    rendered = {(o["apiVersion"], o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                for rc in training.components.values() for o in rc.objects}
    assert not rendered & set(gone.store) and ("v1", "ConfigMap", "kubeflow", "trial-metrics") not in gone.store


def test_a_finalizer_whose_controller_still_runs_is_waited_for_then_forced(training):
    cluster = _installed(training, finalizers={})     # katib runs, but nobody clears this finalizer
    ex = td.Executor(cluster, training, force_finalizers=True, wait_s=20, echo=lambda s: None,
                     clock=cluster.clock, sleep=cluster.advance)
    plan = td.plan_teardown(training)
    step = next(s for s in plan.steps if (s.component, s.phase) == ("katib", td.CUSTOM_RESOURCES))
    t0 = cluster.now
    res = ex.run_step(step)
    assert res.forced == ["Experiment kubeflow/mnist"] and not res.stuck
    assert cluster.now - t0 >= 20, "its controller might still finish: the bound is waited first"


def test_without_force_a_finalizer_nobody_serves_is_reported_stuck(training):
    cluster = _installed(training)
    for o in training.components["katib"].objects:
        if o["kind"] == "Deployment":
            cluster.delete("apps/v1", "Deployment", o["metadata"]["name"], o["metadata"]["namespace"])
    rep, _rounds, took, results = _teardown(cluster, training, force=False)
    assert not rep["ok"] and took >= BOUND
    assert [(s["object"], s["finalizers"]) for s in rep["stuck"]] == [
        ("Experiment kubeflow/mnist", ["update-prometheus-metrics"])]
    assert not any(r.forced for r in results)
