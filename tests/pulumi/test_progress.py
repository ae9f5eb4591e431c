"""Per-component progress from engine events (built with the Automation API's own parser)."""
from __future__ import annotations

from pulumi.automation import EngineEvent

from kubeforge.pulumi.graph import component_type
from kubeforge.pulumi.progress import ComponentProgress, component_of

NAMES = {component_type(n): n for n in ("cert-manager", "kserve")}


def _urn(comp: str, typ: str, name: str) -> str:
    return f"urn:pulumi:dev::kubeforge-platform::{component_type(comp)}${typ}::{name}"


def _ev(kind: str, urn: str, typ: str, op: str = "create") -> EngineEvent:
    meta = {"op": op, "urn": urn, "type": typ, "provider": ""}
    body = {"metadata": meta} if kind != "resOpFailedEvent" else {"metadata": meta, "status": 1, "steps": 1}
    return EngineEvent.from_json({"sequence": 1, "timestamp": 0, kind: body})


def test_component_of_reads_the_parent_type_chain():
    assert component_of(_urn("cert-manager", "kubernetes:apps/v1:Deployment", "cm/cm"), NAMES) == "cert-manager"
    assert component_of("urn:pulumi:dev::kubeforge-platform::pulumi:providers:kubernetes::kubernetes", NAMES) is None


def test_start_and_done_lines_per_component():
    lines: list[str] = []
    clock = iter(range(100))
    p = ComponentProgress({"cert-manager": 2, "kserve": 1}, {"cert-manager": 0, "kserve": 3}, NAMES,
                          lines.append, clock=lambda: float(next(clock)))
    dep, ns = "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Namespace"
    p(_ev("resourcePreEvent", _urn("cert-manager", ns, "cert-manager"), ns))
    p(_ev("resourcePreEvent", _urn("cert-manager", dep, "cert-manager/cm"), dep))
    p(_ev("resOutputsEvent", _urn("cert-manager", ns, "cert-manager"), ns))
    assert lines == ["  [wave 0] cert-manager: applying 2 resources"]
    p(_ev("resOutputsEvent", _urn("cert-manager", dep, "cert-manager/cm"), dep))
    assert lines[-1].startswith("  cert-manager: 2/2 done, ok")
    p(_ev("resourcePreEvent", _urn("kserve", dep, "kubeflow/kserve"), dep))
    p(_ev("resOpFailedEvent", _urn("kserve", dep, "kubeflow/kserve"), dep))
    assert "kserve: FAILED kubernetes:apps/v1:Deployment kubeflow/kserve" in lines[-2]
    assert "kserve: 0/1 done, 1 failed" in lines[-1]
    s = p.summary()
    assert s["cert-manager"] == {"total": 2, "done": 2, "failed": 0, "ops": {"create": 2}}


def test_component_resources_themselves_are_not_counted():
    lines: list[str] = []
    p = ComponentProgress({"kserve": 1}, {"kserve": 0}, NAMES, lines.append)
    t = component_type("kserve")
    p(_ev("resourcePreEvent", f"urn:pulumi:dev::kubeforge-platform::{t}::kserve", t))
    assert lines == [] and p.summary()["kserve"]["ops"] == {}


def test_gates_and_chart_objects_are_not_counted():
    lines: list[str] = []
    p = ComponentProgress({"kserve": 1}, {"kserve": 0}, NAMES, lines.append)
    gate = _urn("kserve", "pulumi:index:Stash", "kserve-ready")
    chart_obj = (f"urn:pulumi:dev::kubeforge-platform::{component_type('kserve')}$kubernetes:helm.sh/v4:Chart"
                 f"$kubernetes:apps/v1:Deployment::x/y")
    p(_ev("resourcePreEvent", gate, "pulumi:index:Stash"))
    p(_ev("resourcePreEvent", chart_obj, "kubernetes:apps/v1:Deployment"))
    assert p.summary()["kserve"]["ops"] == {}
    assert component_of(chart_obj, NAMES) == "kserve" and component_of(chart_obj, NAMES, direct=True) is None
