"""Volumes conformance: pvcviewer's webhook Certificate is Ready and its CA is injected into the
mutating and validating webhooks and the PVCViewer CRD's conversion webhook."""
from kubeforge.verify import check, webhook_certs


@check("webhook-certificate", timeout=180)
def webhook_certificate(ctx):
    """pvcviewer's Certificate is Ready and cert-manager injected its CA into both webhooks and the CRD."""
    return webhook_certs.check(ctx)
