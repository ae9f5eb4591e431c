"""Kubeflow Pipelines multi-user, adapted from upstream's platform-agnostic-multi-user tree:

- one Argo: KFP's own copy of Argo 3.7.3 (CRDs, controller, its RBAC) is dropped; Pipelines
  runs on the argo-workflows component, which components/argo-workflows/generate.py configures
  for KFP when this component is enabled;
- no shared default secret: the MySQL root password and SeaweedFS' admin keys are per-install
  secrets (upstream: an empty password, minio/minio123); each tenant's object-store keys are made
  by the pipelines profile controller (sync.py) through SeaweedFS' IAM API, one user per namespace;
- every image pinned, including the ones outside `image:` fields (cacheImage, the artifact proxy's
  FRONTEND_IMAGE + FRONTEND_TAG);
- the PVCs sized by values on the profile's default StorageClass; MySQL or the object store can
  be external instead.
"""
from __future__ import annotations

import re

from kubeforge.errors import KubeforgeError

FILE = "components/pipelines/component.yaml"
NAMESPACE = "kubeflow"
# Upstream leaves cacheImage untagged (the cache webhook's stand-in container for cached steps).
# 1.36 is the tag containerd's own tests pull from ghcr.io/containerd/busybox.
CACHE_IMAGE = "ghcr.io/containerd/busybox:1.36"
FRONTEND_IMAGE = "ghcr.io/kubeflow/kfp-frontend"
BUCKET = "mlpipeline"                     # sync.py's S3_BUCKET_NAME, pipeline-install-config's bucketName
S3_SECRET = "mlpipeline-minio-artifact"   # object-store keys: kubeflow's admin, one per tenant namespace

# KFP's third-party/argo objects (installs/cluster: minimal CRDs, controller RBAC, base: the
# controller). group/kind/name; tests/render/test_pipelines.py builds KFP's Argo overlay on its
# own and checks this list is exactly what it renders.
ARGO_CRDS = ("clusterworkflowtemplates", "cronworkflows", "workflowartifactgctasks", "workfloweventbindings",
             "workflows", "workflowtaskresults", "workflowtasksets", "workflowtemplates")
KFP_ARGO = frozenset(
    {("apiextensions.k8s.io", "CustomResourceDefinition", f"{c}.argoproj.io") for c in ARGO_CRDS}
    | {("scheduling.k8s.io", "PriorityClass", "workflow-controller"),
       ("", "ConfigMap", "workflow-controller-configmap"),
       ("", "ServiceAccount", "argo"),
       ("rbac.authorization.k8s.io", "ClusterRole", "argo-aggregate-to-admin"),
       ("rbac.authorization.k8s.io", "ClusterRole", "argo-aggregate-to-edit"),
       ("rbac.authorization.k8s.io", "ClusterRole", "argo-aggregate-to-view"),
       ("rbac.authorization.k8s.io", "ClusterRole", "argo-cluster-role"),
       ("rbac.authorization.k8s.io", "ClusterRoleBinding", "argo-binding"),
       ("rbac.authorization.k8s.io", "Role", "argo-role"),
       ("rbac.authorization.k8s.io", "RoleBinding", "argo-binding"),
       ("apps", "Deployment", "workflow-controller")})
# What goes with the in-cluster MySQL when an external one is used.
MYSQL_OBJECTS = frozenset({("apps", "Deployment", "mysql"), ("", "Service", "mysql"),
                           ("", "PersistentVolumeClaim", "mysql-pv-claim"), ("", "ServiceAccount", "mysql"),
                           ("security.istio.io", "AuthorizationPolicy", "mysql"),
                           ("networking.istio.io", "DestinationRule", "ml-pipeline-mysql")})
