"""The CLI of verify/teardown/upgrade: offline commands work, bad inputs exit 2 with a clear message."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def _kubeconfig(tmp_path, server: str):
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{server}", insecure-skip-tls-verify: true}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- offline ------------------------------------------------------------------------------
def test_verify_help_works_offline(kubeforge_cli):
    rc, out, _ = kubeforge_cli("verify", "--help")
    assert rc == 0 and "--keep-on-failure" in out and "--junit" in out and "--inventory" in out


def test_verify_lists_checks_offline(kubeforge_cli):
    rc, out, _ = kubeforge_cli("verify", "-p", "training", "--list")
    assert rc == 0
    assert "katib/random-experiment" in out and "training-operator/pytorchjob-gloo" in out


def test_verify_images_follow_the_profile_registry(kubeforge_cli, tmp_path):
    prof = tmp_path / "airgap.yaml"
    prof.write_text("extends: training\nname: airgap\nregistry: registry.example.com:5000/mirror\n")
    rc, out, _ = kubeforge_cli("verify", "-p", str(prof), "--images")
    assert rc == 0 and out.splitlines()
    assert all(line.startswith("registry.example.com:5000/mirror/") for line in out.splitlines())


def test_teardown_dry_run_prints_the_ordered_plan_offline(kubeforge_cli):
    rc, out, _ = kubeforge_cli("teardown", "-p", "training", "--dry-run")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "teardown of profile training"
    steps = [line.split()[1:3] for line in lines if line[:4].strip().rstrip(".").isdigit()]
    assert steps[0] == ["*", "verify-leftovers"] and steps[-1] == ["*", "crds"]
    katib = [p for c, p in steps if c == "katib"]
    assert katib == ["custom-resources", "webhooks", "workloads"]


def test_teardown_dry_run_json_and_keep_crds(kubeforge_cli):
    rc, out, _ = kubeforge_cli("teardown", "-p", "training", "--dry-run", "--keep-crds", "--json")
    data = json.loads(out)
    assert rc == 0 and data["keep_crds"] is True
    assert "crds" not in [s["phase"] for s in data["steps"]]


def test_upgrade_dry_run_works_offline(kubeforge_cli):
    rc, out, _ = kubeforge_cli("upgrade", "-p", "training", "--from", "training", "--dry-run")
    assert rc == 0 and out.rstrip().endswith("OK: the upgrade is safe to apply")


# -- bad input: exit 2 --------------------------------------------------------------------
def test_unknown_check_name_exits_2_before_any_cluster(kubeforge_cli, monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    rc, _, err = kubeforge_cli("verify", "-p", "training", "--check", "katib/no-such-check")
    assert rc == 2
    assert "error: --check: no check named katib/no-such-check in this profile" in err
    assert "fix: use one of:" in err and "Traceback" not in err


def test_missing_kubeconfig_exits_2(kubeforge_cli, tmp_path, monkeypatch):
    missing = tmp_path / "nope" / "kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(missing))
    for argv in (("verify", "-p", "training"), ("teardown", "-p", "training", "--yes"),
                 ("upgrade", "-p", "training", "--from", "training")):
        rc, _, err = kubeforge_cli(*argv)
        assert rc == 2, argv
        assert f"error: {missing}: KUBECONFIG: no kubeconfig file here" in err
        assert "fix: pass --kubeconfig PATH or set KUBECONFIG" in err


def test_unreachable_cluster_exits_2(kubeforge_cli, tmp_path):
    kc = _kubeconfig(tmp_path, f"https://127.0.0.1:{_free_port()}")  # nothing listens there
    rc, _, err = kubeforge_cli("verify", "-p", "training", "--kubeconfig", str(kc))
    assert rc == 2
    assert f"error: {kc}: server: the cluster at https://127.0.0.1:" in err and "is not reachable" in err
    assert "Traceback" not in err


def test_unparsable_kubeconfig_exits_2(kubeforge_cli, tmp_path):
    kc = tmp_path / "kubeconfig"
    kc.write_text("this: [is not a kubeconfig\n")
    rc, _, err = kubeforge_cli("verify", "-p", "training", "--kubeconfig", str(kc))
    assert rc == 2 and "cannot load the kubeconfig" in err


def test_teardown_without_yes_and_without_a_terminal_exits_2(kubeforge_cli, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    rc, _, err = kubeforge_cli("teardown", "-p", "training")
    assert rc == 2 and "error: --yes: teardown deletes the platform and needs confirmation" in err


class _EmptyApiServer(BaseHTTPRequestHandler):
    """A stand-in for an API server with nothing installed: the cluster boundary this machine
    cannot reach. It answers discovery and empty lists, which is all 'not installed' needs."""

    RESOURCES = {
        "/api/v1": ("v1", [("namespaces", "Namespace", False), ("pods", "Pod", True)]),
        "/apis/apps/v1": ("apps/v1", [("deployments", "Deployment", True), ("daemonsets", "DaemonSet", True)]),
        "/apis/apiextensions.k8s.io/v1": ("apiextensions.k8s.io/v1",
                                          [("customresourcedefinitions", "CustomResourceDefinition", False)]),
    }

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server naming)
        path = self.path.split("?")[0].rstrip("/")
        groups = [("apps", "v1"), ("apiextensions.k8s.io", "v1")]
        if path == "/version":
            body = {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "gitCommit": "0" * 40,
                    "gitTreeState": "clean", "buildDate": "2025-08-27T00:00:00Z", "goVersion": "go1.24.6",
                    "compiler": "gc", "platform": "linux/amd64"}
        elif path == "/api":
            body = {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        elif path == "/apis":
            body = {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                 "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in groups]}
        elif path in self.RESOURCES:
            gv, res = self.RESOURCES[path]
            body = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
                {"name": n, "singularName": "", "namespaced": ns, "kind": k, "verbs": ["get", "list"]}
                for n, k, ns in res]}
        elif path == "/api/v1/namespaces" and self.server.installed:
            body = {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": [
                {"metadata": {"name": "kubeflow", "labels": {
                    "app.kubernetes.io/part-of": "kubeforge", "kubeforge.io/component": "kubeflow-namespace",
                    "pod-security.kubernetes.io/enforce": "baseline"}}}]}
        else:
            body = {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": []}
        self._send(200, body)

    def do_POST(self):  # noqa: N802
        """A pod create (verify's dry-run Pod Security probe): rejected as PSA does, or admitted."""
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.psa_rejects:
            self._send(403, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
                             "code": 403, "message": 'pods "kubeforge-psa-probe" is forbidden: violates '
                             'PodSecurity "baseline:latest": privileged'})
        else:
            self._send(201, {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "kubeforge-psa-probe"}})

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _serve(tmp_path, installed=False, psa_rejects=True):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyApiServer)
    server.installed, server.psa_rejects = installed, psa_rejects
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, _kubeconfig(tmp_path, f"http://127.0.0.1:{server.server_address[1]}")


