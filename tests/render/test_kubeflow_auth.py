"""kubeflow-auth and the multi-user overlays, rendered from the real kubeflow/manifests 26.03 mirror.

Expected objects come from an independent `kubectl kustomize` of the same upstream trees (never
from kubeforge's own render); secrets are checked against the install's store and bcrypt itself.
"""
from __future__ import annotations

import base64
import json
import re

import bcrypt
import pytest
import yaml

from kubeforge.errors import KubeforgeError
from kubeforge.plan import make_plan
from kubeforge.profile import load_profile
from kubeforge.render import dump_yaml, render, selected_sources
from kubeforge.secrets import FileStore
from kubeforge.validate import validate

KF = "github/kubeflow/manifests/26.03"
AUTH_TREES = [f"{KF}/common/dex/overlays/oauth2-proxy", f"{KF}/common/oauth2-proxy/overlays/m2m-dex-and-kind",
              f"{KF}/common/istio/kubeflow-istio-resources/base"]
SECRET_NAMES = ["oauth2-proxy-client-secret", "oauth2-proxy-cookie-secret", "dex-password-alice@example.com",
                "dex-password-bob@example.com", "katib-mysql-root-password"]




@pytest.fixture(scope="module")
def store_a(tmp_path_factory):
    return FileStore(tmp_path_factory.mktemp("install-a") / "kubeflow.yaml")


@pytest.fixture(scope="module")
def kubeflow(cache, mirror_dir, store_a):
    return render(make_plan(load_profile("kubeflow")), mirror=str(mirror_dir), secrets=store_a)


def _profile(tmp_path, body: str, extends: str = "kubeflow"):
    p = tmp_path / "p.yaml"
    p.write_text(f"extends: {extends}\n{body}")
    return load_profile(str(p))


def _ids(objs, skip_namespaces=False):
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs
            if not (skip_namespaces and o["kind"] == "Namespace")}


def _one(objs, kind, name):
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind} {name}: {len(hits)}"
    return hits[0]


def _prefixed(objs, kind, prefix):
    """The object kustomize's generator named <prefix>-<content hash>."""
    hits = [o for o in objs if o["kind"] == kind and re.fullmatch(rf"{prefix}-[a-z0-9]{{10}}", o["metadata"]["name"])]
    assert len(hits) == 1, f"{kind} {prefix}-*: {len(hits)}"
    return hits[0]


def _b64(o, key):
    return base64.b64decode(o["data"][key]).decode()


def test_kubeflow_renders_the_auth_layer_from_upstream_with_zero_errors(kubeflow, upstream_builds):
    auth = kubeflow.components["kubeflow-auth"].objects
    expected = set()
    for tree in AUTH_TREES:
        expected |= _ids(upstream_builds(tree))
    # Exactly upstream's objects: secrets replaced in place, nothing dropped or invented.
    assert _ids(auth) == expected
    assert ("Gateway", "kubeflow", "kubeflow-gateway") in expected
    report = validate(kubeflow.objects(), "1.34")
    assert report.errors == [], report.summary()
    for ns in ("auth", "oauth2-proxy"):
        labels = _one(auth, "Namespace", ns)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_dex_users_passwords_and_the_shared_client_secret_are_the_installs(kubeflow, store_a):
    auth = kubeflow.components["kubeflow-auth"].objects
    cfg = yaml.safe_load(_one(auth, "ConfigMap", "dex")["data"]["config.yaml"])
    users = cfg["staticPasswords"]
    assert [u["email"] for u in users] == ["alice@example.com", "bob@example.com"]
    assert "user@example.com" not in json.dumps(auth)
    hashes = _one(auth, "Secret", "dex-passwords")["stringData"]
    assert sorted(hashes) == sorted(u["hashFromEnv"] for u in users)
    for u in users:
        password = store_a.peek(f"dex-password-{u['email']}")
        assert len(password) == 20
        assert bcrypt.checkpw(password.encode(), hashes[u["hashFromEnv"]].encode())
        assert password not in dump_yaml(kubeflow.objects())      # only its hash ships
    client = store_a.peek("oauth2-proxy-client-secret")
    dex_client = _one(auth, "Secret", "dex-oidc-client")
    proxy = _prefixed(auth, "Secret", "oauth2-proxy")
    assert _b64(dex_client, "OIDC_CLIENT_SECRET") == _b64(proxy, "client-secret") == client
    assert _b64(dex_client, "OIDC_CLIENT_ID") == _b64(proxy, "client-id") == cfg["staticClients"][0].get(
        "id", "kubeflow-oidc-authservice")
    cookie = _b64(proxy, "cookie-secret")
    assert cookie == store_a.peek("oauth2-proxy-cookie-secret")
    assert len(base64.urlsafe_b64decode(cookie)) == 32             # an AES-256 key for oauth2-proxy
    assert set(kubeflow.components["kubeflow-auth"].secrets) >= {
        "oauth2-proxy-client-secret", "oauth2-proxy-cookie-secret", "dex-password-hash-alice@example.com"}


