"""Istio conformance: sidecar injection, and mTLS enforced between two pods."""
from kubeforge.verify import check
from kubeforge.verify.context import NotYet

URL = "http://httpbin.{ns}.svc.cluster.local:8000/headers"
SLEEPER = ["sleep", "3600"]


def _has_proxy(pod: dict) -> bool:
    spec = pod.get("spec") or {}
    names = [c["name"] for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])]
    return "istio-proxy" in names


@check("sidecar-and-mtls", timeout=420)
def sidecar_and_mtls(ctx):
    """Pods in an istio-injection=enabled namespace get a sidecar; with PeerAuthentication STRICT a
    meshed client reaches the server over mTLS (its SPIFFE identity forwarded, and admitted by an
    AuthorizationPolicy on that identity) and a client without a sidecar is refused."""
    inject = {"sidecar.istio.io/inject": "true"}
    with ctx.namespace("istio-mesh", {"istio-injection": "enabled"}) as mesh, \
            ctx.namespace("istio-plain") as plain:
        ctx.create({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                    "metadata": {"name": "default"}, "spec": {"mtls": {"mode": "STRICT"}}}, mesh)
        # The Kubeflow Istio install denies everything mesh-wide (global-deny-all); allow callers
        # from this namespace, which Istio can only tell through their mTLS identity.
        ctx.create({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                    "metadata": {"name": "allow-same-namespace"},
                    "spec": {"selector": {"matchLabels": {"app": "httpbin"}}, "action": "ALLOW",
                             "rules": [{"from": [{"source": {"namespaces": [mesh]}}]}]}}, mesh)
        ctx.create(ctx.pod("httpbin", "httpbin", None, annotations=inject, restart="Always"), mesh)
        ctx.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "httpbin"},
                    "spec": {"selector": {"app": "httpbin"},
                             "ports": [{"name": "http", "port": 8000, "targetPort": 8080}]}}, mesh)
        ctx.create(ctx.pod("client", "curl", SLEEPER, annotations=inject, restart="Always"), mesh)
        ctx.create(ctx.pod("outsider", "curl", SLEEPER, restart="Always"), plain)
        for ns, name in ((mesh, "httpbin"), (mesh, "client"), (plain, "outsider")):
            ctx.wait_pod_ready(ns, name)
        for name in ("httpbin", "client"):
            if not _has_proxy(ctx.get("v1", "Pod", name, mesh)):
                ctx.fail(f"pod {mesh}/{name} has no istio-proxy container: injection did not happen")
        url = URL.format(ns=mesh)

        def meshed() -> str:
            rc, out = ctx.exec(mesh, "client", ["curl", "-sS", "-m", "5", "--fail-with-body", url])
            if rc != 0:
                raise NotYet(f"meshed client: curl rc {rc}: {out[-300:]}")
            if "spiffe://" not in out:
                raise NotYet(f"meshed request arrived without a client certificate (no mTLS): {out[-300:]}")
            return out
        ctx.wait("the meshed client to reach httpbin over mTLS", meshed, timeout=120)

        def refused() -> bool:
            rc, out = ctx.exec(plain, "outsider", ["curl", "-sS", "-m", "5", "-o", "/dev/null", url])
            if rc == 0:
                raise NotYet("a client without a sidecar still reaches httpbin in plain text")
            return True
        ctx.wait("STRICT mTLS to refuse the plain-text client", refused, timeout=120)
    return "sidecar injected; mTLS enforced"
