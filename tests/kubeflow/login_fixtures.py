"""Fixtures of the kubeflow-auth check tests: the real `kubeflow` render, the loopback STAND-IN
gateway (login_standin.py) configured from it, and a stand-in of the API server calls the checks
make. Imported by the test modules by name (no conftest here: the folder is shared)."""
from __future__ import annotations

import copy
import types
from pathlib import Path

import pytest
from fakeclock import FakeClock
from login_standin import K8S_ISSUER, ApiServer, Gateway, Server

from kubeforge.verify.checks import load_checks_file
from kubeforge.verify.context import CheckContext

REPO = Path(__file__).resolve().parents[2]
# The web apps the checks probe, as components of the kubeflow profile.
LAYER_APPS = ("central-dashboard", "notebooks", "volumes", "tensorboards", "pipelines")
# Whose ClusterRoles the web apps' SubjectAccessReviews are decided by (aggregated into kubeflow-*).
RBAC_COMPONENTS = ("kubeflow-roles", "kubeflow-auth", "notebooks", "volumes", "tensorboards")


@pytest.fixture(scope="module")
def kubeflow(render_profile):
    return render_profile("kubeflow")


@pytest.fixture(scope="module")
def checks():
    return {meta["name"]: fn for fn, meta in
            load_checks_file(REPO / "components/kubeflow-auth/checks.py", "kubeflow-auth")}


class StandinCluster:
    """What the checks ask the API server, answered from the stand-in: the ingress gateway's pod
    (from the real Istio Deployment's template) and Service, a port-forward to it (a loopback
    connection to the stand-in gateway), TokenRequests and ServiceAccounts."""

    def __init__(self, rendered, apiserver: ApiServer, server: Server):
        istio = rendered.components["istio"].objects
        dep = next(o for o in istio if o["kind"] == "Deployment" and o["metadata"]["name"] == "istio-ingressgateway")
        self.services = [o for o in istio if o["kind"] == "Service"]
        tpl = dep["spec"]["template"]
        self.pod = {"apiVersion": "v1", "kind": "Pod", "spec": tpl["spec"],
                    "metadata": {"name": "istio-ingressgateway-5d8f9c-x2x7q", "namespace": dep["metadata"]["namespace"],
                                 "labels": dict(tpl["metadata"]["labels"])},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
        self.api = apiserver
        self.server = server
        self.dialed: list[tuple[str, str, int]] = []

    def list(self, api_version, kind, namespace=None, label_selector=None):
        items = {"Pod": [self.pod], "Service": self.services}.get(kind, [])
        if namespace:
            items = [o for o in items if o["metadata"].get("namespace") == namespace]
        for term in filter(None, (label_selector or "").split(",")):
            k, _, v = term.partition("=")
            items = [o for o in items if (o["metadata"].get("labels") or {}).get(k) == v]
        return copy.deepcopy(items)

    def pod_dialer(self, namespace, pod, port):
        self.dialed.append((namespace, pod, port))
        assert (namespace, pod, port) == (self.pod["metadata"]["namespace"], self.pod["metadata"]["name"], 8080), \
            "the gateway listens on the pod's 8080 (Service port 80 -> targetPort 8080)"
        return self.server.dial

    def service_account_token(self, namespace, name, seconds=600, audiences=None):
        return self.api.token(namespace, name, seconds)

    def get(self, api_version, kind, name, namespace=None):
        if kind == "ServiceAccount" and (namespace, name) in self.api.service_accounts:
            return {"metadata": {"name": name, "namespace": namespace}}
        return None

    def create(self, obj, namespace=None):
        md = obj["metadata"]
        if obj["kind"] == "Namespace":
            self.api.namespaces.add(md["name"])
        elif obj["kind"] == "ServiceAccount":
            self.api.service_accounts.add((namespace or md["namespace"], md["name"]))
        return obj

    def delete(self, api_version, kind, name, namespace=None, propagation="Background"):
        if kind == "Namespace":
            self.api.namespaces.discard(name)
            self.api.service_accounts = {s for s in self.api.service_accounts if s[0] != name}
        return True




@pytest.fixture
def standin(kubeflow, checks):
    """standin(bugs=(), issuer=..., tenants=None, apps=LAYER_APPS, profile=None) -> (run, cluster, gateway):
    run(check_name) runs that check against the stand-in and returns its note."""
    made = []

    def make(bugs=(), issuer=K8S_ISSUER, tenants=None, apps=LAYER_APPS, profile=None):
        roles = [o for n in RBAC_COMPONENTS for o in kubeflow.components[n].objects if o["kind"] == "ClusterRole"]
        vss = [(n, o) for n in LAYER_APPS if n in kubeflow.components
               for o in kubeflow.components[n].objects if o["kind"] == "VirtualService"]
        apiserver = ApiServer(roles, issuer=issuer)
        # The contributors' RoleBindings kubeforge renders (KFAM's shape), beside what the profile
        # controller makes (ApiServer.add_tenant).
        apiserver.bindings += [o for o in kubeflow.components["kubeflow-profiles"].objects if o["kind"] == "RoleBinding"
                               and o["metadata"].get("namespace") in {t.name for t in kubeflow.plan.profile.kubeflow.tenants}]
        profile = profile or kubeflow.plan.profile
        if tenants is not None:
            profile = profile.model_copy(update={"kubeflow": profile.kubeflow.model_copy(
                update={"tenants": profile.kubeflow.tenants[:tenants]})})
        for t in profile.kubeflow.tenants:
            apiserver.add_tenant(t.name, t.owner)
        gw = Gateway(kubeflow.components["kubeflow-auth"].objects, vss, apiserver, set(bugs))
        server = Server(gw)
        made.append(server)
        cluster = StandinCluster(kubeflow, apiserver, server)
        # The real plan, less the layer apps a test leaves out (as a profile that disables them).
        plan = types.SimpleNamespace(components={n: pc for n, pc in kubeflow.plan.components.items()
                                                 if n not in LAYER_APPS or n in apps}, profile=profile)

        def run(name):
            clock = FakeClock()
            ctx = CheckContext(cluster=cluster, plan=plan, component="kubeflow-auth",
                               objects=kubeflow.components["kubeflow-auth"].objects, timeout=300,
                               clock=clock, sleep=clock.sleep)
            return checks[name](ctx)
        return run, cluster, gw
    yield make
    for s in made:
        s.close()


