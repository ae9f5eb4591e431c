"""A STAND-IN for the Kubeflow gateway on loopback: Istio's ingress gateway, oauth2-proxy, Dex,
the web apps and the API server's token and RBAC answers, each as small as the login and tenancy
checks need, and each configured from the real rendered objects rather than from the checks.

What is real here, read from the render (never from kubeforge.verify):
- Dex: issuer, staticPasswords (bcrypt hashes, from `hash` or `hashFromEnv` through the
  Deployment's envFrom Secrets; verified with the bcrypt package), staticClients (id, secret,
  redirectURIs via idEnv/secretEnv), skipApprovalScreen; its URL shape is Dex v2.45.0's
  (server/handlers.go: /auth -> /auth/<connector> -> /auth/<connector>/login?back=&state=,
  the form posts `login` and `password`, a good login is a 303 to redirect_uri?code=&state=,
  a bad one the form again with id="login-error"; /token with PKCE).
- oauth2-proxy (v7.14.3 oauthproxy.go): oauth2_proxy.cfg from the rendered ConfigMap plus the
  Deployment's env (client id/secret, cookie secret, cookie secure): cookie_name, the CSRF
  cookie `<cookie_name>_csrf`, skip_provider_button (false: a 403 sign-in page with a form GET
  /oauth2/start), api_routes (401), login_url, redirect_url, code_challenge_method, and
  set_authorization_header (the Dex id token upstream).
- Istio on the ingress gateway: the rendered AuthorizationPolicies (CUSTOM oauth2-proxy for
  requests without an Authorization header outside its notPaths; DENY without a request
  principal outside its notPaths) and RequestAuthentications (issuers, outputClaimToHeaders),
  in Envoy's filter order: ext_authz, then jwt_authn, then RBAC. VirtualServices route by
  prefix with their rewrite: Dex's and oauth2-proxy's from the render, the web apps' from
  kubeflow/manifests' own overlays/istio/virtual-service.yaml.
- Web apps: the central dashboard's index title and /api/workgroup/env-info (the user from
  kubeflow-userid), and the CRUD apps' namespaced list routes: no user header is a 401, a
  SubjectAccessReview (here: RBAC over the tenants' RoleBindings and the real kubeflow-roles
  ClusterRoles, aggregation included) that says no is a 403.

Planted bugs (`bugs`): names of deliberate faults the tests switch on to watch a check fail.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
import tomllib
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import bcrypt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

K8S_ISSUER = "https://kubernetes.default.svc.cluster.local"   # kind's service-account issuer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """RS256 JWTs and their verification (one key: Dex's, or the API server's)."""

    def __init__(self, issuer: str):
        self.issuer = issuer
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(4)

    def sign(self, claims: dict) -> str:
        head = b64url(json.dumps({"alg": "RS256", "kid": self.kid, "typ": "JWT"}).encode())
        body = b64url(json.dumps({"iss": self.issuer, **claims}).encode())
        sig = self.key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{b64url(sig)}"

    def verify(self, token: str) -> dict | None:
        try:
            head, body, sig = token.split(".")
            self.key.public_key().verify(unb64url(sig), f"{head}.{body}".encode(), padding.PKCS1v15(),
                                         hashes.SHA256())
            claims = json.loads(unb64url(body))
        except Exception:
            return None
        return claims if claims.get("exp", 0) > time.time() else None


def _claims_unverified(token: str) -> dict:
    try:
        return json.loads(unb64url(token.split(".")[1]))
    except Exception:
        return {}


# -- reading the render -------------------------------------------------------------------------
class Objects:
    def __init__(self, objects: list[dict]):
        self.all = objects

    def find(self, kind: str, name: str | None = None, namespace: str | None = None) -> list[dict]:
        return [o for o in self.all if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
                and (namespace is None or o["metadata"].get("namespace") == namespace)]

    def one(self, kind: str, name: str, namespace: str | None = None) -> dict:
        (found,) = self.find(kind, name, namespace)
        return found

    def secret_data(self, name: str, namespace: str) -> dict[str, str]:
        s = self.one("Secret", name, namespace)
        out = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
        out.update(s.get("stringData") or {})
        return out

    def container_env(self, deployment: str, namespace: str) -> dict[str, str]:
        """The environment a Deployment's first container gets: envFrom Secrets/ConfigMaps, then
        env values and key references, resolved against the rendered objects."""
        d = self.one("Deployment", deployment, namespace)
        c = d["spec"]["template"]["spec"]["containers"][0]
        env: dict[str, str] = {}
        for src in c.get("envFrom") or []:
            if "secretRef" in src:
                env.update(self.secret_data(src["secretRef"]["name"], namespace))
            elif "configMapRef" in src:
                env.update(self.one("ConfigMap", src["configMapRef"]["name"], namespace).get("data") or {})
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = e["value"]
            ref = (e.get("valueFrom") or {})
            if "secretKeyRef" in ref:
                env[e["name"]] = self.secret_data(ref["secretKeyRef"]["name"], namespace)[ref["secretKeyRef"]["key"]]
            elif "configMapKeyRef" in ref:
                cm = self.one("ConfigMap", ref["configMapKeyRef"]["name"], namespace)
                env[e["name"]] = cm["data"][ref["configMapKeyRef"]["key"]]
        return env


Reply = tuple[int, list[tuple[str, str]], bytes]


def html(status: int, body: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    return status, [("Content-Type", "text/html; charset=utf-8"), *(headers or [])], body.encode()


def js(status: int, doc: Any) -> Reply:
    return status, [("Content-Type", "application/json")], json.dumps(doc).encode()


def redirect(status: int, location: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    return status, [("Location", location), *(headers or [])], b""


# -- Dex ----------------------------------------------------------------------------------------
class Dex:
    def __init__(self, objs: Objects):
        import yaml

        cm = objs.one("ConfigMap", "dex", "auth")
        self.config = yaml.safe_load(cm["data"]["config.yaml"])
        env = objs.container_env("dex", "auth")
        self.issuer = self.config["issuer"]
        self.prefix = urllib.parse.urlsplit(self.issuer).path.rstrip("/")        # /dex
        self.users = {}
        for u in self.config.get("staticPasswords") or []:
            self.users[u["email"].lower()] = (u.get("hash") or env[u["hashFromEnv"]]).encode()
        self.clients = {}
        for c in self.config.get("staticClients") or []:
            cid = c.get("id") or env[c["idEnv"]]
            self.clients[cid] = {"secret": c.get("secret") or env[c["secretEnv"]], "redirect": c["redirectURIs"]}
        self.signer = Signer(self.issuer)
        self.requests: dict[str, dict] = {}
        self.codes: dict[str, dict] = {}
        self._verdicts: dict[tuple[str, bytes], bool] = {}
        # (id, name) of connectors beside the password DB (config `connectors:`, e.g. an external
        # OIDC provider); with any, /auth shows Dex's login page (login.html) instead of redirecting.
        self.extra_connectors = [(c["id"], c.get("name", c["id"])) for c in self.config.get("connectors") or []]

    def form(self, post_url: str, username: str = "", invalid: bool = False) -> Reply:
        err = '<div id="login-error" class="dex-error-box">Invalid Email Address and password.</div>' \
            if invalid else ""
        action = post_url.replace("&", "&amp;")
        return html(200, f"""<!DOCTYPE html><html><head><title>dex</title></head><body>
