"""PodDefaults: upstream's webhook configuration ships `caBundle: ""`, which cert-manager's cainjector
then fills in. Applied as is, kubeforge would own that empty field: a second server-side apply
conflicts with the cainjector (409) or, forced, wipes the CA and breaks every pod creation in
profile namespaces. The field is dropped, so the cainjector alone owns it."""
from __future__ import annotations

WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def transform(objects, ctx):
    for o in objects:
        if o.get("kind") in WEBHOOK_KINDS:
            for wh in o.get("webhooks") or []:
                cc = wh.get("clientConfig") or {}
                if "caBundle" in cc and not cc["caBundle"]:
                    del cc["caBundle"]
    return objects
