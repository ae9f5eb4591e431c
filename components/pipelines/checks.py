"""Kubeflow Pipelines conformance, per tenant, through KFP's v2beta1 REST API.

The API is called the way a tenant's code calls it: from a pod in the tenant namespace running
as its `default-editor` service account, with a projected service-account token for KFP's
audience (what the Notebook PodDefault gives a notebook) sent as `Authorization: Bearer`. The
token is read inside the pod and never reaches kubeforge, its logs or its reports. The same pods
read the object store with the tenant's own keys (the Secret KFP's profile controller writes).

Offline, tests/lifecycle/test_pipelines_checks.py runs this logic on the real rendered objects,
the real upstream sync.py and recorded API responses shaped on KFP's v2beta1 API reference.
"""
from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

from kubeforge.verify import check, webhook_certs
from kubeforge.verify.context import NotYet

NAMESPACE = "kubeflow"
RUNNER_SA = "default-editor"            # pipeline-api-server-config DEFAULTPIPELINERUNNERSERVICEACCOUNT
S3_SECRET = "mlpipeline-minio-artifact"
BUCKET = "mlpipeline"
# What KFP's profile controller (sync.py) writes into each tenant namespace besides the Secret.
TENANT_CONFIGMAPS = ("kfp-launcher", "metadata-grpc-configmap", "artifact-repositories")
ENABLED_LABEL = "pipelines.kubeflow.org/enabled"
TOKEN_DIR = "/var/run/secrets/kubeflow/pipelines"
TOKEN_PATH = f"{TOKEN_DIR}/token"       # where the kfp SDK looks (KF_PIPELINES_SA_TOKEN_PATH)
TOKEN_SECONDS = 3600
API_PATH = "/apis/v2beta1"
# v2beta1 RuntimeState: the run is over in these.
DONE = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
PIPELINE_FILE = Path(__file__).with_name("verify") / "two-steps.yaml"


# -- what the checks send and expect (pure; tested offline) -------------------------------------
def api_url(objects: list[dict]) -> str:
    """The API server's in-cluster URL, from the rendered Service."""
    svc = _find(objects, "Service", "ml-pipeline")
    port = next(p["port"] for p in svc["spec"]["ports"] if p.get("name") == "http")
    return f"http://ml-pipeline.{svc['metadata']['namespace']}.svc.cluster.local:{port}{API_PATH}"


def token_audience(objects: list[dict]) -> str:
    """The audience KFP's API server accepts tokens for: the one its own clients (the persistence
    agent) project, read from the rendered Deployment."""
    dep = _find(objects, "Deployment", "ml-pipeline-persistenceagent")
    for vol in dep["spec"]["template"]["spec"].get("volumes", []):
        for src in (vol.get("projected") or {}).get("sources", []):
            if "serviceAccountToken" in src:
                return src["serviceAccountToken"]["audience"]
    raise AssertionError("the persistence agent projects no service-account token: KFP changed how it authenticates")


def token_volume(audience: str) -> dict:
    return {"name": "kfp-token", "projected": {"sources": [{"serviceAccountToken": {
        "path": "token", "expirationSeconds": TOKEN_SECONDS, "audience": audience}}]}}


def client_image(objects: list[dict]) -> str:
    """The profile controller's image (alpine/k8s: python, botocore): already pulled and mirrored
    for the platform, registry override applied by render."""
    return _find(objects, "Deployment", "kubeflow-pipelines-profile-controller")["spec"]["template"]["spec"][
        "containers"][0]["image"]


def object_store_url(objects: list[dict]) -> str:
    """The S3 endpoint tenants' artifacts go to: the Argo artifact repository the profile
    controller writes (sync.py) points at the same store as the API server's env."""
    env = {e["name"]: e.get("value") for e in _find(objects, "Deployment", "ml-pipeline")["spec"]["template"][
        "spec"]["containers"][0].get("env", [])}
    scheme = "https" if env.get("OBJECTSTORECONFIG_SECURE") == "true" else "http"
    return f"{scheme}://{env['OBJECTSTORECONFIG_HOST']}:{env['OBJECTSTORECONFIG_PORT']}"


