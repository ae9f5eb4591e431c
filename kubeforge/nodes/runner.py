"""Run a node playbook through ansible-runner and collect a per-host result.

The inventory is checked (kubeforge.nodes.inventory) before ansible-runner starts, so a bad
inventory never reaches a host. Progress is reported per event to an `on_event(host, task, status)`
callback; the result keeps every host's counts and its first failure, so one failed or unreachable
host never hides the others.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubeforge.errors import KubeforgeError
from kubeforge.nodes.inventory import check_inventory

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"
PLAYBOOKS = REPO / "playbooks"
ANSIBLE_CFG = REPO / "ansible.cfg"
PLAYBOOK_FILES = {"site": "site.yml", "validate": "validate.yml", "upgrade-driver": "upgrade-driver.yml",
                  "reset": "reset.yml"}
# The preflight entry point of every role: a failure there is a bad variable, not a node problem.
ARGSPEC_TASK = "Validating arguments against arg spec"
_STATUS = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_unreachable": "unreachable",
           "runner_on_skipped": "skipped", "runner_item_on_failed": "failed"}


def collections_path() -> str:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kubeforge" / "ansible"
    return os.pathsep.join([str(cache / "collections"), str(Path.home() / ".ansible/collections"),
                            "/usr/share/ansible/collections"])


@dataclass
class HostResult:
    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    first_failure: str | None = None   # "task: message"

    @property
    def status(self) -> str:
        if not (self.ok or self.changed or self.failed or self.unreachable or self.skipped):
            return "not run"
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "changed" if self.changed else "ok"

    def as_dict(self) -> dict:
        return {"host": self.host, "status": self.status, "ok": self.ok, "changed": self.changed,
                "failed": self.failed, "unreachable": self.unreachable, "skipped": self.skipped,
                "failure": self.first_failure}


@dataclass
class RunResult:
    playbook: str
    check: bool
    rc: int
    hosts: dict[str, HostResult] = field(default_factory=dict)
    bad_variables: list[str] = field(default_factory=list)   # argument-spec failures (before any connection)
    tasks_run: list[tuple[str, str]] = field(default_factory=list)   # (host, task) that reported a result

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not any(h.failed or h.unreachable for h in self.hosts.values())

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())

    def as_dict(self) -> dict:
        return {"playbook": self.playbook, "check": self.check, "ok": self.ok, "rc": self.rc,
                "changed": self.changed, "hosts": [self.hosts[h].as_dict() for h in sorted(self.hosts)],
                "bad_variables": self.bad_variables}


def _message(res: dict) -> str:
    msg = res.get("msg") or res.get("stderr") or res.get("module_stderr") or res.get("reason") or ""
    if not msg and res.get("results"):
        msg = next((_message(r) for r in res["results"] if r.get("failed")), "")
    return " ".join(str(msg).split())[:500]


def run_playbook(inventory: Path, playbook: str, *, check: bool = False, diff: bool = False,
                 extravars: dict | None = None, limit: str | None = None,
                 on_event: Callable[[str, str, str], None] | None = None,
                 private_dir: Path | None = None, env: dict[str, str] | None = None) -> RunResult:
    """Check the inventory, then run playbooks/<playbook>.yml with ansible-runner."""
    if playbook not in PLAYBOOK_FILES:
        raise KubeforgeError(f"unknown playbook {playbook!r}", field="playbook",
                             fix=f"one of {', '.join(PLAYBOOK_FILES)}")
    inv = check_inventory(Path(inventory), playbook, ROLES, extravars)
    if not shutil.which("ansible-playbook", path=_path()):
        raise KubeforgeError("ansible-playbook is not installed", fix="pip install ansible-core ansible-runner")
    import ansible_runner  # heavy: only when a run really starts

    own_dir = private_dir is None
    pdd = Path(private_dir or tempfile.mkdtemp(prefix="kubeforge-nodes-"))
    pdd.mkdir(parents=True, exist_ok=True)
    result = RunResult(playbook=playbook, check=check, rc=0)

    def handler(event: dict) -> bool:
        data = event.get("event_data") or {}
        status = _STATUS.get(event.get("event", ""))
        host = data.get("host")
        if not status or not host:
            return True
        task = data.get("task") or ""
        res = data.get("res") or {}
        h = result.hosts.setdefault(host, HostResult(host))
        if status in ("failed", "unreachable") and not data.get("ignore_errors"):
            if task.startswith(ARGSPEC_TASK):
                result.bad_variables.append(f"{host}: {_message(res)}")
            elif h.first_failure is None:
                h.first_failure = f"{task}: {_message(res)}"
        if status != "skipped":
            result.tasks_run.append((host, task))
        if on_event:
            on_event(host, task, "changed" if status == "ok" and res.get("changed") else status)
        return True

    cmdline = []
    if check:
        cmdline.append("--check")
    if diff or check:
        cmdline.append("--diff")
    envvars = {"ANSIBLE_CONFIG": str(ANSIBLE_CFG), "ANSIBLE_ROLES_PATH": str(ROLES),
               "ANSIBLE_COLLECTIONS_PATH": collections_path(), "PATH": _path(),
               "ANSIBLE_RETRY_FILES_ENABLED": "false", **(env or {})}
    try:
        r = ansible_runner.run(
            private_data_dir=str(pdd), playbook=str(PLAYBOOKS / PLAYBOOK_FILES[playbook]),
            # The hosts file, not its folder: Ansible would read the artifacts folder's files as inventory.
            inventory=str(inv.hosts_file),
            envvars=envvars, extravars=extravars or {}, cmdline=" ".join(cmdline) or None, limit=limit,
            event_handler=handler, quiet=True, suppress_env_files=True, project_dir=str(REPO))
        result.rc = int(r.rc or 0)
        stats = r.stats or {}
        for key, attr in (("ok", "ok"), ("changed", "changed"), ("failures", "failed"), ("dark", "unreachable"),
                          ("skipped", "skipped")):
            for host, n in (stats.get(key) or {}).items():
                setattr(result.hosts.setdefault(host, HostResult(host)), attr, n)
        for host in inv.all_hosts:   # hosts the play never reached still belong in the table
            if limit is None:
                result.hosts.setdefault(host, HostResult(host))
        if limit is None and all(h.status == "not run" for h in result.hosts.values()):
            out = ""
            try:
                out = r.stdout.read()[-2000:]
            except (AttributeError, OSError, ValueError):
                pass
            raise KubeforgeError(f"ansible-playbook (rc {result.rc}) ran no host: {out.strip()[-800:]}",
                                 file=str(inv.hosts_file), fix="check the inventory's groups and host names")
    finally:
        if own_dir:
            shutil.rmtree(pdd, ignore_errors=True)
    return result


def _path() -> str:
    # ansible-playbook sits beside this interpreter in a virtualenv.
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
