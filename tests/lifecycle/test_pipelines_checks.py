"""The Pipelines checks' logic, offline, on the real rendered `kubeflow` profile.

Stand-ins, named as such: a KFP API server (http.server in this process) that answers with the
recorded v2beta1 responses in fixtures/kfp/ and authorizes by bearer token the way KFP's
multi-user API server does (a tenant's token reaches its own namespace only); an object store that
answers the in-pod S3 client's JSON lines; and botocore (not installed here) under upstream's
real sync.py, so the per-tenant objects judged are the ones KFP's profile controller writes.
The in-pod API client is the real script, run by this interpreter, reading a real token file.
"""
from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from fakeclock import FakeClock
from lifecycle_helpers import REPO

from kubeforge.validate import validate
from kubeforge.verify.checks import collect
from kubeforge.verify.context import CheckContext, CheckError, NotYet

FIXTURES = Path(__file__).parent / "fixtures" / "kfp"
UPSTREAM_AGENT = ("github/kubeflow/manifests/26.03/applications/pipeline/upstream/base/pipeline/"
                  "ml-pipeline-persistenceagent-deployment.yaml")


def _load_checks():
    spec = importlib.util.spec_from_file_location("pipelines_checks_under_test",
                                                  REPO / "components" / "pipelines" / "checks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


kfp = _load_checks()


@pytest.fixture(scope="module")
def kubeflow(render_profile):
    return render_profile("kubeflow")


@pytest.fixture(scope="module")
def objects(kubeflow):
    return kubeflow.components["pipelines"].objects


def _fixture(name: str, **subst) -> dict:
    text = (FIXTURES / name).read_text()
    for k, v in subst.items():
        text = text.replace(k, v)
    return json.loads(text)


# -- which checks, and what they are built from --------------------------------------------------
def test_kubeflow_profile_collects_the_pipelines_checks(kubeflow):
    checks = {c.name: c for c in collect(kubeflow.plan, kubeflow)}
    for name in ("cache-webhook-cert", "tenant-resources", "run-in-tenant", "tenant-isolation", "run-from-notebook"):
        assert f"pipelines/{name}" in checks
    assert checks["pipelines/tenant-isolation"].skip_reason is None      # kubeflow has team-a and team-b
    assert "pipelines/workloads-available" in checks["pipelines/run-in-tenant"].needs
    nb = checks["pipelines/run-from-notebook"]
    assert nb.skip_reason is None or "notebooks" in nb.skip_reason or "poddefaults" in nb.skip_reason


def test_client_pod_is_built_from_the_rendered_objects(objects, mirror_dir):
    import yaml

    upstream = yaml.safe_load((mirror_dir / UPSTREAM_AGENT).read_text())
    want_audience = upstream["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"][0][
        "serviceAccountToken"]["audience"]
    assert kfp.token_audience(objects) == want_audience == "pipelines.kubeflow.org"
    assert kfp.api_url(objects) == "http://ml-pipeline.kubeflow.svc.cluster.local:8888/apis/v2beta1"
    assert kfp.object_store_url(objects) == "http://seaweedfs.kubeflow:9000"
    pod = kfp.client_pod("kf-verify-kfp-abc", objects)
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default-editor" and spec["automountServiceAccountToken"] is False
    tok = spec["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
    assert tok["audience"] == want_audience and tok["expirationSeconds"] >= 600    # the API's minimum
    c = spec["containers"][0]
    assert c["image"] == "docker.io/alpine/k8s:1.32.3"
    mount = c["volumeMounts"][0]["mountPath"]
    env = {e["name"]: e for e in c["env"]}
    assert env["KF_PIPELINES_SA_TOKEN_PATH"]["value"] == f"{mount}/{tok['path']}"
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "mlpipeline-minio-artifact", "key": "accesskey"}
    pod["metadata"]["namespace"] = "team-a"
    assert validate([pod], "1.34").errors == []


def test_client_image_follows_the_registry_override(render_profile, tmp_path, mirror_dir):
    from kubeforge import api
    from kubeforge.secrets import Store

    p = tmp_path / "kfp-reg.yaml"
    p.write_text("extends: kubeflow\nregistry: registry.example.internal/m\n")
    rendered = api.render(api.plan(api.load_profile(str(p))), mirror=str(mirror_dir), secrets=Store())
    objs = rendered.components["pipelines"].objects
    assert kfp.client_image(objs) == "registry.example.internal/m/alpine/k8s:1.32.3"


def test_shipped_pipeline_is_two_steps_handing_on_an_artifact():
    spec = kfp.pipeline_spec(lambda image: "registry.example.internal/m/library/busybox:1.37.0")
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == ["produce", "shout"]
    assert tasks["shout"]["inputs"]["artifacts"]["text"]["taskOutputArtifact"]["producerTask"] == "produce"
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {
        "registry.example.internal/m/library/busybox:1.37.0"}
    assert spec["sdkVersion"] == "kfp-2.16.0"
    assert kfp.expected_artifact("kubeforge verify ab12 in team-a") == "KUBEFORGE VERIFY AB12 IN TEAM-A"


def test_shipped_ir_is_what_the_sdk_compiles():
    """Where the kfp SDK is installed (it is not a kubeforge dependency), the shipped IR is its output."""
    try:
        import kfp as sdk  # noqa: F401
    except ImportError:
        pytest.skip("the kfp SDK is not installed here (pip install kfp==2.16.0 to compare)")
    import yaml

    src = REPO / "components" / "pipelines" / "verify" / "two_steps.py"
    out = subprocess.run([sys.executable, "-c", f"import runpy; m = runpy.run_path({str(src)!r}); "
                          "from kfp import compiler; import sys; compiler.Compiler().compile(m['two_steps'], sys.argv[1])",
                          "/dev/stdout"], capture_output=True, text=True, check=True).stdout
    assert yaml.safe_load(out) == yaml.safe_load(kfp.PIPELINE_FILE.read_text())


# -- per-tenant objects: judged on what upstream's real sync.py writes ---------------------------
class _StandInIam:
    """Stand-in for SeaweedFS' IAM API (botocore is not installed here): one key pair per user."""

    def __init__(self):
        self.users: dict[str, dict] = {}

    def create_access_key(self, UserName):
        key = {"AccessKeyId": f"AK{UserName.upper().replace('-', '')}", "SecretAccessKey": f"secret-of-{UserName}-0123456789"}
        self.users[UserName] = {"key": key}
        return {"AccessKey": key}

    def put_user_policy(self, UserName, PolicyName, PolicyDocument):
        self.users[UserName]["policy"] = json.loads(PolicyDocument)


class _StandInS3:
    def get_bucket_lifecycle_configuration(self, Bucket):
        return {"Rules": []}


def _real_sync(objects, monkeypatch):
    """Upstream's sync.py from the rendered ConfigMap, its Controller.sync bound to stand-ins."""
    code = next(o for o in objects if o["kind"] == "ConfigMap"
                and o["metadata"]["name"].startswith("kubeflow-pipelines-profile-controller-code"))["data"]["sync.py"]
    iam, s3 = _StandInIam(), _StandInS3()
    session = types.SimpleNamespace(create_client=lambda svc, **kw: iam if svc == "iam" else s3)
    botocore = types.ModuleType("botocore")
    botocore.session = types.SimpleNamespace(get_session=lambda: session)
    monkeypatch.setitem(sys.modules, "botocore", botocore)
    monkeypatch.setitem(sys.modules, "botocore.session", botocore.session)
    module = types.ModuleType("kfp_sync_under_test")
    exec(compile(code, "sync.py", "exec"), module.__dict__)
    env = {e["name"]: e.get("value") for e in objects_env(objects)}
    server = module.server_factory(frontend_image=env["FRONTEND_IMAGE"], frontend_tag=env["FRONTEND_TAG"],
                                   disable_istio_sidecar=False, artifacts_proxy_enabled="false",
                                   artifact_retention_days="-1", url="127.0.0.1", controller_port=0)
    controller = server.RequestHandlerClass
    server.server_close()

    def sync(namespace: str) -> dict:
        parent = {"metadata": {"name": namespace, "labels": {kfp.ENABLED_LABEL: "true"}}}
        attachments = {"Secret.v1": {}, "ConfigMap.v1": {}, "Deployment.apps/v1": {}, "Service.v1": {}}
        return controller.sync(object.__new__(controller), parent, attachments)
    return sync, iam


def objects_env(objects):
    return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] ==
                "kubeflow-pipelines-profile-controller")["spec"]["template"]["spec"]["containers"][0]["env"]