def test_one_install_renders_byte_identical_and_two_installs_share_no_secret(kubeflow, cache, mirror_dir,
                                                                            store_a, tmp_path):
    plan = kubeflow.plan
    again = render(plan, mirror=str(mirror_dir), secrets=store_a)
    fresh = render(plan, mirror=str(mirror_dir), secrets=FileStore(store_a.path), use_cache=False)
    assert dump_yaml(kubeflow.objects()) == dump_yaml(again.objects()) == dump_yaml(fresh.objects())
    store_b = FileStore(tmp_path / "install-b.yaml")
    other = render(plan, mirror=str(mirror_dir), secrets=store_b)
    a, b = store_a.values(), store_b.values()
    for name in SECRET_NAMES:
        assert a[name] and b[name] and a[name] != b[name], name
    text_b = dump_yaml(other.objects())
    assert not any(a[n] in text_b for n in SECRET_NAMES)


def test_multi_user_overlays_come_from_upstream_trees_when_auth_is_on(kubeflow, cache, mirror_dir, upstream_builds):
    dev = render(make_plan(load_profile("dev")), mirror=str(mirror_dir))
    on, off = kubeflow.components, dev.components
    # Katib: katib-with-kubeflow's objects, the standalone tree's in dev.
    with_kf = _ids(upstream_builds(f"{KF}/applications/katib/upstream/installs/katib-with-kubeflow"), True)
    assert _ids(on["katib"].objects, True) == with_kf
    for obj in [("VirtualService", "kubeflow", "katib-ui"), ("AuthorizationPolicy", "kubeflow", "katib-ui"),
                ("ClusterRole", "", "kubeflow-katib-edit"), ("Certificate", "kubeflow", "katib-webhook-cert")]:
        assert obj in with_kf and obj not in _ids(off["katib"].objects)
    # Training operator: overlays/kubeflow adds the roles tenants are bound to.
    to = _ids(upstream_builds(f"{KF}/applications/training-operator/upstream/overlays/kubeflow"), True)
    assert _ids(on["training-operator"].objects, True) == to
    assert ("ClusterRole", "", "kubeflow-training-edit") in to - _ids(off["training-operator"].objects)
    # Istio: oauth2-proxy is the mesh's ext-authz provider; the cluster-local gateway wants a JWT.
    mesh = yaml.safe_load(_one(on["istio"].objects, "ConfigMap", "istio")["data"]["mesh"])
    assert [p["name"] for p in mesh["extensionProviders"]] == ["oauth2-proxy"]
    assert "extensionProviders" not in yaml.safe_load(_one(off["istio"].objects, "ConfigMap", "istio")["data"]["mesh"])
    m2m = _ids(upstream_builds(f"{KF}/common/istio/cluster-local-gateway/overlays/m2m-auth"))
    assert ("RequestAuthentication", "istio-system", "cluster-local-gateway-jwt") in m2m
    assert m2m <= _ids(on["istio"].objects)
    # The kubeflow namespace: sidecars and upstream's NetworkPolicies.
    ns = _one(on["kubeflow-namespace"].objects, "Namespace", "kubeflow")["metadata"]["labels"]
    assert ns["istio-injection"] == "enabled"
    assert "istio-injection" not in _one(off["kubeflow-namespace"].objects, "Namespace", "kubeflow")["metadata"]["labels"]
    policies = {i for i in _ids(upstream_builds(f"{KF}/common/kubeflow-namespace/base/kubeflow")) if i[0] == "NetworkPolicy"}
    assert len(policies) > 10
    assert _ids(on["kubeflow-namespace"].objects, True) == policies
    assert _ids(off["kubeflow-namespace"].objects, True) == set()


