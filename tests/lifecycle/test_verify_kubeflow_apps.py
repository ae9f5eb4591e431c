"""The Kubeflow apps' conformance checks (poddefaults, volumes: webhook CAs injected; notebooks: a
Notebook Ready with a PodDefault injected), their logic on the real objects the kubeflow profile
renders from the mirror.

No cluster runs here. The webhook-certificate checks run whole against the API server STAND-IN
(apiserver_standin.py), whose cert-manager issues Certificates and whose cainjector copies each
Certificate's ca.crt into the objects that name it, as upstream's do. The Notebook check runs
against TenantStandIn below: a STAND-IN for a tenant namespace with the notebook-controller and
the PodDefaults webhook, whose behaviour is modelled on upstream's (named where it is).
"""
from __future__ import annotations

import copy
import re

import pytest
from apiserver_standin import ApiServerStandIn
from fakeclock import FakeClock
from lifecycle_helpers import objects_of

from kubeforge import api
from kubeforge.lifecycle import apply as ap
from kubeforge.validate import validate
from kubeforge.verify import notebooks as nbk
from kubeforge.verify import webhook_certs
from kubeforge.verify.checks import collect, load_checks_file
from kubeforge.verify.cluster import ApiRejected
from kubeforge.verify.context import CheckContext


@pytest.fixture(scope="module")
def kubeflow(render_profile):
    return render_profile("kubeflow")


def _check_fn(component: str, name: str):
    from kubeforge.paths import components_dir

    found = {meta["name"]: fn for fn, meta in load_checks_file(components_dir() / component / "checks.py", component)}
    return found[name]


def _ctx(cluster, rendered, component, timeout=120.0, sleep=None, clock=None):
    return CheckContext(cluster=cluster, plan=rendered.plan, component=component,
                        objects=rendered.components[component].objects, timeout=timeout,
                        clock=clock or cluster.clock, sleep=sleep or cluster.advance)


# -- which checks the profile runs ---------------------------------------------------------
def test_kubeflow_profile_runs_the_apps_checks(kubeflow):
    checks = {c.name: c for c in collect(kubeflow.plan, kubeflow)}
    for name in ("poddefaults/webhook-certificate", "volumes/webhook-certificate",
                 "notebooks/notebook-with-poddefault", "poddefaults/webhooks-ready", "volumes/webhooks-ready",
                 "notebooks/workloads-available", "tensorboards/crds-established"):
        assert name in checks and checks[name].skip_reason is None, name
    nb = checks["notebooks/notebook-with-poddefault"]
    assert "poddefaults/webhooks-ready" in nb.needs     # it needs the webhook that injects


def test_the_notebook_check_is_skipped_without_tenants():
    plan = api.plan(api.load_profile("kubeflow", {"kubeflow": {"tenants": []}}))
    from kubeforge.verify.checks import component_checks

    (c,) = [c for c in component_checks(plan, "notebooks", []) if c.name.endswith("notebook-with-poddefault")]
    assert "no kubeflow.tenants" in c.skip_reason


# -- webhook CAs: logic on the real rendered objects ----------------------------------------
def _issued(cert: dict, ca: str = "Q0EtMQ==") -> tuple[dict, dict]:
    """The Certificate with the Ready status cert-manager writes, and the Secret it issues."""
    live = copy.deepcopy(cert)
    live["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": cert["spec"]["secretName"]},
              "data": {"tls.crt": "Y3J0", "tls.key": "a2V5", "ca.crt": ca}}
    return live, secret


def _inject(obj: dict, ca: str) -> dict:
    """What cert-manager's cainjector writes: the CA into each webhook (a CRD: its conversion)."""
    live = copy.deepcopy(obj)
    if live["kind"] == "CustomResourceDefinition":
        live["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"] = ca
    for wh in live.get("webhooks") or []:
        wh["clientConfig"]["caBundle"] = ca
    return live


