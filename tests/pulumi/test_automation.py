"""`kubeforge up | preview | destroy | stacks` through the Automation API, against a STAND-IN
`pulumi` executable that records its arguments (the real CLI cannot be downloaded here; see
standin_pulumi.py). Bad inputs must fail with exit 2 before any Pulumi command runs.
"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from kubeforge.cli import main as cli
from kubeforge.paths import home
from kubeforge.pulumi.graph import component_type

REPO = Path(__file__).resolve().parents[2]
PLATFORM = REPO / "stacks" / "platform"


def _urn(stack: str, comp: str, typ: str, name: str) -> str:
    return f"urn:pulumi:{stack}::kubeforge-platform::{component_type(comp)}${typ}::{name}"


def _step(kind: str, seq: int, urn: str, typ: str, op: str = "create") -> dict:
    return {"sequence": seq, "timestamp": 0, kind: {"metadata": {"op": op, "urn": urn, "type": typ, "provider": ""}}}


@pytest.fixture
def home_copy(tmp_path, monkeypatch):
    """A KUBEFORGE_HOME with the real catalog and profiles and a stacks/platform we may add stack files to."""
    root = tmp_path / "home"
    (root / "stacks").mkdir(parents=True)
    shutil.copytree(PLATFORM, root / "stacks" / "platform", ignore=shutil.ignore_patterns("__pycache__"))
    for d in ("components", "profiles"):
        (root / d).symlink_to(REPO / d)
    monkeypatch.setenv("KUBEFORGE_HOME", str(root))
    home.cache_clear()
    yield root
    home.cache_clear()


def test_up_dev_creates_the_stack_stores_the_kubeconfig_and_uses_the_local_backend(
        standin_pulumi, kubeconfig_file, mirror_dir, monkeypatch, capsys):
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    svc = "kubernetes:core/v1:Namespace"
    events = [_step("resourcePreEvent", 1, _urn("dev", "cert-manager", svc, "cert-manager"), svc),
              _step("resOutputsEvent", 2, _urn("dev", "cert-manager", svc, "cert-manager"), svc)]
    standin_pulumi.events.write_text(json.dumps(events))
    monkeypatch.setenv("STANDIN_PULUMI_EVENTS", str(standin_pulumi.events))

    rc = cli(["up", "-e", "dev", "--kubeconfig", str(kubeconfig_file)])
    out = capsys.readouterr().out
    assert rc == 0, out
    calls = standin_pulumi.calls()
    argvs = standin_pulumi.argvs()
    # create-or-select: select fails on a fresh backend, then init with the passphrase provider.
    assert ["stack", "select", "--stack", "dev"] in argvs
    init = next(a for a in argvs if a[:2] == ["stack", "init"])
    assert init[2] == "dev" and init[init.index("--secrets-provider") + 1] == "passphrase"
    cfg = next(a for a in argvs if a[:2] == ["config", "set"])
    # The kubeconfig is remembered by path: no credentials on a command line.
    assert "kubeforge:kubeconfig" in cfg and str(kubeconfig_file.resolve()) in cfg
    assert not any("not-a-real-token" in arg for a in argvs for arg in a)
    up = next(a for a in argvs if a[:1] == ["up"])
    assert {"--yes", "--skip-preview"} <= set(up) and up[up.index("--stack") + 1] == "dev"
    assert up[up.index("--event-log") + 1].startswith("tcp://127.0.0.1:")
    # Every call ran in the platform project on the local file backend, with a passphrase.
    assert {c["cwd"] for c in calls if c["argv"] != ["version"]} == {str(PLATFORM)}
    assert {c["backend"] for c in calls} == {standin_pulumi.backend.as_uri()}
    assert all(c["passphrase_set"] for c in calls)
    assert (standin_pulumi.backend / ".pulumi" / "stacks" / "kubeforge-platform" / "dev.json").exists()
    assert f"state: {standin_pulumi.backend.as_uri()}" in out
    # Per-component progress from the engine events.
    assert "[wave 0] cert-manager: applying" in out or "cert-manager: applying" in out


def test_second_up_selects_the_existing_stack(standin_pulumi, kubeconfig_file, mirror_dir, monkeypatch):
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig_file))
    assert cli(["up", "-e", "dev"]) == 0
    first = len(standin_pulumi.calls())
    assert cli(["up", "-e", "dev"]) == 0
    second = standin_pulumi.argvs()[first:]
    assert not any(a[:2] == ["stack", "init"] for a in second)
    # Without --kubeconfig nothing is written into the stack config: the program reads $KUBECONFIG.
    assert not any(a[:2] == ["config", "set"] for a in second)


def test_default_backend_is_a_local_file_backend_under_home(standin_pulumi, kubeconfig_file, mirror_dir,
                                                              monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    monkeypatch.delenv("PULUMI_BACKEND_URL")
    from kubeforge.sources import cache_root

    monkeypatch.setenv("KUBEFORGE_CACHE", str(cache_root()))   # keep the warm render cache
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert cli(["preview", "-e", "dev", "--kubeconfig", str(kubeconfig_file)]) == 0
    want = (tmp_path / "user" / ".kubeforge" / "state").resolve().as_uri()
    assert f"state: {want}" in capsys.readouterr().out
    assert {c["backend"] for c in standin_pulumi.calls() if c["argv"] != ["version"]} == {want}


def test_backend_option_overrides(standin_pulumi, kubeconfig_file, mirror_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    other = (tmp_path / "elsewhere").resolve()
    other.mkdir()
    assert cli(["preview", "-e", "dev", "--kubeconfig", str(kubeconfig_file), "--backend", other.as_uri()]) == 0
    pre = next(c for c in standin_pulumi.calls() if "preview" in c["argv"][:2])
    assert pre["backend"] == other.as_uri()


@pytest.mark.parametrize("answer, destroyed", [("n\n", False), ("y\n", True)])
def test_destroy_asks_for_confirmation(standin_pulumi, monkeypatch, answer, destroyed):
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    rc = cli(["destroy", "-e", "dev"])
    assert rc == (0 if destroyed else 1)
    assert any(a[:1] == ["destroy"] for a in standin_pulumi.argvs()) is destroyed


def test_destroy_yes_does_not_ask(standin_pulumi, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))   # any prompt would abort
    assert cli(["destroy", "-e", "staging", "--yes"]) == 0
    d = next(a for a in standin_pulumi.argvs() if a[:1] == ["destroy"])
    assert "--yes" in d and d[d.index("--stack") + 1] == "staging"


def test_stacks_lists_environments_with_their_profiles(standin_pulumi, capsys):
    assert cli(["stacks", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    envs = {r["environment"]: r for r in data["environments"]}
    assert set(envs) == {p.name[len("Pulumi."):-len(".yaml")] for p in PLATFORM.glob("Pulumi.*.yaml")}
    assert {"dev", "staging", "prod", "eks-prod", "gke-prod", "aks-prod"} <= set(envs)
    assert envs["prod"]["profile"] == "full" and envs["dev"]["profile"] == "dev"
    assert envs["eks-prod"]["cluster"] == "stack organization/kubeforge-cluster-eks/prod (output kubeconfig)"
    assert data["backend"] == standin_pulumi.backend.as_uri()


def test_stacks_env_shows_outputs_with_secrets_hidden(standin_pulumi, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert cli(["destroy", "-e", "dev", "--yes"]) == 0     # creates the stack in the backend
    capsys.readouterr()
    assert cli(["stacks", "-e", "dev", "--json"]) == 0
    outs = json.loads(capsys.readouterr().out)
    assert outs["profile"] == "dev"
    assert any(a[:2] == ["stack", "output"] and "--show-secrets" in a for a in standin_pulumi.argvs())


# ---- bad inputs: exit 2, a message naming the fix, and no Pulumi command at all ----

def _bad(argv: list[str], capsys) -> str:
    rc = cli(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    return err


def test_unknown_environment(standin_pulumi, capsys):
    err = _bad(["up", "-e", "qa"], capsys)
    assert "unknown environment 'qa'" in err
    listed = err.split("use one of: ", 1)[1].split(", or create")[0].split(", ")
    assert listed == sorted(p.name[len("Pulumi."):-len(".yaml")] for p in PLATFORM.glob("Pulumi.*.yaml"))
    assert standin_pulumi.calls() == []


def test_profile_missing_in_config(standin_pulumi, home_copy, kubeconfig_file, capsys):
    (home_copy / "stacks/platform/Pulumi.noprofile.yaml").write_text(
        "config:\n  kubeforge:registry: registry.example.com\n")
    err = _bad(["up", "-e", "noprofile", "--kubeconfig", str(kubeconfig_file)], capsys)
    assert "Pulumi.noprofile.yaml" in err and "kubeforge:profile" in err and "fix:" in err
    assert standin_pulumi.calls() == []


def test_kubeconfig_missing(standin_pulumi, monkeypatch, capsys):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    err = _bad(["up", "-e", "dev"], capsys)
    assert "no cluster" in err and "--kubeconfig" in err
    assert standin_pulumi.calls() == []


def test_kubeconfig_path_that_does_not_exist(standin_pulumi, tmp_path, capsys):
    err = _bad(["preview", "-e", "dev", "--kubeconfig", str(tmp_path / "nope.conf")], capsys)
    assert "does not exist" in err
    assert standin_pulumi.calls() == []


def test_profile_that_fails_validation(standin_pulumi, home_copy, kubeconfig_file, capsys):
    (home_copy / "stacks/platform/Pulumi.badgpu.yaml").write_text(
        "config:\n  kubeforge:profile: dev\n  kubeforge:gpu:\n    mode: sometimes\n")
    err = _bad(["up", "-e", "badgpu", "--kubeconfig", str(kubeconfig_file)], capsys)
    assert "gpu.mode" in err
    assert standin_pulumi.calls() == []


def test_unknown_config_key(standin_pulumi, home_copy, kubeconfig_file, capsys):
    (home_copy / "stacks/platform/Pulumi.typo.yaml").write_text(
        "config:\n  kubeforge:profile: dev\n  kubeforge:registy: r.example.com\n")
    err = _bad(["up", "-e", "typo", "--kubeconfig", str(kubeconfig_file)], capsys)
    assert "kubeforge:registy" in err and "kubeforge:registry" in err
    assert standin_pulumi.calls() == []


def test_replicas_for_a_deployment_the_profile_does_not_render(standin_pulumi, home_copy, kubeconfig_file,
                                                               mirror_dir, monkeypatch, capsys):
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    (home_copy / "stacks/platform/Pulumi.rep.yaml").write_text(
        "config:\n  kubeforge:profile: dev\n  kubeforge:replicas:\n    kubeflow/no-such-controller: 2\n")
    err = _bad(["up", "-e", "rep", "--kubeconfig", str(kubeconfig_file)], capsys)
    assert "kubeflow/no-such-controller" in err
    assert standin_pulumi.calls() == []


def test_missing_passphrase(standin_pulumi, kubeconfig_file, mirror_dir, monkeypatch, capsys):
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    err = _bad(["up", "-e", "dev", "--kubeconfig", str(kubeconfig_file)], capsys)
    assert "PULUMI_CONFIG_PASSPHRASE" in err
    assert standin_pulumi.operations() == []


@pytest.mark.parametrize("command", ["up", "preview", "destroy"])
def test_missing_pulumi_executable_names_how_to_install_it(no_pulumi, kubeconfig_file, mirror_dir, monkeypatch,
                                                           command, capsys):
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    argv = [command, "-e", "dev"] + (["--kubeconfig", str(kubeconfig_file)] if command != "destroy" else [])
    err = _bad(argv, capsys)
    assert "`pulumi` executable is not installed" in err
    assert "get.pulumi.com" in err and "docs/pulumi.md" in err


def test_destroy_is_not_blocked_by_a_profile_that_no_longer_validates(standin_pulumi, home_copy, monkeypatch):
    (home_copy / "stacks/platform/Pulumi.old.yaml").write_text(
        "config:\n  kubeforge:profile: dev\n  kubeforge:gpu:\n    mode: sometimes\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert cli(["destroy", "-e", "old", "--yes"]) == 0
    assert any(a[:1] == ["destroy"] for a in standin_pulumi.argvs())


def test_a_failed_up_exits_1_with_the_engines_error(standin_pulumi, kubeconfig_file, mirror_dir, monkeypatch, capsys):
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    events = [{"sequence": 1, "timestamp": 0, "diagnosticEvent": {
        "urn": "", "prefix": "error: ", "message": "admission webhook denied the request\n", "color": "never",
        "severity": "error"}}]
    standin_pulumi.events.write_text(json.dumps(events))
    monkeypatch.setenv("STANDIN_PULUMI_EVENTS", str(standin_pulumi.events))
    monkeypatch.setenv("STANDIN_PULUMI_EXIT", "255")
    rc = cli(["up", "-e", "dev", "--kubeconfig", str(kubeconfig_file)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "pulumi up failed for stack dev" in err and "admission webhook denied the request" in err


def test_up_of_the_cluster_stack_runs_in_its_project(standin_pulumi, monkeypatch, capsys):
    monkeypatch.delenv("KUBECONFIG", raising=False)     # the cluster stack makes the cluster
    assert cli(["up", "-e", "staging", "--project", "cluster-onprem"]) == 0
    up = next(c for c in standin_pulumi.calls() if "up" in c["argv"][:2])
    assert up["cwd"] == str(REPO / "stacks" / "cluster-onprem")
    assert "--stack" in up["argv"] and up["argv"][up["argv"].index("--stack") + 1] == "staging"


def test_cluster_stack_with_a_missing_inventory_fails_before_pulumi(standin_pulumi, tmp_path, monkeypatch, capsys):
    root = tmp_path / "home"
    shutil.copytree(REPO / "stacks" / "cluster-onprem", root / "stacks" / "cluster-onprem",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "stacks" / "cluster-onprem" / "Pulumi.lab.yaml").write_text(
        "config:\n  kubeforge:inventory: /nonexistent/inventory\n")
    monkeypatch.setenv("KUBEFORGE_HOME", str(root))
    home.cache_clear()
    try:
        err = _bad(["up", "-e", "lab", "--project", "cluster-onprem"], capsys)
    finally:
        home.cache_clear()
    assert "kubeforge:inventory" in err
    assert standin_pulumi.calls() == []


def test_preview_with_policy_pack_and_json_summary(standin_pulumi, kubeconfig_file, mirror_dir, monkeypatch, capsys):
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    assert cli(["preview", "-e", "dev", "--kubeconfig", str(kubeconfig_file), "--policy", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)          # progress went to stderr: stdout is one document
    assert result["action"] == "preview" and result["changes"] == {"create": 3}
    assert result["backend"] == standin_pulumi.backend.as_uri()
    assert "state:" in captured.err
    pre = next(a for a in standin_pulumi.argvs() if a[:1] == ["preview"])
    assert pre[pre.index("--policy-pack") + 1] == str(REPO / "stacks" / "policy")


def test_unquoted_kubernetes_version(standin_pulumi, home_copy, kubeconfig_file, capsys):
    (home_copy / "stacks/platform/Pulumi.k8s.yaml").write_text(
        "config:\n  kubeforge:profile: dev\n  kubeforge:kubernetesVersion: 1.30\n")
    err = _bad(["up", "-e", "k8s", "--kubeconfig", str(kubeconfig_file)], capsys)
    assert "kubeforge:kubernetesVersion" in err and "quote it" in err
    assert standin_pulumi.calls() == []


# ---- cloud cluster projects ----

def test_up_of_a_cloud_cluster_stack_shows_its_gpus_and_runs_in_its_project(standin_pulumi, monkeypatch, capsys):
    monkeypatch.delenv("KUBECONFIG", raising=False)     # the cluster stack makes the cluster
    assert cli(["up", "-e", "prod", "--project", "cluster-eks"]) == 0
    out = capsys.readouterr().out
    assert "GPUs h100: 2 × p5.48xlarge = 16 H100 80GB" in out
    assert "EKS cluster kubeforge-prod in us-east-1, Kubernetes 1.34" in out
    up = next(c for c in standin_pulumi.calls() if "up" in c["argv"][:2])
    assert up["cwd"] == str(REPO / "stacks" / "cluster-eks")
    assert up["argv"][up["argv"].index("--stack") + 1] == "prod"
    assert (standin_pulumi.backend / ".pulumi" / "stacks" / "kubeforge-cluster-eks" / "prod.json").exists()


@pytest.mark.parametrize("project, env", [("cluster-gke", "prod"), ("cluster-aks", "prod")])
def test_preview_of_gke_and_aks_cluster_stacks(standin_pulumi, project, env, capsys):
    assert cli(["preview", "-e", env, "--project", project]) == 0
    assert "GPUs " in capsys.readouterr().out
    pre = next(c for c in standin_pulumi.calls() if "preview" in c["argv"][:2])
    assert pre["cwd"] == str(REPO / "stacks" / project)


def _cluster_home(tmp_path, monkeypatch, cloud: str) -> Path:
    root = tmp_path / "home"
    for d in ("platform", f"cluster-{cloud}"):
        shutil.copytree(REPO / "stacks" / d, root / "stacks" / d, ignore=shutil.ignore_patterns("__pycache__"))
    for d in ("components", "profiles"):
        (root / d).symlink_to(REPO / d)
    monkeypatch.setenv("KUBEFORGE_HOME", str(root))
    home.cache_clear()
    return root


def test_a_cluster_stack_whose_version_differs_from_the_profile_fails_before_pulumi(standin_pulumi, tmp_path,
                                                                                    monkeypatch, capsys):
    root = _cluster_home(tmp_path, monkeypatch, "eks")
    f = root / "stacks" / "cluster-eks" / "Pulumi.prod.yaml"
    f.write_text(f.read_text().replace('kubeforge:kubernetesVersion: "1.34"', 'kubeforge:kubernetesVersion: "1.33"'))
    try:
        err = _bad(["up", "-e", "prod", "--project", "cluster-eks"], capsys)
    finally:
        home.cache_clear()
    assert "stacks/cluster-eks/Pulumi.prod.yaml" in err and "profiles/training.yaml" in err
    assert "config.kubeforge:kubernetesVersion" in err
    assert standin_pulumi.operations() == []


def test_a_platform_environment_that_disagrees_with_its_cluster_stack_fails_before_pulumi(
        standin_pulumi, tmp_path, monkeypatch, mirror_dir, capsys):
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    root = _cluster_home(tmp_path, monkeypatch, "eks")
    (root / "stacks" / "platform" / "Pulumi.eks-cpu.yaml").write_text(
        "config:\n  kubeforge:profile: dev\n  kubeforge:clusterStack: organization/kubeforge-cluster-eks/prod\n")
    try:
        err = _bad(["up", "-e", "eks-cpu"], capsys)
    finally:
        home.cache_clear()
    assert "gpu.mode is none here but host on the cluster stack stacks/cluster-eks/Pulumi.prod.yaml" in err
    assert standin_pulumi.operations() == []


def test_destroy_of_a_cluster_stack_refuses_while_a_platform_stack_runs_on_it(standin_pulumi, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    platform_state = standin_pulumi.backend / ".pulumi" / "stacks" / "kubeforge-platform" / "eks-prod.json"
    platform_state.parent.mkdir(parents=True)
    platform_state.write_text("{}")           # deployed: the stand-in reports 3 resources
    err = _bad(["destroy", "-e", "prod", "--project", "cluster-eks", "--yes"], capsys)
    assert "platform stack eks-prod (" in err and "still runs on this cluster" in err
    assert "fix: run first: kubeforge destroy -e eks-prod" in err
    assert not any(a[:1] == ["destroy"] for a in standin_pulumi.argvs())
    # The documented order: the platform first (its load balancers and volumes go), then the cluster.
    assert cli(["destroy", "-e", "eks-prod", "--yes"]) == 0
    assert cli(["destroy", "-e", "prod", "--project", "cluster-eks", "--yes"]) == 0
    destroys = [(c["cwd"], c["argv"][c["argv"].index("--stack") + 1]) for c in standin_pulumi.calls()
                if c["argv"][1:2] == ["destroy"] or c["argv"][:1] == ["destroy"]]
    assert destroys == [(str(PLATFORM), "eks-prod"), (str(REPO / "stacks" / "cluster-eks"), "prod")]


def test_destroy_of_a_cluster_stack_no_platform_uses_goes_ahead(standin_pulumi, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    platform_state = standin_pulumi.backend / ".pulumi" / "stacks" / "kubeforge-platform" / "eks-prod.json"
    platform_state.parent.mkdir(parents=True)
    platform_state.write_text("{}")           # eks-prod runs on cluster-eks/prod, not on dev
    assert cli(["destroy", "-e", "dev", "--project", "cluster-eks", "--yes"]) == 0
    assert any(a[:1] == ["destroy"] for a in standin_pulumi.argvs())


def test_stacks_of_a_cloud_project_list_environments_and_gpus(standin_pulumi, capsys):
    assert cli(["stacks", "--project", "cluster-eks", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    envs = {r["environment"]: r for r in data["environments"]}
    assert set(envs) == {"dev", "staging", "prod"}
    assert envs["prod"]["gpus"] == ["h100: 2 × p5.48xlarge = 16 H100 80GB",
                                    "l40s: 1 × g6e.12xlarge = 4 L40S 48GB (up to 16)"]
    assert envs["prod"]["profile"] == "training"


def test_plan_with_a_cluster_prints_what_it_offers(capsys):
    assert cli(["plan", "-p", "training", "--cluster", "cluster-eks/prod"]) == 0
    assert "GPUs h100: 2 × p5.48xlarge = 16 H100 80GB" in capsys.readouterr().out
    assert cli(["plan", "-p", "training", "--cluster", "cluster-eks/prod", "-f", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cluster"]["expectedGpus"] == {"p5.48xlarge": 8, "g6e.12xlarge": 4}
    err = _bad(["plan", "-p", "dev", "--cluster", "cluster-eks/prod"], capsys)
    assert "gpu.mode is none here but host" in err