def test_profile_values_override_the_multi_user_defaults(tmp_path):
    plan = make_plan(_profile(tmp_path, "components:\n  katib: {values: {multiUser: false}}\n"))
    assert plan.components["katib"].values["multiUser"] is False
    assert [s.id for s in selected_sources(plan.components["katib"])] == ["katib"]
    assert plan.components["training-operator"].values["multiUser"] is True
    assert make_plan(load_profile("dev")).components["katib"].values["multiUser"] is False


def test_auth_without_istio_multi_user_is_one_clear_error(tmp_path, cache, mirror_dir):
    plan = make_plan(_profile(tmp_path, "components:\n  istio: {values: {multiUser: false}}\n"))
    with pytest.raises(KubeforgeError) as exc:
        render(plan, mirror=str(mirror_dir), secrets=FileStore(tmp_path / "s.yaml"))
    assert exc.value.field == "components.istio.values.multiUser"
    assert exc.value.file.endswith("p.yaml")


@pytest.mark.parametrize("body,field,words", [
    ("kubeflow:\n  auth: {externalOIDC: {issuer: login.example.com, clientID: kf}}\n",
     "kubeflow.auth.externalOIDC.issuer", "not an issuer URL"),
    ("kubeflow:\n  auth: {externalOIDC: {issuer: 'http://login.example.com', clientID: kf}}\n",
     "kubeflow.auth.externalOIDC.issuer", "https://"),
    ("kubeflow:\n  auth: {issuer: 'https://kubeflow.example.com/dex/'}\n", "kubeflow.auth.issuer", "trailing"),
    ("kubeflow:\n  auth: {staticUsers: [{email: a@example.com}, {email: A@example.com}]}\n",
     "kubeflow.auth.staticUsers", "declared twice"),
])
def test_bad_auth_settings_name_the_field(tmp_path, body, field, words):
    with pytest.raises(KubeforgeError) as exc:
        _profile(tmp_path, body)
    assert exc.value.field == field and words in str(exc.value)


@pytest.mark.parametrize("body,field", [
    ("kubeflow:\n  auth: {staticUsers: []}\n", "kubeflow.auth.staticUsers"),
    ("components:\n  kubeflow-auth: {values: {variant: eks}}\n", "components.kubeflow-auth.values.eksOIDCIssuer"),
])
def test_a_login_nobody_can_use_is_refused_at_render(tmp_path, cache, mirror_dir, body, field):
    plan = make_plan(_profile(tmp_path, body))
    with pytest.raises(KubeforgeError) as exc:
        render(plan, mirror=str(mirror_dir), secrets=FileStore(tmp_path / "s.yaml"))
    assert exc.value.field == field


def test_external_oidc_connector_takes_the_client_secret_the_user_set(tmp_path, cache, mirror_dir):
    plan = make_plan(_profile(tmp_path, "kubeflow:\n  auth:\n    issuer: https://kubeflow.example.com/dex\n"
                                        "    externalOIDC: {issuer: 'https://login.example.com', clientID: kf}\n"))
    store = FileStore(tmp_path / "s.yaml")
    with pytest.raises(KubeforgeError) as exc:
        render(plan, mirror=str(mirror_dir), secrets=store)
    assert exc.value.field == "secrets.dex-oidc-connector-client-secret"
    assert "kubeforge secrets set" in exc.value.fix
    store.put("dex-oidc-connector-client-secret", "the-secret-login.example.com-issued")
    auth = render(plan, mirror=str(mirror_dir), secrets=store).components["kubeflow-auth"].objects
    dex = _one(auth, "ConfigMap", "dex")
    cfg = yaml.safe_load(dex["data"]["config.yaml"])
    (conn,) = cfg["connectors"]
    assert conn["config"]["issuer"] == "https://login.example.com"
    assert conn["config"]["redirectURI"] == "https://kubeflow.example.com/dex/callback"
    assert cfg["issuer"] == "https://kubeflow.example.com/dex"
    env = conn["config"]["clientSecret"].lstrip("$")
    assert _b64(_one(auth, "Secret", "dex-oidc-client"), env) == "the-secret-login.example.com-issued"
    assert "the-secret" not in json.dumps(dex)
    # Everything that checks the issuer follows the profile.
    ra = _one(auth, "RequestAuthentication", "dex-jwt")["spec"]["jwtRules"][0]
    assert ra["issuer"] == cfg["issuer"] and ra["jwksUri"].startswith("http://dex.auth.svc.cluster.local")
    proxy_cfg = _prefixed(auth, "ConfigMap", "oauth2-proxy")["data"]["oauth2_proxy.cfg"]
    assert 'oidc_issuer_url = "https://kubeflow.example.com/dex"' in proxy_cfg