def _tenant_state(desired: dict, namespace: str):
    by = {(a["kind"], a["metadata"]["name"]): a for a in desired["attachments"]}
    ns = {"metadata": {"name": namespace, "labels": {kfp.ENABLED_LABEL: "true"}}}
    return ns, by.get(("Secret", kfp.S3_SECRET)), {n: by.get(("ConfigMap", n)) for n in kfp.TENANT_CONFIGMAPS}


def _admin_keys(objects):
    s = next(o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == kfp.S3_SECRET)
    return set(s["stringData"].values())


def test_what_the_real_profile_controller_writes_passes(objects, monkeypatch):
    sync, iam = _real_sync(objects, monkeypatch)
    desired = sync("team-a")
    assert {a["metadata"]["name"] for a in desired["attachments"] if a["kind"] == "ConfigMap"} == set(kfp.TENANT_CONFIGMAPS)
    ns, secret, cms = _tenant_state(desired, "team-a")
    defaults = kfp.known_defaults(REPO / "components" / "pipelines")
    assert "minio123" in defaults
    assert kfp.tenant_findings("team-a", ns, secret, cms, defaults, _admin_keys(objects)) == []
    # The tenant's IAM policy is its own prefix (what the isolation check then proves live).
    resources = iam.users["team-a"]["policy"]["Statement"][0]["Resource"]
    assert "arn:aws:s3:::mlpipeline/private-artifacts/team-a/*" in resources
    assert not [r for r in resources if "team-b" in r]