<div class="theme-panel"><h2 class="theme-heading">Log in to Your Account</h2>
<form method="post" action="{action}">
<input tabindex="1" required id="login" name="login" type="text" value="{username}"/>
<input tabindex="2" required id="password" name="password" type="password"/>
{err}<button tabindex="3" id="submit-login" type="submit">Login</button></form></div></body></html>""")

    def handle(self, method: str, path: str, query: dict, form: dict, headers: dict) -> Reply:
        p = self.prefix
        if path == f"{p}/auth":
            client = self.clients.get(query.get("client_id", ""))
            if client is None or query.get("redirect_uri") not in client["redirect"]:
                return html(400, "<h2>Bad Request</h2><p>Unregistered redirect_uri or client.</p>")
            qs = urllib.parse.urlencode(query)
            if not self.extra_connectors:
                return redirect(302, f"{p}/auth/local?{qs}")
            links = "".join(f'<a href="{p}/auth/{cid}?{qs.replace("&", "&amp;")}" target="_self">'
                            f'<button>Log in with {name}</button></a>'
                            for cid, name in [("local", "Email"), *self.extra_connectors])
            return html(200, f"<html><head><title>dex</title></head><body><h2>Log in to dex</h2>{links}</body></html>")
        if path == f"{p}/auth/local" and method == "GET":
            rid = secrets.token_hex(12)
            self.requests[rid] = dict(query)
            return redirect(302, f"{p}/auth/local/login?" + urllib.parse.urlencode({"back": "", "state": rid}))
        if path == f"{p}/auth/local/login":
            req = self.requests.get(query.get("state", ""))
            if req is None:
                return html(400, "<p>Requested resource does not exist.</p>")
            here = f"{path}?" + urllib.parse.urlencode(query)
            if method == "GET":
                return self.form(here)
            user, password = form.get("login", "").lower(), form.get("password", "")
            hashed = self.users.get(user)
            if hashed is None or not self._checkpw(password, hashed):
                return self.form(here, form.get("login", ""), invalid=True)
            req["email"] = user
            if not (self.config.get("oauth2") or {}).get("skipApprovalScreen"):
                mac = b64url(hmac.new(b"approval", query["state"].encode(), hashlib.sha256).digest())
                return redirect(303, f"{p}/approval?" + urllib.parse.urlencode({"req": query["state"], "hmac": mac}))
            return self.send_code(query["state"])
        if path == f"{p}/approval":
            rid = query.get("req") or form.get("req", "")
            mac = b64url(hmac.new(b"approval", rid.encode(), hashlib.sha256).digest())
            if rid not in self.requests or not hmac.compare_digest(mac, query.get("hmac") or form.get("hmac", "")):
                return html(401, "<p>Unauthorized request.</p>")
            if method == "GET":   # Dex's approval.html: hidden req and hmac, buttons name=approval
                return html(200, f"""<html><head><title>dex</title></head><body>
