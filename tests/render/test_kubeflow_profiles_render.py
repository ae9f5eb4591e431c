"""kubeflow-profiles and central-dashboard render from the mirror: the profile's tenants become
Profiles and the contributor access KFAM would create, ordered after the namespaces the profile
controller makes; bad tenant input is one clear error; the dashboard links only enabled apps.
Expected values come from profiles/kubeflow.yaml and from KFAM's source (kubeflow/kubeflow v1.10.0
components/access-management/kfam/bindings.go), not from the generator."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from kubeforge import api
from kubeforge.errors import KubeforgeError
from kubeforge.lifecycle.apply import plan_apply
from kubeforge.ordering import CREATES_NAMESPACE, apply_order
from kubeforge.pulumi.graph import build_graph, object_key

REPO = Path(__file__).resolve().parents[2]
KUBEFLOW = yaml.safe_load((REPO / "profiles/kubeflow.yaml").read_text())["kubeflow"]
PROFILE_KEY = "kubeflow.org/Profile//team-a"
CONTROLLER_KEY = "apps/Deployment/kubeflow/profiles-deployment"
BOB = "user-bob-example-com-clusterrole-edit"


@pytest.fixture(scope="module")
def kubeflow(mirror_dir):
    return api.render(api.plan(api.load_profile("kubeflow")), mirror=str(mirror_dir))


def _of(rendered, kind, name=None, ns=None):
    return [o for o in rendered.components["kubeflow-profiles"].objects if o["kind"] == kind
            and (name is None or o["metadata"]["name"] == name)
            and (ns is None or o["metadata"].get("namespace") == ns)]


def _module(component):
    spec = importlib.util.spec_from_file_location(f"gen_{component.replace('-', '_')}",
                                                  REPO / f"components/{component}/generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_one_profile_per_tenant_with_owner_and_quota(kubeflow):
    profiles = {p["metadata"]["name"]: p for p in _of(kubeflow, "Profile")}
    assert sorted(profiles) == sorted(t["name"] for t in KUBEFLOW["tenants"])
    for t in KUBEFLOW["tenants"]:
        p = profiles[t["name"]]
        assert p["apiVersion"] == "kubeflow.org/v1"
        assert p["spec"]["owner"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": t["owner"]}
        assert p["spec"]["resourceQuotaSpec"] == t["resourceQuota"]
        assert p["metadata"]["annotations"][CREATES_NAMESPACE] == t["name"]
        assert p["metadata"]["annotations"]["pulumi.com/waitFor"] == "jsonpath={.metadata.finalizers[0]}=profile-finalizer"
        assert p["metadata"]["labels"]["kubeforge.io/component"] == "kubeflow-profiles"


def test_contributor_access_is_what_kfam_creates(kubeflow):
    """bob@example.com contributes to team-a: KFAM's RoleBinding and AuthorizationPolicy, to the
    letter of bindings.go (name from getBindingName, annotations user/role, roleRef kubeflow-edit,
    the policy on the userid header from the ingress gateway and the KFP UI)."""
    assert [c for t in KUBEFLOW["tenants"] for c in t.get("contributors", [])] == ["bob@example.com"]
    rb, = _of(kubeflow, "RoleBinding", BOB, "team-a")
    ap, = _of(kubeflow, "AuthorizationPolicy", BOB, "team-a")
    assert rb["metadata"]["annotations"] == {"user": "bob@example.com", "role": "edit"}
    assert rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubeflow-edit"}
    assert rb["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob@example.com"}]
    assert ap["apiVersion"] == "security.istio.io/v1beta1"
    assert ap["metadata"]["annotations"] == {"user": "bob@example.com", "role": "edit"}
    assert ap["spec"] == {"rules": [{
        "when": [{"key": "request.headers[kubeflow-userid]", "values": ["bob@example.com"]}],
        "from": [{"source": {"principals": [
            "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
            "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"]}}]}]}
    # team-b has no contributors: nothing is rendered into its namespace.
    assert [o for o in kubeflow.components["kubeflow-profiles"].objects
            if o["metadata"].get("namespace") == "team-b"] == []


@pytest.mark.parametrize("email, name", [
    ("bob@example.com", "user-bob-example-com-clusterrole-edit"),
    ("First.Last+ml@Example.COM", "user-first-last-ml-example-com-clusterrole-edit"),
    ("a__b@x.io", "user-a-b-x-io-clusterrole-edit"),
])
def test_binding_names_follow_kfam(email, name):
    assert _module("kubeflow-profiles").binding_name(email) == name


def test_profiles_after_the_controller_and_contributor_access_after_the_profile(kubeflow):
    order = [object_key(o) for o in kubeflow.objects()]
    rb = f"rbac.authorization.k8s.io/RoleBinding/team-a/{BOB}"
    ap = f"security.istio.io/AuthorizationPolicy/team-a/{BOB}"
    assert order.index(CONTROLLER_KEY) < order.index(PROFILE_KEY) < order.index(rb)
    assert order.index(PROFILE_KEY) < order.index(ap)
    graph = build_graph(kubeflow)
    assert {"apiextensions.k8s.io/CustomResourceDefinition//profiles.kubeflow.org",
            CONTROLLER_KEY} <= set(graph.nodes[PROFILE_KEY].deps)
    assert graph.nodes[rb].deps == [PROFILE_KEY] and graph.nodes[ap].deps == [PROFILE_KEY]
    phase = {object_key(o): p for wp in plan_apply(kubeflow) for p, items in wp.phases.items() for _c, o in items}
    assert phase[CONTROLLER_KEY] == "workloads" and phase[PROFILE_KEY] == "custom-resources"
    assert phase[rb] == phase[ap] == "in-created-namespaces"


def test_a_rendered_namespace_wins_over_a_created_one():
    """An object in a namespace the batch renders itself follows that Namespace, not the custom
    resource that claims to create it (no reordering of ordinary objects)."""
    claim = {"apiVersion": "kubeflow.org/v1", "kind": "Profile",
             "metadata": {"name": "t", "annotations": {CREATES_NAMESPACE: "t"}}}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "t"}}
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "u"}}
    assert [o["kind"] for o in apply_order([cm, claim, plain])] == ["ConfigMap", "Profile", "ConfigMap"]
    assert apply_order([cm, claim, plain])[0] is plain
    assert [o["kind"] for o in apply_order([cm, ns])] == ["Namespace", "ConfigMap"]


# -- bad input --------------------------------------------------------------------------------
BAD = """extends: kubeflow
kubeflow:
  tenants:
    - {name: team-x, owner: %s, contributors: [%s]}