def test_tenant_findings_catch_defaults_admin_keys_and_missing_objects(objects, monkeypatch):
    sync, _ = _real_sync(objects, monkeypatch)
    ns, secret, cms = _tenant_state(sync("team-a"), "team-a")
    defaults = kfp.known_defaults(REPO / "components" / "pipelines")
    admin = _admin_keys(objects)

    def with_data(**values):
        return {**secret, "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}

    f = kfp.tenant_findings("team-a", ns, with_data(accesskey="minio", secretkey="minio123"), cms, defaults, admin)
    assert any("known upstream default" in x for x in f)
    ak, sk = sorted(admin, key=len)
    f = kfp.tenant_findings("team-a", ns, with_data(accesskey=ak, secretkey=sk), cms, defaults, admin)
    assert any("admin keys" in x for x in f)
    f = kfp.tenant_findings("team-a", ns, None, {**cms, "artifact-repositories": None}, defaults, admin)
    assert any("artifact-repositories is missing" in x for x in f) and any("Secret team-a/" in x for x in f)
    f = kfp.tenant_findings("team-a", {"metadata": {"name": "team-a"}}, secret, cms, defaults, admin)
    assert any(kfp.ENABLED_LABEL in x for x in f)
    other_root = {**cms, "kfp-launcher": {"data": {"defaultPipelineRoot": "minio://mlpipeline/private-artifacts/team-b/v2"}}}
    assert any("private path" in x for x in kfp.tenant_findings("team-a", ns, secret, other_root, defaults, admin))
    assert kfp.tenant_findings("team-a", None, None, {}, defaults, admin) == [
        "namespace team-a does not exist (its Profile has not reconciled)"]


def test_external_store_sync_points_tenants_at_it(cache_external):
    objects, monkeypatch = cache_external
    sync, _ = _real_sync(objects, monkeypatch)
    desired = sync("team-a")
    repo = json.loads(next(a for a in desired["attachments"] if a["metadata"]["name"] == "artifact-repositories")
                      ["data"]["default-namespaced"])
    assert repo["s3"]["endpoint"] == "s3.example.internal:443" and repo["s3"]["insecure"] is False


@pytest.fixture
def cache_external(tmp_path, mirror_dir, monkeypatch):
    from kubeforge import api
    from kubeforge.secrets import Store

    p = tmp_path / "kfp-ext.yaml"
    p.write_text("extends: kubeflow\ncomponents:\n  pipelines:\n    values:\n      objectStore: {external: "
                 "{host: s3.example.internal}}\n")
    rendered = api.render(api.plan(api.load_profile(str(p))), mirror=str(mirror_dir), secrets=Store())
    return rendered.components["pipelines"].objects, monkeypatch


# -- the run poller on recorded responses --------------------------------------------------------


def _ctx(kubeflow, objects, exec_fn=None, timeout=600.0):
    clock = FakeClock()
    ctx = CheckContext(cluster=None, plan=kubeflow.plan, component="pipelines", objects=objects, timeout=timeout,
                       clock=clock, sleep=clock.sleep)
    if exec_fn is not None:
        ctx.exec = exec_fn
    return ctx


def test_poller_waits_through_pending_and_running_to_succeeded(kubeflow, objects):
    ids = {"RUN_ID": "5f3c1e2a-7b8d-4c9e-a0f1-23456789abcd", "EXPERIMENT_ID": "e1", "MESSAGE": "m", "NONCE": "n"}
    answers = iter([(200, _fixture("run-pending.json", **ids)), (200, _fixture("run-running.json", **ids)),
                    (200, _fixture("run-succeeded.json", **ids))])
    seen = []

    def probe():
        status, body = next(answers)
        seen.append(body["state"])
        return kfp.run_state(status, body, ids["RUN_ID"])
    ctx = _ctx(kubeflow, objects)
    assert ctx.wait("the run", probe, interval=5) == "SUCCEEDED"
    assert seen == ["PENDING", "RUNNING", "SUCCEEDED"]


def test_poller_reports_the_failed_task_and_a_run_that_never_ends(kubeflow, objects):
    ids = {"RUN_ID": "r-1", "EXPERIMENT_ID": "e1", "MESSAGE": "m", "NONCE": "n"}
    with pytest.raises(AssertionError) as e:
        kfp.run_state(200, _fixture("run-failed.json", **ids), "r-1")
    assert "ended FAILED: 1 out of 2 tasks failed" in str(e.value) and "shout: FAILED (exit status 1" in str(e.value)
    with pytest.raises(AssertionError) as e:
        kfp.run_state(403, _fixture("forbidden.json"), "r-1")
    assert "HTTP 403" in str(e.value) and "PermissionDenied" in str(e.value)
    ctx = _ctx(kubeflow, objects, timeout=60)
    with pytest.raises(CheckError) as e:
        ctx.wait("the run", lambda: kfp.run_state(200, _fixture("run-running.json", **ids), "r-1"), interval=5)
    assert "run r-1 is RUNNING" in str(e.value)
    with pytest.raises(NotYet):
        kfp.run_state(200, {"run_id": "r-1"}, "r-1")        # no state yet: RUNTIME_STATE_UNSPECIFIED


# -- the tenant matrix ---------------------------------------------------------------------------
def test_isolation_matrix(kubeflow):
    want = "HELLO"
    ok = kfp.isolation_findings("team-a", "team-b", "r1", (403, _fixture("forbidden.json")),
                                {"error": "AccessDenied"}, {"body": want}, want)
    assert ok == []
    leak = kfp.isolation_findings("team-a", "team-b", "r1", (200, {"run_id": "r1"}), {"body": want}, {"body": want}, want)
    assert any("leaked to another tenant" in x for x in leak) and any("team-b's object-store keys read" in x for x in leak)
    unauth = kfp.isolation_findings("team-a", "team-b", "r1", (401, _fixture("unauthenticated.json")),
                                    {"error": "AccessDenied"}, {"body": want}, want)
    assert unauth and "HTTP 401" in unauth[0] and "Unauthenticated" in unauth[0]
    unanswered = kfp.isolation_findings("team-a", "team-b", "r1", (403, {}), {"error": "EndpointConnectionError"},
                                        {"body": want}, want)
    assert any("not an access denial" in x for x in unanswered)


# -- end to end through the real in-pod client against the stand-in KFP API server -------------
class _StandInKfp:
    """A stand-in for KFP's multi-user API server: bearer token -> tenant; a tenant's token reaches
    its own namespace's experiments and runs only; runs advance PENDING -> RUNNING -> SUCCEEDED."""

    def __init__(self, tokens: dict[str, str]):
        self.tokens, self.runs, self.experiments, self.requests = tokens, {}, {}, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                auth = self.headers.get("Authorization", "")
                outer.requests.append((method, self.path, auth))
                who = outer.tokens.get(auth.removeprefix("Bearer "))
                if who is None:
                    return self._reply(401, _fixture("unauthenticated.json"))
                self._reply(*outer.answer(method, self.path.removeprefix("/apis/v2beta1"), body, who))

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/apis/v2beta1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, method, path, body, who):
        if method == "POST" and path == "/experiments":
            if body["namespace"] != who:
                return 403, _fixture("forbidden.json")
            eid = f"exp-{len(self.experiments) + 1}"
            self.experiments[eid] = who
            return 200, _fixture("experiment.json", EXPERIMENT_ID=eid, NONCE="n")
        if method == "POST" and path == "/runs":
            if self.experiments.get(body["experiment_id"]) != who:
                return 403, _fixture("forbidden.json")
            rid = f"0b7c2d9e-0000-4000-8000-{len(self.runs) + 1:012d}"
            self.runs[rid] = {"ns": who, "polls": 0, "message": body["runtime_config"]["parameters"]["message"],
                              "spec": body["pipeline_spec"]}
            return 200, _fixture("run-pending.json", RUN_ID=rid, EXPERIMENT_ID=body["experiment_id"], NONCE="n",
                                 MESSAGE=self.runs[rid]["message"])
        kind, _, ident = path.strip("/").partition("/")
        table = self.runs if kind == "runs" else self.experiments
        owner = table.get(ident, {}).get("ns") if kind == "runs" else table.get(ident)
        if owner is None:
            return 404, {"error": "not found", "code": 5, "message": "not found", "details": []}
        if owner != who:
            return 403, _fixture("forbidden.json")
        if method == "DELETE":
            table.pop(ident)
            return 200, {}
        run = self.runs[ident]
        run["polls"] += 1
        name = ["run-pending.json", "run-running.json", "run-succeeded.json"][min(run["polls"], 2)]
        return 200, _fixture(name, RUN_ID=ident, EXPERIMENT_ID="exp", NONCE="n", MESSAGE=run["message"])


