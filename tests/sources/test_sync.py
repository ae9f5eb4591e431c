"""sync(): real upstream files from the shared mirror (directory and HTTP), into a private cache."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from httpmirror import serve
from mirror_trees import ARGO, KUBEFLOW, MANIFESTS, TREES, default_sources, kustomize_source, manifest_source

from kubeforge import sources
from kubeforge.errors import KubeforgeError
from kubeforge.lockfile import file_sha256, scan_tree, tree_hash
from kubeforge.sources import BlobStore, cache_root, sync

KATIB = TREES["katib"]


def _assert_materialized(result: dict[str, Path], srcs) -> None:
    """Every source's tree below the build area hashes to its pin."""
    for s in srcs:
        p = result[s.id]
        if s.kind == "manifest":
            assert p.is_file() and file_sha256(p) == s.sha256, s.id
        else:
            root = p
            for _ in Path(s.path).parts:
                root = root.parent
            assert tree_hash(scan_tree(root)) == s.sha256, s.id
            assert (p / "kustomization.yaml").is_file()


def _blobs(cache: Path) -> list[Path]:
    return sorted((cache / "blobs").rglob("*")) if (cache / "blobs").exists() else []


def _copy_repo_subtree(mirror: Path, dest: Path, repo, root: str) -> Path:
    """A private mirror holding only repo/root (so a test may damage it)."""
    shutil.copytree(mirror / repo.mirror_path(root), dest / repo.mirror_path(root))
    return dest


def test_cache_root_env_and_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBEFORGE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "kubeforge"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "kubeforge"
    monkeypatch.setenv("KUBEFORGE_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def test_sync_from_mirror_directory(cache, mirror_dir):
    srcs = default_sources(mirror_dir)
    result = sync(srcs, mirror_dir)
    assert set(result) == set(TREES) | set(MANIFESTS)
    _assert_materialized(result, srcs)
    # Tree files are hard links to the verified blobs, not copies.
    f = result["katib"] / "kustomization.yaml"
    sha = file_sha256(f)
    assert os.path.samefile(f, BlobStore(cache / "blobs" / "sha256").path(sha))
    for p in result.values():
        assert p.is_relative_to(cache / "tree")


def test_sync_from_http_mirror(cache, mirror_dir):
    srcs = default_sources(mirror_dir)
    with serve(mirror_dir) as (url, requests):
        result = sync(srcs, url)
    _assert_materialized(result, srcs)
    n_files = len({sha for s in srcs for _, sha in (s.files or [("", s.sha256)])})
    assert len(requests) == n_files     # one GET per distinct blob


def test_mirror_env_is_honoured_and_the_argument_wins(cache, mirror_dir, tmp_path, monkeypatch):
    src = kustomize_source(mirror_dir, "katib", *KATIB)
    empty = tmp_path / "empty-mirror"
    (empty / "github").mkdir(parents=True)
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(empty))
    with pytest.raises(KubeforgeError) as e:
        sync([src])
    assert str(empty) in e.value.file
    result = sync([src], mirror_dir)              # explicit argument beats the environment
    _assert_materialized(result, [src])

    monkeypatch.setenv("KUBEFORGE_CACHE", str(tmp_path / "cache2"))
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    assert sources.mirror_spec() == str(mirror_dir)
    _assert_materialized(sync([src]), [src])    # no argument: the environment's mirror


def test_tampered_mirror_file_is_refused_and_nothing_is_materialized(cache, mirror_dir, tmp_path):
    tampered = _copy_repo_subtree(mirror_dir, tmp_path / "tampered-mirror", KUBEFLOW, KATIB[1])
    victim = tampered / KUBEFLOW.mirror_path(f"{KATIB[1]}/installs/katib-standalone/kustomization.yaml")
    expected = file_sha256(victim)
    victim.write_bytes(victim.read_bytes() + b"\n# tampered\n")
    actual = file_sha256(victim)
    katib = kustomize_source(mirror_dir, "katib", *KATIB)
    with pytest.raises(KubeforgeError) as e:
        sync([katib], tampered)
    err = e.value
    text = err.render()
    assert "'katib'" in text and "installs/katib-standalone/kustomization.yaml" in text
    assert expected in text and actual in text
    assert err.file == str(victim)
    assert "raw.githubusercontent.com/kubeflow/manifests/26.03/" in err.fix
    assert not (cache / "tree").exists()          # nothing materialized
    assert not (BlobStore(cache / "blobs" / "sha256").path(actual)).exists()
    assert not (BlobStore(cache / "blobs" / "sha256").path(expected)).exists()


def test_missing_mirror_file_names_the_path_tried(cache, mirror_dir, tmp_path):
    partial = _copy_repo_subtree(mirror_dir, tmp_path / "partial-mirror", KUBEFLOW, KATIB[1])
    gone = partial / KUBEFLOW.mirror_path(f"{KATIB[1]}/installs/katib-standalone/kustomization.yaml")
    gone.unlink()
    with pytest.raises(KubeforgeError) as e:
        sync([kustomize_source(mirror_dir, "katib", *KATIB)], partial)
    assert f"tried {gone}" in e.value.message
    assert e.value.file == str(gone)
    assert e.value.fix.startswith("copy https://raw.githubusercontent.com/kubeflow/manifests/26.03/")
    assert not (cache / "tree").exists()


def test_missing_file_on_http_mirror_names_the_url(cache, mirror_dir, tmp_path):
    src = manifest_source(mirror_dir, "local-path", *MANIFESTS["local-path"])
    with serve(tmp_path) as (url, _):
        with pytest.raises(KubeforgeError) as e:
            sync([src], url)
    assert e.value.file == f"{url}/github/rancher/local-path-provisioner/v0.0.37/deploy/local-path-storage.yaml"