<form method="post"><input type="hidden" name="req" value="{rid}"/><input type="hidden" name="hmac" value="{mac}"/>
<button type="submit" name="approval" value="approve">Grant Access</button></form>
<form method="post"><input type="hidden" name="req" value="{rid}"/><input type="hidden" name="hmac" value="{mac}"/>
<button type="submit" name="approval" value="rejected">Cancel</button></form></body></html>""")
            if form.get("approval") != "approve":
                return redirect(303, self.requests[rid]["redirect_uri"] + "?error=access_denied")
            return self.send_code(rid)
        if path == f"{p}/token" and method == "POST":
            return js(*self.token(form, headers))
        return html(404, "404 page not found")

    def _checkpw(self, password: str, hashed: bytes) -> bool:
        """bcrypt's verdict, remembered per (password, hash): a retrying check logs in many times
        and each bcrypt (cost 12) takes a quarter second."""
        key = (hashlib.sha256(password.encode()).hexdigest(), hashed)
        if key not in self._verdicts:
            self._verdicts[key] = bcrypt.checkpw(password.encode(), hashed)
        return self._verdicts[key]

    def send_code(self, rid: str) -> Reply:
        req = self.requests.pop(rid)
        code = secrets.token_hex(16)
        self.codes[code] = {"req": req, "email": req["email"]}
        sep = "&" if "?" in req["redirect_uri"] else "?"
        return redirect(303, req["redirect_uri"] + sep + urllib.parse.urlencode(
            {"code": code, "state": req.get("state", "")}))

    def token(self, form: dict, headers: dict) -> tuple[int, dict]:
        cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            cid, secret = urllib.parse.unquote(cid), urllib.parse.unquote(secret)
        client = self.clients.get(cid)
        if client is None or not hmac.compare_digest(client["secret"], secret):
            return 401, {"error": "invalid_client"}
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or grant["req"]["client_id"] != cid or grant["req"]["redirect_uri"] != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        challenge = grant["req"].get("code_challenge")
        if challenge:
            verifier = form.get("code_verifier", "")
            if b64url(hashlib.sha256(verifier.encode()).digest()) != challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        now = int(time.time())
        idt = self.signer.sign({"sub": grant["email"], "aud": cid, "email": grant["email"], "email_verified": True,
                                "nonce": grant["req"].get("nonce", ""), "iat": now, "exp": now + 3600, "groups": []})
        return 200, {"access_token": secrets.token_hex(16), "token_type": "bearer", "expires_in": 3600, "id_token": idt}


# -- oauth2-proxy -------------------------------------------------------------------------------
class OAuth2Proxy:
    def __init__(self, objs: Objects, dex: Dex, bugs: set[str]):
        cm = next(o for o in objs.find("ConfigMap", namespace="oauth2-proxy") if "oauth2_proxy.cfg" in (o.get("data") or {}))
        self.cfg = tomllib.loads(cm["data"]["oauth2_proxy.cfg"])
        env = objs.container_env("oauth2-proxy", "oauth2-proxy")
        self.client_id = env["OAUTH2_PROXY_CLIENT_ID"]
        self.client_secret = env["OAUTH2_PROXY_CLIENT_SECRET"]
        self.cookie_secret = env["OAUTH2_PROXY_COOKIE_SECRET"].encode()
        self.secure = env.get("OAUTH2_PROXY_COOKIE_SECURE", "false") == "true"
        self.cookie = self.cfg.get("cookie_name", "_oauth2_proxy")
        if "session-cookie-renamed" in bugs:
            self.cookie = "_oauth2_proxy"
        self.api_routes = [re.compile(r) for r in self.cfg.get("api_routes", [])]
        self.skip_auth = [re.compile(r) for r in self.cfg.get("skip_auth_routes", [])]
        self.dex = dex
        self.bugs = bugs

    # signed cookie values: payload|mac, as oauth2-proxy signs its cookies with the cookie secret
    def _seal(self, doc: dict) -> str:
        payload = b64url(json.dumps(doc).encode())
        mac = b64url(hmac.new(self.cookie_secret, payload.encode(), hashlib.sha256).digest())
        return f"{payload}|{mac}"

    def _open(self, value: str) -> dict | None:
        payload, _, mac = value.partition("|")
        want = b64url(hmac.new(self.cookie_secret, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(mac, want):
            return None
        return json.loads(unb64url(payload))

    def _set(self, name: str, value: str, max_age: int | None = None) -> tuple[str, str]:
        out = f"{name}={value}; Path=/; HttpOnly; SameSite=Lax"
        if max_age is not None:
            out += f"; Max-Age={max_age}"
        if self.secure:
            out += "; Secure"
        return "Set-Cookie", out

    def session(self, cookies: dict) -> dict | None:
        raw = cookies.get(self.cookie)
        doc = self._open(raw) if raw else None
        if doc is None or doc["exp"] < time.time():
            return None
        return doc

    def check(self, path_qs: str, headers: dict, cookies: dict) -> tuple[bool, Reply | dict]:
        """ext_authz: (True, headers for upstream) or (False, the reply the client gets)."""
        path = urllib.parse.urlsplit(path_qs).path
        if any(r.search(path) for r in self.skip_auth):
            return True, {}
        s = self.session(cookies)
        if s is not None:
            return True, {"authorization": f"Bearer {s['id_token']}", "x-auth-request-email": s["email"]}
        if any(r.search(path) for r in self.api_routes) or "application/json" in headers.get("accept", "") \
                and "text/html" not in headers.get("accept", ""):
            return False, js(401, {"error": "Unauthorized"})
        if self.cfg.get("skip_provider_button"):
            return False, self.start({"rd": path_qs})
        rd = path_qs.replace('"', "&quot;")
        return False, html(403, f"""<!DOCTYPE html><html><head><title>Sign In</title></head><body>
