"""sources.lock files are read without YAML when they have write_lock's plain shape: the result
must be what YAML reads, for every shipped lock and for the shapes that need YAML."""
from __future__ import annotations

import pytest
import yaml

from kubeforge.lockfile import _read_plain_lock, read_lock, write_lock


def _yaml(path):
    data = yaml.safe_load(path.read_text()) or {}
    return {sid: [(f["path"], f["sha256"]) for f in files] for sid, files in data.items()}


def test_every_shipped_lock_reads_as_yaml_reads_it_without_yaml(repo_root):
    locks = sorted((repo_root / "components").glob("*/sources.lock"))
    assert len(locks) > 10
    for p in locks:
        assert _read_plain_lock(p.read_text()) is not None, f"{p} is not in write_lock's plain shape"
        assert read_lock(p) == _yaml(p), p


SHA = "a" * 64


@pytest.mark.parametrize("path", ["123", "true", "null", "a b.yaml", "- odd.yaml", "#x.yaml", "'q'.yaml",
                                  "x: y.yaml", "dir/v1.0/file.yaml", "@at.yaml"])
def test_paths_yaml_would_quote_round_trip(tmp_path, path):
    """write_lock's YAML quotes what plain YAML would misread; read_lock gives back the same path."""
    lock = tmp_path / "sources.lock"
    write_lock(lock, {"src@v1.11.0": [(path, SHA)], "other": [("plain/file.yaml", SHA)]})
    assert read_lock(lock) == {"src@v1.11.0": [(path, SHA)], "other": [("plain/file.yaml", SHA)]}
    assert read_lock(lock) == _yaml(lock)


@pytest.mark.parametrize("text", [
    "src:\n- path: a.yaml\n",                          # a path without its sha256
    "src:\n  sha256: " + SHA + "\n",                    # a sha256 without a path
    "- path: a.yaml\n  sha256: " + SHA + "\n",          # no source id
    "src:\n- path: a.yaml\n  sha256: ABC\n",            # not a sha256
])
def test_anything_else_is_left_to_yaml(text):
    assert _read_plain_lock(text) is None