def test_run_and_isolation_through_the_real_client_and_a_stand_in_api(kubeflow, objects, tmp_path):
    tokens = {"tok-team-a-" + "x" * 20: "team-a", "tok-team-b-" + "y" * 20: "team-b"}
    files = {}
    for tok, ns in tokens.items():
        files[ns] = tmp_path / f"{ns}.token"
        files[ns].write_text(tok + "\n")
    api = _StandInKfp(tokens)
    store: dict[str, str] = {}          # the stand-in object store: key -> body, readable by its owner only
    outputs = []

    def exec_fn(namespace, pod, argv, container="main"):
        assert argv[:2] == ["python", "-c"]
        if argv[2] == kfp.S3_CLIENT:
            endpoint, bucket, op, arg = argv[3:7]
            assert (endpoint, bucket) == ("http://seaweedfs.kubeflow:9000", "mlpipeline")
            if op == "list":
                return 0, json.dumps({"keys": [k for k in store if k.startswith(arg)]}) + "\n"
            owner = arg.split("/")[1]
            return 0, json.dumps({"body": store[arg]} if owner == namespace else {"error": "AccessDenied"}) + "\n"
        assert argv[2] == kfp.API_CLIENT
        url = argv[4].replace(kfp.api_url(objects), api.url)
        done = subprocess.run([sys.executable, "-c", argv[2], argv[3], url, argv[5]], capture_output=True, text=True,
                              env={"KF_PIPELINES_SA_TOKEN_PATH": str(files[namespace])}, timeout=30)
        outputs.append(done.stdout + done.stderr)
        # What the second step would upload: the launcher's key holds the run id under the pipeline root.
        got = json.loads(done.stdout)
        if argv[3] == "POST" and argv[4].endswith("/runs") and got["status"] == 200:
            rid = got["body"]["run_id"]
            msg = got["body"]["runtime_config"]["parameters"]["message"]
            store[f"private-artifacts/{namespace}/v2/artifacts/kubeforge-verify-two-steps/{rid}/shout/abc/out"] = \
                kfp.expected_artifact(msg)
        return done.returncode, done.stdout

    ctx = _ctx(kubeflow, objects, exec_fn)
    a = kfp.PodClient(ctx, "team-a", "pa", kfp.api_url(objects), kfp.object_store_url(objects))
    b = kfp.PodClient(ctx, "team-b", "pb", kfp.api_url(objects), kfp.object_store_url(objects))
    run = kfp.run_two_steps(ctx, a, "team-a")
    key, owner_read = kfp.read_artifact(ctx, a, "team-a", run)
    assert key.startswith("private-artifacts/team-a/") and run["run_id"] in key
    found = kfp.isolation_findings("team-a", "team-b", run["run_id"], b.call("GET", f"/runs/{run['run_id']}"),
                                   b.s3("get", key), owner_read, kfp.expected_artifact(run["message"]))
    assert found == []
    kfp.delete_run(a, run)
    assert run["run_id"] not in api.runs
    # The token went to the API as a bearer header, from the file, and nowhere else.
    assert {auth for _, _, auth in api.requests} == {f"Bearer {t}" for t in tokens}
    assert not [o for o in outputs if any(t in o for t in tokens)]
    # The run the API got is the shipped pipeline with the nonce message.
    assert api.runs == {} and run["message"].startswith("kubeforge verify ")


