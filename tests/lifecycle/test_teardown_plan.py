"""Teardown planning on the real renders of every shipped profile: the order rules hold."""
from __future__ import annotations

import copy

import pytest
from lifecycle_helpers import PROFILES, objects_of

from kubeforge.lifecycle import teardown as td
from kubeforge.ordering import is_custom

PHASE_INDEX = {p: i for i, p in enumerate(td.PHASES)}


def _plan(rendered, keep_crds=False):
    return td.plan_teardown(rendered, keep_crds=keep_crds)


@pytest.mark.parametrize("profile", PROFILES)
def test_teardown_order_rules_hold_for_every_profile(profile, render_profile):
    rendered = render_profile(profile)
    plan = _plan(rendered)
    steps = plan.steps
    assert steps[0].phase == td.LEFTOVERS, "verify's kept namespaces go first"
    comp_steps = [(i, s) for i, s in enumerate(steps) if s.component != "*" and s.phase != td.CRDS]
    position: dict[str, list[int]] = {}
    for i, s in comp_steps:
        position.setdefault(s.component, []).append(i)

    # 1. Components in reverse plan order: whatever depends on X is gone before X starts.
    for name, pc in rendered.plan.components.items():
        for dep in pc.depends_on:
            if name in position and dep in position:
                assert max(position[name]) < min(position[dep]), f"{name} must go before {dep}"

    # 2. Within a component: custom resources, webhooks, workloads, namespaces, in that order.
    for name, idx in position.items():
        phases = [steps[i].phase for i in idx]
        assert phases == sorted(phases, key=PHASE_INDEX.__getitem__), (name, phases)
        assert idx == list(range(idx[0], idx[0] + len(idx))), f"{name}'s steps are contiguous"

    # 3. CRDs last, all of them (and only with --keep-crds absent).
    crds = {(o["metadata"]["name"]) for rc in rendered.components.values() for o in rc.objects
            if o["kind"] == "CustomResourceDefinition"}
    crd_steps = [i for i, s in enumerate(steps) if s.phase == td.CRDS]
    if crds:
        assert crd_steps and min(crd_steps) > max(i for i, _ in comp_steps)
        assert {r.name for i in crd_steps for r in steps[i].objects} == crds
    assert not [s for s in _plan(rendered, keep_crds=True).steps if s.phase == td.CRDS]

    # 4. Every rendered object is in exactly one step, in the phase its kind belongs to.
    seen: dict[td.Ref, str] = {}
    for s in steps:
        for r in s.objects:
            assert r not in seen, f"{r} planned twice"
            seen[r] = s.phase
    for name, rc in rendered.components.items():
        for o in rc.objects:
            ref = td.Ref.of(o)
            if o["kind"] == "Namespace" and o["metadata"]["name"] in td.PROTECTED_NAMESPACES:
                assert ref not in seen
                continue
            want = (td.CRDS if o["kind"] == "CustomResourceDefinition" else
                    td.NAMESPACES if o["kind"] == "Namespace" else
                    td.WEBHOOKS if o["kind"] in td.WEBHOOK_KINDS else
                    td.CUSTOM_RESOURCES if is_custom(o) else td.WORKLOADS)
            assert seen.get(ref) == want, f"{ref} of {name}: {seen.get(ref)} != {want}"

    # 5. APIServices open a workloads step (an unavailable aggregated API blocks namespace deletion).
    for s in steps:
        if s.phase == td.WORKLOADS:
            kinds = [r.kind for r in s.objects]
            assert kinds == sorted(kinds, key=lambda k: k != "APIService")

    # 6. Every CRD's instances are deleted in its own component's custom-resource step.
    for name, rc in rendered.components.items():
        cr_step = next((s for s in steps if s.component == name and s.phase == td.CUSTOM_RESOURCES), None)
        for crd in (o for o in rc.objects if o["kind"] == "CustomResourceDefinition"):
            assert cr_step is not None and td.crd_kinds(crd)[0] in cr_step.all_instances_of


CONTROLLERS = ("Deployment", "StatefulSet", "DaemonSet")
CONFIG_AND_RBAC = ("ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
                   "ClusterRoleBinding")


@pytest.mark.parametrize("profile", PROFILES)
def test_inside_a_component_dependents_go_first(profile, render_profile):
    """Controllers go before the ConfigMaps, Secrets, ServiceAccounts and RBAC they run with (so
    none runs on without its config), and a custom resource before one it names: a cert-manager
    Certificate before its Issuer (spec.issuerRef), read here straight from the objects."""
    rendered = render_profile(profile)
    steps = _plan(rendered).steps
    checked = 0
    for s in steps:
        kinds = [r.kind for r in s.objects]
        if s.phase == td.WORKLOADS:
            ctl = [i for i, k in enumerate(kinds) if k in CONTROLLERS]
            cfg = [i for i, k in enumerate(kinds) if k in CONFIG_AND_RBAC]
            if ctl and cfg:
                checked += 1
                assert max(ctl) < min(cfg), f"{s.component}: {kinds}"
        if s.phase == td.CUSTOM_RESOURCES:
            objs = {td.Ref.of(o): o for o in rendered.components[s.component].objects}
            pos = {r: i for i, r in enumerate(s.objects)}
            for ref in s.objects:
                issuer = (objs[ref].get("spec") or {}).get("issuerRef") if ref.kind == "Certificate" else None
                if issuer and ref.api_version.startswith("cert-manager.io/"):
                    named = td.Ref(ref.api_version, issuer.get("kind") or "Issuer", issuer["name"],
                                   None if issuer.get("kind") == "ClusterIssuer" else ref.namespace)
                    if named in pos:
                        checked += 1
                        assert pos[ref] < pos[named], f"{ref} must go before {named} it names"
    assert checked, "nothing to check: the property would hold vacuously"


