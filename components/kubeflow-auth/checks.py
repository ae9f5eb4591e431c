"""Kubeflow login and tenancy conformance, through the gateway as users and machines reach it.

- dex-login: a Dex static user logs in through the real flow (oauth2-proxy's sign-in, Dex's
  password form, the callback and its cookie) and the session reaches the central dashboard,
  which sees that user;
- session-tenancy: that session lists notebooks in the tenants the user owns or contributes
  to, and is refused (403) in the others: the web apps authorise the person the Dex token names;
- anonymous-denied: every enabled web app turns an anonymous caller away (302/401/403), also
  one that forges the `kubeflow-userid` header;
- tenant-matrix: machine-to-machine calls with the tenants' `default-editor` service-account
  tokens (the m2m path: Istio verifies the token, the web app authorises the identity): tenant A
  reads A (200) but not B (403), and a service account of no tenant reads neither (403), across
  the notebooks, volumes and TensorBoards APIs.

How verify reaches the gateway: kubeforge/verify/gateway.py. Facts and judging:
kubeforge/verify/kubeflow.py. The password is read from the install's secrets store, never printed.
"""
from kubeforge.verify import check
from kubeforge.verify.context import CheckError, NotYet
from kubeforge.verify.kubeflow import MATRIX_APPS, WEB_APP_COMPONENTS


def _login_needs(plan):
    if "central-dashboard" not in plan.components:
        return "the central dashboard is not enabled: nothing to log in to"
    if not plan.profile.kubeflow.auth.staticUsers:
        return "no Dex static user in kubeflow.auth.staticUsers (an external OIDC login needs a person)"
    return True


def _matrix_needs(plan):
    tenants = plan.profile.kubeflow.tenants
    if len(tenants) < 2:
        return (f"the profile declares {len(tenants)} tenant(s) in kubeflow.tenants; A-against-B needs two")
    if not any(a in plan.components for a in MATRIX_APPS):
        return "none of notebooks, volumes, tensorboards is enabled: no tenant API to try"
    return True


def _apps_needs(plan):
    return True if any(a in plan.components for a in WEB_APP_COMPONENTS) else "no Kubeflow web app is enabled"


def _retry(ctx, what, new_browser, attempt, timeout=180):
    """attempt(browser) with a fresh browser until it stops failing for a reason that can pass: no
    HTTP answer or a 5xx last (a pod still starting, a route not programmed yet). Any other
    failure is final at once."""
    from kubeforge.verify.httpflow import FlowError

    def probe():
        b = new_browser()
        try:
            return attempt(b)
        except FlowError as exc:
            last = b.history[-1].status if b.history else 0
            if "no HTTP answer" in exc.detail or last >= 500:
                raise NotYet(str(exc)) from None
            raise
    return ctx.wait(what, probe, timeout=timeout, interval=5)


def _session(ctx, then=None):
    """Log the first static user in through the gateway and check the dashboard sees them; then
    then(browser, user) with the session, within the same retries. (login, what then returned)."""
    from kubeforge.login import password_secret
    from kubeforge.secrets import store_for
    from kubeforge.verify import gateway, httpflow
    from kubeforge.verify.kubeflow import oauth2_proxy_config

    user = ctx.profile.kubeflow.auth.staticUsers[0].email
    store = store_for(ctx.profile)
    password = store.peek(password_secret(user))
    if password is None:
        raise CheckError(f"the install's secrets store {store.where} has no {password_secret(user)!r}: "
                         "run verify with the secrets file of the install (kubeforge --secrets FILE verify, "
                         "or $KUBEFORGE_SECRETS); for a Pulumi stack, `pulumi config get kubeforge:secrets "
                         "--stack ENV > FILE` (a JSON object, which the store reads; chmod 600, outside the "
                         "checkout)")
    cookie = oauth2_proxy_config(ctx.objects).get("cookie_name") or "_oauth2_proxy"
    new_browser = gateway.browsers(ctx)

    def attempt(b):
        got = httpflow.login(b, user, password, cookie_name=cookie)
        if "Kubeflow Central Dashboard" not in httpflow.Page(got.landing.text).title:
            raise httpflow.FlowError("session", f"{got.landing.brief()} is not the central dashboard "
                                                f"(title {httpflow.Page(got.landing.text).title.strip()!r})")
        env = b.request("GET", "/api/workgroup/env-info", step="dashboard identity",
                        headers={"Accept": "application/json"})
        try:
            seen = env.json().get("user") if env.status == 200 else None
        except ValueError:
            seen = None
        if seen != user:
            raise httpflow.FlowError("dashboard identity", f"{env.brief()}: the dashboard sees user {seen!r}, "
                                                           f"expected {user} (kubeflow-userid from the Dex token)")
        return got, (then(b, user) if then else None)
    return _retry(ctx, f"{user} to log in", new_browser, attempt)


@check("dex-login", timeout=300, when=_login_needs, uses=("central-dashboard",))
def dex_login(ctx):
    """A Dex static user logs in through oauth2-proxy and Dex's form and reaches the central dashboard."""
    got, _ = _session(ctx)
    user = ctx.profile.kubeflow.auth.staticUsers[0].email
    return f"{user} logged in ({len(got.hops)} requests); cookie {got.cookie}; the dashboard sees {user}"


def _session_tenancy_needs(plan):
    login = _login_needs(plan)
    if login is not True:
        return login
    if "notebooks" not in plan.components:
        return "the notebooks web app is not enabled: no tenant API for a session to try"
    if not plan.profile.kubeflow.tenants:
        return "the profile declares no tenant in kubeflow.tenants"
    return True


@check("session-tenancy", timeout=300, when=_session_tenancy_needs,
       uses=("central-dashboard", "kubeflow-profiles", "notebooks"))