def test_lock_that_does_not_match_its_tree_hash_is_refused_before_fetching(cache, mirror_dir):
    good = kustomize_source(mirror_dir, "katib", *KATIB)
    bad = type(good)(**{**good.__dict__, "files": good.files[1:]})    # a file dropped from the lock
    with pytest.raises(KubeforgeError) as e:
        sync([bad], mirror_dir)
    assert "tree hash" in e.value.message and "lockfile" in e.value.fix
    assert not cache.exists()


def test_transfer_that_breaks_off_leaves_no_valid_blob(cache, mirror_dir):
    """The HTTP server sends half a file and closes: no blob, no temp file; the next sync succeeds."""
    src = manifest_source(mirror_dir, "local-path", *MANIFESTS["local-path"])
    with serve(mirror_dir, break_suffixes=("local-path-storage.yaml",)) as (url, _):
        with pytest.raises(KubeforgeError) as e:
            sync([src], url)
    assert "broke off" in e.value.message
    assert [p for p in _blobs(cache) if p.is_file()] == []
    with serve(mirror_dir) as (url, _):
        result = sync([src], url)
    assert file_sha256(result["local-path"]) == src.sha256


BIG = "manifests/base/crds/full/argoproj.io_workflows.yaml"     # 3 MiB: half of it reaches the disk
_CHILD = f"""
import sys
sys.path[:0] = sys.argv[3:]
from mirror_trees import ARGO, manifest_source
from pathlib import Path
from kubeforge.sources import sync
sync([manifest_source(Path(sys.argv[1]), "workflows-crd", ARGO, "{BIG}")], sys.argv[2])
"""


def test_process_killed_mid_write_leaves_no_valid_blob(cache, mirror_dir):
    """A real crash: a sync process is SIGKILLed while a blob is half written."""
    src = manifest_source(mirror_dir, "workflows-crd", ARGO, BIG)
    store = BlobStore(cache / "blobs" / "sha256")
    here = str(Path(__file__).parent)
    with serve(mirror_dir, break_suffixes=(BIG,), break_mode="hang") as (url, _):
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(mirror_dir), url, here],
                                 env={**os.environ, "KUBEFORGE_CACHE": str(cache)})
        deadline = time.monotonic() + 30
        tmp = []
        while not tmp and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
            tmp = [p for p in store.path(src.sha256).parent.glob(".*.tmp")
                   if p.stat().st_size > 0] if store.path(src.sha256).parent.exists() else []
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert tmp, "the child never started writing the blob"
    assert not store.path(src.sha256).exists()
    assert file_sha256(tmp[0]) != src.sha256      # the leftover is partial, and nothing reads it
    result = sync([src], mirror_dir)
    assert file_sha256(result["workflows-crd"]) == src.sha256
    assert store.valid(src.sha256)
    assert not tmp[0].exists()                    # the dead writer's leftover was swept


def test_corrupted_blob_is_detected_and_refetched(cache, mirror_dir, tmp_path):
    src = kustomize_source(mirror_dir, "katib", *KATIB)
    result = sync([src], mirror_dir)
    kfile = result["katib"] / "kustomization.yaml"
    sha = file_sha256(kfile)
    blob = BlobStore(cache / "blobs" / "sha256").path(sha)
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as fh:                 # in place, as bit rot or a stray write would
        fh.write(b"#")
    # Detected: the warm path sees the changed file and the slow path must refetch it, which an
    # empty mirror cannot serve.
    empty = tmp_path / "empty"
    (empty / "github").mkdir(parents=True)
    with pytest.raises(KubeforgeError) as e:
        sync([src], empty)
    assert "installs/katib-standalone/kustomization.yaml is missing" in e.value.message
    result = sync([src], mirror_dir)
    assert file_sha256(result["katib"] / "kustomization.yaml") == sha
    assert BlobStore(cache / "blobs" / "sha256").valid(sha)
    _assert_materialized(result, [src])


def test_verify_rehashes_what_the_stat_check_cannot_see(cache, mirror_dir):
    src = manifest_source(mirror_dir, "local-path", *MANIFESTS["local-path"])
    result = sync([src], mirror_dir)
    p = result["local-path"]
    st = p.stat()
    os.chmod(p, 0o644)
    data = bytearray(p.read_bytes())
    data[0] ^= 1
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: invisible to stat
    assert file_sha256(sync([src], mirror_dir)["local-path"]) != src.sha256
    assert file_sha256(sync([src], mirror_dir, verify=True)["local-path"]) == src.sha256


def test_cache_hit_does_not_read_the_mirror(cache, mirror_dir, tmp_path):
    srcs = default_sources(mirror_dir)
    first = sync(srcs, mirror_dir)
    nowhere = tmp_path / "no-such-mirror"
    assert sync(srcs, nowhere) == first                        # warm path: stamp hit
    assert sync(srcs, "http://127.0.0.1:9/unreachable") == first
    # A new sync set (a subset) takes the slow path, but every blob verifies: still no mirror.
    subset = [s for s in srcs if s.id in ("cert-manager", "katib", "local-path")]
    assert sync(subset, nowhere) == {s.id: first[s.id] for s in subset}
    with serve(tmp_path) as (url, requests):
        sync(srcs[1:], url, verify=True)
    assert requests == []


def test_unsafe_paths_in_a_lock_are_refused(cache, mirror_dir):
    good = kustomize_source(mirror_dir, "katib", *KATIB)
    files = tuple(sorted(good.files + (("../../escape.yaml", "0" * 64),)))
    bad = type(good)(**{**good.__dict__, "files": files, "sha256": tree_hash(files)})
    with pytest.raises(KubeforgeError) as e:
        sync([bad], mirror_dir)
    assert "../../escape.yaml" in e.value.message
    assert not cache.exists()
