"""Ordering facts read straight from Kubernetes objects, independently of kubeforge.ordering:
which CRDs define which kinds, and which webhook configuration admits which custom resource.
Shared by the render-order and apply-path tests (imported by name: tests/ is on sys.path)."""
from __future__ import annotations

WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def _group(obj: dict) -> str:
    api = obj["apiVersion"]
    return api.split("/")[0] if "/" in api else ""


def crds_of(objs: list[dict]) -> dict[tuple[str, str], str]:
    return {(o["spec"]["group"], o["spec"]["names"]["kind"]): o["spec"]["names"]["plural"]
            for o in objs if o["kind"] == "CustomResourceDefinition"}


def _admits(hook: dict, group: str, plural: str) -> bool:
    """The webhook configuration intercepts CREATE of group/plural (any version)."""
    for wh in hook.get("webhooks") or []:
        for rule in wh.get("rules") or []:
            ops = rule.get("operations") or []
            groups = rule.get("apiGroups") or []
            resources = {r.split("/")[0] for r in rule.get("resources") or []}
            if ({"CREATE", "*"} & set(ops)) and (group in groups or "*" in groups) and \
                    (plural in resources or "*" in resources):
                return True
    return False


def _ident(o: dict) -> tuple:
    md = o["metadata"]
    return (o["apiVersion"], o["kind"], md.get("namespace"), md["name"])


def webhook_pairs(objs: list[dict]) -> list[tuple[tuple, tuple]]:
    """(webhook configuration, custom resource it admits) among the objects."""
    crds = crds_of(objs)
    hooks = [o for o in objs if o["kind"] in WEBHOOK_KINDS]
    out = []
    for o in objs:
        key = (_group(o), o["kind"])
        if key in crds:
            out += [(_ident(h), _ident(o)) for h in hooks if _admits(h, key[0], crds[key])]
    return out


def assert_webhooks_first(order: list[dict], pairs, where: str) -> None:
    pos = {_ident(o): i for i, o in enumerate(order)}
    late = [(h, cr) for h, cr in pairs if h in pos and cr in pos and pos[h] > pos[cr]]
    assert not late, f"{where}: {len(late)} custom resource(s) before the webhook that admits them, e.g. {late[0]}"