def session_tenancy(ctx):
    """The logged-in user lists notebooks in the tenants they own or contribute to (200), not in the others (403)."""
    from kubeforge.verify.kubeflow import WEB_APPS, judge_cell, matrix_failure

    app = next(w for w in WEB_APPS if w.component == "notebooks")
    user = ctx.profile.kubeflow.auth.staticUsers[0].email
    cells_plan = [(t.name, 200 if user == t.owner or user in t.contributors else 403)
                  for t in ctx.profile.kubeflow.tenants]

    def then(b, user):
        cells = []
        for ns, want in cells_plan:
            r = b.request("GET", app.api_path(ns), step=app.title, headers={"Accept": "application/json"})
            if r.status >= 500:
                raise NotYet(f"{app.title}: GET {app.api_path(ns)} -> {r.status} (not up yet)")
            cells.append(judge_cell(app, user, ns, want, r.status, r.body))
        return cells
    _, cells = _session(ctx, then)
    failure = matrix_failure(cells, [], {})
    if failure:
        raise CheckError(failure)
    mine = [ns for ns, want in cells_plan if want == 200]
    return (f"{user}'s session lists notebooks in {', '.join(mine) or 'no tenant'} and is refused in "
            f"{', '.join(ns for ns, want in cells_plan if want == 403) or 'no other tenant'}")


@check("anonymous-denied", timeout=240, when=_apps_needs, uses=WEB_APP_COMPONENTS)
def anonymous_denied(ctx):
    """Every enabled web app answers an anonymous request, and one forging kubeflow-userid, with 302/401/403."""
    from kubeforge.verify import gateway
    from kubeforge.verify.kubeflow import USERID_HEADER, denied_problem, enabled_apps

    apps = enabled_apps(ctx.plan)
    tenants = ctx.profile.kubeflow.tenants
    ns = tenants[0].name if tenants else "kubeflow"
    forged = {USERID_HEADER: tenants[0].owner if tenants else "admin@example.com"}
    new_browser = gateway.browsers(ctx)

    def attempt():
        b = new_browser()
        problems, tried = [], 0
        for app in apps:
            for path in filter(None, (app.prefix, app.api_path(ns))):
                for label, headers in (("anonymous", {}), (f"forged {USERID_HEADER}", forged)):
                    r = b.request("GET", path, step=app.title, headers=headers, cookies=False)
                    tried += 1
                    if r.status >= 500 and r.status != 501:
                        raise NotYet(f"{app.title}: GET {path} -> {r.status} (not up yet)")
                    p = denied_problem(f"{app.title}: GET {path} ({label})", r.status, r.text)
                    if p:
                        problems.append(p)
        if problems:
            raise CheckError("; ".join(problems))
        return tried
    tried = ctx.wait("every web app to answer", attempt, timeout=180, interval=5)
    return f"{tried} anonymous requests to {', '.join(a.title for a in apps)}: all turned away"


@check("tenant-matrix", timeout=300, when=_matrix_needs, uses=("kubeflow-profiles", *MATRIX_APPS))
def tenant_matrix(ctx):
    """Service-account tokens: tenant A reads A (200), not B (403); an outsider reads neither (403)."""
    from kubeforge.verify import gateway
    from kubeforge.verify.kubeflow import (
        TENANT_SA,
        WEB_APPS,
        judge_cell,
        jwt_issuers,
        matrix_failure,
    )

    a, b = (t.name for t in ctx.profile.kubeflow.tenants[:2])
    apps = [w for w in WEB_APPS if w.component in MATRIX_APPS and w.component in ctx.plan.components]
    skipped = [w.title for w in WEB_APPS if w.component in MATRIX_APPS and w.component not in ctx.plan.components]

    def editor(ns):
        def probe():
            if ctx.get("v1", "ServiceAccount", TENANT_SA, ns) is None:
                raise NotYet(f"ServiceAccount {ns}/{TENANT_SA} not found: the profile controller has not "
                             f"reconciled Profile {ns}")
            return True
        ctx.wait(f"{ns}/{TENANT_SA}", probe, timeout=120)
        return ctx.cluster.service_account_token(ns, TENANT_SA)

    with ctx.namespace("m2m-outsider") as outside:
        ctx.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "outsider"}}, outside)
        tokens = {a: editor(a), b: editor(b),
                  "outsider": ctx.cluster.service_account_token(outside, "outsider")}
        plan = [(a, a, 200), (b, b, 200), (a, b, 403), (b, a, 403), ("outsider", a, 403), ("outsider", b, 403)]
        new_browser = gateway.browsers(ctx)

        def attempt():
            browser = new_browser()
            cells = []
            for app in apps:
                for caller, target, want in plan:
                    r = browser.request("GET", app.api_path(target), step=app.title, cookies=False,
                                        headers={"Authorization": f"Bearer {tokens[caller]}",
                                                 "Accept": "application/json"})
                    if r.status in (502, 503, 504):
                        raise NotYet(f"{app.title}: {r.status} (not up yet)")
                    cells.append(judge_cell(app, caller if caller == "outsider" else f"{caller}/{TENANT_SA}",
                                            target, want, r.status, r.body))
            return cells
        cells = ctx.wait("the tenant APIs to answer", attempt, timeout=180, interval=5)
    failure = matrix_failure(cells, jwt_issuers(ctx.objects),
                             {f"{n}/{TENANT_SA}": t for n, t in tokens.items()} | {"outsider": tokens["outsider"]})
    if failure:
        raise CheckError(failure)
    note = f"{len(cells)} requests across {', '.join(w.title for w in apps)} as expected ({a}, {b}, outsider)"
    if skipped:
        note += f"; not enabled, skipped: {', '.join(skipped)}"
    return note
