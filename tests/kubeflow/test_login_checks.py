"""The kubeflow-auth conformance checks (dex-login, anonymous-denied, tenant-matrix), run for real
against the loopback STAND-IN of login_standin.py, which is configured from the real `kubeflow`
render: kubeflow-auth's Dex, oauth2-proxy and Istio policy objects, Istio's ingress gateway, the
web apps' VirtualServices and ClusterRoles, kubeflow-roles and the tenants' contributor bindings.
Each check passes on the honest stand-in and fails, naming what broke, on a planted bug.
"""
from __future__ import annotations

import types

import pytest

from kubeforge.secrets import store_for
from kubeforge.verify.checks import collect
from kubeforge.verify.context import CheckError

pytest_plugins = ("login_fixtures",)   # the stand-in fixtures (no conftest: the folder is shared)


# -- they run for the kubeflow profile ----------------------------------------------------------
def test_kubeflow_profile_collects_the_login_checks_after_what_they_use(kubeflow):
    checks = collect(kubeflow.plan, kubeflow)
    found = {c.name: c for c in checks}
    pos = {c.name: i for i, c in enumerate(checks)}
    for c in checks:
        for dep in c.needs + c.after:
            assert pos[dep] < pos[c.name], f"{c.name} listed before its prerequisite {dep}"

    def needed_components(name):
        return {n.split("/")[0] for n in found[name].needs}
    # Their own readiness (Dex, oauth2-proxy), and that of the apps they log in to or call.
    assert {"kubeflow-auth", "istio", "central-dashboard"} <= needed_components("kubeflow-auth/dex-login")
    assert {"central-dashboard", "notebooks", "volumes", "tensorboards"} <= \
        needed_components("kubeflow-auth/anonymous-denied")
    assert {"kubeflow-profiles", "notebooks", "volumes", "tensorboards"} <= \
        needed_components("kubeflow-auth/tenant-matrix")
    assert ("pipelines" in needed_components("kubeflow-auth/anonymous-denied")) == \
        ("pipelines" in kubeflow.plan.components)
    assert "pipelines" not in needed_components("kubeflow-auth/tenant-matrix")   # not one of its APIs


# -- 3: dex-login -------------------------------------------------------------------------------
def test_dex_login_reaches_the_dashboard(standin, kubeflow):
    run, cluster, gw = standin()
    note = run("dex-login")
    user = kubeflow.plan.profile.kubeflow.auth.staticUsers[0].email
    assert note.startswith(f"{user} logged in") and f"the dashboard sees {user}" in note
    assert gw.proxy.cookie in note            # the cookie the rendered oauth2_proxy.cfg names
    assert cluster.dialed, "the check went through the port-forward to the ingress gateway pod"
    password = store_for(kubeflow.plan.profile).peek(f"dex-password-{user}")
    assert password and password not in note


def test_dex_login_fails_on_a_wrong_password(standin, kubeflow, monkeypatch):
    run, _, gw = standin()
    user = kubeflow.plan.profile.kubeflow.auth.staticUsers[0].email
    store = store_for(kubeflow.plan.profile)
    real = store.peek(f"dex-password-{user}")
    monkeypatch.setattr(type(store), "peek", lambda self, name: real + "x" if name.startswith("dex-password-")
                        else store._load().get(name))
    with pytest.raises(CheckError) as err:
        run("dex-login")
    assert str(err.value).startswith("dex login: Dex refused the credentials of " + user)
    assert real not in str(err.value)


@pytest.mark.parametrize("bug, step", [
    ("no-csrf-cookie", "oauth2-proxy start: "),
    ("session-cookie-renamed", "oauth2-proxy callback: "),
])
def test_dex_login_names_the_step_that_broke(standin, bug, step):
    run, _, _ = standin(bugs={bug})
    with pytest.raises(CheckError) as err:
        run("dex-login")
    assert str(err.value).startswith(step), str(err.value)


def test_dex_login_without_the_password_in_the_store_says_where_to_look(standin, kubeflow, monkeypatch):
    run, _, _ = standin()
    store = store_for(kubeflow.plan.profile)
    monkeypatch.setattr(type(store), "peek", lambda self, name: None)
    with pytest.raises(CheckError) as err:
        run("dex-login")
    assert "has no 'dex-password-" in str(err.value) and "--secrets FILE" in str(err.value)


# -- 3b: session-tenancy -------------------------------------------------------------------------
def test_a_session_lists_its_own_tenant_and_is_refused_in_another(standin):
    run, _, _ = standin()
    assert run("session-tenancy") == \
        "alice@example.com's session lists notebooks in team-a and is refused in team-b"


