"""The cluster-onprem stack (stacks/cluster-onprem/__main__.py calls `main()`).

One resource, `pulumi-python:dynamic/kubeforge:NodePlaybook`, runs playbooks/site.yml over the inventory with
ansible-runner (a Pulumi dynamic provider) and exports the fetched admin kubeconfig as a secret
for stacks/platform. Its `triggers` are content hashes of the inventory (hosts + group_vars +
host_vars), the roles and the playbooks: any change there re-runs the playbook on the next
`pulumi up`, and nothing else does (the fetched artifacts under the inventory are excluded).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError

NS = "kubeforge"
KEYS = ("inventory", "playbook", "roles", "artifactsDir", "extraVars", "limit")
# Relative to the stack directory (stacks/cluster-onprem).
DEFAULTS = {"inventory": "../../inventory/onprem", "playbook": "../../playbooks/site.yml",
            "roles": "../../roles"}
_SKIP_DIRS = {"__pycache__", ".git", "artifacts"}
_SKIP_SUFFIXES = (".retry", ".pyc")


@dataclass
class OnpremSettings:
    inventory: Path          # directory with hosts.yml, group_vars/, host_vars/
    playbook: Path
    roles: Path
    artifacts: Path          # where the playbook fetches admin.conf (kubeforge_artifacts_dir)
    extra_vars: dict[str, Any] = field(default_factory=dict)
    limit: str | None = None

    @property
    def hosts_file(self) -> Path:
        for name in ("hosts.yml", "hosts.yaml", "hosts.ini", "hosts"):
            if (self.inventory / name).is_file():
                return self.inventory / name
        return self.inventory / "hosts.yml"


def parse_settings(config: dict[str, Any], *, base: Path, file: str) -> OnpremSettings:
    unknown = sorted(k for k in config if k not in KEYS)
    if unknown:
        raise KubeforgeError(f"unknown config key kubeforge:{unknown[0]}", file=file,
                             field=f"config.kubeforge:{unknown[0]}",
                             fix=f"use one of: {', '.join('kubeforge:' + k for k in KEYS)}")

    def path(key: str) -> Path:
        raw = str(config.get(key) or DEFAULTS[key])
        p = Path(os.path.expanduser(raw))
        return (p if p.is_absolute() else base / p).resolve()

    s = OnpremSettings(inventory=path("inventory"), playbook=path("playbook"), roles=path("roles"),
                       artifacts=Path("/"))
    if not s.hosts_file.is_file():
        raise KubeforgeError(f"no inventory at {s.inventory} (hosts.yml)", file=file,
                             field="config.kubeforge:inventory",
                             fix="point kubeforge:inventory at a directory with hosts.yml and group_vars/ "
                                 "(see inventory/onprem)")
    if not s.playbook.is_file():
        raise KubeforgeError(f"playbook {s.playbook} does not exist", file=file, field="config.kubeforge:playbook",
                             fix="point kubeforge:playbook at playbooks/site.yml")
    if not s.roles.is_dir():
        raise KubeforgeError(f"roles directory {s.roles} does not exist", file=file,
                             field="config.kubeforge:roles", fix="point kubeforge:roles at the roles/ folder")
    art = config.get("artifactsDir")
    s.artifacts = (base / os.path.expanduser(art)).resolve() if art else s.inventory / "artifacts"
    ev = config.get("extraVars") or {}
    if not isinstance(ev, dict):
        raise KubeforgeError("kubeforge:extraVars must be a mapping", file=file, field="config.kubeforge:extraVars",
                             fix="e.g. kubeforge:extraVars: {kubernetes_version: '1.34'}")
    s.extra_vars = ev
    s.limit = config.get("limit") or None
    return s


def tree_hash(root: Path, exclude: tuple[Path, ...] = ()) -> str:
    """sha256 over "<sha256>  <relative path>" of every file below root (sorted), minus excluded trees."""
    lines = []
    excl = [e.resolve() for e in exclude]
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if n not in _SKIP_DIRS and (d / n).resolve() not in excl)
        for name in sorted(filenames):
            if name.endswith(_SKIP_SUFFIXES):
                continue
            p = d / name
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}\n")
    return hashlib.sha256("".join(sorted(lines, key=lambda x: x.split("  ", 1)[1])).encode()).hexdigest()


def triggers(s: OnpremSettings) -> dict[str, str]:
    """What re-runs the playbook when it changes. Paths do not count (moving the checkout is no change)."""
    return {
        "inventory": tree_hash(s.inventory, exclude=(s.artifacts,)),
        "roles": tree_hash(s.roles),
        "playbooks": tree_hash(s.playbook.parent),
        "extraVars": hashlib.sha256(json.dumps(s.extra_vars, sort_keys=True).encode()).hexdigest(),
        "limit": s.limit or "",
    }


def run_playbook(props: dict[str, Any]) -> str:
    """Run the playbook with ansible-runner; return the fetched admin kubeconfig."""
    import tempfile

    import ansible_runner

    artifacts = Path(props["artifactsDir"])
    extravars = {**props.get("extraVars", {}), "kubeforge_artifacts_dir": str(artifacts)}
    env = {"ANSIBLE_ROLES_PATH": props["roles"], "ANSIBLE_HOST_KEY_CHECKING": "False"}
    with tempfile.TemporaryDirectory(prefix="kubeforge-runner-") as pdd:
        r = ansible_runner.run(private_data_dir=pdd, playbook=props["playbook"], inventory=props["hostsFile"],
                               extravars=extravars, envvars=env, limit=props.get("limit") or None,
                               quiet=True, json_mode=False)
        if r.rc != 0:
            failed = sorted({e.get("event_data", {}).get("host", "?") for e in r.events
                             if e.get("event") in ("runner_on_failed", "runner_on_unreachable")})
            tail = (r.stdout.read() if hasattr(r.stdout, "read") else "")[-2000:]
            raise RuntimeError(f"playbook {props['playbook']} failed (rc {r.rc}; hosts: "
                               f"{', '.join(failed) or 'none reported'})\n{tail}")
    conf = artifacts / "admin.conf"
    if not conf.is_file():
        raise RuntimeError(f"the playbook succeeded but fetched no kubeconfig to {conf}")
    return conf.read_text()


def _provider_class():
    import pulumi.dynamic as dyn

    class AnsiblePlaybookProvider(dyn.ResourceProvider):
        """Create and update run the playbook; diff compares only the triggers and run options."""

        _COMPARED = ("triggers", "extraVars", "limit")

        def create(self, props):
            return dyn.CreateResult(id_=props["name"], outs={**props, "kubeconfig": run_playbook(props)})

        def diff(self, _id, olds, news):
            changed = [k for k in self._COMPARED if olds.get(k) != news.get(k)]
            return dyn.DiffResult(changes=bool(changed), replaces=[], stables=["name"],
                                  delete_before_replace=False)

        def update(self, _id, _olds, news):
            return dyn.UpdateResult(outs={**news, "kubeconfig": run_playbook(news)})

        def delete(self, _id, _props):
            # The nodes stay as they are: wiping machines is `kubeforge nodes reset`, never a side
            # effect of removing a stack.
            return None

    return AnsiblePlaybookProvider


def node_playbook(name: str, s: OnpremSettings, opts=None):
    import pulumi
    import pulumi.dynamic as dyn

    class NodePlaybook(dyn.Resource, module="kubeforge", name="NodePlaybook"):
        kubeconfig: pulumi.Output[str]
        triggers: pulumi.Output[dict]

        def __init__(self, rname: str, props: dict[str, Any], opts=None):
            super().__init__(_provider_class()(), rname, {**props, "kubeconfig": None}, opts)

    props = {"name": name, "playbook": str(s.playbook), "hostsFile": str(s.hosts_file), "roles": str(s.roles),
             "artifactsDir": str(s.artifacts), "extraVars": s.extra_vars, "limit": s.limit or "",
             "triggers": triggers(s)}
    return NodePlaybook(name, props, pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])))


def main() -> None:
    """The program; bad input is reported by Pulumi as one message (RunError), not a traceback."""
    import pulumi

    try:
        _main()
    except KubeforgeError as exc:
        raise pulumi.RunError(exc.render()) from None


def _main() -> None:
    import pulumi

    cfg = pulumi.Config(NS)
    config: dict[str, Any] = {}
    for key in KEYS:
        raw = cfg.get(key)
        if raw is not None:
            config[key] = json.loads(raw) if key == "extraVars" else raw
    s = parse_settings(config, base=Path.cwd(), file=f"Pulumi.{pulumi.get_stack()}.yaml")
    nodes = node_playbook("nodes", s)
    pulumi.export("kubeconfig", pulumi.Output.secret(nodes.kubeconfig))
    pulumi.export("triggers", nodes.triggers)