def client_pod(name: str, objects: list[dict]) -> dict:
    """A long-running pod in a tenant namespace: default-editor's KFP token at TOKEN_PATH (as the
    PodDefault mounts it for notebooks), the tenant's object-store keys in its env, and no other
    credential (the service account's API token is not mounted)."""
    secret = {"secretKeyRef": {"name": S3_SECRET, "key": "accesskey"}}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"serviceAccountName": RUNNER_SA, "automountServiceAccountToken": False,
                     "restartPolicy": "Never",
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{
                         "name": "main", "image": client_image(objects), "command": ["sleep", "3600"],
                         "env": [{"name": "KF_PIPELINES_SA_TOKEN_PATH", "value": TOKEN_PATH},
                                 {"name": "AWS_ACCESS_KEY_ID", "valueFrom": secret},
                                 {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {
                                     "secretKeyRef": {**secret["secretKeyRef"], "key": "secretkey"}}}],
                         "volumeMounts": [{"name": "kfp-token", "mountPath": TOKEN_DIR, "readOnly": True}],
                         "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                         "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}}],
                     "volumes": [token_volume(token_audience(objects))]}}


def pipeline_spec(registry_image) -> dict:
    """The shipped IR (compiled by kfp 2.16.0), each step's image through `registry_image`."""
    import yaml

    spec = yaml.safe_load(PIPELINE_FILE.read_text())
    for ex in spec["deploymentSpec"]["executors"].values():
        ex["container"]["image"] = registry_image(ex["container"]["image"])
    return spec


def experiment_body(namespace: str, nonce: str) -> dict:
    return {"display_name": f"kubeforge-verify-{nonce}", "namespace": namespace,
            "description": "kubeforge verify (deleted after the check)"}


def run_body(experiment_id: str, spec: dict, message: str, nonce: str) -> dict:
    return {"display_name": f"kubeforge-verify-{nonce}", "experiment_id": experiment_id, "pipeline_spec": spec,
            "runtime_config": {"parameters": {"message": message}}}


