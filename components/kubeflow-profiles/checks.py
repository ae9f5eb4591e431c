"""Kubeflow profiles conformance: every Profile the install declares is reconciled by the profile
controller into a namespace a team can use, with the access the tenant config grants."""
from __future__ import annotations

from typing import Any

import yaml

from kubeforge.verify import check

PSS_ENFORCE = "pod-security.kubernetes.io/enforce"
LABELS_FILE = "namespace-labels.yaml"
# What the controller (kubeflow/kubeflow v1.10.0 controllers/profile_controller.go) writes into
# each Profile's namespace besides the labels.
SERVICE_ACCOUNTS = ("default-editor", "default-viewer")
OWNER_BINDING = ("namespaceAdmin", "kubeflow-admin")
OWNER_POLICY = "ns-owner-access-istio"
RBAC = "rbac.authorization.k8s.io/v1"
ISTIO_SECURITY = "security.istio.io/v1beta1"


def expected_labels(objects: list[dict]) -> dict[str, str]:
    """The labels the controller puts on a Profile's namespace: istio-injection, then the rendered
    namespace-labels ConfigMap its Deployment mounts ('' removes a label)."""
    labels = {"istio-injection": "enabled"}
    mounted = set()
    for o in objects:
        if o["kind"] == "Deployment":
            for v in ((o["spec"]["template"].get("spec") or {}).get("volumes")) or []:
                if v.get("name") == "namespace-labels" and "configMap" in v:
                    mounted.add(v["configMap"]["name"])
    for o in objects:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] in mounted:
            for k, v in (yaml.safe_load((o.get("data") or {}).get(LABELS_FILE) or "") or {}).items():
                if v:
                    labels[str(k)] = str(v)
                else:
                    labels.pop(str(k), None)
    return labels


def profile_problems(get: Any, profile: dict, labels: dict[str, str], contributors: list[dict]) -> list[str]:
    """What is missing for `profile` to be reconciled; get(api, kind, name, namespace) reads the
    cluster. contributors: the rendered objects kubeforge put into its namespace (KFAM's shape)."""
    name = profile["metadata"]["name"]
    owner = ((profile.get("spec") or {}).get("owner") or {}).get("name")
    live = get(profile["apiVersion"], "Profile", name, None)
    if live is None:
        return [f"Profile {name} does not exist"]
    failed = [c.get("message", "") for c in (live.get("status") or {}).get("conditions") or []
              if c.get("type") == "Failed"]
    if failed:
        return [f"Profile {name} Failed: {failed[-1]}"]
    ns = get("v1", "Namespace", name, None)
    if ns is None:
        return [f"namespace {name} of Profile {name} does not exist"]
    out = []
    md = ns["metadata"]
    if (md.get("annotations") or {}).get("owner") != owner:
        out.append(f"namespace {name}: annotation owner is {(md.get('annotations') or {}).get('owner')!r}, "
                   f"not the Profile's owner {owner!r}")
    have = md.get("labels") or {}
    wrong = {k: v for k, v in labels.items() if have.get(k) != v}
    if wrong:
        out.append(f"namespace {name}: labels {', '.join(f'{k}={v}' for k, v in sorted(wrong.items()))} "
                   f"missing or different (has {', '.join(f'{k}={v}' for k, v in sorted(have.items()))})")
    if PSS_ENFORCE not in have:
        out.append(f"namespace {name} has no Pod Security label {PSS_ENFORCE}")
    for sa in SERVICE_ACCOUNTS:
        if get("v1", "ServiceAccount", sa, name) is None:
            out.append(f"namespace {name}: service account {sa} missing")
    rb_name, role = OWNER_BINDING
    rb = get(RBAC, "RoleBinding", rb_name, name)
    if rb is None:
        out.append(f"namespace {name}: owner RoleBinding {rb_name} missing")
    else:
        if (rb.get("roleRef") or {}).get("name") != role:
            out.append(f"RoleBinding {name}/{rb_name} binds {(rb.get('roleRef') or {}).get('name')}, not {role}")
        if owner not in [s.get("name") for s in rb.get("subjects") or []]:
            out.append(f"RoleBinding {name}/{rb_name} does not name the owner {owner}")
    if get(ISTIO_SECURITY, "AuthorizationPolicy", OWNER_POLICY, name) is None:
        out.append(f"namespace {name}: AuthorizationPolicy {OWNER_POLICY} missing")
    for o in contributors:
        if get(o["apiVersion"], o["kind"], o["metadata"]["name"], name) is None:
            out.append(f"namespace {name}: {o['kind']} {o['metadata']['name']} "
                       f"(access of {(o['metadata'].get('annotations') or {}).get('user')}) missing")
    return out


def _has_tenants(plan: Any) -> bool | str:
    return True if plan.profile.kubeflow.tenants else "the profile declares no kubeflow.tenants"


@check("profile-reconciles", timeout=240, when=_has_tenants)
def profile_reconciles(ctx):
    """Each tenant's Profile has its namespace (owner annotation, Istio injection, Pod Security and
    the controller's labels), the default-editor/default-viewer service accounts, the owner's
    RoleBinding and AuthorizationPolicy, and the contributor access kubeforge generated."""
    profiles = [o for o in ctx.objects if o["kind"] == "Profile"]
    labels = expected_labels(ctx.objects)
    inside = {p["metadata"]["name"]: [o for o in ctx.objects
                                      if o["metadata"].get("namespace") == p["metadata"]["name"]]
              for p in profiles}
    ctx.wait_clean(f"{len(profiles)} Profile(s) to be reconciled", lambda: [
        p for prof in profiles for p in profile_problems(ctx.get, prof, labels, inside[prof["metadata"]["name"]])],
        timeout=180)
    return f"{len(profiles)} Profile(s) reconciled: {', '.join(p['metadata']['name'] for p in profiles)}"
