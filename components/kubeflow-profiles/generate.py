"""The profile's `kubeflow.tenants` as Kubeflow objects: one Profile per tenant (owner and
resource quota), and for each contributor the RoleBinding and Istio AuthorizationPolicy that KFAM
creates when an owner adds a contributor in the dashboard (kubeflow/kubeflow v1.10.0
components/access-management/kfam/bindings.go), so access is profile data, not clicks.

The profile controller creates each Profile's namespace at runtime; the Profile says so with
kubeforge.ordering.CREATES_NAMESPACE, so kubeforge apply and the Pulumi stack create the
contributor objects in it only once that namespace exists.
"""
from __future__ import annotations

import re
from typing import Any

from kubeforge.errors import KubeforgeError
from kubeforge.ordering import CREATES_NAMESPACE

PROFILE_API = "kubeflow.org/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"
# KFAM's roleBindingNameMap: the dashboard's role name -> the ClusterRole (kubeflow-roles).
CONTRIBUTOR_ROLE = ("edit", "kubeflow-edit")
# The profile controller adds this finalizer at the end of its first successful reconcile, after
# the namespace, its service accounts, RoleBindings and AuthorizationPolicy exist (v1.10.0
# controllers/profile_controller.go): Pulumi waits for it before the contributor objects.
PROFILE_FINALIZER = "profile-finalizer"
PULUMI_WAIT_FOR = "pulumi.com/waitFor"
# Defaults KFAM falls back to (GetEnvDefault) when its config leaves them out.
_KFAM_DEFAULTS = {
    "USERID_HEADER": "kubeflow-userid", "USERID_PREFIX": "",
    "ISTIO_INGRESS_GATEWAY_PRINCIPAL": "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
    "KFP_UI_PRINCIPAL": "cluster.local/ns/kubeflow/sa/ml-pipeline-ui",
}
_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")


def binding_name(email: str, role: str = CONTRIBUTOR_ROLE[0]) -> str:
    """KFAM's getBindingName for a User bound to a ClusterRole: every run of characters other than
    letters and digits becomes '-', lower-cased (alice@example.com -> user-alice-example-com-clusterrole-edit).
    url.QueryEscape in between changes nothing: only letters, digits and '-' are left by then."""
    raw = "-".join(["User", _NON_ALNUM.sub("-", email), "ClusterRole", role]).lower()
    return _NON_ALNUM.sub("-", raw)


def kfam_config(objects: list[dict]) -> dict[str, str]:
    """The environment KFAM runs with: the ConfigMap its container's envFrom names, over its defaults."""
    for o in objects:
        if o.get("kind") != "Deployment":
            continue
        for c in ((o.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
            if c.get("name") != "kfam":
                continue
            names = [(e.get("configMapRef") or {}).get("name") for e in c.get("envFrom") or []]
            data: dict[str, str] = {}
            for cm in objects:
                if cm.get("kind") == "ConfigMap" and cm["metadata"]["name"] in names:
                    data.update(cm.get("data") or {})
            return {**_KFAM_DEFAULTS, **{k: v for k, v in data.items() if v != "" or k == "USERID_PREFIX"}}
    raise KubeforgeError("the profiles tree renders no KFAM container (Deployment container `kfam`)",
                         file="components/kubeflow-profiles/component.yaml", field="sources",
                         fix="pin applications/profiles/pss of kubeflow/manifests, which runs KFAM beside the controller")


def _check_users(kf: Any, file: str) -> None:
    """With Dex as the only way in (no external OIDC connector), a tenant naming an e-mail that is
    no static user grants access nobody can log in to use: a typo or a missing staticUsers entry."""
    auth = kf.auth
    if auth.provider != "dex" or auth.externalOIDC is not None:
        return
    users = {u.email for u in auth.staticUsers}
    for i, t in enumerate(kf.tenants):
        for field, email in [("owner", t.owner)] + [(f"contributors[{j}]", c) for j, c in enumerate(t.contributors)]:
            if email not in users:
                known = ", ".join(sorted(users)) or "none"
                raise KubeforgeError(
                    f"tenant {t.name}: {email} is not a Dex static user (kubeflow.auth.staticUsers: {known}) "
                    "and no external OIDC provider is configured, so nobody could log in as them",
                    file=file, field=f"kubeflow.tenants[{i}].{field}",
                    fix=f"add {{email: {email}}} to kubeflow.auth.staticUsers, fix the e-mail, or configure "
                        "kubeflow.auth.externalOIDC")


# Namespaces every cluster has (kube-*) or no team should own.
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _check_names(kf: Any, plan: Any, file: str) -> None:
    """A tenant's name is the namespace its Profile creates: one the platform itself uses is
    refused by the profile controller at runtime ("namespace already exist, but not owned by
    profile creator"), after everything else was installed; say so now."""
    taken = {ns: name for name, pc in plan.components.items() for ns in pc.component.namespaces}
    taken.update({ns: "Kubernetes" for ns in RESERVED_NAMESPACES})
    for i, t in enumerate(kf.tenants):
        if t.name in taken:
            raise KubeforgeError(
                f"tenant {t.name}: namespace {t.name} belongs to {taken[t.name]}; the profile controller "
                "would refuse the Profile (the namespace exists and no tenant owns it)",
                file=file, field=f"kubeflow.tenants[{i}].name", fix="give the tenant another name, e.g. team-<name>")


def profile(tenant: Any) -> dict:
    spec: dict[str, Any] = {"owner": {"apiGroup": RBAC_GROUP, "kind": "User", "name": tenant.owner}}
    if tenant.resourceQuota:
        spec["resourceQuotaSpec"] = tenant.resourceQuota
    return {"apiVersion": PROFILE_API, "kind": "Profile",
            "metadata": {"name": tenant.name, "annotations": {
                CREATES_NAMESPACE: tenant.name,
                PULUMI_WAIT_FOR: f"jsonpath={{.metadata.finalizers[0]}}={PROFILE_FINALIZER}"}},
            "spec": spec}


def contributor_access(namespace: str, email: str, cfg: dict[str, str]) -> list[dict]:
    """What KFAM's BindingClient.Create writes for {user: {kind: User, name: email}, roleRef:
    {kind: ClusterRole, name: edit}, referredNamespace: namespace}."""
    role, cluster_role = CONTRIBUTOR_ROLE
    md = {"name": binding_name(email, role), "namespace": namespace,
          "annotations": {"user": email, "role": role}}
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": md,
         "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": cluster_role},
         "subjects": [{"apiGroup": RBAC_GROUP, "kind": "User", "name": email}]},
        {"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
         "metadata": {**md, "annotations": dict(md["annotations"])},
         "spec": {"rules": [{
             "when": [{"key": f"request.headers[{cfg['USERID_HEADER']}]",
                       "values": [cfg["USERID_PREFIX"] + email]}],
             "from": [{"source": {"principals": [cfg["ISTIO_INGRESS_GATEWAY_PRINCIPAL"],
                                                 cfg["KFP_UI_PRINCIPAL"]]}}]}]}},
    ]


def transform(objects: list[dict], ctx: Any) -> list[dict]:
    kf = ctx.profile.kubeflow
    _check_users(kf, ctx.profile.source_file)
    _check_names(kf, ctx.plan, ctx.profile.source_file)
    cfg = kfam_config(objects)
    out = list(objects)
    for t in kf.tenants:
        out.append(profile(t))
        for email in t.contributors:
            out += contributor_access(t.name, email, cfg)
    return out