def test_a_run_that_fails_fails_the_check_with_its_reason(kubeflow, objects, tmp_path):
    tok = tmp_path / "t"
    tok.write_text("tok")

    class Failing(_StandInKfp):
        def answer(self, method, path, body, who):
            if method == "GET" and path.startswith("/runs/"):
                return 200, _fixture("run-failed.json", RUN_ID=path.rsplit("/", 1)[1], EXPERIMENT_ID="e", NONCE="n", MESSAGE="m")
            return super().answer(method, path, body, who)
    api = Failing({"tok": "team-a"})

    def exec_fn(namespace, pod, argv, container="main"):
        url = argv[4].replace(kfp.api_url(objects), api.url)
        done = subprocess.run([sys.executable, "-c", argv[2], argv[3], url, argv[5]], capture_output=True, text=True,
                              env={"KF_PIPELINES_SA_TOKEN_PATH": str(tok)}, timeout=30)
        return done.returncode, done.stdout
    ctx = _ctx(kubeflow, objects, exec_fn)
    client = kfp.PodClient(ctx, "team-a", "p", kfp.api_url(objects), kfp.object_store_url(objects))
    with pytest.raises(AssertionError) as e:
        kfp.run_two_steps(ctx, client, "team-a")
    assert "FAILED" in str(e.value) and "shout" in str(e.value)


