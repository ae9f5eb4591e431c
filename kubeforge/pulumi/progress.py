"""Per-component progress of `kubeforge up | preview | destroy` from Pulumi engine events.

Plain code over duck-typed events (the Automation API's EngineEvent), so it is tested with
events built from JSON and needs no engine.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

COMPONENT_PREFIX = "kubeforge:component:"


def component_of(urn: str, names: dict[str, str], *, direct: bool = False) -> str | None:
    """The kubeforge component a resource URN belongs to (its parent-type chain names it);
    with direct=True only for the component's own children (not, e.g., a Helm chart's objects).

    urn:pulumi:dev::kubeforge-platform::kubeforge:component:CertManager$kubernetes:apps/v1:Deployment::ns/n
    """
    parts = urn.split("::")
    if len(parts) < 4:
        return None
    chain = parts[2].split("$")
    for i, seg in enumerate(chain):
        if seg.startswith(COMPONENT_PREFIX):
            if direct and i != len(chain) - 2:
                return None
            return names.get(seg, seg[len(COMPONENT_PREFIX):])
    return None


def _op(meta: Any) -> str:
    op = getattr(meta, "op", "")
    return str(getattr(op, "value", op) or "")


@dataclass
class _State:
    total: int
    done: int = 0
    failed: int = 0
    started: float | None = None
    finished: bool = False
    ops: dict[str, int] = field(default_factory=dict)


class ComponentProgress:
    """Prints one line when a component starts, one when all its resources are done or failed."""

    def __init__(self, totals: dict[str, int], waves: dict[str, int], type_names: dict[str, str],
                 emit: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.state = {n: _State(total=t) for n, t in totals.items()}
        self.waves = waves
        self.names = type_names          # kubeforge:component:CertManager -> cert-manager
        self.emit = emit
        self.clock = clock
        self.diagnostics: list[str] = []

    def __call__(self, event: Any) -> None:
        pre = getattr(event, "resource_pre_event", None)
        out = getattr(event, "res_outputs_event", None)
        failed = getattr(event, "res_op_failed_event", None)
        diag = getattr(event, "diagnostic_event", None)
        if pre is not None:
            self._pre(pre.metadata)
        elif out is not None:
            self._done(out.metadata, ok=True)
        elif failed is not None:
            self._done(failed.metadata, ok=False)
        elif diag is not None and getattr(diag, "severity", "") == "error" and diag.message.strip():
            self.diagnostics.append(diag.message.strip())

    def _child(self, meta: Any) -> tuple[str, _State] | None:
        # Counted: the component's own Kubernetes objects and Helm charts (what `totals` counts);
        # not the component itself, its readiness gate, or the objects inside a chart.
        if not str(getattr(meta, "type", "")).startswith("kubernetes:"):
            return None
        name = component_of(getattr(meta, "urn", ""), self.names, direct=True)
        if name is None:
            return None
        return name, self.state.setdefault(name, _State(total=0))

    def _pre(self, meta: Any) -> None:
        hit = self._child(meta)
        if hit is None:
            return
        name, st = hit
        op = _op(meta)
        st.ops[op] = st.ops.get(op, 0) + 1
        if st.started is None:
            st.started = self.clock()
            wave = self.waves.get(name)
            total = f"{st.total} resources" if st.total else "resources"
            self.emit(f"  [wave {wave}] {name}: applying {total}" if wave is not None else f"  {name}: applying")

    def _done(self, meta: Any, ok: bool) -> None:
        hit = self._child(meta)
        if hit is None:
            return
        name, st = hit
        if ok:
            st.done += 1
        else:
            st.failed += 1
            self.emit(f"  {name}: FAILED {getattr(meta, 'type', '')} {getattr(meta, 'urn', '').split('::')[-1]}")
        if not st.finished and st.total and st.done + st.failed >= st.total:
            st.finished = True
            took = self.clock() - (st.started or self.clock())
            mark = "ok" if not st.failed else f"{st.failed} failed"
            self.emit(f"  {name}: {st.done}/{st.total} done, {mark} ({took:.1f}s)")

    def summary(self) -> dict[str, dict[str, Any]]:
        return {n: {"total": s.total, "done": s.done, "failed": s.failed, "ops": dict(s.ops)}
                for n, s in self.state.items()}