@pytest.mark.parametrize("profile", ["dev", "serving"])
def test_kserve_selfsigned_issuer_goes_after_its_certificates(profile, render_profile):
    """The case the issue found: KServe's Issuer selfsigned-issuer was deleted before the two
    Certificates whose issuerRef names it (custom resources tied on rank, reverse alphabetical)."""
    step = next(s for s in _plan(render_profile(profile)).steps
                if s.component == "kserve" and s.phase == td.CUSTOM_RESOURCES)
    names = [str(r) for r in step.objects]
    issuer = names.index("Issuer kubeflow/selfsigned-issuer")
    certs = [i for i, n in enumerate(names) if n.startswith("Certificate kubeflow/")]
    assert len(certs) == 2 and max(certs) < issuer, names


def test_custom_resources_of_another_components_crds_go_while_that_controller_runs(render_profile):
    """KServe renders cert-manager Certificates/Issuers: they are deleted in KServe's step, before
    cert-manager (which KServe requires) loses its controller."""
    rendered = render_profile("dev")
    steps = _plan(rendered).steps
    kserve_cr = next(i for i, s in enumerate(steps) if s.component == "kserve" and s.phase == td.CUSTOM_RESOURCES)
    cm_workloads = next(i for i, s in enumerate(steps) if s.component == "cert-manager" and s.phase == td.WORKLOADS)
    certs = [r for r in steps[kserve_cr].objects if r.api_version.startswith("cert-manager.io/")]
    assert certs, "KServe's webhook certificate is a cert-manager custom resource"
    assert kserve_cr < cm_workloads


def test_helm_components_without_helm_are_torn_down_by_label(render_profile):
    rendered = render_profile("gpu-operator")
    if "gpu-operator" not in rendered.unrendered:
        pytest.skip("helm is on PATH here, so the chart was rendered like any other component")
    steps = [s for s in _plan(rendered).steps if s.component == "gpu-operator"]
    assert [s.phase for s in steps] == [*td.PHASES, td.CRDS]
    assert all(s.by_label for s in steps)
    assert "kubeforge.io/component=gpu-operator" in steps[0].describe()[-1]


def _service_backed_webhook(name: str, ns: str, svc: str, **md) -> dict:
    return {"apiVersion": td.ADMISSION, "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name, **md},
            "webhooks": [{"name": f"{name}.example", "clientConfig": {"service": {"namespace": ns, "name": svc}}}]}


def test_runtime_webhooks_are_found_by_service_owner_and_label(training):
    """Webhook configurations a controller creates at runtime carry none of our labels; they are
    matched by the component's Service they call, by an owner reference, or by our label. The live
    objects here are shaped as the API server lists them (no cluster in this test)."""
    objs = training.components["katib"].objects
    svc = objects_of(training, "katib", "Service")[0]
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    rendered_hook = objects_of(training, "katib", "ValidatingWebhookConfiguration")[0]
    live = [
        copy.deepcopy(rendered_hook),                                   # rendered: planned already
        _service_backed_webhook("katib-runtime", ns, name),              # calls katib's Service
        _service_backed_webhook("owned", "elsewhere", "x",
                                ownerReferences=[{"uid": "uid-of-katib-controller"}]),
        _service_backed_webhook("labelled", "elsewhere", "y",
                                labels={"kubeforge.io/component": "katib"}),
        _service_backed_webhook("someone-else", "kube-system", name),   # same name, other namespace
    ]
    found = td.runtime_webhooks("katib", objs, live, {"uid-of-katib-controller"})
    assert [w["metadata"]["name"] for w in found] == ["katib-runtime", "owned", "labelled"]


def test_stuck_objects_name_their_blocking_finalizers():
    ns = {"apiVersion": "v1", "kind": "Namespace",
          "metadata": {"name": "kubeflow", "finalizers": []},
          "spec": {"finalizers": ["kubernetes"]},
          "status": {"phase": "Terminating", "conditions": [
              {"type": "NamespaceContentRemaining", "status": "True",
               "message": "Some resources are remaining: experiments.kubeflow.org has 1 resource instances"},
              {"type": "NamespaceFinalizersRemaining", "status": "True",
               "message": "Some content in the namespace has finalizers remaining: "
                          "update-prometheus-metrics in 1 resource instances"}]}}
    stuck = td.stuck_detail(ns)
    assert stuck.object == "Namespace kubeflow" and stuck.finalizers == ["kubernetes"]
    assert "experiments.kubeflow.org has 1 resource instances" in stuck.detail
    exp = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
           "metadata": {"name": "e", "namespace": "team-a", "finalizers": ["update-prometheus-metrics"]}}
    assert td.stuck_detail(exp) == td.Stuck("Experiment team-a/e", ["update-prometheus-metrics"], "")
    rep = td.report([td.StepResult("katib", td.CUSTOM_RESOURCES, 1, [td.stuck_detail(exp)])])
    assert rep["ok"] is False and rep["stuck"][0]["finalizers"] == ["update-prometheus-metrics"]


def test_protected_namespaces_are_never_planned(training):
    import dataclasses

    rc = training.components["storage"]
    fake = copy.copy(training)
    extra = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}
    fake.components = dict(training.components, storage=dataclasses.replace(rc, objects=rc.objects + [extra]))
    refs = [r for s in td.plan_teardown(fake).steps for r in s.objects]
    assert td.Ref("v1", "Namespace", "kube-system") not in refs
