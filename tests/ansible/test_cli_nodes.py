"""`kubeforge nodes` command surface: sub-commands, -e parsing, progress counting (no hosts needed)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from kubeforge.cli_nodes import _extravars, _Progress
from kubeforge.errors import KubeforgeError


def test_nodes_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "kubeforge.cli", "nodes", "--help"], capture_output=True,
                         text=True, timeout=60, env={"COLUMNS": "120", "PATH": ""}).stdout
    for cmd in ("apply", "check", "validate", "upgrade-driver", "reset"):
        assert cmd in out


def test_extra_vars_take_json_values_and_plain_strings():
    assert _extravars(["a=8", "b=true", "c=580.159.04", "d=[1, 2]", "e=x=y"]) == {
        "a": 8, "b": True, "c": "580.159.04", "d": [1, 2], "e": "x=y"}
    with pytest.raises(KubeforgeError, match="not NAME=VALUE"):
        _extravars(["novalue"])


def test_progress_counts_per_host(capsys):
    p = _Progress("t", enabled=True)   # not a TTY here: one line per change or failure
    with p:
        p.event("h1", "Install", "changed")
        p.event("h1", "Hold", "ok")
        p.event("h2", "Install", "failed")
        p.event("h3", "Gathering Facts", "unreachable")
    assert p.rows["h1"] == {"task": "Hold", "ok": 2, "changed": 1, "failed": 0, "unreachable": 0}
    assert p.rows["h2"]["failed"] == 1 and p.rows["h3"]["unreachable"] == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["h1: changed: Install", "h2: failed: Install", "h3: unreachable: Gathering Facts"]