SEAWEEDFS_OBJECTS = frozenset({("apps", "Deployment", "seaweedfs"), ("", "Service", "seaweedfs"),
                               ("", "PersistentVolumeClaim", "seaweedfs-pvc"), ("", "ServiceAccount", "seaweedfs"),
                               ("networking.k8s.io", "NetworkPolicy", "seaweedfs"),
                               ("security.istio.io", "AuthorizationPolicy", "seaweedfs-service"),
                               ("networking.istio.io", "DestinationRule", "ml-pipeline-seaweedfs")})
PVCS = {"mysql-pv-claim": "mysqlStorage", "seaweedfs-pvc": "objectStoreStorage"}
# sync.py's per-tenant Argo artifact repository, written for the in-cluster SeaweedFS only.
SYNC_ENDPOINT = 'f"{object_store_host}.kubeflow{_normalize_domain(cluster_domain)}:9000"'
SYNC_INSECURE = '"insecure": True,'


def ident(o: dict) -> tuple[str, str, str]:
    return o.get("apiVersion", "").rpartition("/")[0], o.get("kind", ""), o["metadata"]["name"]


def _drop(objects: list[dict], wanted: frozenset, what: str) -> list[dict]:
    found = {ident(o) for o in objects} & wanted
    if found != wanted:
        missing = sorted("/".join(x for x in k if x) for k in wanted - found)
        raise KubeforgeError(f"pipelines: upstream no longer renders {', '.join(missing)} ({what})", file=FILE,
                             field="sources", fix="update components/pipelines/generate.py for the new release")
    return [o for o in objects if ident(o) not in wanted]


def _one(objects: list[dict], kind: str, name: str) -> dict:
    """The object `name`, or the one kustomize's generators named `name-<hash>`."""
    for o in objects:
        if o["kind"] == kind and re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", o["metadata"]["name"]):
            return o
    raise KubeforgeError(f"pipelines: upstream renders no {kind} {name}", file=FILE, field="sources",
                         fix="update components/pipelines/generate.py for the new release")


def _container(objects: list[dict], deployment: str) -> dict:
    return _one(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]


def _set_env(container: dict, name: str, value: str | None = None, value_from: dict | None = None) -> None:
    env = container.setdefault("env", [])
    entry = {"name": name, **({"value": value} if value_from is None else {"valueFrom": value_from})}
    for i, e in enumerate(env):
        if e["name"] == name:
            env[i] = entry
            return
    env.append(entry)


def _drop_env(container: dict, name: str) -> None:
    container["env"] = [e for e in container.get("env", []) if e["name"] != name]


def object_store(values: dict) -> dict:
    """host, port, secure, region of the S3 endpoint the pipelines and Argo use."""
    ext = (values.get("objectStore") or {}).get("external")
    if not ext:
        return {"host": f"seaweedfs.{NAMESPACE}", "port": 9000, "secure": False, "region": "us-east-1",
                "iam": f"http://seaweedfs.{NAMESPACE}:8111", "s3": f"http://seaweedfs.{NAMESPACE}:8333"}
    scheme = "https" if ext.get("secure", True) else "http"
    port = int(ext.get("port", 443 if ext.get("secure", True) else 80))
    return {"host": ext["host"], "port": port, "secure": bool(ext.get("secure", True)),
            "region": ext.get("region", "us-east-1"), "iam": ext.get("iamEndpoint"),
            "s3": f"{scheme}://{ext['host']}:{port}"}


