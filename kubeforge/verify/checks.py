"""What a conformance check is, how components declare theirs, and which ones a profile runs.

A component's `components/<name>/checks.py` holds plain functions decorated with `@check`:

    from kubeforge.verify import check

    @check("issues-certificate", timeout=180)
    def issues_certificate(ctx):        # ctx: kubeforge.verify.context.CheckContext
        ...                             # raise (or assert) to fail; return a short note to pass

Their full names are `<component>/<name>`. Readiness checks are not written by hand: they are
derived from the rendered objects (kubeforge.verify.readiness), so every component gets them.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError

READINESS = "readiness"
FUNCTION = "function"
NODE = "node"


@dataclass
class Check:
    name: str                       # "<component>/<short name>", unique in a run
    component: str                  # the component it belongs to ("nodes" for node checks)
    kind: str                       # readiness | function | node
    fn: Callable[[Any], Any]        # fn(ctx) -> optional note; raises to fail
    timeout: float = 300.0          # seconds, enforced by the context's deadline
    description: str = ""
    # Names of checks that must pass first; if one of them fails this one is skipped.
    needs: list[str] = field(default_factory=list)
    # Names of checks that only have to finish first (ordering, not a precondition).
    after: list[str] = field(default_factory=list)
    skip_reason: str | None = None  # set when the profile rules the check out (e.g. no GPUs)
    # Other components whose readiness this check needs too, where the profile enables them.
    uses: list[str] = field(default_factory=list)


def check(name: str, *, timeout: float = 300.0,
          when: Callable[[Any], bool | str] | None = None, uses: tuple[str, ...] = ()) -> Callable:
    """Mark a function in a component's checks.py as a conformance check.

    when(plan) -> True to run, or False / a reason string to skip it for this profile.
    uses: components (not dependencies) whose readiness it needs as well, where enabled: the login
    check of the auth layer needs the dashboard it logs in to, which itself depends on auth.
    """
    def mark(fn: Callable) -> Callable:
        fn.__kubeforge_check__ = {"name": name, "timeout": timeout, "when": when, "uses": tuple(uses)}
        return fn
    return mark


def load_checks_file(path: Path, component: str) -> list[tuple[Callable, dict]]:
    """Import components/<name>/checks.py by path and return its marked functions, in file order."""
    spec = importlib.util.spec_from_file_location(f"kubeforge_checks_{component.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise KubeforgeError(f"cannot load the checks of {component}: {exc}", file=str(path),
                             fix="fix the Python error in that file") from None
    found = [(fn, fn.__kubeforge_check__) for fn in vars(module).values()
             if callable(fn) and hasattr(fn, "__kubeforge_check__")]
    found.sort(key=lambda t: t[0].__code__.co_firstlineno)
    return found


def component_checks(plan: Any, name: str, readiness_names: list[str]) -> list[Check]:
    """The functional checks of one planned component; each needs the component's readiness."""
    planned = plan.components[name]
    path = planned.component.checks_py
    if path is None:
        return []
    out = []
    for fn, meta in load_checks_file(path, name):
        skip = None
        if meta["when"] is not None:
            verdict = meta["when"](plan)
            if verdict is not True:
                skip = verdict if isinstance(verdict, str) else "not enabled by this profile"
        doc = (fn.__doc__ or "").strip().splitlines()
        out.append(Check(name=f"{name}/{meta['name']}", component=name, kind=FUNCTION, fn=fn,
                         timeout=meta["timeout"], description=doc[0] if doc else "",
                         needs=list(readiness_names), skip_reason=skip,
                         uses=[u for u in meta.get("uses", ()) if u in plan.components]))
    return out


def collect(plan: Any, rendered: Any, inventory: str | None = None) -> list[Check]:
    """Every check the profile runs, listed in plan order (readiness before function).

    Readiness checks of a component run after those of the components it depends on (so a
    failure points at the lowest broken layer). Its functional checks need its own readiness and
    its dependencies' readiness to pass; functional checks of different components are
    independent of each other and run in parallel.
    """
    from kubeforge.verify import readiness

    checks: list[Check] = []
    by_component: dict[str, list[Check]] = {}
    for name, planned in plan.components.items():
        dep_ready = [c.name for d in planned.depends_on for c in by_component.get(d, [])
                     if c.kind == READINESS]
        objs = rendered.components[name].objects if name in rendered.components else []
        ready = readiness.derive(name, objs, planned.component.health or {},
                                 chart_rendered=name not in getattr(rendered, "unrendered", ()))
        for c in ready:
            c.after = list(dep_ready)
        fun = component_checks(plan, name, [c.name for c in ready] + dep_ready)
        by_component[name] = ready + fun
        checks.extend(ready + fun)
    # Checks that use other components need their readiness too; they go last, after every
    # readiness check, so the list stays in dependency order.
    late = [c for c in checks if c.uses]
    for c in late:
        c.needs += [r.name for u in c.uses for r in by_component.get(u, [])
                    if r.kind == READINESS and r.name not in c.needs]
    checks = [c for c in checks if not c.uses] + late
    if plan.profile.gpu.mode == "provider":
        # The cloud advertises the GPUs (no platform component does): check them all the same.
        from kubeforge.verify.gpu import allocatable_check

        checks.append(Check(name="cloud/gpu-allocatable", component="cloud", kind=FUNCTION, fn=allocatable_check,
                            timeout=600, description="every GPU node of a known type advertises all its GPUs"))
    if inventory:
        from kubeforge.verify import nodes

        checks.extend(nodes.derive(inventory, plan))
    return checks


def select(checks: list[Check], names: list[str] | None) -> list[Check]:
    """Keep the named checks (a component name selects all of its checks) plus what they need."""
    if not names:
        return checks
    known = {c.name for c in checks}
    components = {c.component for c in checks}
    unknown = [n for n in names if n not in known and n not in components]
    if unknown:
        listing = ", ".join(sorted(known))
        raise KubeforgeError(f"no check named {', '.join(unknown)} in this profile",
                             field="--check",
                             fix=f"use one of: {listing} (or a component name for all of its checks)")
    wanted = {c.name for c in checks if c.name in names or c.component in names}
    index = {c.name: c for c in checks}
    stack = list(wanted)
    while stack:  # pull in prerequisites so a selected check never runs on an unready component
        for need in index[stack.pop()].needs:
            if need not in wanted:
                wanted.add(need)
                stack.append(need)
    return [c for c in checks if c.name in wanted]
