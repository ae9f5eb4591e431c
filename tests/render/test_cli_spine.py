"""The spine of the CLI through `kubeforge.cli.main` (argument parsing, output, exit codes), on the
real catalog and the upstream mirror: profiles, components, plan, sync, render, images, validate.
Expected values come from the files (profiles/, components/*/component.yaml) and the issue's
contract (`--json`: one JSON document on stdout, human output on stderr; exit 0/1/2)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# A component whose render is invalid: a Deployment with a string replica count and an
# unknown field (schema errors), next to a valid ConfigMap.
BROKEN = {
    "component.yaml": 'name: broken\nversion: "1.0"\ndescription: renders an invalid Deployment\n'
                      'namespaces: {broken: baseline}\nkubernetes: {min: "1.25", max: "1.37"}\n',
    "generate.py": '''
def generate(ctx):
    labels = {"app": "broken"}
    pod = {"metadata": {"labels": labels}, "spec": {"containers": [
        {"name": "c", "image": "registry.example.com/c:1.0", "resources": {"requests": {"cpu": "1m"}}}]}}
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "broken", "namespace": "broken"},
             "spec": {"replicas": "two", "selector": {"matchLabels": labels}, "template": pod, "paused2": True}}]
''',
}


@pytest.fixture
def broken(catalog_with):
    catalog_with({"broken": BROKEN}, {"broken": "extends: base\ncomponents:\n  broken: {enabled: true}\n"})
    return "broken"


def _catalog(repo_root) -> dict[str, dict]:
    return {d.name: yaml.safe_load((d / "component.yaml").read_text())
            for d in sorted((repo_root / "components").iterdir()) if (d / "component.yaml").exists()}


# -- profiles, components, plan --------------------------------------------------------------
def test_profiles_list_show_and_schema(kubeforge_cli, repo_root):
    rc, out, _ = kubeforge_cli("profiles", "list", "--json")
    assert rc == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {p.stem for p in (repo_root / "profiles").glob("*.yaml")}
    layers = [yaml.safe_load((repo_root / "profiles" / f"{n}.yaml").read_text()) for n in ("base", "monitoring", "serving")]
    want = {n for layer in layers for n, c in layer["components"].items() if c.get("enabled", True)}
    assert set(rows["serving"]["components"]) == want and rows["serving"]["gpuMode"] == "none"
    rc, out, _ = kubeforge_cli("profiles", "show", "-p", "serving")
    shown = yaml.safe_load(out)
    assert rc == 0 and shown["components"]["kserve"]["values"] == {"deploymentMode": "Standard"}
    assert shown["storage"]["default"] == "local-path"          # from base, extends resolved
    rc, out, _ = kubeforge_cli("profiles", "show", "-p", "serving", "--json")
    assert rc == 0 and json.loads(out) == shown
    rc, out, _ = kubeforge_cli("profiles", "schema")
    assert rc == 0 and json.loads(out)["title"] == "kubeforge profile"


def test_components_lists_the_catalog(kubeforge_cli, repo_root):
    rc, out, _ = kubeforge_cli("components", "--json")
    assert rc == 0
    got = {r["name"]: r for r in json.loads(out)}
    want = _catalog(repo_root)
    assert set(got) == set(want)
    for name, c in want.items():
        assert got[name]["version"] == str(c["version"]) and got[name]["requires"] == (c.get("requires") or [])


def test_plan_formats_and_bad_format(kubeforge_cli):
    rc, out, _ = kubeforge_cli("plan", "-p", "dev")
    assert rc == 0 and "kserve" in out and "wave" in out
    rc, out, _ = kubeforge_cli("plan", "-p", "dev", "--json")
    doc = json.loads(out)
    rc2, out2, _ = kubeforge_cli("plan", "-p", "dev", "-f", "json")
    assert rc == rc2 == 0 and json.loads(out2) == doc
    waves = doc["waves"]
    flat = [n for w in waves for n in w]
    assert flat.index("cert-manager") < flat.index("kserve") and flat.index("istio") < flat.index("knative-serving")
    rc, out, _ = kubeforge_cli("plan", "-p", "dev", "-f", "mermaid")
    assert rc == 0 and out.startswith("graph LR")
    rc, _, err = kubeforge_cli("plan", "-p", "dev", "-f", "yaml")
    assert rc == 2 and "--format" in err and "fix:" in err
    rc, _, err = kubeforge_cli("plan", "-p", "no-such-profile")
    assert rc == 2 and "unknown profile 'no-such-profile'" in err


# -- sync, render, images, validate ------------------------------------------------------------
def test_sync_verifies_every_source_of_the_profile(kubeforge_cli, repo_root):
    rc, out, _ = kubeforge_cli("sync", "-p", "training", "--json")
    assert rc == 0
    doc = json.loads(out)
    cat = _catalog(repo_root)
    declared = [s for n in ("katib", "training-operator", "argo-workflows", "nvidia-device-plugin",
                            "dcgm-exporter", "storage", "prometheus-operator-crds", "kube-prometheus",
                            "gpu-monitoring", "platform-monitors")
                for s in cat[n].get("sources") or [] if s["kind"] != "helm"]
    always = {s["id"] for s in declared if not s.get("when")}       # `when:` ones follow the values
    assert always <= set(doc["sources"]) <= {s["id"] for s in declared}
    assert all(Path(p).exists() for p in doc["sources"].values())


def test_render_writes_validated_ordered_files_and_a_json_summary(kubeforge_cli, tmp_path):
    out_dir = tmp_path / "dev"
    rc, out, err = kubeforge_cli("render", "-p", "dev", "-o", str(out_dir), "--json")
    assert rc == 0, err
    doc = json.loads(out)                                      # stdout is the document alone
    assert "validated against Kubernetes 1.34" in err
    files = sorted(p.name for p in out_dir.glob("*.yaml"))
    assert [f["file"] for f in doc["files"]] == files and files[0].startswith("01-")
    index = json.loads((out_dir / "index.json").read_text())
    assert doc["objects"] == len(index) == sum(f["objects"] for f in doc["files"])
    assert doc["validation"]["errors"] == 0 and doc["validation"]["objects"] == len(index)
    rc, out, _ = kubeforge_cli("render", "-p", "dev", "-o", str(tmp_path / "again"), "--no-validate")
    assert rc == 0 and "not validated" in out


def test_render_refuses_an_invalid_render_and_writes_nothing(kubeforge_cli, broken, tmp_path):
    out_dir = tmp_path / "out"
    rc, out, err = kubeforge_cli("render", "-p", broken, "-o", str(out_dir))
    assert rc == 1
    assert "error schema: [broken] Deployment broken/broken spec.replicas:" in err
    assert 'unknown field "paused2"' in err
    assert "nothing written" in err and "--no-validate" in err
    assert not out_dir.exists()
    rc, out, err = kubeforge_cli("render", "-p", broken, "-o", str(out_dir), "--no-validate")
    assert rc == 0 and (out_dir / "index.json").exists()


def test_render_validation_is_cached_with_the_render(kubeforge_cli, tmp_path, monkeypatch):
    """The warm path validates nothing again: the report is cached under the render's key."""
    from kubeforge import validate as validation

    rc, _, err = kubeforge_cli("render", "-p", "training", "-o", str(tmp_path / "a"))
    assert rc == 0, err

    def must_not_run(*_a, **_k):
        raise AssertionError("validated again although nothing changed")

    monkeypatch.setattr(validation, "validate", must_not_run)
    rc, out, err = kubeforge_cli("render", "-p", "training", "-o", str(tmp_path / "b"))
    assert rc == 0 and "validated against" in out, err
    with pytest.raises(AssertionError, match="validated again"):   # --no-cache does validate
        kubeforge_cli("render", "-p", "training", "-o", str(tmp_path / "c"), "--no-cache")