<form method="GET" action="/oauth2/start"><input type="hidden" name="rd" value="{rd}">
<button type="submit" class="button block is-primary">Sign in with {self.cfg.get('provider_display_name', 'OpenID Connect')}</button>
</form></body></html>""")

    def start(self, query: dict) -> Reply:
        nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        rd = query.get("rd") or "/"
        params = {"client_id": self.client_id, "redirect_uri": self.cfg.get("redirect_url", "/oauth2/callback"),
                  "response_type": "code", "scope": self.cfg.get("scope", "openid email"),
                  "state": f"{nonce}:{rd}", "nonce": nonce}
        if self.cfg.get("code_challenge_method"):
            params["code_challenge"] = b64url(hashlib.sha256(verifier.encode()).digest())
            params["code_challenge_method"] = self.cfg["code_challenge_method"]
        csrf = self._seal({"nonce": nonce, "verifier": verifier})
        headers = [] if "no-csrf-cookie" in self.bugs else [self._set(f"{self.cookie}_csrf", csrf, 900)]
        return redirect(302, self.cfg.get("login_url", "/dex/auth") + "?" + urllib.parse.urlencode(params), headers)

    def callback(self, query: dict, cookies: dict) -> Reply:
        nonce, _, rd = query.get("state", "").partition(":")
        csrf = self._open(cookies.get(f"{self.cookie}_csrf", "")) if cookies.get(f"{self.cookie}_csrf") else None
        if csrf is None or csrf["nonce"] != nonce:
            return html(403, "<p>Login Failed: Unable to find a valid CSRF token. Please try again.</p>")
        status, tok = self.dex.token({"grant_type": "authorization_code", "code": query.get("code", ""),
                                      "redirect_uri": self.cfg.get("redirect_url", "/oauth2/callback"),
                                      "client_id": self.client_id, "client_secret": self.client_secret,
                                      "code_verifier": csrf["verifier"]}, {})
        if status != 200:
            return html(500, f"<p>Internal Error: {tok.get('error')}</p>")
        claims = self.dex.signer.verify(tok["id_token"])
        if not claims or claims.get("aud") != self.client_id or claims.get("nonce") != nonce:
            return html(500, "<p>Internal Error: id token verification failed</p>")
        sess = self._seal({"email": claims["email"], "id_token": tok["id_token"], "exp": claims["exp"]})
        return redirect(302, rd if rd.startswith("/") and not rd.startswith("//") else "/",
                        [self._set(self.cookie, sess), self._set(f"{self.cookie}_csrf", "", -1)])

    def handle(self, method: str, path: str, query: dict, cookies: dict) -> Reply:
        if path == "/oauth2/start":
            return self.start(query)
        if path == "/oauth2/callback":
            return self.callback(query, cookies)
        return html(404, "404 page not found")


# -- API server: tokens and RBAC ----------------------------------------------------------------
class ApiServer:
    """Service-account tokens (TokenRequest) and SubjectAccessReviews over RoleBindings."""

    def __init__(self, cluster_roles: list[dict], issuer: str = K8S_ISSUER):
        self.signer = Signer(issuer)
        self.roles = {r["metadata"]["name"]: r for r in cluster_roles}
        self.bindings: list[dict] = []
        self.service_accounts: set[tuple[str, str]] = set()
        self.namespaces: set[str] = set()

    def token(self, namespace: str, name: str, seconds: int = 600) -> str:
        if (namespace, name) not in self.service_accounts:
            raise LookupError(f'serviceaccounts "{name}" not found in {namespace}')
        now = int(time.time())
        return self.signer.sign({"sub": f"system:serviceaccount:{namespace}:{name}", "aud": [self.signer.issuer],
                                 "iat": now, "nbf": now, "exp": now + seconds,
                                 "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name}}})

    def _rules(self, role: str, seen: set[str] | None = None) -> list[dict]:
        """A ClusterRole's rules, with those its aggregationRule selects (as the controller fills them)."""
        seen = seen or set()
        if role in seen or role not in self.roles:
            return []
        seen.add(role)
        r = self.roles[role]
        rules = list(r.get("rules") or [])
        for sel in (r.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
            want = sel.get("matchLabels") or {}
            for name, other in self.roles.items():
                labels = other["metadata"].get("labels") or {}
                if all(labels.get(k) == v for k, v in want.items()):
                    rules += self._rules(name, seen)
        return rules

    def allowed(self, user: str, verb: str, group: str, resource: str, namespace: str) -> bool:
        for b in self.bindings:
            if b["metadata"]["namespace"] != namespace:
                continue
            for s in b.get("subjects") or []:
                name = s["name"] if s["kind"] == "User" else f"system:serviceaccount:{s.get('namespace')}:{s['name']}"
                if name != user:
                    continue
                for rule in self._rules(b["roleRef"]["name"]):
                    if (group in rule.get("apiGroups", []) or "*" in rule.get("apiGroups", [])) and \
                            (resource in rule.get("resources", []) or "*" in rule.get("resources", [])) and \
                            (verb in rule.get("verbs", []) or "*" in rule.get("verbs", [])):
                        return True
        return False

    def add_tenant(self, name: str, owner: str) -> None:
        """What the profile controller makes for a Profile (kubeflow/kubeflow v1.10.0
        components/profile-controller/controllers/profile_controller.go): the namespace, the
        owner's namespaceAdmin binding, and the default-editor / default-viewer accounts."""
        self.namespaces.add(name)
        self.bindings.append({"metadata": {"name": "namespaceAdmin", "namespace": name},
                              "roleRef": {"kind": "ClusterRole", "name": "kubeflow-admin"},
                              "subjects": [{"kind": "User", "name": owner}]})
        for sa, role in (("default-editor", "kubeflow-edit"), ("default-viewer", "kubeflow-view")):
            self.service_accounts.add((name, sa))
            self.bindings.append({"metadata": {"name": sa, "namespace": name},
                                  "roleRef": {"kind": "ClusterRole", "name": role},
                                  "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": name}]})


