"""kubeflow-auth: upstream's Dex, oauth2-proxy and kubeflow-gateway trees, with everything that
upstream ships as a shared sample replaced by the install's own values.

- Dex's config: the profile's issuer, one static password per `kubeflow.auth.staticUsers` entry
  (the bcrypt hash of a per-install random password, read by Dex from the dex-passwords Secret
  with `hashFromEnv`, as upstream does), and an OIDC connector for `kubeflow.auth.externalOIDC`
  whose client secret the user sets (`kubeforge secrets set`).
- The oauth2-proxy client secret (Dex's staticClient and oauth2-proxy share it) and cookie secret
  are per-install random values.
- The objects that name the issuer (oauth2-proxy's config, the dex-jwt RequestAuthentication)
  follow the profile; the EKS overlay's placeholder issuer is the profile's value.
- cluster-jwks-proxy runs a pinned kubectl image instead of upstream's `:latest`.

Upstream's user@example.com / 12341234 user and its hash, its client secret
(pUBnBOY80SnXgjibTYM9ZWNzY2xreNGQok) and cookie secret never reach the output: the validation rule
`default-secret` (components/_default_secrets.yaml) rejects any render that still carries them.
"""
from __future__ import annotations

import base64
import copy
import re
import uuid

from kubeforge.errors import KubeforgeError
from kubeforge.login import password_secret

DEFAULT_ISSUER = "http://dex.auth.svc.cluster.local:5556/dex"
DEX_KEYS_IN_CLUSTER = "http://dex.auth.svc.cluster.local:5556/dex/keys"
CLIENT_ID = "kubeflow-oidc-authservice"   # an identifier, not a secret (upstream's name kept)
CONNECTOR_SECRET = "dex-oidc-connector-client-secret"
CONNECTOR_ENV = "OIDC_CONNECTOR_CLIENT_SECRET"
EKS_PLACEHOLDER = "https://oidc.eks.AWS_REGION.amazonaws.com/id/CLUSTER_ID"
# The UID/GID distroless images reserve for "nonroot": registry.k8s.io/kubectl sets no USER, and
# upstream's runAsNonRoot needs a non-root one.
NONROOT = 65532
_FILE = "components/kubeflow-auth/component.yaml"
# uuid5 namespace of Dex userIDs: one e-mail gets the same ID on every render and every install.
_USER_NS = uuid.UUID("6f1b1d2e-6a55-4f0e-9b7e-6b7562656672")


def password_env(index: int) -> str:
    return f"DEX_USER_{index}_PASSWORD_HASH"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _find(objs, kind, name=None, namespace=None, prefix=False):
    for o in objs:
        md = o.get("metadata", {})
        n = md.get("name", "")
        if o.get("kind") != kind or (namespace and md.get("namespace") != namespace):
            continue
        if name is None or n == name or (prefix and n.startswith(name + "-")):
            return o
    return None


def _require(obj, what: str):
    if obj is None:
        raise KubeforgeError(f"the upstream tree no longer has {what}", file=_FILE, field="sources",
                             fix="review components/kubeflow-auth/generate.py against the new upstream tree")
    return obj


def _check_profile(ctx) -> None:
    auth = ctx.profile.kubeflow.auth
    pfile = ctx.profile.source_file
    if not auth.staticUsers and auth.externalOIDC is None:
        raise KubeforgeError("kubeflow-auth is enabled but nobody can log in: the profile names no Dex "
                             "static user and no external OIDC provider", file=pfile,
                             field="kubeflow.auth.staticUsers",
                             fix="add `staticUsers: [{email: you@example.com}]` or `externalOIDC: "
                                 "{issuer: https://..., clientID: ...}` under kubeflow.auth")
    istio = ctx.plan.components.get("istio")
    if istio is not None and not istio.values.get("multiUser"):
        raise KubeforgeError("kubeflow-auth needs Istio's multi-user overlay (the oauth2-proxy "
                             "extension provider its AuthorizationPolicy names), but the profile sets "
                             "istio multiUser: false", file=pfile, field="components.istio.values.multiUser",
                             fix="drop that value (kubeflow-auth turns it on) or disable kubeflow-auth")
    if ctx.values.get("variant") == "eks" and not ctx.values.get("eksOIDCIssuer"):
        raise KubeforgeError("variant eks needs the EKS cluster's OIDC issuer", file=pfile,
                             field="components.kubeflow-auth.values.eksOIDCIssuer",
                             fix="set it to `aws eks describe-cluster --name NAME --query "
                                 "cluster.identity.oidc.issuer --output text`")