def test_a_notebooks_app_that_lets_any_session_in_fails(standin):
    run, _, _ = standin(bugs={"notebooks:any-user"})
    with pytest.raises(CheckError) as err:
        run("session-tenancy")
    assert str(err.value) == ("1 of 2 requests went wrong: "
                              "notebooks: alice@example.com -> team-b: 200, expected 403")


def test_a_contributor_session_needs_the_rendered_contributor_binding(standin, kubeflow):
    """bob owns team-b and contributes to team-a: his session reads both, through the KFAM-shaped
    RoleBinding kubeforge renders; without it team-a refuses him."""
    prof = kubeflow.plan.profile
    users = prof.kubeflow.auth.staticUsers
    bob_first = prof.model_copy(update={"kubeflow": prof.kubeflow.model_copy(update={
        "auth": prof.kubeflow.auth.model_copy(update={"staticUsers": [users[1], users[0]]})})})
    run, _, gw = standin(profile=bob_first)
    assert run("session-tenancy") == "bob@example.com's session lists notebooks in team-a, team-b and is refused " \
                                     "in no other tenant"
    gw.api.bindings = [b for b in gw.api.bindings if not b["metadata"]["name"].startswith("user-bob-")]
    with pytest.raises(CheckError) as err:
        run("session-tenancy")
    assert "notebooks: bob@example.com -> team-a: 403, expected 200" in str(err.value)


# -- 4: anonymous-denied ------------------------------------------------------------------------
def test_anonymous_requests_are_turned_away(standin, kubeflow):
    run, _, _ = standin()
    note = run("anonymous-denied")
    apps = [a for a in ("central-dashboard", "notebooks", "volumes", "tensorboards", "pipelines")
            if a in kubeflow.plan.components]
    assert len(apps) >= 4
    # each app: (its page, its API) x (anonymous, a forged kubeflow-userid header)
    assert note.startswith(f"{4 * len(apps)} anonymous requests") and "all turned away" in note


def test_a_web_app_answering_anonymous_callers_fails(standin):
    # The volumes app with authn off (APP_DISABLE_AUTH) behind a gateway that does not ask
    # oauth2-proxy for its API path: 200 to anyone.
    run, _, gw = standin(bugs={"volumes:no-authz"})
    gw.custom = []
    gw.deny = []
    with pytest.raises(CheckError) as err:
        run("anonymous-denied")
    assert "volumes web app: GET /volumes/api/namespaces/team-a/pvcs (anonymous): 200 without credentials" \
        in str(err.value)


def test_a_gateway_that_trusts_a_forged_userid_header_fails(standin):
    run, _, _ = standin(bugs={"trust-forged-userid"})
    with pytest.raises(CheckError) as err:
        run("anonymous-denied")
    assert "(forged kubeflow-userid): 200 without credentials" in str(err.value)
    assert "(anonymous)" not in str(err.value)


def test_anonymous_check_covers_only_enabled_apps(standin):
    run, _, _ = standin(apps=("central-dashboard", "notebooks"))
    assert run("anonymous-denied") == ("8 anonymous requests to central dashboard, notebooks (Jupyter web app): "
                                       "all turned away")


# -- 5: tenant-matrix ---------------------------------------------------------------------------
def test_tenant_matrix_on_the_honest_standin(standin):
    run, _, _ = standin()
    note = run("tenant-matrix")
    assert note.startswith("18 requests across notebooks (Jupyter web app), volumes web app, TensorBoards web app")


def test_a_web_app_that_lets_any_user_in_fails_the_matrix(standin):
    run, _, _ = standin(bugs={"tensorboards:any-user"})
    with pytest.raises(CheckError) as err:
        run("tenant-matrix")
    msg = str(err.value)
    assert msg.startswith("4 of 18 requests went wrong")
    assert "tensorboards: team-a/default-editor -> team-b: 200, expected 403" in msg
    assert "tensorboards: outsider -> team-a: 200, expected 403" in msg


def test_a_token_of_b_accepted_in_a_fails_the_matrix(standin):
    run, _, gw = standin()
    # Plant the bug in the RBAC the web apps consult: team-b's editor bound in team-a.
    gw.api.bindings.append({"metadata": {"name": "leak", "namespace": "team-a"},
                            "roleRef": {"kind": "ClusterRole", "name": "kubeflow-edit"},
                            "subjects": [{"kind": "ServiceAccount", "name": "default-editor", "namespace": "team-b"}]})
    with pytest.raises(CheckError) as err:
        run("tenant-matrix")
    msg = str(err.value)
    assert msg.startswith("3 of 18")
    for app in ("notebooks", "volumes", "tensorboards"):
        assert f"{app}: team-b/default-editor -> team-a: 200, expected 403" in msg


