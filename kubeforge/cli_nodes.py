"""`kubeforge nodes`: prepare, check, validate, upgrade and reset bare-metal GPU nodes with Ansible.

Imports stay cheap at module level (the CLI starts in well under 0.5 s); kubeforge.nodes, rich and
ansible-runner load only when a command runs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from kubeforge.errors import CheckFailed, KubeforgeError

INVENTORY_HELP = "inventory folder (with hosts.yml and group_vars/) or hosts.yml"


def _extravars(pairs: list[str]) -> dict:
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise KubeforgeError(f"-e {pair!r} is not NAME=VALUE", field="-e", fix="write -e name=value")
        name, value = pair.split("=", 1)
        try:
            out[name] = json.loads(value)   # numbers, true/false, lists
        except ValueError:
            out[name] = value
    return out


class _Progress:
    """Live per-host view: current task and running counts (a TTY), or one line per change/failure."""

    def __init__(self, title: str, enabled: bool):
        self.title = title
        self.enabled = enabled
        self.rows: dict[str, dict] = {}
        self.live = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(self._table(), console=Console(stderr=True), refresh_per_second=4, transient=True)

    def _table(self):
        from rich.table import Table

        t = Table(title=self.title, expand=False)
        for col in ("host", "task", "ok", "changed", "failed", "unreachable"):
            t.add_column(col)
        for host in sorted(self.rows):
            r = self.rows[host]
            t.add_row(host, r["task"][:60], str(r["ok"]), str(r["changed"]), str(r["failed"]), str(r["unreachable"]))
        return t

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)

    def event(self, host: str, task: str, status: str) -> None:
        r = self.rows.setdefault(host, {"task": "", "ok": 0, "changed": 0, "failed": 0, "unreachable": 0})
        r["task"] = task
        if status in r:
            r[status] += 1
        if status == "changed":
            r["ok"] += 1
        if self.live:
            self.live.update(self._table())
        elif self.enabled and status in ("changed", "failed", "unreachable"):
            print(f"{host}: {status}: {task}", file=sys.stderr, flush=True)


def _summary(result) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{result.playbook}{' (check mode)' if result.check else ''}")
    for col in ("host", "status", "ok", "changed", "failed", "unreachable", "first failure"):
        t.add_column(col)
    for host in sorted(result.hosts):
        h = result.hosts[host]
        style = {"failed": "red", "unreachable": "red", "changed": "yellow"}.get(h.status, "")
        t.add_row(host, f"[{style}]{h.status}[/]" if style else h.status, str(h.ok), str(h.changed),
                  str(h.failed), str(h.unreachable), h.first_failure or "")
    Console().print(t)


def _run(playbook: str, inventory: Path, *, check: bool = False, extra: list[str] | None = None,
         limit: str | None = None, as_json: bool = False, quiet: bool = False) -> int:
    from kubeforge.nodes import run_playbook

    extravars = _extravars(extra or [])
    progress = _Progress(f"kubeforge nodes: {playbook}", enabled=not (as_json or quiet))
    with progress:
        result = run_playbook(inventory, playbook, check=check, diff=check, extravars=extravars, limit=limit,
                              on_event=progress.event)
    if result.bad_variables:
        raise KubeforgeError("invalid role variables (no host was touched):\n  "
                             + "\n  ".join(dict.fromkeys(result.bad_variables)),
                             file=str(inventory), fix="fix the variables named above in the inventory's group_vars")
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        _summary(result)
    if not result.ok:
        bad = [h for h in sorted(result.hosts) if result.hosts[h].status in ("failed", "unreachable")]
        raise CheckFailed(f"{playbook} failed on {', '.join(bad) or 'the run'} (ansible rc {result.rc})",
                          file=str(inventory))
    return 0


def register(app: typer.Typer) -> None:
    nodes = typer.Typer(help="Prepare bare-metal GPU nodes (driver, toolkit, containerd, kubeadm) with Ansible.",
                        no_args_is_help=True)
    inv_opt = typer.Option(..., "-i", "--inventory", help=INVENTORY_HELP)
    extra_opt = typer.Option(None, "-e", "--extra-var", help="NAME=VALUE (repeatable; JSON values allowed)")
    limit_opt = typer.Option(None, "--limit", "-l", help="only these hosts or groups (Ansible pattern)")
    json_opt = typer.Option(False, "--json", help="print the per-host result as JSON")
    quiet_opt = typer.Option(False, "--quiet", "-q", help="no live progress")

    @nodes.command("apply")
    def apply(inventory: Path = inv_opt, extra: list[str] = extra_opt, limit: str = limit_opt,
              as_json: bool = json_opt, quiet: bool = quiet_opt) -> int:
        """Prepare the nodes and form the cluster (playbooks/site.yml)."""
        return _run("site", inventory, extra=extra, limit=limit, as_json=as_json, quiet=quiet)

    @nodes.command("check")
    def check(inventory: Path = inv_opt, extra: list[str] = extra_opt, limit: str = limit_opt,
              as_json: bool = json_opt, quiet: bool = quiet_opt) -> int:
        """Show what apply would change (check mode with diff); changes nothing."""
        return _run("site", inventory, check=True, extra=extra, limit=limit, as_json=as_json, quiet=quiet)

    @nodes.command("validate")
    def validate(inventory: Path = inv_opt, extra: list[str] = extra_opt, limit: str = limit_opt,
                 as_json: bool = json_opt, quiet: bool = quiet_opt) -> int:
        """Check GPU nodes against their pins; JSON report per host in <artifacts>/validate/."""
        return _run("validate", inventory, extra=extra, limit=limit, as_json=as_json, quiet=quiet)

    @nodes.command("upgrade-driver")
    def upgrade_driver(inventory: Path = inv_opt, extra: list[str] = extra_opt, limit: str = limit_opt,
                       as_json: bool = json_opt, quiet: bool = quiet_opt) -> int:
        """Upgrade the NVIDIA driver to the pin, one node at a time (drain, upgrade, validate, uncordon)."""
        return _run("upgrade-driver", inventory, extra=extra, limit=limit, as_json=as_json, quiet=quiet)

    @nodes.command("reset")
    def reset(inventory: Path = inv_opt, remove_gpu_stack: bool = typer.Option(
                  False, "--remove-gpu-stack", help="also remove the container toolkit and the driver"),
              extra: list[str] = extra_opt, limit: str = limit_opt, as_json: bool = json_opt,
              quiet: bool = quiet_opt) -> int:
        """Undo the cluster on the nodes (playbooks/reset.yml)."""
        extra = list(extra or []) + (["reset_remove_gpu_stack=true"] if remove_gpu_stack else [])
        return _run("reset", inventory, extra=extra, limit=limit, as_json=as_json, quiet=quiet)

    app.add_typer(nodes, name="nodes")