"""


@pytest.mark.parametrize("owner, contributor, field, email", [
    ("carol@example.com", "bob@example.com", "kubeflow.tenants[0].owner", "carol@example.com"),
    ("alice@example.com", "dave@example.com", "kubeflow.tenants[0].contributors[0]", "dave@example.com"),
])
def test_a_tenant_naming_no_dex_user_is_one_clear_error(catalog_with, mirror_dir, owner, contributor, field, email):
    catalog_with(profiles={"bad-tenant": BAD % (owner, contributor)})
    with pytest.raises(KubeforgeError) as exc:
        api.render(api.plan(api.load_profile("bad-tenant")), mirror=str(mirror_dir))
    err = exc.value
    assert err.field == field and err.file.endswith("bad-tenant.yaml")
    assert email in str(err) and "staticUsers" in err.fix


@pytest.mark.parametrize("name, owner", [("kubeflow", "kubeflow-namespace"), ("istio-system", "istio"),
                                         ("kube-system", "Kubernetes")])
def test_a_tenant_named_like_a_platform_namespace_is_refused(catalog_with, mirror_dir, name, owner):
    catalog_with(profiles={"bad-name": BAD.replace("team-x", name) % ("alice@example.com", "bob@example.com")})
    with pytest.raises(KubeforgeError) as exc:
        api.render(api.plan(api.load_profile("bad-name")), mirror=str(mirror_dir))
    assert exc.value.field == "kubeflow.tenants[0].name" and exc.value.file.endswith("bad-name.yaml")
    assert f"belongs to {owner}" in str(exc.value)


def test_with_an_external_oidc_provider_any_email_may_own_a_tenant(catalog_with, mirror_dir):
    catalog_with(profiles={"oidc-tenant": BAD % ("carol@example.com", "dave@example.com") + """  auth:
    externalOIDC: {issuer: "https://login.example.com", clientID: kubeflow}
