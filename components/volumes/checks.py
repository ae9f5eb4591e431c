"""Volumes conformance: pvcviewer's webhook Certificate is Ready and its CA is injected into the
mutating and validating webhooks and the PVCViewer CRD's conversion webhook."""
from kubeforge.verify import check, webhook_certs


@check("webhook-certificate", timeout=180)
def webhook_certificate(ctx):
    """pvcviewer's Certificate is Ready and cert-manager injected its CA into both webhooks and the CRD."""
    return webhook_certs.check(ctx)


@check("pvcviewer-admitted", timeout=180)
def pvcviewer_admitted(ctx):
    """The API server calls pvcviewer's webhooks over TLS it trusts: a dry-run PVCViewer is defaulted (spec.podSpec) and validated."""
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "probe"},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}}
    viewer = {"apiVersion": "kubeflow.org/v1alpha1", "kind": "PVCViewer", "metadata": {"name": "probe"},
              "spec": {"pvc": "probe"}}
    with ctx.namespace("pvcviewer") as ns:
        ctx.create(pvc, ns)
        try:
            got, err = ctx.cluster.create(viewer, namespace=ns, dry_run=True), None
        except Exception as exc:  # the API server's answer (ApiException) is the verdict
            got, err = None, exc
        problems = webhook_certs.admission_problems(err, got, "spec.podSpec")
        if problems:
            ctx.fail("; ".join(problems))
    return "PVCViewer defaulted and validated by pvcviewer's webhooks (dry run)"
