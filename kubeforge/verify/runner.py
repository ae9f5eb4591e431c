"""Run checks in dependency order, in parallel where independent, each under its own timeout."""
from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from kubeforge.verify.checks import Check

PASSED, FAILED, SKIPPED, PENDING, RUNNING = "passed", "failed", "skipped", "pending", "running"
GRACE_S = 30.0   # a check past its timeout gets this long to notice its cancel flag


@dataclass
class Result:
    name: str
    component: str
    kind: str
    status: str = PENDING
    message: str = ""
    duration_s: float = 0.0
    kept_namespaces: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scheduler:
    """make_ctx(check, cancel_event) -> the CheckContext the check runs with."""

    def __init__(self, checks: list[Check], make_ctx: Callable[[Check, threading.Event], Any],
                 workers: int = 4, on_change: Callable[[Result], None] | None = None):
        self.checks = {c.name: c for c in checks}
        self.order = [c.name for c in checks]
        self.results = {c.name: Result(c.name, c.component, c.kind) for c in checks}
        self.make_ctx = make_ctx
        self.workers = max(1, workers)
        self.on_change = on_change or (lambda r: None)
        self._done = {n: threading.Event() for n in self.order}
        self._thread: threading.Thread | None = None

    # -- public ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="kubeforge-verify", daemon=True)
        self._thread.start()

    def result(self, name: str) -> Result:
        self._done[name].wait()
        return self.results[name]

    def run_all(self) -> list[Result]:
        self.start()
        for n in self.order:
            self._done[n].wait()
        return [self.results[n] for n in self.order]

    # -- internals -------------------------------------------------------------------------
    def _finish(self, name: str, status: str, message: str = "", duration: float = 0.0,
                kept: list[str] | None = None) -> None:
        r = self.results[name]
        r.status, r.message, r.duration_s = status, message, round(duration, 2)
        r.kept_namespaces = kept or []
        self.on_change(r)
        self._done[name].set()

    def _blocked_by(self, check: Check) -> str | None:
        for need in check.needs:
            if need in self.results and self.results[need].status in (FAILED, SKIPPED):
                return f"needs {need}, which {self.results[need].status}"
        return None

    def _ready(self, check: Check) -> bool:
        deps = [d for d in check.needs + check.after if d in self._done]
        return all(self._done[d].is_set() for d in deps)

    def _run_one(self, check: Check, cancel: threading.Event) -> tuple[str, str, list[str]]:
        ctx = None
        try:
            ctx = self.make_ctx(check, cancel)
            note = check.fn(ctx)
            return PASSED, str(note or ""), ctx.kept
        except AssertionError as exc:  # CheckError and plain asserts in checks
            return FAILED, str(exc) or "assertion failed", getattr(ctx, "kept", [])
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            text = str(getattr(exc, "body", "") or exc)[:1000]
            return (FAILED, f"{type(exc).__name__} at {where.filename.rsplit('/', 1)[-1]}:{where.lineno}: {text}",
                    getattr(ctx, "kept", []))

    def _loop(self) -> None:
        pending = list(self.order)
        running: dict[Future, tuple[str, float, threading.Event]] = {}
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="check") as pool:
            while pending or running:
                for name in list(pending):
                    check = self.checks[name]
                    if check.skip_reason:
                        pending.remove(name)
                        self._finish(name, SKIPPED, check.skip_reason)
                        continue
                    if not self._ready(check) or len(running) >= self.workers:
                        continue
                    pending.remove(name)
                    blocked = self._blocked_by(check)
                    if blocked:
                        self._finish(name, SKIPPED, blocked)
                        continue
                    cancel = threading.Event()
                    self.results[name].status = RUNNING
                    self.on_change(self.results[name])
                    running[pool.submit(self._run_one, check, cancel)] = (name, time.monotonic(), cancel)
                if not running:
                    if pending and not any(self._ready(self.checks[n]) for n in pending):
                        for n in pending:  # unreachable: a dependency cycle (cannot happen from a plan)
                            self._finish(n, SKIPPED, "dependencies never finished")
                        pending.clear()
                    continue
                done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
                now = time.monotonic()
                for fut in done:
                    name, started, _cancel = running.pop(fut)
                    if self._done[name].is_set():
                        continue  # already reported as timed out
                    status, message, kept = fut.result()
                    self._finish(name, status, message, now - started, kept)
                for fut, (name, started, cancel) in list(running.items()):
                    timeout = self.checks[name].timeout
                    if now - started > timeout and not cancel.is_set():
                        cancel.set()  # its waits and sleeps raise at the next poll
                    if now - started > timeout + GRACE_S and not self._done[name].is_set():
                        self._finish(name, FAILED, f"timed out after {timeout:.0f}s", now - started)
                        running.pop(fut)


def summary(results: list[Result]) -> dict[str, Any]:
    """The JSON summary: ok, per-check results, failures."""
    failures = [r.name for r in results if r.status == FAILED]
    return {
        "ok": not failures,
        "counts": {s: sum(1 for r in results if r.status == s) for s in (PASSED, FAILED, SKIPPED)},
        "results": [r.as_dict() for r in results],
        "failures": failures,
    }