def transform(objects: list[dict], ctx) -> list[dict]:
    values = ctx.values
    objects = _drop(objects, KFP_ARGO, "KFP's own Argo, replaced by the argo-workflows component")
    external_db = values.get("mysql", {}).get("external")
    external_s3 = (values.get("objectStore") or {}).get("external")
    if external_db:
        objects = _drop(objects, MYSQL_OBJECTS, "the in-cluster MySQL, replaced by mysql.external")
    if external_s3:
        objects = _drop(objects, SEAWEEDFS_OBJECTS, "the in-cluster SeaweedFS, replaced by objectStore.external")

    # Per-install credentials instead of upstream's root/"" and minio/minio123.
    mysql_secret = _one(objects, "Secret", "mysql-secret")
    mysql_secret["stringData"] = {"username": external_db["user"] if external_db else "root",
                                  "password": ctx.secret("pipelines-mysql-password")}
    s3_secret = _one(objects, "Secret", S3_SECRET)
    s3_secret["stringData"] = {"accesskey": ctx.secret("pipelines-object-store-access-key"),
                               "secretkey": ctx.secret("pipelines-object-store-secret-key")}
    if not external_db:
        mysql = _container(objects, "mysql")
        _drop_env(mysql, "MYSQL_ALLOW_EMPTY_PASSWORD")
        _set_env(mysql, "MYSQL_ROOT_PASSWORD",
                 value_from={"secretKeyRef": {"name": "mysql-secret", "key": "password"}})

    install = _one(objects, "ConfigMap", "pipeline-install-config")["data"]
    install["cacheImage"] = CACHE_IMAGE
    if external_db:
        for key in ("dbHost", "mysqlHost"):
            install[key] = external_db["host"]
        for key in ("dbPort", "mysqlPort"):
            install[key] = str(external_db.get("port", 3306))

    store = object_store(values)
    api = _container(objects, "ml-pipeline")
    _set_env(api, "OBJECTSTORECONFIG_HOST", store["host"])
    _set_env(api, "OBJECTSTORECONFIG_PORT", str(store["port"]))
    _set_env(api, "OBJECTSTORECONFIG_SECURE", "true" if store["secure"] else "false")
    if external_s3:
        _set_env(api, "OBJECTSTORECONFIG_REGION", store["region"])

    # The pipelines profile controller: per-tenant keys via the store's IAM API, and the artifact
    # proxy's image as an explicit, pinned pair (sync.py composes FRONTEND_IMAGE:FRONTEND_TAG).
    controller = _container(objects, "kubeflow-pipelines-profile-controller")
    _set_env(controller, "S3_ENDPOINT_URL", store["s3"])
    _set_env(controller, "AWS_REGION", store["region"])
    if store["iam"]:
        _set_env(controller, "AWS_ENDPOINT_URL", store["iam"])
    else:
        _drop_env(controller, "AWS_ENDPOINT_URL")       # the provider's own IAM (AWS)
    _set_env(controller, "FRONTEND_IMAGE", FRONTEND_IMAGE)
    _set_env(controller, "FRONTEND_TAG", ctx.component.version)
    if external_s3:
        _external_sync(objects, store)

    for o in objects:
        if o["kind"] == "DecoratorController":
            o["metadata"].pop("namespace", None)     # cluster-scoped; kustomize's namespace: stamped it
        if o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] in PVCS:
            o["spec"]["resources"]["requests"]["storage"] = values[PVCS[o["metadata"]["name"]]]
            o["spec"]["storageClassName"] = ctx.profile.storage.default
    return objects


def _external_sync(objects: list[dict], store: dict) -> None:
    """sync.py writes each tenant's Argo artifact repository for the in-cluster SeaweedFS
    (`<host>.kubeflow.svc:9000`, insecure); point it at the external endpoint instead."""
    code = _one(objects, "ConfigMap", "kubeflow-pipelines-profile-controller-code")["data"]
    text = code["sync.py"]
    for needle in (SYNC_ENDPOINT, SYNC_INSECURE):
        if text.count(needle) != 1:
            raise KubeforgeError("pipelines: the profile controller's sync.py changed upstream; cannot point "
                                 "tenants' artifact repositories at objectStore.external", file=FILE,
                                 field="values.objectStore.external",
                                 fix="update _external_sync in components/pipelines/generate.py")
    text = text.replace(SYNC_ENDPOINT, repr(f"{store['host']}:{store['port']}"))
    code["sync.py"] = text.replace(SYNC_INSECURE, f'"insecure": {not store["secure"]},')
