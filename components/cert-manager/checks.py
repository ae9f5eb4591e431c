"""cert-manager conformance: a self-signed Issuer issues a Certificate."""
from kubeforge.verify import check

CM = "cert-manager.io/v1"


@check("issues-certificate", timeout=180)
def issues_certificate(ctx):
    """A self-signed Issuer becomes Ready and issues a Certificate whose Secret holds a key pair."""
    with ctx.namespace("cert-manager") as ns:
        ctx.create({"apiVersion": CM, "kind": "Issuer", "metadata": {"name": "selfsigned"},
                    "spec": {"selfSigned": {}}}, ns)
        ctx.create({"apiVersion": CM, "kind": "Certificate", "metadata": {"name": "probe"},
                    "spec": {"secretName": "probe-tls", "commonName": "probe.kubeforge.test",
                             "dnsNames": ["probe.kubeforge.test"], "duration": "1h",
                             "issuerRef": {"name": "selfsigned", "kind": "Issuer"}}}, ns)
        ctx.wait_condition(CM, "Issuer", "selfsigned", ns, "Ready", timeout=60)
        cert = ctx.wait_condition(CM, "Certificate", "probe", ns, "Ready", timeout=120)
        secret = ctx.get("v1", "Secret", "probe-tls", ns)
        keys = set((secret or {}).get("data") or {})
        if not {"tls.crt", "tls.key"} <= keys:
            ctx.fail(f"Secret probe-tls lacks tls.crt/tls.key (has {sorted(keys)})")
    return f"certificate issued, not after {cert['status'].get('notAfter')}"
