"""KServe conformance: an sklearn InferenceService becomes Ready and predicts, in both modes."""
from kubeforge.verify import check

ISVC = "serving.kserve.io/v1beta1"
# KServe's own sklearn iris example model (public bucket; air-gapped sites mirror it and point
# KUBEFORGE_SKLEARN_MODEL at the copy).
MODEL = "gs://kfserving-examples/models/sklearn/1.0/model"
IRIS = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
EXPECTED = [1, 1]


def _knative_enabled(plan):
    return True if "knative-serving" in plan.components else "Knative Serving is not enabled in this profile"


def _predict(ctx, mode: str) -> str:
    import json
    import os

    name = f"sklearn-{mode.lower()}"
    with ctx.namespace(f"kserve-{mode.lower()}") as ns:
        ctx.create({"apiVersion": ISVC, "kind": "InferenceService",
                    "metadata": {"name": name, "annotations": {
                        "serving.kserve.io/deploymentMode": mode, "sidecar.istio.io/inject": "false"}},
                    "spec": {"predictor": {"model": {
                        "modelFormat": {"name": "sklearn"},
                        "storageUri": os.environ.get("KUBEFORGE_SKLEARN_MODEL", MODEL),
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                                      "limits": {"cpu": "1", "memory": "1Gi"}}}}}}, ns)
        isvc = ctx.wait_condition(ISVC, "InferenceService", name, ns, "Ready", timeout=480)
        base = (isvc["status"].get("address") or {}).get("url") or isvc["status"]["url"]
        body = ctx.wait("a prediction", lambda: ctx.http(ns, f"{base}/v1/models/{name}:predict", IRIS),
                        timeout=120)
        got = json.loads(body).get("predictions")
        if got != EXPECTED:
            ctx.fail(f"{mode} InferenceService predicted {got}, expected {EXPECTED}")
    return f"{mode}: predictions {got}"


@check("predict-knative", timeout=720, when=_knative_enabled)
def predict_knative(ctx):
    """An sklearn InferenceService in Knative (serverless) mode becomes Ready and predicts iris classes."""
    return _predict(ctx, "Knative")


@check("predict-standard", timeout=720)
def predict_standard(ctx):
    """An sklearn InferenceService in Standard (raw Deployment) mode becomes Ready and predicts."""
    return _predict(ctx, "Standard")