@pytest.mark.parametrize("component, expected", [
    ("poddefaults", {("MutatingWebhookConfiguration", "admission-webhook-mutating-webhook-configuration")}),
    ("volumes", {("MutatingWebhookConfiguration", "pvcviewer-mutating-webhook-configuration"),
                 ("ValidatingWebhookConfiguration", "pvcviewer-validating-webhook-configuration"),
                 ("CustomResourceDefinition", "pvcviewers.kubeflow.org")})])
def test_ca_injection_logic_on_the_rendered_webhooks(kubeflow, component, expected):
    objs = kubeflow.components[component].objects
    targets = webhook_certs.injected(objs)
    assert {(o["kind"], o["metadata"]["name"]) for o in targets} == expected
    (cert,) = objects_of(kubeflow, component, "Certificate")
    for obj in targets:
        assert webhook_certs.certificate_of(obj) == (cert["metadata"]["namespace"], cert["metadata"]["name"])
        live_cert, secret = _issued(cert)
        # as rendered: nothing injected yet
        problems = webhook_certs.injection_problems(copy.deepcopy(obj), obj, live_cert, secret)
        assert problems and all("has no caBundle" in p and "cainjector" in p for p in problems)
        # the Certificate not issued yet
        pending = copy.deepcopy(cert)
        pending["status"] = {"conditions": [{"type": "Ready", "status": "False", "reason": "Issuing",
                                             "message": "Issuing certificate as Secret does not exist"}]}
        assert webhook_certs.injection_problems(_inject(obj, "Q0EtMQ=="), obj, pending, None) == [
            f"Certificate {cert['metadata']['namespace']}/{cert['metadata']['name']} is not Ready "
            "(Issuing: Issuing certificate as Secret does not exist)"]
        # injected: clean
        assert webhook_certs.injection_problems(_inject(obj, "Q0EtMQ=="), obj, live_cert, secret) == []
        # re-issued with a new CA, the old bundle still there: the API server would reject the TLS
        _c, rotated = _issued(cert, ca="Q0EtMg==")
        stale = webhook_certs.injection_problems(_inject(obj, "Q0EtMQ=="), obj, live_cert, rotated)
        assert stale and all("is not the CA of Certificate" in p for p in stale)
        assert webhook_certs.injection_problems(None, obj, live_cert, secret) == [
            f"{obj['kind']} {obj['metadata']['name']} is missing"]


def _loaded_standin(rendered, unpullable=()):
    """Every rendered object as if applied, on the stand-in (no controller has run yet)."""
    cluster = ApiServerStandIn(unpullable=unpullable)
    for o in rendered.objects():
        cluster.put(o)
    return cluster


# The checks that are webhook_certs.check: the apps' and KFP's cache webhook.
CA_CHECKS = [("poddefaults", "webhook-certificate"), ("volumes", "webhook-certificate"),
             ("pipelines", "cache-webhook-cert")]


@pytest.mark.parametrize("component, check_name", CA_CHECKS)
def test_webhook_certificate_check_passes_once_the_cainjector_injected(kubeflow, component, check_name):
    cluster = _loaded_standin(kubeflow)
    fn = _check_fn(component, check_name)
    note = fn(_ctx(cluster, kubeflow, component))
    assert re.match(r"\d object\(s\) trust Certificate kubeflow/", note), note
    (cert,) = objects_of(kubeflow, component, "Certificate")
    ca = cluster.get("v1", "Secret", cert["spec"]["secretName"], "kubeflow")["data"]["ca.crt"]
    for obj in webhook_certs.injected(kubeflow.components[component].objects):
        live = cluster.get(webhook_certs.API[obj["kind"]], obj["kind"], obj["metadata"]["name"])
        assert {b for _w, b in webhook_certs.ca_bundles(live)} == {ca}


