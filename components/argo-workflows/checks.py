"""Argo Workflows conformance: a hello-world Workflow succeeds."""
from kubeforge.verify import check
from kubeforge.verify.context import NotYet

ARGO = "argoproj.io/v1alpha1"


def _executor_rbac(ns: str) -> list[dict]:
    """What the executor needs since Argo 3.4: report its results as WorkflowTaskResults."""
    rules = [{"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"],
              "verbs": ["create", "patch"]}]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "probe-executor"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "probe-executor"}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "probe-executor"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "probe-executor"},
         "subjects": [{"kind": "ServiceAccount", "name": "probe-executor", "namespace": ns}]},
    ]


@check("hello-world", timeout=300)
def hello_world(ctx):
    """A one-step Workflow (busybox echo) reaches phase Succeeded."""
    with ctx.namespace("argo") as ns:
        for obj in _executor_rbac(ns):
            ctx.create(obj, ns)
        ctx.create({"apiVersion": ARGO, "kind": "Workflow", "metadata": {"name": "hello-world"},
                    "spec": {"entrypoint": "main", "serviceAccountName": "probe-executor",
                             "podMetadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                             "templates": [{"name": "main", "container": {
                                 "image": ctx.image("busybox"), "command": ["echo"],
                                 "args": ["hello world"]}}]}}, ns)

        def succeeded() -> bool:
            wf = ctx.get(ARGO, "Workflow", "hello-world", ns) or {}
            st = wf.get("status") or {}
            if st.get("phase") in ("Failed", "Error"):
                ctx.fail(f"Workflow {st.get('phase')}: {st.get('message')}")
            if st.get("phase") != "Succeeded":
                raise NotYet(f"phase {st.get('phase')}: {st.get('message') or ''}")
            return True
        ctx.wait("the Workflow to succeed", succeeded, timeout=270)
    return "hello-world Succeeded"
