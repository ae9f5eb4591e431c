"""Shared fixtures: where the repository, the shared mirror and the GPU fixtures are."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared sits beside the checkout (development workspace and CI alike).
SHARED = Path(os.environ.get("KUBEFORGE_SHARED", REPO.parent / "shared"))
MIRROR = Path(os.environ.get("KUBEFORGE_TEST_MIRROR", SHARED / "mirror"))
GPU_FIXTURES = SHARED / "fixtures" / "gpu"


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
    import shutil

    from kubeforge import paths

    home = tmp_path / "kubeforge-home"

    def make(components: dict[str, dict[str, str]] | None = None, profiles: dict[str, str] | None = None) -> Path:
        shutil.copytree(REPO / "components", home / "components")
        shutil.copytree(REPO / "profiles", home / "profiles")
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