def dex_config(ctx, upstream_text: str) -> str:
    """Dex's config.yaml: upstream's, with the profile's issuer, users and connector."""
    import yaml

    auth = ctx.profile.kubeflow.auth
    cfg = yaml.safe_load(upstream_text)
    cfg["issuer"] = auth.issuer
    cfg["logger"] = {**(cfg.get("logger") or {}), "level": "info"}   # debug logs every request
    users = []
    for i, u in enumerate(auth.staticUsers):
        users.append({"email": u.email, "hashFromEnv": password_env(i),
                      "username": u.name or u.email.split("@", 1)[0],
                      "userID": str(uuid.uuid5(_USER_NS, u.email))})
    cfg["enablePasswordDB"] = bool(users)
    cfg["staticPasswords"] = users
    clients = cfg.get("staticClients") or []
    if len(clients) != 1 or clients[0].get("secretEnv") != "OIDC_CLIENT_SECRET":
        _require(None, "Dex's one staticClient with secretEnv OIDC_CLIENT_SECRET")
    if auth.externalOIDC is not None:
        ext = auth.externalOIDC
        # Dex expands $VARS in its config (DEX_EXPAND_ENV defaults to true): the client secret
        # stays in the dex-oidc-client Secret, never in this ConfigMap.
        cfg["connectors"] = [{"type": "oidc", "id": "external", "name": ext.name,
                              "config": {"issuer": ext.issuer, "clientID": ext.clientID,
                                         "clientSecret": f"${CONNECTOR_ENV}",
                                         "redirectURI": f"{auth.issuer}/callback",
                                         "scopes": ["openid", "profile", "email", "groups"],
                                         "insecureEnableGroups": True,
                                         "getUserInfo": True}}]
    else:
        cfg.pop("connectors", None)
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)


def _set_cfg(text: str, key: str, value: str) -> str:
    """oauth2_proxy.cfg is TOML-like `key = "value"` lines; replace one."""
    pattern = re.compile(rf'^{re.escape(key)} = ".*"$', re.M)
    if not pattern.search(text):
        _require(None, f"`{key}` in oauth2_proxy.cfg")
    return pattern.sub(f'{key} = "{value}"', text, count=1)


def transform(objs, ctx):
    _check_profile(ctx)
    objs = copy.deepcopy(objs)
    auth = ctx.profile.kubeflow.auth
    client_secret = ctx.secret("oauth2-proxy-client-secret")

    # Dex: config, password hashes, the client secret it shares with oauth2-proxy.
    cm = _require(_find(objs, "ConfigMap", "dex", "auth"), "ConfigMap auth/dex")
    cm["data"]["config.yaml"] = dex_config(ctx, cm["data"]["config.yaml"])
    pw = _require(_find(objs, "Secret", "dex-passwords", "auth"), "Secret auth/dex-passwords")
    pw.pop("data", None)
    pw["stringData"] = {password_env(i): ctx.secret(f"dex-password-hash-{u.email}")
                        for i, u in enumerate(auth.staticUsers)}
    for u in auth.staticUsers:
        ctx.secret(password_secret(u.email))       # made now, so `kubeforge secrets get` finds it
    client = _require(_find(objs, "Secret", "dex-oidc-client", "auth"), "Secret auth/dex-oidc-client")
    client.pop("stringData", None)
    client["data"] = {"OIDC_CLIENT_ID": _b64(CLIENT_ID), "OIDC_CLIENT_SECRET": _b64(client_secret)}
    if auth.externalOIDC is not None:
        client["data"][CONNECTOR_ENV] = _b64(ctx.secret(CONNECTOR_SECRET))

    # oauth2-proxy: its Secret (name hashed by kustomize's secretGenerator), config and parameters.
    sec = _require(_find(objs, "Secret", "oauth2-proxy", "oauth2-proxy", prefix=True), "Secret oauth2-proxy/oauth2-proxy-*")
    sec.pop("stringData", None)
    sec["data"] = {"client-id": _b64(CLIENT_ID), "client-secret": _b64(client_secret),
                   "cookie-secret": _b64(ctx.secret("oauth2-proxy-cookie-secret"))}
    cfg = _require(next((o for o in objs if o.get("kind") == "ConfigMap"
                         and "oauth2_proxy.cfg" in (o.get("data") or {})), None),
                   "the ConfigMap of oauth2_proxy.cfg")
    cfg["data"]["oauth2_proxy.cfg"] = _set_cfg(cfg["data"]["oauth2_proxy.cfg"], "oidc_issuer_url", auth.issuer)
    params = _require(_find(objs, "ConfigMap", "oauth2-proxy-parameters", "oauth2-proxy", prefix=True),
                      "ConfigMap oauth2-proxy/oauth2-proxy-parameters-*")
    params["data"]["FORCE_HTTPS"] = "true" if ctx.values.get("secureCookies") else "false"

    for o in objs:
        kind, md = o.get("kind"), o.get("metadata", {})
        if kind == "RequestAuthentication" and md.get("name") == "dex-jwt":
            rule = o["spec"]["jwtRules"][0]
            rule["issuer"] = auth.issuer
            if auth.issuer != DEFAULT_ISSUER:
                # A public issuer URL may not resolve inside the cluster: fetch Dex's keys directly.
                rule["jwksUri"] = DEX_KEYS_IN_CLUSTER
        elif kind == "RequestAuthentication" and md.get("name") == "m2m-token-issuer":
            for rule in o["spec"]["jwtRules"]:
                if rule.get("issuer") == EKS_PLACEHOLDER:
                    rule["issuer"] = ctx.values["eksOIDCIssuer"]
        elif kind == "Deployment" and md.get("name") == "cluster-jwks-proxy":
            for c in o["spec"]["template"]["spec"]["containers"]:
                c["image"] = ctx.values["jwksProxyImage"]
                c.setdefault("securityContext", {}).update(runAsUser=NONROOT, runAsGroup=NONROOT)
    return objs
