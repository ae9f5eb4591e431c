"""`kubeforge apply` as a command: exit codes 0/1/2, --json, --dry-run, the lock it records, --help.

The cluster is the API server STAND-IN (apiserver_standin.py), handed to the command in place of
connect(): the boundary this machine cannot reach. Its clock and sleep replace real time in the
Applier, so its controllers move while the command waits."""
from __future__ import annotations

import copy
import functools
import json
import threading
from http.server import ThreadingHTTPServer

import pytest
from apiserver_standin import ApiServerStandIn
from test_lifecycle_cli import _EmptyApiServer, _kubeconfig

from kubeforge.lifecycle import apply as ap


@pytest.fixture
def standin(monkeypatch):
    cluster = ApiServerStandIn()
    monkeypatch.setattr("kubeforge.verify.cluster.connect", lambda kubeconfig=None, timeout=10.0: cluster)
    monkeypatch.setattr(ap, "Applier", functools.partial(ap.Applier, clock=cluster.clock, sleep=cluster.advance))
    return cluster


def _count(render_profile, name):
    return sum(len(rc.objects) for rc in render_profile(name).components.values())


def test_help_names_the_options(kubeforge_cli):
    rc, out, _ = kubeforge_cli("apply", "--help")
    assert rc == 0
    for opt in ("--profile", "--kubeconfig", "--dry-run", "--force-conflicts", "--wait", "--write-lock", "--json"):
        assert opt in out
    assert "one pass" in out and "field manager kubeforge" in out


def test_apply_installs_records_the_lock_and_a_second_run_changes_nothing(kubeforge_cli, standin, render_profile, tmp_path):
    n = _count(render_profile, "training")
    lock = tmp_path / "training.lock.json"
    rc, out, err = kubeforge_cli("apply", "-p", "training", "--json", "--write-lock", str(lock))
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["ok"] is True and summary["counts"] == {"created": n} and summary["lock"] == str(lock)
    assert "[wave 0] kubeflow-namespace: applying 1 objects" in err and "CRD(s) Established" in err
    assert json.loads(lock.read_text()) == {"kind": "PlatformLock", "components": {
        name: {"version": rc_.version} for name, rc_ in sorted(render_profile("training").components.items())}}

    rvs = standin.rvs()
    rc, out, err = kubeforge_cli("apply", "-p", "training")
    assert rc == 0 and f"{n} unchanged" in out and standin.rvs() == rvs
    # what it recorded is what `upgrade --from` reads
    rc, out, _ = kubeforge_cli("upgrade", "-p", "training", "--from", str(lock), "--dry-run")
    assert rc == 0 and out.rstrip().endswith("OK: the upgrade is safe to apply")


