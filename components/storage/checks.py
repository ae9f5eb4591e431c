"""Storage conformance: the default StorageClass binds a PVC that a pod can write to."""
from kubeforge.verify import check
from kubeforge.verify.context import NotYet

DEFAULT = "storageclass.kubernetes.io/is-default-class"


def default_classes(classes: list[dict]) -> list[str]:
    return [c["metadata"]["name"] for c in classes
            if (c["metadata"].get("annotations") or {}).get(DEFAULT) == "true"]


@check("default-class-binds-pvc", timeout=300)
def default_class_binds_pvc(ctx):
    """Exactly one default StorageClass; a PVC without a class binds and a pod writes to it."""
    defaults = default_classes(ctx.cluster.list("storage.k8s.io/v1", "StorageClass"))
    if len(defaults) != 1:
        ctx.fail(f"want exactly one default StorageClass, found {defaults or 'none'}")
    with ctx.namespace("storage") as ns:
        ctx.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "probe"},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "64Mi"}}}}, ns)
        # A consumer pod, since WaitForFirstConsumer classes (local-path) bind only then.
        ctx.run_pod(ns, "writer", "busybox", ["sh", "-c", "echo ok > /data/probe && cat /data/probe"],
                    extra={"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "probe"}}]},
                    mounts=[{"name": "data", "mountPath": "/data"}])

        def bound() -> str:
            pvc = ctx.get("v1", "PersistentVolumeClaim", "probe", ns) or {}
            phase = (pvc.get("status") or {}).get("phase")
            if phase != "Bound":
                raise NotYet(f"PVC is {phase}")
            return pvc["spec"].get("storageClassName", "")
        sc = ctx.wait("the PVC to bind", bound, timeout=120)
    return f"bound by {sc}"
