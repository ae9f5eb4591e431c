"""A cache location that cannot be used ($KUBEFORGE_CACHE naming a file, or a directory that cannot
be written) is one error naming the variable and the path (exit 2), never a traceback."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

KUBEFORGE = str(Path(sys.executable).parent / "kubeforge")


def test_cache_variable_naming_a_file_exits_2(kubeforge_cli, tmp_path, monkeypatch):
    cache = tmp_path / "cache-is-a-file"
    cache.write_text("not a directory\n")
    monkeypatch.setenv("KUBEFORGE_CACHE", str(cache))
    for argv in (("render", "-p", "base", "-o", str(tmp_path / "out")), ("sync", "-p", "base")):
        rc, _, err = kubeforge_cli(*argv)
        assert rc == 2, argv
        assert f"error: {cache}: KUBEFORGE_CACHE: the cache location is a file, not a directory" in err
        assert "fix: point KUBEFORGE_CACHE at a directory you can write" in err and "Traceback" not in err
    assert cache.read_text() == "not a directory\n"


def test_cache_below_a_file_exits_2(kubeforge_cli, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("KUBEFORGE_CACHE", str(blocker / "cache"))
    rc, _, err = kubeforge_cli("sync", "-p", "base")
    assert rc == 2 and f"error: {blocker / 'cache'}: KUBEFORGE_CACHE: the cache directory cannot be written" in err


def _read_only_runner(cache: Path):
    """A command line that runs kubeforge with `cache` unwritable: chmod for a normal user; for
    root (who may write anywhere) a read-only bind mount in a private mount namespace."""
    if os.geteuid() != 0:
        cache.chmod(0o555)
        return []
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("running as root without `unshare -m`: no way to make a directory unwritable for root")
    return ["unshare", "-m", "sh", "-c", f'mount --bind "{cache}" "{cache}" && '
            f'mount -o remount,bind,ro "{cache}" && exec "$@"', "sh"]


def test_unwritable_cache_directory_exits_2(tmp_path, mirror_dir):
    cache = tmp_path / "ro-cache"
    cache.mkdir()
    prefix = _read_only_runner(cache)
    env = dict(os.environ, KUBEFORGE_CACHE=str(cache), KUBEFORGE_MIRROR=str(mirror_dir))
    done = subprocess.run([*prefix, KUBEFORGE, "sync", "-p", "base"], capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr
    assert f"error: {cache}: KUBEFORGE_CACHE: the cache directory cannot be written (" in done.stderr
    assert "Traceback" not in done.stderr
