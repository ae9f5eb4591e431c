"""Fixtures of the Pulumi tests: a stand-in `pulumi` executable and a throwaway kubeconfig."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: test
  user: {token: not-a-real-token}
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
"""


class StandinPulumi:
    """A STAND-IN `pulumi` on PATH that records its invocations (see standin_pulumi.py)."""

    def __init__(self, root: Path):
        self.bin = root / "bin"
        self.log = root / "pulumi-calls.jsonl"
        self.events = root / "events.json"
        self.backend = root / "state"

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        """Arguments without the global --non-interactive the Automation API always passes."""
        return [[a for a in c["argv"] if a != "--non-interactive"] for c in self.calls()]

    def operations(self) -> list[str]:
        """Calls that would change or read a stack (anything but `version`)."""
        return [" ".join(a[:2]) for a in self.argvs() if a != ["version"]]


@pytest.fixture
def standin_pulumi(tmp_path, monkeypatch) -> StandinPulumi:
    s = StandinPulumi(tmp_path / "standin")
    s.bin.mkdir(parents=True)
    s.backend.mkdir()
    exe = s.bin / "pulumi"
    exe.write_text(f"#!{sys.executable}\nimport runpy, sys\n"
                   f"sys.argv[0] = {str(HERE / 'standin_pulumi.py')!r}\n"
                   f"runpy.run_path(sys.argv[0], run_name='__main__')\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{s.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_PULUMI_LOG", str(s.log))
    monkeypatch.setenv("PULUMI_BACKEND_URL", s.backend.as_uri())
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test-passphrase")
    return s


@pytest.fixture
def kubeconfig_file(tmp_path) -> Path:
    p = tmp_path / "admin.conf"
    p.write_text(KUBECONFIG)
    return p


@pytest.fixture
def no_pulumi(tmp_path, monkeypatch):
    """PATH without any `pulumi` and a HOME without ~/.pulumi/bin."""
    bindir = tmp_path / "nopulumi-bin"
    bindir.mkdir()
    for tool in ("python3", "sh"):
        src = Path(sys.executable) if tool == "python3" else Path("/bin/sh")
        (bindir / tool).symlink_to(src)
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
