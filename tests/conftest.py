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


@pytest.fixture
def run(capsys, mirror_dir, monkeypatch):
    """run(*argv) -> (exit code, stdout, stderr) of the kubeforge CLI in-process, on the mirror."""
    from kubeforge.cli import main

    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))

    def go(*argv):
        rc = main(list(argv))
        out = capsys.readouterr()
        return rc, out.out, out.err
    return go


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