@pytest.mark.parametrize("component, check_name", CA_CHECKS)
def test_webhook_certificate_check_fails_while_nothing_injects(kubeflow, component, check_name):
    """cert-manager issues the Certificate, but its cainjector cannot start (its image is missing
    from an air-gapped mirror): the check fails naming the webhook and the injector."""
    (injector,) = [d for d in objects_of(kubeflow, "cert-manager", "Deployment")
                   if d["metadata"]["name"] == "cert-manager-cainjector"]
    image = injector["spec"]["template"]["spec"]["containers"][0]["image"]
    cluster = _loaded_standin(kubeflow, unpullable={image})
    fn = _check_fn(component, check_name)
    with pytest.raises(AssertionError, match=r"timed out waiting for webhook CAs injected: .*has no caBundle "
                                             r"\(cert-manager's cainjector has not injected"):
        fn(_ctx(cluster, kubeflow, component, timeout=60))


def test_an_empty_upstream_ca_bundle_would_fight_the_cainjector(kubeflow):
    """Why poddefaults/generate.py drops upstream's `caBundle: ""`: applied as upstream ships it,
    the second `kubeforge apply` conflicts with the cainjector over the field (409)."""
    rendered = copy.deepcopy(kubeflow)
    (hook,) = [o for o in rendered.components["poddefaults"].objects if o["kind"] == "MutatingWebhookConfiguration"]
    hook["webhooks"][0]["clientConfig"]["caBundle"] = ""        # upstream's base/mutating-webhook-configuration.yaml
    cluster = ApiServerStandIn()
    run = ap.Applier(cluster, clock=cluster.clock, sleep=cluster.advance, echo=lambda _l: None, wait_s=300.0)
    assert run.run(rendered).ok
    again = ap.Applier(cluster, clock=cluster.clock, sleep=cluster.advance, echo=lambda _l: None, wait_s=300.0)
    assert not again.run(rendered).ok
    assert any(status == 409 and "cert-manager-cainjector" in msg and "caBundle" in msg
               for _ref, status, msg in cluster.rejections)


# -- the Notebook check, against a tenant-namespace stand-in --------------------------------
def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