# -- web apps -----------------------------------------------------------------------------------
CRUD = {  # component -> (group, resource) of the SubjectAccessReview its web app's list route makes
    "notebooks": ("kubeflow.org", "notebooks"),
    "volumes": ("", "persistentvolumeclaims"),
    "tensorboards": ("tensorboard.kubeflow.org", "tensorboards"),
}
LIST_KEY = {"notebooks": "notebooks", "persistentvolumeclaims": "pvcs", "tensorboards": "tensorboards"}


class WebApps:
    def __init__(self, api: ApiServer, bugs: set[str]):
        self.api = api
        self.bugs = bugs
        self.unavailable: dict[str, int] = {}   # app -> how many more requests answer 503

    def handle(self, backend: str, path: str, headers: dict) -> Reply:
        user = headers.get("kubeflow-userid")
        if backend == "central-dashboard" and self.unavailable.get(backend, 0) > 0:
            self.unavailable[backend] -= 1      # its pod not ready yet: Envoy has no healthy upstream
            return 503, [("Content-Type", "text/plain")], b"no healthy upstream"
        if backend == "central-dashboard":
            if path.startswith("/api/workgroup/env-info"):
                return js(200, {"user": user or "anonymous@kubeflow.org", "platform": {}, "namespaces": [],
                                "isClusterAdmin": False})
            return html(200, "<!doctype html><html><head><title>Kubeflow Central Dashboard</title></head>"
                             "<body><main-page></main-page></body></html>")
        if backend == "pipelines":
            return html(200, "<html><head><title>Kubeflow Pipelines</title></head></html>")
        if backend not in CRUD:
            return html(404, "404 page not found")
        group, resource = CRUD[backend]
        m = re.fullmatch(r"/api/namespaces/([^/]+)/[a-z]+", path)
        if not m:
            return html(200, f"<html><head><title>{backend}</title></head></html>")   # the app's index
        ns = m.group(1)
        if f"{backend}:no-authz" in self.bugs:                   # APP_DISABLE_AUTH
            return js(200, {"success": True, "status": 200, LIST_KEY[resource]: []})
        if user is None:
            return js(401, {"success": False, "status": 401, "log": "No user detected."})
        if f"{backend}:any-user" not in self.bugs and not self.api.allowed(user, "list", group, resource, ns):
            return js(403, {"success": False, "status": 403,
                            "log": f"User '{user}' is not authorized to list {resource} in namespace '{ns}'"})
        return js(200, {"success": True, "status": 200, LIST_KEY[resource]: []})


