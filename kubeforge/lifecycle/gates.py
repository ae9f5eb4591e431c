"""Upgrade gates from each project's own upgrade policy, and the version tuple on both sides.

A policy is data in the component's component.yaml, in the project's words (cited there):

    upgrade:
      minorStep: 1            # upstream upgrades at most this many minor releases at a time
      policy: required        # required: upstream supports nothing else; recommended: upstream advises it
      docs: https://...       # where upstream says so
      stepNotes: https://.../upgrading-{from}-{to}   # what to read for each minor step

A jump over more minors than the policy allows is refused with the intermediate versions named, the
releases kubeforge knows that could be stepped through (none, when the mirror has none), and the
flag that accepts the documented risk (`--accept-skip COMPONENT`), after which it is a warning.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeforge.errors import KubeforgeError

POLICIES = ("required", "recommended")


@dataclass
class Policy:
    component: str
    minor_step: int | None = None
    policy: str = "required"
    docs: str = ""
    step_notes: str = ""

    def notes(self, old: tuple[int, int], new: tuple[int, int]) -> list[str]:
        """The upgrade notes of each minor step from old to new (for the report)."""
        if not self.step_notes or old[0] != new[0]:
            return [self.docs] if self.docs else []
        out = []
        for m in range(old[1], new[1]):
            out.append(self.step_notes.format(**{"from": f"{old[0]}.{m}", "to": f"{old[0]}.{m + 1}"}))
        return out or ([self.docs] if self.docs else [])


def policy_of(component: Any) -> Policy | None:
    """The `upgrade:` policy of a catalog Component, checked; None when it has none."""
    raw = (component.raw or {}).get("upgrade")
    if raw is None:
        return None
    file = f"components/{component.name}/component.yaml"
    if not isinstance(raw, dict) or set(raw) - {"minorStep", "policy", "docs", "stepNotes"}:
        raise KubeforgeError("upgrade: takes minorStep, policy, docs and stepNotes", file=file, field="upgrade",
                             fix="upgrade: {minorStep: 1, policy: required, docs: URL-of-the-upstream-policy}")
    step = raw.get("minorStep")
    if step is not None and (not isinstance(step, int) or step < 1):
        raise KubeforgeError("must be a whole number of minor releases, at least 1", file=file,
                             field="upgrade.minorStep", fix="minorStep: 1 (one minor release at a time)")
    if raw.get("policy", "required") not in POLICIES:
        raise KubeforgeError(f"unknown policy {raw.get('policy')!r}", file=file, field="upgrade.policy",
                             fix=f"use one of {', '.join(POLICIES)}")
    return Policy(component.name, step, raw.get("policy", "required"), str(raw.get("docs") or ""),
                  str(raw.get("stepNotes") or ""))


@dataclass
class Skip:
    """A jump over more minor releases than the project's policy allows."""
    component: str
    old: str
    new: str
    skipped: list[str]                       # the intermediate minors, "1.17", ...
    policy: Policy
    steppable: list[str] = field(default_factory=list)   # "release v1.13.0: knative-serving 1.18.1"
    mirror_note: str = ""


def _minor(v: str) -> tuple[int, int]:
    from kubeforge.lifecycle.upgrade import parse_version

    p = parse_version(v) + (0, 0)
    return p[0], p[1]


def skips(old: dict[str, str], new: dict[str, str], policies: dict[str, Policy]) -> list[Skip]:
    """Every component whose upgrade jumps over more minors than its policy allows."""
    out = []
    for name, pol in policies.items():
        if pol.minor_step is None or name not in old or name not in new:
            continue
        o, n = _minor(old[name]), _minor(new[name])
        if o[0] == n[0] and n[1] - o[1] > pol.minor_step:
            out.append(Skip(name, old[name], new[name], [f"{o[0]}.{m}" for m in range(o[1] + 1, n[1])], pol))
    return out


def find_steps(skip: Skip, known: dict[str, dict[str, str]], mirror_refs: list[str] | None) -> Skip:
    """Fill in the releases kubeforge knows whose version of the component lies in between, and
    what the mirror holds. known: release -> {component: version}."""
    for release, versions in known.items():
        v = versions.get(skip.component)
        if v and ".".join(str(x) for x in _minor(v)) in skip.skipped:
            skip.steppable.append(f"release {release}: {skip.component} {v}")
    if mirror_refs is not None:
        skip.mirror_note = f"and the mirror holds no manifests for them, only {', '.join(mirror_refs)}"
    return skip


def skip_gate(skip: Skip, accepted: bool) -> tuple[str, str]:
    """(reason, fix) of the refusal; with accepted, the reason is the warning printed instead."""
    pol = skip.policy
    verb = "supports upgrading" if pol.policy == "required" else "recommends upgrading"
    many = "one minor" if pol.minor_step == 1 else f"{pol.minor_step} minors"
    cite = f" ({pol.docs})" if pol.docs else ""
    reason = (f"{skip.component} {skip.old} -> {skip.new} skips {len(skip.skipped)} minor release(s) "
              f"({', '.join(skip.skipped)}); upstream {verb} {many} at a time{cite}")
    first = skip.skipped[0]
    if skip.steppable:
        how = f"upgrade through {'; '.join(skip.steppable)} first"
    else:
        why = " " + skip.mirror_note if skip.mirror_note else ""
        how = (f"upgrade to {skip.component} {first}.x first, then each next minor (kubeforge knows no "
               f"release with {skip.component} {', '.join(skip.skipped)}{why})")
    fix = f"{how}, verify, then to {skip.new}; or accept the documented risk with --accept-skip {skip.component}"
    if accepted:
        return f"accepted with --accept-skip {skip.component}: {reason}", ""
    return reason, fix


# -- the version tuple ----------------------------------------------------------------------
def tuple_problems(versions: dict[str, str], compat: dict[str, dict[str, list[str]]]) -> list[tuple[str, str]]:
    """(component, problem) where versions break a `compat:` tuple. compat: component -> {other: [minors]}."""
    out = []
    for name, wants in compat.items():
        if name not in versions:
            continue
        for other, minors in wants.items():
            if other in versions and ".".join(str(x) for x in _minor(versions[other])) not in minors:
                out.append((name, f"{name} {versions[name]} is tested with {other} {', '.join(minors)}, "
                                  f"not {versions[other]}"))
    return out


def compat_for(versions: dict[str, str], catalogs: dict[str | None, dict[str, Any]]) -> dict[str, dict]:
    """The `compat:` of each installed component from the release whose version of it matches
    (catalogs: release -> catalog); components no known release describes have none."""
    out: dict[str, dict] = {}
    for name, v in versions.items():
        for cat in catalogs.values():
            if name in cat and cat[name].version == v and cat[name].compat:
                out[name] = cat[name].compat
                break
    return out


def tuple_of(versions: dict[str, str], names: list[str]) -> str:
    return " / ".join(f"{n} {versions[n]}" for n in names if n in versions)