@pytest.fixture
def empty_api(tmp_path):
    server, kubeconfig = _serve(tmp_path)
    yield kubeconfig
    server.shutdown()


@pytest.mark.parametrize("psa_rejects, rc, status", [(True, 0, "passed"), (False, 1, "failed")])
def test_verify_end_to_end_on_an_api_stand_in(kubeforge_cli, tmp_path, psa_rejects, rc, status):
    """The whole verify path (render, checks, connect, installed, scheduler, pytest, JUnit, JSON,
    exit code) with one real check, against a stand-in API server: the cluster boundary."""
    server, kubeconfig = _serve(tmp_path, installed=True, psa_rejects=psa_rejects)
    out, junit = tmp_path / "verify.json", tmp_path / "junit.xml"
    try:
        got, stdout, err = kubeforge_cli("verify", "-p", "training", "--kubeconfig", str(kubeconfig), "--check",
                               "kubeflow-namespace/pod-security", "--json", "--json-file", str(out), "--junit", str(junit))
    finally:
        server.shutdown()
    summary = json.loads(out.read_text())
    assert json.loads(stdout) == summary, "--json prints the document --json-file writes, and nothing else"
    assert "1 passed" in err or "1 failed" in err          # the human summary goes to stderr
    assert got == rc, err
    assert [(r["name"], r["status"]) for r in summary["results"]] == [("kubeflow-namespace/pod-security", status)]
    assert summary["ok"] is (rc == 0) and summary["cluster"].startswith("http://127.0.0.1:")
    assert 'testcase classname="test_conformance" name="test_check[kubeflow-namespace/pod-security]"' in \
        junit.read_text()
    if rc:
        assert summary["failures"] == ["kubeflow-namespace/pod-security"]
        assert "namespace kubeflow (enforce=baseline): a privileged pod was admitted" in summary["results"][0]["message"]
        assert "1 check(s) failed: kubeflow-namespace/pod-security" in err


def test_profile_not_installed_exits_2_on_an_empty_api_stand_in(kubeforge_cli, empty_api):
    for argv in (("verify", "-p", "training"), ("teardown", "-p", "training", "--yes"),
                 ("upgrade", "-p", "training", "--from", "training")):
        rc, _, err = kubeforge_cli(*argv, "--kubeconfig", str(empty_api))
        assert rc == 2, (argv, err)
        assert "profile training is not installed on http://127.0.0.1:" in err
        assert "fix: install it first" in err


def test_teardown_dry_run_puts_hpas_and_pdbs_with_the_workloads(kubeforge_cli):
    """Istio's and Knative's HorizontalPodAutoscalers and PodDisruptionBudgets are built-in objects:
    deleted with the workloads, not listed under custom resources (autoscaling, policy have no dot)."""
    rc, out, _ = kubeforge_cli("teardown", "-p", "dev", "--dry-run", "--json")
    assert rc == 0
    steps = json.loads(out)["steps"]
    by_phase: dict[str, set[str]] = {}
    for s in steps:
        by_phase.setdefault(s["phase"], set()).update(line.split()[0] for line in s["objects"])
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget"} <= by_phase["workloads"]
    assert not {"HorizontalPodAutoscaler", "PodDisruptionBudget"} & by_phase["custom-resources"]
    assert {"Certificate", "Gateway", "ClusterServingRuntime"} <= by_phase["custom-resources"]


def test_teardown_of_one_component_offline(kubeforge_cli):
    rc, out, _ = kubeforge_cli("teardown", "-p", "dev", "--component", "kserve", "--dry-run", "--json")
    data = json.loads(out)
    assert rc == 0 and data["components"] == ["kserve"]
    assert {s["component"] for s in data["steps"]} == {"kserve", "*"}
    assert [s["phase"] for s in data["steps"]][-1] == "crds"
    rc, _, err = kubeforge_cli("teardown", "-p", "dev", "--component", "cert-manager", "--dry-run")
    assert rc == 2 and "kserve stays and needs cert-manager" in err
