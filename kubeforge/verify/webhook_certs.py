"""Webhooks whose CA cert-manager injects (`cert-manager.io/inject-ca-from: NS/CERTIFICATE`): the
Certificate is Ready and every webhook of the object (a CRD: its conversion webhook) carries that
Certificate's CA as its caBundle.

Readiness already asks for *a* caBundle. This asks for the right one: after the serving
certificate is re-issued with a new CA, a caBundle the cainjector has not updated yet (or that
another writer, an old apply, put there) makes the API server reject the webhook's TLS
(`x509: certificate signed by unknown authority`) and every pod in a profile namespace fails to
create. `*_problems` are the logic over object dicts; `check` polls them on a cluster.
"""
from __future__ import annotations

from typing import Any

INJECT_CA_FROM = "cert-manager.io/inject-ca-from"
CERT_API = "cert-manager.io/v1"
API = {"MutatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
       "ValidatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
       "CustomResourceDefinition": "apiextensions.k8s.io/v1"}


def injected(objects: list[dict]) -> list[dict]:
    """The objects whose caBundles cert-manager's cainjector fills from a Certificate."""
    return [o for o in objects if o.get("kind") in API
            and INJECT_CA_FROM in ((o.get("metadata") or {}).get("annotations") or {})
            and ca_bundles(o)]


def certificate_of(obj: dict) -> tuple[str, str]:
    ns, _, name = obj["metadata"]["annotations"][INJECT_CA_FROM].partition("/")
    return ns, name


def ca_bundles(obj: dict) -> list[tuple[str, str | None]]:
    """(where, caBundle or None) of each service-backed webhook the object configures."""
    if obj.get("kind") == "CustomResourceDefinition":
        conv = (obj.get("spec") or {}).get("conversion") or {}
        cc = (conv.get("webhook") or {}).get("clientConfig") or {}
        return [("conversion webhook", cc.get("caBundle") or None)] \
            if conv.get("strategy") == "Webhook" and cc.get("service") else []
    return [(f"webhook {wh.get('name')}", (wh.get("clientConfig") or {}).get("caBundle") or None)
            for wh in obj.get("webhooks") or [] if (wh.get("clientConfig") or {}).get("service")]


def _ref(obj: dict) -> str:
    return f"{obj['kind']} {obj['metadata']['name']}"


def certificate_problems(ref: str, cert: dict | None, secret: dict | None) -> tuple[list[str], str | None]:
    """(problems, the CA the Certificate's Secret holds) for the Certificate `ref` (NS/NAME)."""
    if cert is None:
        return [f"Certificate {ref} is missing"], None
    ready = next((c for c in (cert.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    if not ready or ready.get("status") != "True":
        why = f" ({ready.get('reason')}: {ready.get('message')})" if ready else " (no Ready condition yet)"
        return [f"Certificate {ref} is not Ready{why}"], None
    secret_name = (cert.get("spec") or {}).get("secretName")
    ca = ((secret or {}).get("data") or {}).get("ca.crt")
    if not ca:
        return [f"Certificate {ref} is Ready but its Secret {secret_name} holds no ca.crt"], None
    return [], ca


def injection_problems(live: dict | None, rendered: dict, cert: dict | None, secret: dict | None) -> list[str]:
    """What keeps the live object's webhooks from trusting its Certificate's CA."""
    ns, name = certificate_of(rendered)
    if live is None:
        return [f"{_ref(rendered)} is missing"]
    out, ca = certificate_problems(f"{ns}/{name}", cert, secret)
    if ca is None:
        return out
    for where, bundle in ca_bundles(live):
        if bundle is None:
            out.append(f"{_ref(live)}: {where} has no caBundle (cert-manager's cainjector has not "
                       f"injected the CA of Certificate {ns}/{name})")
        elif bundle != ca:
            out.append(f"{_ref(live)}: {where} caBundle is not the CA of Certificate {ns}/{name} "
                       "(stale after a re-issue, or written by someone else)")
    return out


def live_problems(cluster: Any, rendered: dict) -> list[str]:
    ns, name = certificate_of(rendered)
    cert = cluster.get(CERT_API, "Certificate", name, ns)
    secret_name = ((cert or {}).get("spec") or {}).get("secretName")
    secret = cluster.get("v1", "Secret", secret_name, ns) if secret_name else None
    live = cluster.get(API[rendered["kind"]], rendered["kind"], rendered["metadata"]["name"])
    return injection_problems(live, rendered, cert, secret)


def check(ctx: Any) -> str:
    """The check body: every injected object of the component trusts its Certificate's CA."""
    targets = injected(ctx.objects)
    if not targets:
        ctx.fail(f"{ctx.component} renders no object annotated {INJECT_CA_FROM}")
    ctx.wait_clean("webhook CAs injected", lambda: [p for o in targets for p in live_problems(ctx.cluster, o)])
    certs = sorted({"/".join(certificate_of(o)) for o in targets})
    return f"{len(targets)} object(s) trust Certificate {', '.join(certs)}"


def admission_problems(error: Exception | None, admitted: dict | None, defaulted: str) -> list[str]:
    """The verdict on a dry-run create that the webhooks must admit: the API server's error (a TLS
    failure named as such), or the mutating webhook's default (`defaulted`, a dotted path) missing."""
    if error is not None:
        from kubeforge.verify.cluster import ApiRejected

        msg = error.message if isinstance(error, ApiRejected) else ApiRejected.of(error).message
        if "x509" in msg or ("certificate" in msg and "failed calling webhook" in msg):
            return [f"the API server does not trust the webhook's serving certificate (the caBundle is "
                    f"not its CA): {msg[:400]}"]
        return [f"the dry-run create was refused: {msg[:400]}"]
    node: Any = admitted or {}
    for part in defaulted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if not node:
        return [f"admitted, but {defaulted} is empty: the mutating webhook did not default it"]
    return []