def test_poddefault_gives_the_notebook_the_same_token(objects):
    pd = kfp.poddefault(kfp.token_audience(objects))
    assert pd["spec"]["volumes"][0] == kfp.client_pod("x", objects)["spec"]["volumes"][0]
    assert pd["spec"]["env"] == [{"name": "KF_PIPELINES_SA_TOKEN_PATH", "value": kfp.TOKEN_PATH}]
    nb = kfp.notebook("kf-verify-nb", kfp.client_image(objects))
    assert pd["spec"]["selector"]["matchLabels"].items() <= nb["metadata"]["labels"].items()


def test_poddefault_and_notebook_match_upstreams_crds(objects, mirror_dir):
    """The objects run-from-notebook creates, validated against the CRDs of kubeflow/manifests'
    admission webhook (PodDefault) and notebook controller (Notebook) from the mirror."""
    import yaml

    base = mirror_dir / "github/kubeflow/manifests/26.03/applications"
    crds = [d for f in (base / "admission-webhook/upstream/base/crd.yaml",
                        base / "jupyter/notebook-controller/upstream/crd/bases/kubeflow.org_notebooks.yaml")
            for d in yaml.safe_load_all(f.read_text()) if d]
    pd = {**kfp.poddefault(kfp.token_audience(objects))}
    nb = kfp.notebook("kf-verify-nb-abc", kfp.client_image(objects))
    for o in (pd, nb):
        o["metadata"]["namespace"] = "team-a"
    report = validate(crds + [pd, nb], "1.34")
    checked = [f for f in report.findings if f.rule == "crd-schema"]
    assert report.errors == [], report.summary()
    # Planted: a PodDefault without its required selector is refused, so the schemas were applied.
    bad = {**pd, "spec": {k: v for k, v in pd["spec"].items() if k != "selector"}}
    assert [f for f in validate(crds + [bad], "1.34").errors if f.rule == "crd-schema"], checked


def test_pipelines_install_after_and_tear_down_before_the_layers_it_runs_on(kubeflow):
    from kubeforge.errors import KubeforgeError
    from kubeforge.lifecycle import teardown as td

    plan = kubeflow.plan
    wave = {n: pc.wave for n, pc in plan.components.items()}
    for dep in ("kubeflow-profiles", "argo-workflows", "cert-manager", "istio", "storage"):
        assert dep in plan.components["pipelines"].depends_on and wave[dep] < wave["pipelines"]
    steps = [s.component for s in td.plan_teardown(kubeflow).steps]
    last_kfp = max(i for i, c in enumerate(steps) if c == "pipelines")
    for dep in ("kubeflow-profiles", "argo-workflows"):
        assert last_kfp < min(i for i, c in enumerate(steps) if c == dep)
    # The one Argo cannot go while Pipelines stays.
    with pytest.raises(KubeforgeError) as e:
        td.check_removable(plan, ["argo-workflows"])
    assert "pipelines stays and needs argo-workflows" in e.value.message