class TenantStandIn(FakeClock):
    """STAND-IN for the API server of one tenant namespace, with the two controllers the Notebook
    check depends on, modelled on upstream (kubeflow/kubeflow v1.10):
    - the notebook-controller: a Notebook gets a StatefulSet whose pod `<name>-0` carries the
      Notebook's labels plus `notebook-name` and `statefulset`, and the Notebook's pod spec;
      `status.readyReplicas` turns 1 `start_s` seconds after (never, if the image is unpullable,
      with containerState.waiting ImagePullBackOff);
    - the PodDefaults webhook (admission-webhook main.go): at pod creation, in namespaces labelled
      app.kubernetes.io/part-of=kubeflow-profile, each PodDefault whose selector matches the pod's
      labels adds its env and volumeMounts to every container and its volumes to the pod.
    Custom resources are validated against their CRD's schema from the render, as the API server
    validates them; an invalid one is refused (422)."""

    def __init__(self, rendered, namespace="team-a", profile_namespace=True, unpullable=(), start_s=20.0):
        self.now = 0.0
        self.start_s = start_s
        self.unpullable = set(unpullable)
        self.crds = {(c["spec"]["group"], c["spec"]["names"]["kind"]): c
                     for rc in rendered.components.values() for c in rc.objects
                     if c["kind"] == "CustomResourceDefinition"}
        self.kubernetes_version = rendered.plan.profile.kubernetesVersion
        labels = {"app.kubernetes.io/part-of": "kubeflow-profile"} if profile_namespace else {}
        self.store = {("v1", "Namespace", None, namespace): {"metadata": {"name": namespace, "labels": labels}},
                      ("v1", "ServiceAccount", namespace, nbk.SERVICE_ACCOUNT):
                          {"metadata": {"name": nbk.SERVICE_ACCOUNT, "namespace": namespace}}}
        self.pods: dict[tuple, dict] = {}
        self.created: dict[tuple, float] = {}
        self.deleted: list[str] = []

    def create(self, obj, namespace=None, dry_run=False):
        obj = copy.deepcopy(obj)
        obj["metadata"]["namespace"] = namespace
        group = obj["apiVersion"].rpartition("/")[0]
        crd = self.crds.get((group, obj["kind"]))
        if group and crd is None:
            raise ApiRejected(404, "NotFound", f'no matches for kind "{obj["kind"]}"')
        if crd is not None:
            report = validate([crd, obj], self.kubernetes_version, allowlist=[])
            errors = [f.message for f in report.errors if f.kind == obj["kind"]]
            if errors:
                raise ApiRejected(422, "Invalid", "; ".join(errors))
        key = (obj["apiVersion"], obj["kind"], namespace, obj["metadata"]["name"])
        self.store[key] = obj
        self.created[key] = self.now
        if obj["kind"] == "Notebook":
            self._spawn(obj, namespace)
        return copy.deepcopy(obj)

    def _spawn(self, nb, ns):
        name = nb["metadata"]["name"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"{name}-0", "namespace": ns,
                            "labels": {**nb["metadata"].get("labels", {}), "notebook-name": name, "statefulset": name}},
               "spec": copy.deepcopy(nb["spec"]["template"]["spec"])}
        ns_labels = self.store[("v1", "Namespace", None, ns)]["metadata"]["labels"]
        if ns_labels.get("app.kubernetes.io/part-of") == "kubeflow-profile":
            for (_api_v, kind, pns, _n), pd in self.store.items():
                if kind == "PodDefault" and pns == ns and _matches(pd["spec"]["selector"], pod["metadata"]["labels"]):
                    spec = pod["spec"]
                    spec.setdefault("volumes", []).extend(copy.deepcopy(pd["spec"].get("volumes") or []))
                    for c in spec["containers"]:
                        c.setdefault("env", []).extend(copy.deepcopy(pd["spec"].get("env") or []))
                        c.setdefault("volumeMounts", []).extend(copy.deepcopy(pd["spec"].get("volumeMounts") or []))
        self.pods[(ns, name)] = pod

    def get(self, api_version, kind, name, namespace=None):
        key = (api_version, kind, namespace, name)
        obj = copy.deepcopy(self.store.get(key))
        if obj is not None and kind == "Notebook":
            image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
            if image in self.unpullable:
                obj["status"] = {"readyReplicas": 0, "containerState": {"waiting": {
                    "reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}}
            else:
                ready = self.now >= self.created[key] + self.start_s
                obj["status"] = {"readyReplicas": 1 if ready else 0, "containerState": {}}
        return obj

    def list(self, api_version, kind, namespace=None, label_selector=None):
        want = dict(kv.split("=", 1) for kv in label_selector.split(",")) if label_selector else {}
        return [copy.deepcopy(p) for (ns, _n), p in self.pods.items()
                if ns == namespace and all(p["metadata"]["labels"].get(k) == v for k, v in want.items())]

    def delete(self, api_version, kind, name, namespace=None, propagation="Background"):
        self.deleted.append(f"{kind} {name}")
        self.pods.pop((namespace, name), None) if kind == "Notebook" else None
        return self.store.pop((api_version, kind, namespace, name), None) is not None


def test_the_check_spawns_what_the_spawner_offers(kubeflow):
    image = nbk.spawner_image(kubeflow.components["notebooks"].objects)
    assert image == "ghcr.io/kubeflow/kubeflow/notebook-servers/jupyter-scipy:v1.10.0"
    assert nbk.tenant_namespace(kubeflow.plan.profile) == kubeflow.plan.profile.kubeflow.tenants[0].name


def test_notebook_check_passes_when_the_poddefault_is_injected(kubeflow):
    cluster = TenantStandIn(kubeflow, namespace=nbk.tenant_namespace(kubeflow.plan.profile))
    note = _check_fn("notebooks", "notebook-with-poddefault")(_ctx(cluster, kubeflow, "notebooks", timeout=300))
    assert note.endswith("ready, PodDefault env and volume injected"), note
    # it cleaned up after itself, and left the tenant's namespace alone
    assert [d.split()[0] for d in cluster.deleted] == ["Notebook", "PodDefault"]
    assert not [k for k in cluster.store if k[1] in ("Notebook", "PodDefault")]
    assert ("v1", "Namespace", None, nbk.tenant_namespace(kubeflow.plan.profile)) in cluster.store


def test_notebook_check_fails_when_the_pod_lacks_the_poddefault(kubeflow):
    """The namespace lacks the kubeflow-profile label the webhook selects (not a Profile's), so
    nothing is injected: the Notebook is Ready but its pod lacks the env and volume."""
    cluster = TenantStandIn(kubeflow, namespace=nbk.tenant_namespace(kubeflow.plan.profile), profile_namespace=False)
    with pytest.raises(AssertionError) as err:
        _check_fn("notebooks", "notebook-with-poddefault")(_ctx(cluster, kubeflow, "notebooks", timeout=300))
    msg = str(err.value)
    assert f"lacks env {nbk.ENV_NAME}=" in msg and "the PodDefaults webhook did not inject it" in msg
    assert f"lacks volume {nbk.VOLUME}" in msg and f"lacks the mount {nbk.MOUNT_PATH}" in msg
    assert not [k for k in cluster.store if k[1] in ("Notebook", "PodDefault")]   # cleaned up


def test_notebook_check_fails_naming_why_the_notebook_never_gets_ready(kubeflow):
    image = nbk.spawner_image(kubeflow.components["notebooks"].objects)
    cluster = TenantStandIn(kubeflow, namespace=nbk.tenant_namespace(kubeflow.plan.profile), unpullable={image})
    with pytest.raises(AssertionError, match=r"Notebook .* is not ready \(ImagePullBackOff: Back-off pulling image"):
        _check_fn("notebooks", "notebook-with-poddefault")(_ctx(cluster, kubeflow, "notebooks", timeout=60))


def test_the_probe_objects_are_valid_for_the_real_crds(kubeflow):
    """The TenantStandIn refuses what the CRD schemas refuse; show it would catch a bad probe."""
    cluster = TenantStandIn(kubeflow)
    bad = nbk.poddefault("x", "y")
    bad["spec"]["selector"] = "not-a-selector"
    with pytest.raises(ApiRejected) as err:
        cluster.create(bad, "team-a")
    assert err.value.status == 422
    cluster.create(nbk.poddefault("x", "y"), "team-a")
    cluster.create(nbk.notebook("x", "img:v1", "y"), "team-a")


def test_injection_logic_names_each_missing_piece():
    pd = nbk.poddefault("probe", "t1")
    pod = {"metadata": {"name": "nb-0", "namespace": "team-a"},
           "spec": {"containers": [{"name": "nb", "env": [{"name": nbk.ENV_NAME, "value": "t1"}],
                                    "volumeMounts": [{"name": nbk.VOLUME, "mountPath": nbk.MOUNT_PATH}]}],
                    "volumes": [{"name": nbk.VOLUME, "emptyDir": {}}]}}
    assert nbk.injection_problems(pod, pd, "nb") == []
    assert nbk.injection_problems(pod, pd, "other") == ["pod team-a/nb-0 has no container other"]
    wrong = copy.deepcopy(pod)
    wrong["spec"]["containers"][0]["env"][0]["value"] = "t0"     # an older probe's PodDefault
    assert "got 't0'" in nbk.injection_problems(wrong, pd, "nb")[0]
    assert nbk.injection_problems(None, pd, "nb") == ["the Notebook's pod is missing"]


# -- component.yaml health -----------------------------------------------------------------
@pytest.mark.parametrize("component", ["poddefaults", "notebooks", "volumes", "tensorboards"])
def test_health_names_what_the_component_renders(kubeflow, component):
    from kubeforge.verify.readiness import health_objects

    pc = kubeflow.plan.components[component]
    have = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in kubeflow.components[component].objects}
    stubs = health_objects(pc.component.health)
    assert {s["kind"] for s in stubs} >= {"CustomResourceDefinition", "Deployment"}
    for s in stubs:
        assert (s["kind"], s["metadata"].get("namespace"), s["metadata"]["name"]) in have, s
    # every Deployment and webhook configuration the component renders is named
    named = {(s["kind"], s["metadata"]["name"]) for s in stubs}
    for o in kubeflow.components[component].objects:
        if o["kind"] in ("Deployment", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            assert (o["kind"], o["metadata"]["name"]) in named, o["metadata"]["name"]


def test_health_webhooks_give_webhook_readiness_without_the_render(kubeflow):
    from kubeforge.verify.readiness import derive

    health = kubeflow.plan.components["volumes"].component.health
    (hooks,) = [c for c in derive("volumes", [], health, chart_rendered=False) if c.name == "volumes/webhooks-ready"]
    assert hooks.description.startswith("2 webhook configuration(s)")


# -- pvcviewer's webhooks called for real (a dry run) ---------------------------------------
# What a 1.34 API server answers when the caBundle does not sign the webhook's serving certificate.
X509 = ('Internal error occurred: failed calling webhook "mpvcviewer.kb.io": failed to call webhook: Post '
        '"https://pvcviewer-webhook-service.kubeflow.svc:443/mutate-kubeflow-org-v1alpha1-pvcviewer?timeout=10s": '
        'tls: failed to verify certificate: x509: certificate signed by unknown authority')


class WebhookStandIn(FakeClock):
    """STAND-IN for the API server in front of pvcviewer's webhooks: namespaces and PVCs are
    stored; a dry-run PVCViewer goes to the webhooks, which (trusted=True) default spec.podSpec as
    upstream's sample says they do, or (trusted=False) cannot be called over TLS."""

    def __init__(self, trusted=True, defaults=True):
        self.trusted, self.defaults, self.now = trusted, defaults, 0.0
        self.store, self.deleted = {}, []

    def create(self, obj, namespace=None, dry_run=False):
        obj = copy.deepcopy(obj)
        if obj["kind"] == "PVCViewer":
            assert dry_run, "the check must not leave a viewer behind"
            if not self.trusted:
                raise ApiRejected(500, "InternalError", X509)
            if self.defaults:
                obj["spec"]["podSpec"] = {"containers": [{"name": "main", "image": "filebrowser/filebrowser:v2.25.0"}]}
            return obj
        self.store[(obj["kind"], namespace, obj["metadata"]["name"])] = obj
        return obj

    def delete(self, api_version, kind, name, namespace=None, propagation="Background"):
        self.deleted.append(f"{kind} {name}")
        self.store = {k: v for k, v in self.store.items() if not (k[0] == kind and k[2] == name) and k[1] != name}
        return True


@pytest.mark.parametrize("trusted, defaults, expect", [
    (True, True, None),
    (False, True, "does not trust the webhook's serving certificate"),
    (True, False, "spec.podSpec is empty: the mutating webhook did not default it")])
def test_pvcviewer_admission_check(kubeflow, trusted, defaults, expect):
    cluster = WebhookStandIn(trusted, defaults)
    fn = _check_fn("volumes", "pvcviewer-admitted")
    if expect is None:
        assert "defaulted and validated" in fn(_ctx(cluster, kubeflow, "volumes"))
    else:
        with pytest.raises(AssertionError, match=re.escape(expect)):
            fn(_ctx(cluster, kubeflow, "volumes"))
    assert [d for d in cluster.deleted if d.startswith("Namespace")], "the throw-away namespace goes"


def test_admission_verdicts():
    assert webhook_certs.admission_problems(None, {"spec": {"podSpec": {"containers": [{}]}}}, "spec.podSpec") == []
    (tls,) = webhook_certs.admission_problems(ApiRejected(500, "InternalError", X509), None, "spec.podSpec")
    assert "does not trust" in tls and "x509: certificate signed by unknown authority" in tls
    (other,) = webhook_certs.admission_problems(ApiRejected(400, "BadRequest", 'denied the request: pvc "x" not found'),
                                                None, "spec.podSpec")
    assert other.startswith("the dry-run create was refused: denied the request")
