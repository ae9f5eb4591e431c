"""Shared fixtures: where the repository, the shared mirror and the GPU fixtures are."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared sits beside the checkout (development workspace and CI alike).
SHARED = Path(os.environ.get("KUBEFORGE_SHARED", REPO.parent / "shared"))
MIRROR = Path(os.environ.get("KUBEFORGE_TEST_MIRROR", SHARED / "mirror"))
GPU_FIXTURES = SHARED / "fixtures" / "gpu"
# Renders made by tests keep their per-install secrets in a throw-away directory, never in the
# developer's ~/.config/kubeforge/secrets.
os.environ["KUBEFORGE_SECRETS_DIR"] = tempfile.mkdtemp(prefix="kubeforge-test-secrets-")
os.environ.pop("KUBEFORGE_SECRETS", None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    if not (MIRROR / "github").is_dir():
        pytest.fail(f"the upstream mirror is missing at {MIRROR}; set KUBEFORGE_TEST_MIRROR")
    return MIRROR


@pytest.fixture(scope="session")
def gpu_fixtures() -> Path:
    return GPU_FIXTURES


class UpstreamBuilds:
    """`kubectl kustomize` of mirror trees, each built once per test session and shared by every
    test folder that checks against raw upstream output (transforms, validate, render)."""

    def __init__(self, mirror: Path):
        self.mirror = mirror
        self._built: dict[str, list[dict]] = {}

    def prebuild(self, rels) -> None:
        """Build the trees not built yet, two at a time (the two cores CI has)."""
        from concurrent.futures import ThreadPoolExecutor

        todo = [r for r in dict.fromkeys(rels) if r not in self._built]
        with ThreadPoolExecutor(2) as pool:
            for rel, objs in zip(todo, pool.map(self._kustomize, todo), strict=True):
                self._built[rel] = objs

    def __call__(self, rel: str) -> list[dict]:
        """The objects of one tree (mirror-relative path, or an absolute directory), read-only."""
        if rel not in self._built:
            self.prebuild([rel])
        return self._built[rel]

    def _kustomize(self, rel: str) -> list[dict]:
        import subprocess

        from kubeforge.kustomize import kustomize_bin, parse

        done = subprocess.run([str(kustomize_bin()), "kustomize", str(self.mirror / rel)],
                              capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise RuntimeError(f"kubectl kustomize {self.mirror / rel} failed: {done.stderr.strip()}")
        return parse(done.stdout)


@pytest.fixture(scope="session")
def upstream_builds(mirror_dir) -> UpstreamBuilds:
    return UpstreamBuilds(mirror_dir)


_RENDERS: dict[str, object] = {}


@pytest.fixture(scope="session")
def render_profile(mirror_dir):
    """render_profile(name) -> Rendered, rendered once per session from the real upstream mirror.
    Helm-chart components come back without objects when `helm` is missing (as in the CLI);
    their names are in rendered.unrendered."""
    from kubeforge import api
    from kubeforge.lifecycle.rendered import render_available

    def get(name: str):
        if name not in _RENDERS:
            _RENDERS[name], _ = render_available(api.plan(api.load_profile(name)), mirror=str(mirror_dir))
        return _RENDERS[name]
    return get


@pytest.fixture
def catalog_with(tmp_path, monkeypatch):
    """catalog_with(components={name: {file: text}}, profiles={name: text}) -> a copy of the
    repository's catalog and profiles with these added, made the one kubeforge reads
    (KUBEFORGE_HOME) for the rest of the test. Adding a component touches nothing else, so tests
    can add one that renders what no shipped component does."""
    from kubeforge import paths

    home = tmp_path / "kubeforge-home"

    def make(components: dict[str, dict[str, str]] | None = None, profiles: dict[str, str] | None = None) -> Path:
        for sub in ("components", "profiles"):      # the real ones, linked
            (home / sub).mkdir(parents=True)
            for p in (REPO / sub).iterdir():
                (home / sub / p.name).symlink_to(p)
        for name, files in (components or {}).items():
            (home / "components" / name).mkdir()
            for fname, text in files.items():
                (home / "components" / name / fname).write_text(text)
        for name, text in (profiles or {}).items():
            (home / "profiles" / f"{name}.yaml").write_text(text)
        monkeypatch.setenv("KUBEFORGE_HOME", str(home))
        paths.home.cache_clear()
        return home

    yield make
    monkeypatch.delenv("KUBEFORGE_HOME", raising=False)
    paths.home.cache_clear()


@pytest.fixture
def kubeforge_cli(capsys, mirror_dir, monkeypatch):
    """kubeforge_cli(*argv) -> (exit code, stdout, stderr) of `kubeforge ARGV` run in-process
    through kubeforge.cli.main, sources from the mirror."""
    from kubeforge.cli import main

    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))

    def go(*argv):
        rc = main(list(argv))
        out = capsys.readouterr()
        return rc, out.out, out.err
    return go


# ---- a component that uses per-install secrets (kubeforge.secrets) ----------------------------

SECRET_DEMO_COMPONENT = """\
name: secret-demo
version: "1.0"
description: test component that uses per-install secrets
namespaces: {demo: restricted}
secrets:
  demo-client-secret: {generate: alnum, length: 32}
  demo-cookie: {generate: base64, bytes: 32}
  demo-key: {generate: hex, bytes: 16}
  "demo-password-*": {generate: alnum, length: 20}
  "demo-hash-*": {generate: bcrypt, of: "demo-password-*"}
"""
SECRET_DEMO_GENERATE = """\
def generate(ctx):
    users = ["alice@example.com", "bob@example.com"]
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "demo", "namespace": "demo"},
         "stringData": {"client": ctx.secret("demo-client-secret"), "cookie": ctx.secret("demo-cookie"),
                        "key": ctx.secret("demo-key")}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "demo-users", "namespace": "demo"},
         "data": {u: ctx.secret("demo-hash-" + u) for u in users}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plain", "namespace": "demo"},
         "data": {"x": "y"}},
    ]
"""


@pytest.fixture
def secret_demo_files() -> tuple[str, str]:
    """(component.yaml, generate.py) of `secret-demo`, for tests that write variants of them."""
    return SECRET_DEMO_COMPONENT, SECRET_DEMO_GENERATE


@pytest.fixture
def demo_home(tmp_path, monkeypatch, catalog_with):
    """A KUBEFORGE_HOME with the real catalog and profiles plus `secret-demo`, a test component that
    uses one secret of each kind, and a profile `demo` that enables only it."""
    root = catalog_with(
        {"secret-demo": {"component.yaml": SECRET_DEMO_COMPONENT, "generate.py": SECRET_DEMO_GENERATE}},
        {"demo": "extends: base\ncomponents:\n  storage: {enabled: false}\n  secret-demo: {enabled: true}\n"})
    monkeypatch.setenv("KUBEFORGE_CACHE", str(tmp_path / "cache"))
    return root