def expected_artifact(message: str) -> str:
    """What the second step writes (`tr a-z A-Z` of the first step's artifact)."""
    return message.translate(str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def run_state(status: int, body: Any, run_id: str) -> str:
    """The run's state from one GET /runs/{id}; raises NotYet while it runs, AssertionError when
    it ended otherwise than SUCCEEDED (with the failing tasks, for diagnosis)."""
    if status != 200:
        raise AssertionError(f"GET run {run_id}: HTTP {status}: {_api_error(body)}")
    state = body.get("state") or "RUNTIME_STATE_UNSPECIFIED"
    if state not in DONE:
        raise NotYet(f"run {run_id} is {state}")
    if state != "SUCCEEDED":
        tasks = [f"{t.get('display_name')}: {t.get('state')}" + (f" ({t['error'].get('message')})" if t.get("error") else "")
                 for t in (body.get("run_details") or {}).get("task_details") or [] if t.get("state") != "SUCCEEDED"]
        raise AssertionError(f"run {run_id} ended {state}: {_api_error(body.get('error')) or 'no error given'}"
                             + (f"; tasks: {', '.join(tasks)}" if tasks else ""))
    return state


def artifact_keys(listing: dict, namespace: str, run_id: str) -> list[str]:
    """Objects of this run under the tenant's private path (kfp-launcher's defaultPipelineRoot)."""
    prefix = f"private-artifacts/{namespace}/"
    return sorted(k for k in listing.get("keys", []) if k.startswith(prefix) and run_id in k)


def isolation_findings(owner: str, other: str, run_id: str, other_get: tuple[int, Any],
                       other_read: dict, owner_read: dict, expected: str) -> list[str]:
    """What is wrong when tenant `other` looks at tenant `owner`'s run and artifact: its token
    must get 403 on the run, its keys must be refused the artifact that the owner's keys read."""
    found = []
    status, body = other_get
    if status != 403:
        found.append(f"{other}'s token got HTTP {status} on {owner}'s run {run_id} (want 403)"
                     + (": the run leaked to another tenant" if status == 200 else f": {_api_error(body)}"))
    if owner_read.get("body") != expected:
        found.append(f"{owner}'s own keys could not read its artifact ({owner_read.get('error') or 'other content'})")
    if "body" in other_read:
        found.append(f"{other}'s object-store keys read {owner}'s artifact")
    elif other_read.get("error") not in ("AccessDenied", "Forbidden", "403"):
        found.append(f"{other}'s keys were refused with {other_read.get('error')!r}, not an access denial "
                     "(the check proves nothing unless the store answers)")
    return found


def tenant_findings(namespace: str, ns_obj: dict | None, secret: dict | None, configmaps: dict[str, dict | None],
                    defaults: set[str], admin_keys: set[str]) -> list[str]:
    """What is missing or unsafe in one tenant namespace's KFP objects."""
    if ns_obj is None:
        return [f"namespace {namespace} does not exist (its Profile has not reconciled)"]
    found = []
    if ((ns_obj.get("metadata") or {}).get("labels") or {}).get(ENABLED_LABEL) != "true":
        found.append(f"namespace {namespace} lacks the label {ENABLED_LABEL}=true that KFP's profile controller "
                     "selects (the profile controller's namespace labels)")
    for name in TENANT_CONFIGMAPS:
        if configmaps.get(name) is None:
            found.append(f"ConfigMap {namespace}/{name} is missing")
    launcher = (configmaps.get("kfp-launcher") or {}).get("data") or {}
    if configmaps.get("kfp-launcher") is not None and f"/private-artifacts/{namespace}/" not in \
            launcher.get("defaultPipelineRoot", ""):
        found.append(f"kfp-launcher in {namespace} roots pipelines outside the tenant's private path: "
                     f"{launcher.get('defaultPipelineRoot')!r}")
    if secret is None:
        return found + [f"Secret {namespace}/{S3_SECRET} is missing (the tenant's object-store keys)"]
    values = _secret_values(secret)
    if set(values) != {"accesskey", "secretkey"} or not all(values.values()):
        found.append(f"Secret {namespace}/{S3_SECRET} holds {sorted(k for k, v in values.items() if v)}, "
                     "want accesskey and secretkey")
    if set(values.values()) & defaults:
        found.append(f"Secret {namespace}/{S3_SECRET} holds a known upstream default")
    if set(values.values()) & admin_keys:
        found.append(f"Secret {namespace}/{S3_SECRET} holds KFP's admin keys, not the tenant's own")
    return found


def known_defaults(component_dir: Path) -> set[str]:
    """The values components/_default_secrets.yaml lists (upstream's minio/minio123 among them), read
    as the default-secret rule reads them."""
    from kubeforge import default_secrets

    return {e.value for e in default_secrets.load(component_dir.parent / "_default_secrets.yaml")}


def _secret_values(secret: dict) -> dict[str, str]:
    out = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}
    out.update(secret.get("stringData") or {})
    return out