# -- the ingress gateway ------------------------------------------------------------------------
def _path_match(path: str, patterns: list[str]) -> bool:
    """Istio's path matching: exact, `prefix*`, `*suffix`, and `/x/**` (all below /x)."""
    for p in patterns:
        if p.endswith("/**") and (path == p[:-3] or path.startswith(p[:-2])):
            return True
        if p.endswith("*") and path.startswith(p[:-1]):
            return True
        if p.startswith("*") and path.endswith(p[1:]):
            return True
        if path == p:
            return True
    return False


class Gateway:
    def __init__(self, auth_objects: list[dict], app_virtual_services: list[tuple[str, dict]], api: ApiServer,
                 bugs: set[str] | None = None):
        """app_virtual_services: (component, VirtualService) of the web apps; their routes go to
        that component's stand-in app, Dex's and oauth2-proxy's to theirs (by destination host)."""
        self.bugs = set(bugs or ())
        objs = Objects(auth_objects)
        self.dex = Dex(objs)
        self.proxy = OAuth2Proxy(objs, self.dex, self.bugs)
        self.api = api
        self.apps = WebApps(api, self.bugs)
        policies = objs.find("AuthorizationPolicy", namespace="istio-system")
        self.custom = [p for p in policies if p["spec"].get("action") == "CUSTOM"]
        self.deny = [p for p in policies if p["spec"].get("action") == "DENY"]
        self.jwt_rules = [r for ra in objs.find("RequestAuthentication") for r in ra["spec"].get("jwtRules") or []]
        self.routes = []
        for app, vs in [(None, v) for v in objs.find("VirtualService")] + list(app_virtual_services):
            for h in vs["spec"]["http"]:
                backend = app or h["route"][0]["destination"]["host"].split(".")[0]
                for m in h.get("match") or []:
                    self.routes.append((m["uri"]["prefix"], (h.get("rewrite") or {}).get("uri"), backend))
        self.routes.sort(key=lambda r: -len(r[0]))

    def _rule_applies(self, rule: dict, path: str, headers: dict) -> bool:
        for op in rule.get("to") or [{}]:
            o = op.get("operation", {})
            if "notPaths" in o and _path_match(path, o["notPaths"]):
                return False
            if "paths" in o and not _path_match(path, o["paths"]):
                return False
        for w in rule.get("when") or []:
            m = re.fullmatch(r"request\.headers\[(.+)\]", w["key"])
            if m and "notValues" in w and w["notValues"] == ["*"] and m.group(1).lower() in headers:
                return False
        return True

    def _verify(self, token: str) -> tuple[dict, dict] | None:
        iss = _claims_unverified(token).get("iss")
        for rule in self.jwt_rules:
            if rule["issuer"] != iss:
                continue
            signer = self.dex.signer if iss == self.dex.issuer else \
                self.api.signer if iss == self.api.signer.issuer else None
            claims = signer.verify(token) if signer else None
            if claims:
                return rule, claims
        return None

    def handle(self, method: str, target: str, headers: dict, body: bytes) -> Reply:
        parts = urllib.parse.urlsplit(target)
        path, query = parts.path, dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        cookies = {}
        for piece in headers.get("cookie", "").split(";"):
            k, _, v = piece.strip().partition("=")
            if k:
                cookies[k] = v
        headers = dict(headers)
        # ext_authz (CUSTOM -> oauth2-proxy)
        trust_forged = "trust-forged-userid" in self.bugs and "kubeflow-userid" in headers
        if not trust_forged and any(self._rule_applies(r, path, headers) for p in self.custom for r in p["spec"]["rules"]):
            ok, got = self.proxy.check(target, headers, cookies)
            if not ok:
                status, hdrs, data = got
                keep = [(k, v) for k, v in hdrs if k.lower() in ("content-type", "set-cookie", "location")]
                return status, keep, data
            headers.update(got)
        # jwt_authn (RequestAuthentication)
        principal = None
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer "):
            verified = self._verify(auth[7:])
            if verified is None:
                return 401, [("Content-Type", "text/plain")], b"Jwt verification fails"
            rule, claims = verified
            principal = f"{claims['iss']}/{claims['sub']}"
            for out in rule.get("outputClaimToHeaders") or []:
                value = claims.get(out["claim"])
                headers[out["header"]] = ",".join(value) if isinstance(value, list) else str(value or "")
        # RBAC DENY (require a request principal)
        if not trust_forged and principal is None and \
                any(self._rule_applies(r, path, headers) for p in self.deny for r in p["spec"]["rules"]):
            return 403, [("Content-Type", "text/plain")], b"RBAC: access denied"
        route = next((r for r in self.routes if path.startswith(r[0])), None)
        if route is None:
            return 404, [], b""
        prefix, rewrite, backend = route
        inner = (rewrite + path[len(prefix):]) if rewrite is not None else path
        inner = "/" + inner.lstrip("/")
        if backend == "dex":
            form = dict(urllib.parse.parse_qsl(body.decode())) if body else {}
            return self.dex.handle(method, path, query, form, headers)
        if backend == "oauth2-proxy":
            return self.proxy.handle(method, path, query, cookies)
        return self.apps.handle(backend, inner, headers)


class Server:
    """The stand-in gateway on 127.0.0.1:<port>, in a thread."""

    def __init__(self, gateway: Gateway):
        gw = gateway

        class Handler(BaseHTTPRequestHandler):
            def _do(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                status, hdrs, data = gw.handle(self.command, self.path,
                                               {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                for k, v in hdrs:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _do

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def dial(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
