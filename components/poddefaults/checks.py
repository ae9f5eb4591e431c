"""PodDefaults conformance: the webhook's serving Certificate is Ready and its CA is the one the API
server is told to trust (the webhook admits every pod of a profile namespace: failurePolicy Fail)."""
from kubeforge.verify import check, webhook_certs


@check("webhook-certificate", timeout=180)
def webhook_certificate(ctx):
    """The PodDefaults webhook's Certificate is Ready and cert-manager injected its CA as the caBundle."""
    return webhook_certs.check(ctx)