def _api_error(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(body)[:300]


def _find(objects: list[dict], kind: str, name: str) -> dict:
    for o in objects:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise AssertionError(f"the rendered pipelines component has no {kind} {name}")


# -- in-pod clients: python in the client image, the token read there --------------------------
# argv: METHOD URL BASE64-BODY. Prints {"status": int, "body": json-or-text}.
API_CLIENT = r"""
import base64, json, os, sys, urllib.request, urllib.error
method, url, body = sys.argv[1], sys.argv[2], base64.b64decode(sys.argv[3]) if sys.argv[3] else None
token = open(os.environ["KF_PIPELINES_SA_TOKEN_PATH"]).read().strip()
req = urllib.request.Request(url, data=body, method=method,
                             headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        status, text = r.status, r.read().decode()
except urllib.error.HTTPError as e:
    status, text = e.code, e.read().decode()
try:
    parsed = json.loads(text) if text else None
except ValueError:
    parsed = text[:2000]
print(json.dumps({"status": status, "body": parsed}))
"""
# argv: ENDPOINT BUCKET (list PREFIX | get KEY). Prints {"keys": [...]} / {"body": str} / {"error": code}.
S3_CLIENT = r"""
import json, sys
import botocore.session, botocore.exceptions
endpoint, bucket, op, arg = sys.argv[1:5]
s3 = botocore.session.get_session().create_client("s3", region_name="us-east-1", endpoint_url=endpoint)
try:
    if op == "list":
        keys, token = [], None
        while True:
            kw = {"Bucket": bucket, "Prefix": arg, **({"ContinuationToken": token} if token else {})}
            page = s3.list_objects_v2(**kw)
            keys += [o["Key"] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                break
        print(json.dumps({"keys": keys}))
    else:
        print(json.dumps({"body": s3.get_object(Bucket=bucket, Key=arg)["Body"].read().decode(errors="replace")}))
except botocore.exceptions.ClientError as e:
    print(json.dumps({"error": e.response.get("Error", {}).get("Code", "ClientError")}))
"""


class PodClient:
    """KFP API and object-store calls made from inside one pod (kubectl exec)."""

    def __init__(self, ctx, namespace: str, pod: str, api: str, store: str, container: str = "main"):
        self.ctx, self.namespace, self.pod, self.api, self.store, self.container = (
            ctx, namespace, pod, api, store, container)

    def _exec(self, argv: list[str]) -> dict:
        rc, out = self.ctx.exec(self.namespace, self.pod, argv, container=self.container)
        line = out.strip().splitlines()[-1] if out.strip() else ""
        try:
            return json.loads(line)
        except ValueError:
            raise AssertionError(f"client in {self.namespace}/{self.pod} exited {rc}: {out.strip()[-500:]}") from None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = base64.b64encode(json.dumps(body).encode()).decode() if body is not None else ""
        got = self._exec(["python", "-c", API_CLIENT, method, self.api + path, data])
        return got["status"], got["body"]

    def s3(self, op: str, arg: str) -> dict:
        return self._exec(["python", "-c", S3_CLIENT, self.store, BUCKET, op, arg])


# -- live helpers ------------------------------------------------------------------------------
def _tenants(ctx) -> list[str]:
    kubeflow = getattr(ctx.profile, "kubeflow", None)
    return [t.name for t in (kubeflow.tenants if kubeflow else [])]


def _one_tenant(plan) -> bool | str:
    kubeflow = getattr(plan.profile, "kubeflow", None)
    return bool(kubeflow and kubeflow.tenants) or "the profile declares no tenants (kubeflow.tenants)"


def _two_tenants(plan) -> bool | str:
    kubeflow = getattr(plan.profile, "kubeflow", None)
    return (kubeflow is not None and len(kubeflow.tenants) >= 2) or "needs two tenants (kubeflow.tenants)"


def _notebooks(plan) -> bool | str:
    missing = [c for c in ("notebooks", "poddefaults") if c not in plan.components]
    return _one_tenant(plan) if not missing else f"needs {' and '.join(missing)} enabled"


def _start_client(ctx, namespace: str, name: str) -> PodClient:
    ctx.create(client_pod(name, ctx.objects), namespace)
    ctx.wait_pod_ready(namespace, name)
    return PodClient(ctx, namespace, name, api_url(ctx.objects), object_store_url(ctx.objects))


def _delete_pod(ctx, namespace: str, name: str) -> None:
    ctx.cluster.delete("v1", "Pod", name, namespace)


def run_two_steps(ctx, client: PodClient, namespace: str) -> dict:
    """Experiment + run of the shipped pipeline in `namespace`, polled to SUCCEEDED; returns
    {run_id, experiment_id, message}. Cleanup is the caller's (delete_run)."""
    nonce = secrets.token_hex(4)
    message = f"kubeforge verify {nonce} in {namespace}"
    status, exp = client.call("POST", "/experiments", experiment_body(namespace, nonce))
    if status != 200:
        ctx.fail(f"create experiment in {namespace} as {RUNNER_SA}: HTTP {status}: {_api_error(exp)}")
    status, run = client.call("POST", "/runs", run_body(exp["experiment_id"], pipeline_spec(ctx.image), message, nonce))
    if status != 200:
        ctx.fail(f"create run in {namespace}: HTTP {status}: {_api_error(run)}")
    run_id = run["run_id"]
    ctx.wait(f"run {run_id} in {namespace} to succeed", lambda: run_state(*client.call("GET", f"/runs/{run_id}"), run_id),
             timeout=max(60.0, ctx.remaining() - 60), interval=5)
    return {"run_id": run_id, "experiment_id": exp["experiment_id"], "message": message}


def delete_run(client: PodClient, run: dict) -> None:
    client.call("DELETE", f"/runs/{run['run_id']}")
    client.call("DELETE", f"/experiments/{run['experiment_id']}")


def read_artifact(ctx, client: PodClient, namespace: str, run: dict) -> tuple[str, dict]:
    """(key, read) of the run's output artifact, found under the tenant's private path."""
    listing = client.s3("list", f"private-artifacts/{namespace}/")
    if "error" in listing:
        ctx.fail(f"{namespace}'s keys cannot list its own artifacts: {listing['error']}")
    keys = artifact_keys(listing, namespace, run["run_id"])
    want = expected_artifact(run["message"])
    for key in keys:
        got = client.s3("get", key)
        if got.get("body") == want:
            return key, got
    ctx.fail(f"no artifact of run {run['run_id']} under s3://{BUCKET}/private-artifacts/{namespace}/ holds the "
             f"second step's output (keys of the run: {keys[:10]})")
    raise AssertionError  # unreachable: ctx.fail raises


# -- the checks --------------------------------------------------------------------------------
@check("cache-webhook-cert", timeout=180)
def cache_webhook_cert(ctx):
    """KFP's cache webhook: its cert-manager Certificate is Ready and the caBundle is its CA."""
    return webhook_certs.check(ctx)


@check("tenant-resources", timeout=180, when=_one_tenant)
def tenant_resources(ctx):
    """Each tenant namespace holds KFP's per-tenant Secret (its own keys) and ConfigMaps."""
    defaults = known_defaults(Path(__file__).parent)
    admin = ctx.get("v1", "Secret", S3_SECRET, NAMESPACE)
    admin_keys = set(_secret_values(admin).values()) if admin else set()

    def problems() -> list[str]:
        found = []
        for ns in _tenants(ctx):
            found += tenant_findings(ns, ctx.get("v1", "Namespace", ns), ctx.get("v1", "Secret", S3_SECRET, ns),
                                     {n: ctx.get("v1", "ConfigMap", n, ns) for n in TENANT_CONFIGMAPS},
                                     defaults, admin_keys)
        return found
    ctx.wait_clean("KFP's per-tenant objects", problems, timeout=150)
    return f"{len(_tenants(ctx))} tenant namespace(s) hold their own KFP keys and ConfigMaps"


@check("run-in-tenant", timeout=900, when=_one_tenant)
def run_in_tenant(ctx):
    """A two-step v2 run reaches SUCCEEDED with the tenant's token; its artifact is in its path."""
    ns = _tenants(ctx)[0]
    name = f"kf-verify-kfp-{secrets.token_hex(3)}"
    client = _start_client(ctx, ns, name)
    try:
        run = run_two_steps(ctx, client, ns)
        key, _ = read_artifact(ctx, client, ns, run)
        delete_run(client, run)
    finally:
        _delete_pod(ctx, ns, name)
    return f"run {run['run_id']} SUCCEEDED in {ns}; artifact s3://{BUCKET}/{key}"


@check("tenant-isolation", timeout=900, when=_two_tenants)
def tenant_isolation(ctx):
    """Another tenant's token gets 403 on the run; its keys cannot read the run's artifact."""
    owner, other = _tenants(ctx)[:2]
    a, b = f"kf-verify-kfp-{secrets.token_hex(3)}", f"kf-verify-kfp-{secrets.token_hex(3)}"
    ca = _start_client(ctx, owner, a)
    try:
        cb = _start_client(ctx, other, b)
        try:
            run = run_two_steps(ctx, ca, owner)
            key, owner_read = read_artifact(ctx, ca, owner, run)
            found = isolation_findings(owner, other, run["run_id"], cb.call("GET", f"/runs/{run['run_id']}"),
                                       cb.s3("get", key), owner_read, expected_artifact(run["message"]))
            delete_run(ca, run)
        finally:
            _delete_pod(ctx, other, b)
    finally:
        _delete_pod(ctx, owner, a)
    if found:
        ctx.fail("; ".join(found))
    return f"{other} -> {owner}'s run: 403; {other}'s keys refused {key}"


PODDEFAULT_LABEL = "access-ml-pipeline"


def poddefault(audience: str) -> dict:
    """The PodDefault that gives a notebook its KFP token (Kubeflow's access-ml-pipeline)."""
    return {"apiVersion": "kubeflow.org/v1alpha1", "kind": "PodDefault",
            "metadata": {"name": "kf-verify-access-ml-pipeline"},
            "spec": {"desc": "Allow access to Kubeflow Pipelines (kubeforge verify)",
                     "selector": {"matchLabels": {PODDEFAULT_LABEL: "true"}},
                     "env": [{"name": "KF_PIPELINES_SA_TOKEN_PATH", "value": TOKEN_PATH}],
                     "volumes": [token_volume(audience)],
                     "volumeMounts": [{"mountPath": TOKEN_DIR, "name": "kfp-token", "readOnly": True}]}}


def notebook(name: str, image: str) -> dict:
    """A Notebook whose pod the PodDefault selects; the client image stands in for a Jupyter
    image (the check needs python in it, not Jupyter)."""
    return {"apiVersion": "kubeflow.org/v1", "kind": "Notebook",
            "metadata": {"name": name, "labels": {PODDEFAULT_LABEL: "true"}},
            # The controller copies the Notebook's labels onto its pod (its template has no metadata).
            "spec": {"template": {"spec": {
                "serviceAccountName": RUNNER_SA,
                "containers": [{"name": name, "image": image, "command": ["sleep", "3600"],
                                "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}}}]}}}}


@check("run-from-notebook", timeout=900, when=_notebooks)
def run_from_notebook(ctx):
    """A run started from a Notebook (token from the PodDefault) reaches SUCCEEDED."""
    ns = _tenants(ctx)[0]
    name = f"kf-verify-nb-{secrets.token_hex(3)}"
    pd = poddefault(token_audience(ctx.objects))
    ctx.create(pd, ns)
    try:
        ctx.create(notebook(name, client_image(ctx.objects)), ns)
        pod = f"{name}-0"               # the notebook controller's StatefulSet pod
        ctx.wait_pod_ready(ns, pod)
        live = ctx.get("v1", "Pod", pod, ns) or {}
        mounts = [m["mountPath"] for c in live["spec"]["containers"] for m in c.get("volumeMounts", [])]
        if TOKEN_DIR not in mounts:
            ctx.fail(f"the PodDefault was not applied to notebook pod {ns}/{pod} (no {TOKEN_DIR} mount)")
        client = PodClient(ctx, ns, pod, api_url(ctx.objects), object_store_url(ctx.objects), container=name)
        run = run_two_steps(ctx, client, ns)
        delete_run(client, run)
    finally:
        ctx.cluster.delete("kubeflow.org/v1", "Notebook", name, ns)
        ctx.cluster.delete("kubeflow.org/v1alpha1", "PodDefault", pd["metadata"]["name"], ns)
    return f"run {run['run_id']} from notebook {ns}/{name} SUCCEEDED"