def test_an_untrusted_token_issuer_is_named(standin):
    # The cluster signs service-account tokens as another issuer than the RequestAuthentication trusts.
    run, _, _ = standin(issuer="https://oidc.eks.eu-west-1.amazonaws.com/id/ABC123")
    with pytest.raises(CheckError) as err:
        run("tenant-matrix")
    msg = str(err.value)
    assert "notebooks: team-a/default-editor -> team-a: 401, expected 200" in msg
    assert "issuer 'https://oidc.eks.eu-west-1.amazonaws.com/id/ABC123' is not among" in msg


def test_checks_skip_with_their_reason_when_the_profile_cannot_run_them(kubeflow):
    from kubeforge.verify.checks import component_checks

    WEB_APP_COMPONENTS = ("central-dashboard", "notebooks", "volumes", "tensorboards", "pipelines")

    def skips(profile, without=()):
        plan = types.SimpleNamespace(profile=profile, components={
            n: pc for n, pc in kubeflow.plan.components.items() if n not in without})
        return {c.name.split("/")[1]: c.skip_reason for c in component_checks(plan, "kubeflow-auth", [])}

    real = kubeflow.plan.profile
    assert skips(real) == {"dex-login": None, "session-tenancy": None, "anonymous-denied": None,
                           "tenant-matrix": None}
    assert skips(real, ("notebooks",))["session-tenancy"] == \
        "the notebooks web app is not enabled: no tenant API for a session to try"
    one = real.model_copy(update={"kubeflow": real.kubeflow.model_copy(update={"tenants": real.kubeflow.tenants[:1]})})
    assert skips(one)["tenant-matrix"] == "the profile declares 1 tenant(s) in kubeflow.tenants; A-against-B needs two"
    assert skips(real, ("notebooks", "volumes", "tensorboards"))["tenant-matrix"] == \
        "none of notebooks, volumes, tensorboards is enabled: no tenant API to try"
    assert skips(real, WEB_APP_COMPONENTS)["anonymous-denied"] == "no Kubeflow web app is enabled"
    assert skips(real, ("central-dashboard",))["dex-login"] == \
        "the central dashboard is not enabled: nothing to log in to"
    nobody = real.model_copy(update={"kubeflow": real.kubeflow.model_copy(
        update={"auth": real.kubeflow.auth.model_copy(update={"staticUsers": []})})})
    assert skips(nobody)["dex-login"].startswith("no Dex static user in kubeflow.auth.staticUsers")


def test_matrix_names_the_apps_it_skipped(standin):
    run, _, _ = standin(apps=("central-dashboard", "notebooks", "volumes"))
    note = run("tenant-matrix")
    assert note.startswith("12 requests") and note.endswith("not enabled, skipped: TensorBoards web app")


def test_dex_login_waits_for_a_dashboard_still_starting(standin):
    run, _, gw = standin()
    gw.apps.unavailable["central-dashboard"] = 2      # two logins land on a 503, the third gets through
    assert "logged in" in run("dex-login")
    gw.apps.unavailable["central-dashboard"] = 10 ** 6
    with pytest.raises(CheckError) as err:
        run("dex-login")
    assert str(err.value).startswith("timed out waiting for alice@example.com to log in: session: GET / -> 503")


def test_dex_login_reads_a_pulumi_stacks_secrets_exported_as_json(standin, kubeflow, tmp_path, monkeypatch):
    """The fix the check's message gives for a Pulumi stack: the stack's kubeforge:secrets (a JSON
    object) written to a file and named with --secrets / $KUBEFORGE_SECRETS."""
    import json
    import os

    values = store_for(kubeflow.plan.profile).values()
    exported = tmp_path / "stack-secrets.json"
    fd = os.open(exported, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    run, _, _ = standin()
    empty = tmp_path / "no-secrets-here"
    empty.mkdir(mode=0o700)
    monkeypatch.setenv("KUBEFORGE_SECRETS_DIR", str(empty))      # the profile's own file is not there
    with pytest.raises(CheckError):
        run("dex-login")
    monkeypatch.setenv("KUBEFORGE_SECRETS", str(exported))
    assert "logged in" in run("dex-login")