def test_variants_select_upstreams_oauth2_proxy_overlays(tmp_path, cache, mirror_dir, upstream_builds):
    eks = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"
    plan = make_plan(_profile(tmp_path, "components:\n  kubeflow-auth:\n    values: {variant: eks, "
                                        f"eksOIDCIssuer: '{eks}', secureCookies: true}}\n"))
    auth = render(plan, mirror=str(mirror_dir), secrets=FileStore(tmp_path / "s.yaml")).components["kubeflow-auth"].objects
    expected = set()
    for tree in [f"{KF}/common/dex/overlays/oauth2-proxy", f"{KF}/common/oauth2-proxy/overlays/m2m-dex-and-eks",
                 f"{KF}/common/istio/kubeflow-istio-resources/base"]:
        expected |= _ids(upstream_builds(tree))
    assert _ids(auth) == expected
    assert not any(o["metadata"]["name"] == "cluster-jwks-proxy" for o in auth)
    assert _one(auth, "RequestAuthentication", "m2m-token-issuer")["spec"]["jwtRules"][0]["issuer"] == eks
    assert _prefixed(auth, "ConfigMap", "oauth2-proxy-parameters")["data"]["FORCE_HTTPS"] == "true"
    only = make_plan(_profile(tmp_path, "components:\n  kubeflow-auth: {values: {variant: dex-only}}\n"))
    auth = render(only, mirror=str(mirror_dir), secrets=FileStore(tmp_path / "s.yaml")).components["kubeflow-auth"].objects
    assert not any(o["kind"] == "RequestAuthentication" and o["metadata"]["name"] == "m2m-token-issuer" for o in auth)


def test_cluster_jwks_proxy_runs_a_pinned_image_as_non_root(kubeflow, upstream_builds):
    up = _one(upstream_builds(f"{KF}/common/oauth2-proxy/overlays/m2m-dex-and-kind"), "Deployment", "cluster-jwks-proxy")
    assert up["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":latest")   # what upstream ships
    dep = _one(kubeflow.components["kubeflow-auth"].objects, "Deployment", "cluster-jwks-proxy")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "registry.k8s.io/kubectl:v1.34.1"
    assert c["securityContext"]["runAsNonRoot"] and c["securityContext"]["runAsUser"] > 0


def test_render_prints_how_to_read_each_first_password_never_the_password(tmp_path, capsys, cache, mirror_dir):
    from kubeforge.cli import main as cli

    f = tmp_path / "install.yaml"
    assert cli(["--secrets", str(f), "render", "-p", "kubeflow", "-o", str(tmp_path / "out"),
                "--mirror", str(mirror_dir)]) == 0
    out = capsys.readouterr().out
    for email in ("alice@example.com", "bob@example.com"):
        assert f"kubeforge --secrets {f} secrets get -p kubeflow dex-password-{email}" in out
    values = yaml.safe_load(f.read_text())
    assert not any(v in out for v in values.values())
    assert cli(["--secrets", str(f), "secrets", "get", "-p", "kubeflow", "dex-password-alice@example.com"]) == 0
    assert capsys.readouterr().out == values["dex-password-alice@example.com"] + "\n"


def test_secrets_set_stores_a_user_secret_and_refuses_a_derived_one(tmp_path, capsys, monkeypatch):
    import io

    from kubeforge.cli import main as cli

    f = tmp_path / "install.yaml"
    monkeypatch.setattr("sys.stdin", io.StringIO("issued-by-the-idp\n"))
    assert cli(["--secrets", str(f), "secrets", "set", "-p", "kubeflow", "dex-oidc-connector-client-secret"]) == 0
    assert yaml.safe_load(f.read_text())["dex-oidc-connector-client-secret"] == "issued-by-the-idp"
    assert "issued-by-the-idp" not in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    assert cli(["--secrets", str(f), "secrets", "set", "-p", "kubeflow", "dex-password-hash-alice@example.com"]) == 2
    assert "derived" in capsys.readouterr().err