def test_images_lists_every_image_once(kubeforge_cli):
    rc, out, _ = kubeforge_cli("images", "-p", "training", "--json")
    images = json.loads(out)
    assert rc == 0 and images and len(images) == len(set(images))
    assert any("katib-controller" in i for i in images) and all(":" in i.rsplit("/", 1)[-1] or "@" in i
                                                               for i in images)


def test_validate_exits_0_on_a_clean_profile_and_1_on_errors(kubeforge_cli, broken):
    rc, out, _ = kubeforge_cli("validate", "-p", "base", "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["ok"] is True and doc["counts"]["errors"] == 0
    rc, out, err = kubeforge_cli("validate", "-p", broken)
    assert rc == 1
    assert "spec.replicas" in out and "validation error(s) in profile broken" in err


# -- the --json convention and the cheap start ---------------------------------------------------
def test_every_json_option_is_a_flag_for_stdout():
    """One convention: --json is a flag (the document on stdout); files go by --json-file/--junit."""
    import typer.main

    from kubeforge import cli

    cli._register()
    root = typer.main.get_command(cli.app)

    def walk(cmd, path):
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            yield from walk(sub, [*path, name])
        for p in getattr(cmd, "params", []):
            yield path, p

    found = [(path, p) for path, p in walk(root, []) if "--json" in getattr(p, "opts", [])]
    assert len(found) >= 12, [" ".join(p) for p, _ in found]
    for path, p in found:
        assert p.is_flag, f"kubeforge {' '.join(path)} --json takes a value; use --json-file PATH for files"
    named = {" ".join(path) for path, _ in found}

    def leaves(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from leaves(sub, [*path, name])
        else:
            yield " ".join(path)

    # Every command that prints a report or a listing answers with --json; these print one raw
    # value to pipe on (the schema is a JSON document already, a path, one secret's value), or
    # read one (secrets set prints nothing on stdout).
    assert set(leaves(root, [])) - named == {"profiles schema", "secrets path", "secrets get", "secrets set"}


HEAVY = ("pulumi", "kubernetes", "kubernetes_validate", "yaml", "jsonschema", "ansible", "ansible_runner")


def test_the_cli_imports_nothing_heavy_at_start_and_plan_needs_no_cluster_libraries():
    """`kubeforge plan` answers in < 0.5 s cold: nothing heavy at module level of what the CLI
    imports at start-up (every command registered), and plan itself never loads Pulumi, the
    kubernetes client or Ansible."""
    code = (
        "import sys, io, json, contextlib\n"
        "import kubeforge.cli as cli\n"
        "cli._register()\n"
        f"H = set({HEAVY!r})\n"
        "at_start = sorted({m.split('.')[0] for m in sys.modules} & H)\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    rc = cli.main(['plan', '-p', 'full'])\n"
        "print(json.dumps([at_start, sorted({m.split('.')[0] for m in sys.modules} & H), rc]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    at_start, after, rc = json.loads(done.stdout)
    assert rc == 0
    assert at_start == [], f"imported at start-up: {at_start}"
    assert not set(after) & {"pulumi", "kubernetes", "kubernetes_validate", "ansible", "ansible_runner"}, after


def test_render_validation_follows_the_install_secrets(kubeforge_cli, demo_home, tmp_path, monkeypatch):
    """The same profile rendered with other per-install secrets is other YAML: validated again."""
    from kubeforge import validate as validation

    calls = []
    real = validation.validate
    monkeypatch.setattr(validation, "validate", lambda *a, **k: calls.append(1) or real(*a, **k))
    for name in ("a.yaml", "a.yaml", "b.yaml"):
        rc, _, err = kubeforge_cli("--secrets", str(tmp_path / name), "render", "-p", "demo", "-o", str(tmp_path / "out"))
        assert rc == 0, err
    assert len(calls) == 2      # a: validated; a again: cached; b: other secrets, validated


@pytest.mark.parametrize("argv,needle", [
    (["profiles", "show"], "Missing option '--profile'"),
    (["render", "--no-such-flag"], "No such option: --no-such-flag"),
    (["plan", "-p", "dev", "--format", "xml"], "xml"),
])
def test_usage_errors_are_one_message_and_exit_2(argv, needle):
    """A usage error (missing or unknown option, bad choice) is click's one-line message with the
    usage, exit 2, never a traceback: typer raises its vendored click exceptions, not click's."""
    r = subprocess.run([sys.executable, "-m", "kubeforge", *argv], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
