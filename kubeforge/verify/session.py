"""`kubeforge verify`: profile -> plan -> rendered objects -> checks -> pytest run -> reports.

Everything that can be wrong with the input (profile, check names, inventory, kubeconfig, cluster
reachability, the profile not being installed) is found before the first check runs: exit 2.
"""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError

SUITE_DIR = Path(__file__).resolve().parent / "suite"


def prepare(profile_name: str, *, only: list[str] | None = None, inventory: str | None = None,
            mirror: str | None = None, overrides: dict | None = None) -> tuple[Any, Any, list]:
    """(plan, rendered, checks) offline: everything verify needs before it touches a cluster."""
    from kubeforge import api
    from kubeforge.lifecycle.rendered import render_available
    from kubeforge.verify.checks import collect, select

    if inventory and not Path(inventory).exists():
        raise KubeforgeError("the inventory does not exist", file=inventory, field="--inventory",
                             fix="pass the path of an Ansible inventory (e.g. inventory/onprem/hosts.yml)")
    plan = api.plan(api.load_profile(profile_name, overrides))
    rendered, _helm_only = render_available(plan, mirror=mirror)
    checks = select(collect(plan, rendered, inventory), only)
    return plan, rendered, checks


def pytest_args(junit: str | None = None) -> list[str]:
    """pytest over the shipped suite only: no project ini (-c devnull), no terminal output (the
    progress view is ours), JUnit XML when asked."""
    import os

    args = [str(SUITE_DIR), "-c", os.devnull, "--rootdir", str(SUITE_DIR), "-p", "no:cacheprovider",
            "-p", "no:terminal", "-o", "junit_family=xunit2", "-o", "junit_suite_name=kubeforge-verify"]
    if junit:
        args.append(f"--junitxml={junit}")
    return args


def verify(profile_name: str, *, kubeconfig: str | None = None, inventory: str | None = None,
           junit: str | None = None, json_out: str | None = None, keep_on_failure: bool = False,
           only: list[str] | None = None, workers: int = 4, mirror: str | None = None,
           progress: bool = True) -> dict[str, Any]:
    """Run the suite; returns the JSON summary ({ok, counts, results, failures})."""
    import pytest

    from kubeforge.verify.cluster import connect, require_installed
    from kubeforge.verify.context import CheckContext
    from kubeforge.verify.plugin import VerifyPlugin
    from kubeforge.verify.runner import Scheduler, summary

    plan, rendered, checks = prepare(profile_name, only=only, inventory=inventory, mirror=mirror)
    cluster = connect(kubeconfig)
    require_installed(cluster, plan)

    def make_ctx(chk: Any, cancel: threading.Event) -> CheckContext:
        objs = rendered.components[chk.component].objects if chk.component in rendered.components else []
        ctx = CheckContext(cluster=cluster, plan=plan, component=chk.component, objects=objs,
                           timeout=chk.timeout, keep_on_failure=keep_on_failure, cancel=cancel)
        return ctx

    # With the JSON summary on stdout (progress=False), the per-check lines go to stderr.
    view = Progress(checks, live=progress and sys.stdout.isatty(), stderr=not progress)
    scheduler = Scheduler(checks, make_ctx, workers=workers, on_change=view.update)
    with view:
        rc = pytest.main(pytest_args(junit), plugins=[VerifyPlugin(scheduler)])
    results = [scheduler.results[n] for n in scheduler.order]
    out = summary(results)
    out["profile"] = plan.profile.name
    out["cluster"] = cluster.server
    if rc not in (0, 1) and not (rc == 5 and not checks):  # pytest broke (internal error, interrupted)
        raise KubeforgeError(f"the pytest run ended with exit code {rc}", field="verify",
                             fix="rerun with the same arguments; report it if it persists")
    if json_out:
        Path(json_out).write_text(json.dumps(out, indent=2) + "\n")
    view.final(out)
    return out


class Progress:
    """A live table on a terminal; one line per finished check otherwise (CI logs)."""

    STYLE = {"passed": "green", "failed": "red", "skipped": "yellow", "running": "cyan", "pending": "dim"}

    def __init__(self, checks: list, live: bool, stderr: bool = False):
        from rich.console import Console

        self.checks = checks
        self.rows: dict[str, Any] = {}
        self.console = Console(stderr=stderr)
        self.live = None
        self._lock = threading.Lock()
        if live:
            from rich.live import Live

            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)

    def _table(self) -> Any:
        from rich.table import Table

        t = Table(title="kubeforge verify", expand=False)
        for col in ("check", "kind", "status", "time", "detail"):
            t.add_column(col, overflow="fold")
        for c in self.checks:
            r = self.rows.get(c.name)
            status = r.status if r else "pending"
            t.add_row(c.name, c.kind, f"[{self.STYLE[status]}]{status}[/]",
                      f"{r.duration_s:.0f}s" if r and r.duration_s else "", (r.message if r else "")[:120])
        return t

    def update(self, result: Any) -> None:
        with self._lock:
            self.rows[result.name] = result
            if self.live:
                self.live.update(self._table())
            elif result.status not in ("running", "pending"):
                self.console.print(f"[{self.STYLE[result.status]}]{result.status.upper():7}[/] "
                                   f"{result.name} ({result.duration_s:.1f}s) {result.message[:300]}",
                                   highlight=False, soft_wrap=True)

    def final(self, out: dict) -> None:
        c = out["counts"]
        verdict = "[green]OK[/]" if out["ok"] else "[red]FAILED[/]"
        self.console.print(f"{verdict}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped")
        for r in out["results"]:
            if r["status"] == "failed":
                self.console.print(f"  [red]{r['name']}[/]: {r['message']}", highlight=False, soft_wrap=True)
                for ns in r["kept_namespaces"]:
                    self.console.print(f"    kept namespace {ns} for inspection (kubectl -n {ns} get all)")

    def __enter__(self) -> Progress:
        if self.live:
            self.live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live:
            self.live.stop()