"""})
    from kubeforge.secrets import store_for

    profile = api.load_profile("oidc-tenant")
    store_for(profile).put("dex-oidc-connector-client-secret", "set-by-the-user-at-the-provider")
    rendered = api.render(api.plan(profile), mirror=str(mirror_dir))
    owners = [p["spec"]["owner"]["name"] for p in rendered.components["kubeflow-profiles"].objects
              if p["kind"] == "Profile"]
    assert owners == ["carol@example.com"]


def test_the_cli_reports_the_bad_tenant_in_one_message(catalog_with, kubeforge_cli, tmp_path):
    catalog_with(profiles={"bad-tenant": BAD % ("carol@example.com", "bob@example.com")})
    rc, out, err = kubeforge_cli("render", "-p", "bad-tenant", "-o", str(tmp_path / "out"))
    assert rc == 2 and "Traceback" not in err
    assert "bad-tenant.yaml" in err and "kubeflow.tenants[0].owner" in err and "carol@example.com" in err
    assert not (tmp_path / "out").exists()


# -- the dashboard ---------------------------------------------------------------------------
def _upstream_links(mirror_dir) -> dict:
    patch = mirror_dir / ("github/kubeflow/manifests/26.03/applications/centraldashboard/upstream/"
                          "overlays/kserve/patches/configmap.yaml")
    return json.loads(yaml.safe_load(patch.read_text())["data"]["links"])


def _menu(links: dict) -> list[str]:
    return [i["text"] for i in links["menuLinks"]]


def test_the_dashboard_links_what_the_kubeflow_profile_enables(kubeflow, mirror_dir):
    cm, = [o for o in kubeflow.components["central-dashboard"].objects
           if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "centraldashboard-config"]
    links = json.loads(cm["data"]["links"])
    upstream = _upstream_links(mirror_dir)
    assert {"Notebooks", "Volumes", "TensorBoards", "Katib Experiments", "KServe Endpoints", "Pipelines"} \
        == set(_menu(upstream))
    enabled = set(kubeflow.plan.components)
    want = [t for t, comp in [("Notebooks", "notebooks"), ("TensorBoards", "tensorboards"), ("Volumes", "volumes"),
                              ("Katib Experiments", "katib"), ("KServe Endpoints", "kserve"),
                              ("Pipelines", "pipelines")] if comp in enabled]
    assert _menu(links) == want
    assert "katib" in enabled and "pipelines" in enabled       # kubeflow enables Pipelines (issue 9)
    assert [q["text"] for q in links["quickLinks"]] == [t for t, comp in [
        ("Create a new Notebook", "notebooks"), ("Upload a Pipeline", "pipelines"),
        ("View Pipeline Runs", "pipelines")] if comp in enabled]
    docs = [d["text"] for d in links["documentationItems"]]
    assert "Kubeflow Website" in docs and "Katib Documentation" in docs
    assert ("Kubeflow Pipelines Documentation" in docs) == ("pipelines" in enabled)


def test_the_dashboard_links_follow_the_plan(mirror_dir):
    upstream = json.dumps(_upstream_links(mirror_dir))
    gen = _module("central-dashboard")
    every = json.loads(gen.links(upstream, lambda c: True))
    assert every == json.loads(upstream)
    some = json.loads(gen.links(upstream, lambda c: c in ("notebooks", "pipelines")))
    assert _menu(some) == ["Notebooks", "Pipelines"]
    section = some["menuLinks"][1]
    assert len(section["items"]) == 6 and section["type"] == "section"
    assert [q["text"] for q in some["quickLinks"]] == ["Create a new Notebook", "Upload a Pipeline",
                                                       "View Pipeline Runs"]
    none = json.loads(gen.links(upstream, lambda c: False))
    assert none["menuLinks"] == [] and [d["text"] for d in none["documentationItems"]] == ["Kubeflow Website"]
