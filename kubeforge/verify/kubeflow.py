"""Facts the Kubeflow login and tenancy checks share: the web apps behind the gateway, what the
rendered oauth2-proxy and Istio objects say, and how a check judges the answers it gets.

The web apps' routes are upstream's (kubeflow/kubeflow v1.10.0, the images kubeflow/manifests
26.03 ships): the gateway's VirtualServices put each app under a prefix and rewrite it to `/`,
and every CRUD web app serves `GET /api/namespaces/<ns>/<resource>`, authorising the caller
(header `kubeflow-userid`) with a SubjectAccessReview for `list` on that resource in <ns>:
jupyter `apps/common/routes/get.py` (notebooks), volumes `apps/default/routes/get.py` (pvcs),
tensorboards `app/routes/get.py` (tensorboards). No user header is a 401, a refused SAR a 403.
"""
from __future__ import annotations

import base64
import json
import tomllib
from dataclasses import dataclass

from kubeforge.verify.context import CheckError

DENIED = (302, 401, 403)          # what an unauthenticated request may get; never 200
USERID_HEADER = "kubeflow-userid"  # the header Istio fills from the JWT and the web apps read
TENANT_SA = "default-editor"      # the profile controller's editor ServiceAccount in each tenant


@dataclass(frozen=True)
class WebApp:
    component: str
    title: str
    prefix: str                   # where the gateway serves it
    api: str | None = None        # the namespaced list route under the prefix, "{ns}" for the namespace
    resource: str = ""            # what that route lists (for messages)

    def api_path(self, namespace: str) -> str | None:
        return self.prefix.rstrip("/") + self.api.format(ns=namespace) if self.api else None


WEB_APPS = (
    WebApp("central-dashboard", "central dashboard", "/", "/api/workgroup/env-info"),
    WebApp("notebooks", "notebooks (Jupyter web app)", "/jupyter/", "/api/namespaces/{ns}/notebooks", "notebooks"),
    WebApp("volumes", "volumes web app", "/volumes/", "/api/namespaces/{ns}/pvcs", "persistentvolumeclaims"),
    WebApp("tensorboards", "TensorBoards web app", "/tensorboards/", "/api/namespaces/{ns}/tensorboards",
           "tensorboards"),
    WebApp("pipelines", "Pipelines UI", "/pipeline/", "/apis/v2beta1/pipelines?namespace={ns}", "pipelines"),
)
WEB_APP_COMPONENTS = tuple(a.component for a in WEB_APPS)
# The APIs of the tenant matrix: namespaced, authorised per tenant by the web app itself.
MATRIX_APPS = ("notebooks", "volumes", "tensorboards")


def enabled_apps(plan: object) -> list[WebApp]:
    return [a for a in WEB_APPS if a.component in plan.components]


# -- what the render says -----------------------------------------------------------------------
def oauth2_proxy_config(objects: list[dict]) -> dict:
    """oauth2-proxy's settings: its oauth2_proxy.cfg (TOML, from the rendered ConfigMap) with the
    --flags and OAUTH2_PROXY_* literals of its Deployment on top (flags win, as in oauth2-proxy)."""
    cfg: dict = {}
    for o in objects:
        if o.get("kind") == "ConfigMap" and "oauth2_proxy.cfg" in (o.get("data") or {}):
            cfg = tomllib.loads(o["data"]["oauth2_proxy.cfg"])
    for o in objects:
        if o.get("kind") != "Deployment" or o["metadata"]["name"] != "oauth2-proxy":
            continue
        for c in o["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env") or []:
                if e["name"].startswith("OAUTH2_PROXY_") and "value" in e:
                    cfg[e["name"][len("OAUTH2_PROXY_"):].lower()] = e["value"]
            for a in c.get("args") or []:
                if a.startswith("--") and "=" in a:
                    k, _, v = a[2:].partition("=")
                    cfg[k.replace("-", "_")] = v
    return cfg


def jwt_issuers(objects: list[dict]) -> list[str]:
    """Every issuer the gateway's RequestAuthentications trust."""
    return [rule["issuer"] for o in objects if o.get("kind") == "RequestAuthentication"
            for rule in o["spec"].get("jwtRules") or []]


def unverified_claims(token: str) -> dict:
    """A JWT's claims, not verified: only for naming an issuer in a failure message."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


# -- judging ------------------------------------------------------------------------------------
def denied_problem(what: str, status: int, body: str) -> str | None:
    """None when an anonymous request was turned away (302/401/403); the problem otherwise."""
    if status in DENIED:
        return None
    if status == 200:
        return f"{what}: 200 without credentials (the app answered an anonymous caller)"
    return f"{what}: {status} (expected 302/401/403; {status} proves nothing about authentication): " \
           f"{' '.join(body.split())[:120]}"


@dataclass
class Cell:
    app: str
    caller: str
    namespace: str
    want: int
    got: int
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.got == self.want and not self.note

    def line(self) -> str:
        out = f"{self.app}: {self.caller} -> {self.namespace}: {self.got}, expected {self.want}"
        return out + (f" ({self.note})" if self.note else "")


def judge_cell(app: WebApp, caller: str, namespace: str, want: int, status: int, body: bytes) -> Cell:
    """A 200 counts only with the app's own JSON answer (`success: true`), not a page that
    happens to answer 200 (a login page, a catch-all route)."""
    note = ""
    if status == 200 == want:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not (isinstance(doc, dict) and doc.get("success") is True):
            note = f"200 but not the {app.title}'s JSON answer: {' '.join(body.decode(errors='replace').split())[:100]}"
    return Cell(app.component, caller, namespace, want, status, note)


def matrix_failure(cells: list[Cell], issuers: list[str], tokens: dict[str, str]) -> str | None:
    bad = [c for c in cells if not c.ok]
    if not bad:
        return None
    msg = f"{len(bad)} of {len(cells)} requests went wrong: " + "; ".join(c.line() for c in bad)
    own_401 = [c for c in bad if c.want == 200 and c.got == 401]
    if own_401:
        iss = unverified_claims(tokens.get(own_401[0].caller, "")).get("iss", "?")
        if iss not in issuers:
            msg += (f". The service-account tokens' issuer {iss!r} is not among the gateway's trusted JWT "
                    f"issuers {issuers}: set the m2m issuer to the cluster's service-account issuer")
    return msg


def need(condition: bool, message: str) -> None:
    if not condition:
        raise CheckError(message)
