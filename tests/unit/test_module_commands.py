"""`python -m kubeforge...` commands: the ones README and docs name exist and answer --help; a
module without a command line, or a component name the catalog lacks, is a usage error (exit 2)
rather than a silent no-op."""
from __future__ import annotations

import re
import subprocess
import sys


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_every_module_command_the_docs_name_exists(repo_root):
    texts = [(repo_root / "README.md").read_text()] + [p.read_text() for p in (repo_root / "docs").glob("*.md")]
    named = {m for t in texts for m in re.findall(r"python -m (kubeforge[\w.]*)", t)}
    assert "kubeforge.lockfile" in named
    for module in sorted(named):
        done = _run(module, "--help")
        assert done.returncode == 0 and "usage:" in done.stdout.lower(), (module, done.stderr[-500:])


def test_a_module_without_a_command_line_exits_2_and_points_at_the_real_ones():
    done = _run("kubeforge.sources", "lock")
    assert done.returncode == 2
    assert "python -m kubeforge.lockfile" in done.stderr and "kubeforge sync" in done.stderr


def test_lockfile_refuses_unknown_components(mirror_dir, repo_root, tmp_path):
    import shutil

    catalog = tmp_path / "components"
    shutil.copytree(repo_root / "components", catalog)
    before = {p: p.read_bytes() for p in catalog.rglob("*") if p.is_file()}
    done = _run("kubeforge.lockfile", "--mirror", str(mirror_dir), "--catalog", str(catalog), "lock")
    assert done.returncode == 2 and "no component lock" in done.stderr and "kserve" in done.stderr
    assert {p: p.read_bytes() for p in catalog.rglob("*") if p.is_file()} == before
    done = _run("kubeforge.lockfile", "--catalog", str(catalog))
    assert done.returncode == 2 and "--mirror" in done.stderr
    # A real run over the copy changes nothing: the shipped pins are the mirror's.
    done = _run("kubeforge.lockfile", "--mirror", str(mirror_dir), "--catalog", str(catalog), "katib")
    assert done.returncode == 0, done.stderr
    assert {p: p.read_bytes() for p in catalog.rglob("*") if p.is_file()} == before
