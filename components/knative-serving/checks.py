"""Knative Serving conformance: a Service becomes Ready, answers, and scales to zero."""
from kubeforge.verify import check
from kubeforge.verify.context import NotYet

KS = "serving.knative.dev/v1"


@check("service-ready-answers-scales-to-zero", timeout=540)
def service_lifecycle(ctx):
    """A Knative Service becomes Ready, answers an in-cluster request, then scales to zero pods."""
    with ctx.namespace("knative") as ns:
        ctx.create({"apiVersion": KS, "kind": "Service", "metadata": {"name": "hello"},
                    "spec": {"template": {
                        # the shortest stable window Knative allows, so scale-to-zero comes quickly
                        "metadata": {"annotations": {"autoscaling.knative.dev/window": "6s"}},
                        "spec": {"containers": [{"image": ctx.image("httpbin"),
                                                 "ports": [{"containerPort": 8080}]}]}}}}, ns)
        ksvc = ctx.wait_condition(KS, "Service", "hello", ns, "Ready", timeout=240)
        url = (ksvc["status"].get("address") or {}).get("url") or ksvc["status"]["url"]
        ctx.wait(f"{url} to answer", lambda: ctx.http(ns, f"{url}/get"), timeout=120)

        def scaled_to_zero() -> bool:
            pods = ctx.cluster.list("v1", "Pod", ns, label_selector="serving.knative.dev/service=hello")
            running = [p["metadata"]["name"] for p in pods
                       if (p.get("status") or {}).get("phase") in ("Pending", "Running")]
            if running:
                raise NotYet(f"still running: {', '.join(running)}")
            return True
        ctx.wait("the Service to scale to zero", scaled_to_zero, timeout=240, interval=5)
    return f"{url} answered and scaled to zero"
