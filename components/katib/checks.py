"""Katib conformance: a random-search Experiment completes two trials."""
from kubeforge.verify import check

KATIB = "kubeflow.org/v1beta1"
# Katib injects its stdout metrics collector only into namespaces labelled so.
INJECTION = {"katib.kubeflow.org/metrics-collector-injection": "enabled"}


def experiment(image: str) -> dict:
    return {
        "apiVersion": KATIB, "kind": "Experiment", "metadata": {"name": "random-probe"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 2, "maxTrialCount": 2, "maxFailedTrialCount": 1,
            "parameters": [{"name": "lr", "parameterType": "double",
                            "feasibleSpace": {"min": "0.01", "max": "0.05"}}],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": "learningRate", "description": "learning rate",
                                     "reference": "lr"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
                    "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                    "spec": {"restartPolicy": "Never", "containers": [{
                        "name": "training-container", "image": image,
                        # the stdout collector parses "name=value" lines
                        "command": ["sh", "-c", "echo loss=${trialParameters.learningRate}"]}]}}}},
            },
        },
    }


@check("random-experiment", timeout=600)
def random_experiment(ctx):
    """A random-search Experiment with a two-trial budget succeeds with two succeeded trials."""
    with ctx.namespace("katib", INJECTION) as ns:
        ctx.create(experiment(ctx.image("busybox")), ns)
        exp = ctx.wait_condition(KATIB, "Experiment", "random-probe", ns, "Succeeded", timeout=540)
        st = exp.get("status") or {}
        if (st.get("trialsSucceeded") or 0) < 2:
            ctx.fail(f"Experiment succeeded with {st.get('trialsSucceeded')} succeeded trials, want 2: {st}")
        best = (st.get("currentOptimalTrial") or {}).get("observation") or {}
    return f"2 trials succeeded; best {best.get('metrics')}"
