"""Rule `default-secret`: a render carrying a known upstream default secret fails validation.

Proven on upstream's unmodified files (kubectl kustomize of the mirror's trees: Dex's
dex-passwords.yaml and secret_params.env, oauth2-proxy's secretGenerator, Katib's MySQL Secret),
and on kubeforge's own render, which must pass it.
"""
from __future__ import annotations

import base64
import copy

import pytest

from kubeforge import default_secrets as ds
from kubeforge.errors import KubeforgeError
from kubeforge.validate import validate

V = "1.34"
KF = "github/kubeflow/manifests/26.03"
ENTRIES = ds.load()


def _what(report):
    return sorted({e.what for f in report.errors if f.rule == "default-secret" for e in ENTRIES
                   if f"default {e.what} ({e.component};" in f.message})


def _entry(component, what_prefix):
    (e,) = [e for e in ENTRIES if e.component == component and e.what.startswith(what_prefix)]
    return e


@pytest.fixture(scope="module")
def upstream_auth(upstream_builds):
    return (upstream_builds(f"{KF}/common/dex/overlays/oauth2-proxy")
            + upstream_builds(f"{KF}/common/oauth2-proxy/overlays/m2m-dex-and-kind"))


def test_upstream_dex_and_oauth2_proxy_fail_with_every_default_named(upstream_auth):
    report = validate(copy.deepcopy(upstream_auth), V)
    found = {(f.kind, f.namespace, f.path) for f in report.errors if f.rule == "default-secret"}
    assert found == {
        ("Secret", "auth", "stringData.DEX_USER_PASSWORD"),                 # the 12341234 hash
        ("Secret", "auth", "data.OIDC_CLIENT_SECRET"),                      # secret_params.env
        ("Secret", "oauth2-proxy", "data.client-secret"),
        ("Secret", "oauth2-proxy", "data.cookie-secret"),
    }
    assert set(_what(report)) == {e.what for e in ENTRIES if e.component == "kubeflow-auth" and e.match == "contains"}
    # Never the value itself in what is printed.
    text = report.text()
    assert not any(e.value in text for e in ENTRIES if len(e.value) > 5)
    # And its :latest jwks proxy.
    assert [f.name for f in report.errors if f.rule == "image-latest"] == ["cluster-jwks-proxy"]


def test_upstream_katib_fails_on_its_mysql_password(upstream_builds):
    report = validate(copy.deepcopy(upstream_builds(f"{KF}/applications/katib/upstream/installs/katib-standalone")), V)
    assert [(f.name, f.path) for f in report.errors if f.rule == "default-secret"] == [
        ("katib-mysql-secrets", "data.MYSQL_ROOT_PASSWORD")]


def test_kubeforges_kubeflow_render_passes_and_a_planted_default_fails(render_profile):
    rendered = render_profile("kubeflow")
    objs = copy.deepcopy(rendered.objects())
    assert [f for f in validate(objs, V).errors if f.rule == "default-secret"] == []
    # Plant upstream's client secret back into kubeforge's own Secret: the rule must see it.
    (dex_client,) = [o for o in objs if o["kind"] == "Secret" and o["metadata"]["name"] == "dex-oidc-client"]
    secret = _entry("kubeflow-auth", "OIDC client").value
    dex_client["data"]["OIDC_CLIENT_SECRET"] = base64.b64encode(secret.encode()).decode()
    errors = [f for f in validate(objs, V).errors if f.rule == "default-secret"]
    assert [(f.component, f.name) for f in errors] == [("kubeflow-auth", "dex-oidc-client")]


def _secret(data=None, string=None, name="s"):
    o = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "monitoring"}}
    if data:
        o["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    if string:
        o["stringData"] = string
    return o


def _deployment(env):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "grafana", "namespace": "monitoring"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{
                    "name": "grafana", "image": "grafana/grafana:13.0.2",
                    "resources": {"requests": {"cpu": "1"}}, "env": env}]}}}}


@pytest.mark.parametrize("obj,hit", [
    # Stand-ins (Grafana's default is what it falls back to, so no upstream file spells it out):
    (_secret({"admin-password": "admin"}), True),
    (_deployment([{"name": "GF_SECURITY_ADMIN_PASSWORD", "value": "admin"}]), True),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "grafana-config", "namespace": "monitoring"},
      "data": {"grafana.ini": "[security]\nadmin_user = admin\nadmin_password = admin\n"}}, True),
    # `admin` under other keys is no Grafana password (keys: restricts a short value).
    (_deployment([{"name": "GF_SECURITY_ADMIN_USER", "value": "admin"}]), False),
    (_secret({"admin-user": "admin"}), False),
    # 12341234 as a whole value anywhere (exact), not as part of a longer one.
    (_secret(string={"password": "12341234"}), True),
    (_secret(string={"userID": "123412345"}), False),
    # a contains-entry inside a config file's line
    (_secret(string={"oauth2_proxy.cfg": 'cookie_secret = "7d16fee92f8d11b8940b081b3f8b8acb"\n'}), True),
])
def test_where_the_rule_looks(obj, hit):
    errors = [f for f in validate([obj], V).errors if f.rule == "default-secret"]
    assert bool(errors) is hit, [f.line() for f in errors]


@pytest.mark.parametrize("data,field,words", [
    ({"entries": [{"component": "x", "what": "y", "value": "short-one", "match": "contains", "where": "z"}]},
     "entries[0].match", "12 characters"),
    ({"entries": [{"component": "x", "what": "y", "value": 12341234, "where": "z"}]}, "entries[0].value", "quote"),
    ({"entries": [{"component": "x", "what": "y", "value": "v"}]}, "entries[0]", "missing"),
    ({"entries": [{"component": "x", "what": "y", "value": "v", "where": "z", "match": "regex"}]},
     "entries[0].match", "exact or contains"),
    ({"list": []}, "entries", "entries"),
])
def test_a_bad_entry_names_the_field(data, field, words):
    with pytest.raises(KubeforgeError) as exc:
        ds.parse(data)
    assert exc.value.field == field and words in str(exc.value)
    assert exc.value.file == "components/_default_secrets.yaml"


def test_every_entry_is_well_formed_and_documented():
    assert len(ENTRIES) >= 6
    assert len({e.value for e in ENTRIES}) == len(ENTRIES)
    text = ds.file_path().read_text()
    assert text.startswith("# Known upstream default secrets") and "Format:" in text