def test_the_default_lock_lives_under_home_per_cluster(kubeforge_cli, standin, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    rc, out, _ = kubeforge_cli("apply", "-p", "base")
    want = tmp_path / ".kubeforge" / "locks" / "apiserver.standin.invalid" / "base.lock.json"
    assert rc == 0 and f"lock: {want}" in out
    assert json.loads(want.read_text())["kind"] == "PlatformLock"


def test_dry_run_persists_nothing_and_writes_no_lock(kubeforge_cli, standin, tmp_path):
    before = standin.rvs()
    lock = tmp_path / "dry.lock.json"
    rc, out, err = kubeforge_cli("apply", "-p", "training", "--dry-run", "--json", "--write-lock", str(lock))
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["dry_run"] is True and summary["ok"] is True and summary["waits"] == []
    assert summary["skipped"] and all("which this apply creates first" in s["message"] for s in summary["skipped"])
    assert standin.rvs() == before and not lock.exists()


def test_a_wait_that_runs_out_exits_1_naming_the_pod_reason(kubeforge_cli, standin, render_profile):
    dep = next(o for o in render_profile("training").components["katib"].objects if o["kind"] == "Deployment")
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    standin.unpullable.add(image)
    rc, _, err = kubeforge_cli("apply", "-p", "training", "--wait", "30")
    assert rc == 1
    assert "error: apply stopped: wave 1 workloads: timed out waiting for" in err
    assert f"Deployment kubeflow/{dep['metadata']['name']}" in err and "ErrImagePull" in err
    assert "fix: fix the cause and rerun kubeforge apply" in err and "Traceback" not in err


def test_a_refused_object_in_a_dry_run_exits_1(kubeforge_cli, standin, render_profile):
    assert kubeforge_cli("apply", "-p", "training")[0] == 0
    dep = copy.deepcopy(next(o for o in render_profile("training").components["katib"].objects
                             if o["kind"] == "Deployment"))
    dep["spec"]["replicas"] = 2
    standin.apply(dep, force=True, field_manager="kubectl")
    rc, out, err = kubeforge_cli("apply", "-p", "training", "--dry-run")
    assert rc == 1 and 'conflict with "kubectl": .spec.replicas' in out
    assert "error: dry run: 1 object(s) refused by the API server" in err
    assert kubeforge_cli("apply", "-p", "training", "--force-conflicts")[0] == 0


def test_bad_input_exits_2_before_the_cluster_is_touched(kubeforge_cli, standin, monkeypatch, tmp_path):
    rc, _, err = kubeforge_cli("apply", "-p", "training", "--wait", "0")
    assert rc == 2 and "error: --wait: must be positive" in err
    rc, _, err = kubeforge_cli("apply", "-p", "gpu-operator")
    assert rc == 2 and "components/gpu-operator/component.yaml" in err and "`helm`" in err
    rc, _, err = kubeforge_cli("apply", "-p", "no-such-profile")
    assert rc == 2 and "unknown profile 'no-such-profile'" in err
    assert standin.writes == [], "nothing is sent before the input is known good"


def test_a_platform_pulumi_installed_exits_2(kubeforge_cli, standin, render_profile):
    ns = copy.deepcopy(next(o for o in render_profile("training").components["kubeflow-namespace"].objects))
    standin.put(ns)
    standin.store[("v1", "Namespace", None, ns["metadata"]["name"])]["metadata"]["managedFields"] = [
        {"manager": "pulumi-kubernetes-c4bd2b40", "operation": "Apply"}]
    rc, _, err = kubeforge_cli("apply", "-p", "training")
    assert rc == 2 and "was installed by Pulumi" in err and "kubeforge up -e ENV" in err
    assert standin.writes == []


def test_missing_kubeconfig_exits_2(kubeforge_cli, tmp_path, monkeypatch):
    missing = tmp_path / "nope" / "kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    rc, _, err = kubeforge_cli("apply", "-p", "training")
    assert rc == 2 and f"error: {missing}: KUBECONFIG: no kubeconfig file here" in err


class _ApplyRecorder(_EmptyApiServer):
    """test_lifecycle_cli's API server stand-in serving ConfigMaps, recording server-side apply
    requests: what the real Cluster.apply puts on the wire (the path the in-process stand-in skips)."""

    RESOURCES = {"/api/v1": ("v1", [("configmaps", "ConfigMap", True)])}

    def do_PATCH(self):  # noqa: N802 (http.server naming)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.seen.append((self.path, self.headers.get("Content-Type"), body))
        if body["metadata"]["name"] == "taken":
            return self._send(409, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409,
                                    "reason": "Conflict", "message": 'Apply failed with 1 conflict: conflict '
                                    'with "kubectl": .data.x'})
        self._send(200, {**body, "metadata": {**body["metadata"], "resourceVersion": "7"}})


def test_cluster_apply_sends_server_side_apply_as_kubeforge(tmp_path):
    from kubeforge.verify.cluster import ApiRejected, connect

    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApplyRecorder)
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kc = _kubeconfig(tmp_path, f"http://127.0.0.1:{server.server_address[1]}")
    try:
        cluster = connect(str(kc))
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"},
              "data": {"x": "1"}}
        assert cluster.apply(cm)["metadata"]["resourceVersion"] == "7"
        cluster.apply(cm, dry_run=True, force=True)
        with pytest.raises(ApiRejected) as refused:
            cluster.apply({**cm, "metadata": {"name": "taken", "namespace": "ns"}})
        with pytest.raises(ApiRejected) as unserved:
            cluster.apply({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}})
    finally:
        server.shutdown()
    (p1, ct, body), (p2, _, _), _ = server.seen
    assert ct == "application/apply-patch+yaml" and body == cm
    assert p1.startswith("/api/v1/namespaces/ns/configmaps/a?")
    assert "fieldManager=kubeforge" in p1 and "force=false" in p1 and "dryRun" not in p1
    assert "dryRun=All" in p2 and "force=true" in p2
    assert (refused.value.status, refused.value.reason) == (409, "Conflict")
    assert refused.value.message == 'Apply failed with 1 conflict: conflict with "kubectl": .data.x'
    assert unserved.value.status == 404 and 'no matches for kind "Thing"' in unserved.value.message


def test_a_render_that_fails_validation_exits_1_before_the_cluster_is_touched(kubeforge_cli, standin, catalog_with,
                                                                            repo_root):
    import importlib.util

    spec = importlib.util.spec_from_file_location("cli_spine_tests", repo_root / "tests/render/test_cli_spine.py")
    spine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(spine)    # its component that renders an invalid Deployment
    BROKEN = spine.BROKEN  # noqa: N806
    catalog_with({"broken": BROKEN}, {"broken": "extends: base\ncomponents:\n  broken: {enabled: true}\n"})
    rc, _, err = kubeforge_cli("apply", "-p", "broken")
    assert rc == 1 and "spec.replicas" in err
    assert "validation error(s) in profile broken (listed above): nothing was applied" in err
    assert standin.writes == []
