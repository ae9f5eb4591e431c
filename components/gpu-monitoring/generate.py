"""GPU monitoring: the DCGM exporter scraped, kubeforge's own GPU alerts, the DCGM dashboard.

None of the upstream rule sets fits plain Kubernetes (the GPU Operator ships none; NVIDIA's
samples assume other job and node labels), so `gpu.rules` is written here, from the profile: the
exporter's job (the device-plugin path's `dcgm-exporter` Service or the GPU Operator's
`nvidia-dcgm-exporter`), the extended resource the device plugin advertises and how many
schedulable replicas one physical GPU becomes (time-slicing/MPS).

XID classes follow NVIDIA's XID catalog (docs.nvidia.com/deploy/xid-errors): hardware or driver
faults that need the node drained and the GPU reset or replaced, errors an application caused
(its own job fails, the GPU is fine), and the rest. DCGM_FI_DEV_XID_ERRORS holds the last XID a
GPU reported.
"""
from __future__ import annotations

import json
from typing import Any

from kubeforge import monitoring
from kubeforge.errors import KubeforgeError

XID_HARDWARE = {
    48: "double-bit ECC error", 61: "internal micro-controller breakpoint/warning",
    62: "internal micro-controller halt", 63: "ECC page retirement or row remap recording event",
    64: "ECC page retirement or row remap recording failure", 74: "NVLink error",
    79: "GPU has fallen off the bus", 92: "high single-bit ECC error rate", 94: "contained ECC error",
    95: "uncontained ECC error", 119: "GSP RPC timeout", 120: "GSP error",
}
XID_APPLICATION = {13: "graphics engine exception", 31: "GPU memory page fault",
                   43: "GPU stopped processing", 45: "preemptive cleanup after previous errors"}
RULE_NAME = "gpu-rules"
GROUP = "gpu.rules"
DASHBOARD_FILE = "dcgm-exporter.json"


def _exporter(ctx: Any) -> tuple[str, str]:
    """(namespace, Prometheus job) of the DCGM exporter this profile runs."""
    for name, job in (("dcgm-exporter", "dcgm-exporter"), ("gpu-operator", "nvidia-dcgm-exporter")):
        if ctx.enabled(name):
            return next(iter(ctx.plan.components[name].component.namespaces)), job
    raise KubeforgeError("gpu-monitoring has no DCGM exporter to watch", file=ctx.profile.source_file,
                         field="components.gpu-monitoring.enabled",
                         fix="enable dcgm-exporter (device-plugin path) or gpu-operator, or disable gpu-monitoring")


def _gpu_resource(ctx: Any) -> tuple[str, int]:
    """(kube-state-metrics resource label, schedulable units per physical GPU)."""
    sharing = ctx.profile.gpu.sharing
    shared = sharing.strategy in ("time-slicing", "mps")
    renamed = ctx.enabled("gpu-sharing") and ctx.plan.components["gpu-sharing"].values.get("renameByDefault")
    if shared and renamed:
        return "nvidia_com_gpu_shared", sharing.replicas
    return "nvidia_com_gpu", sharing.replicas if shared else 1


def _alert(name: str, expr: str, severity: str, summary: str, description: str, for_: str = "") -> dict:
    rule: dict[str, Any] = {"alert": name, "expr": expr, "labels": {"severity": severity},
                            "annotations": {"summary": summary, "description": description}}
    if for_:
        rule["for"] = for_
    return rule


def _xid(codes: list[int]) -> str:
    return " or ".join(f"DCGM_FI_DEV_XID_ERRORS == {c}" for c in codes)


def rules(ctx: Any) -> list[dict]:
    _, job = _exporter(ctx)
    v = ctx.values
    resource, per_gpu = _gpu_resource(ctx)
    capacity = f'max by (node) (kube_node_status_capacity{{resource="{resource}"}})'
    allocatable = f'max by (node) (kube_node_status_allocatable{{resource="{resource}"}})'
    physical = f"({capacity} / {per_gpu})" if per_gpu > 1 else capacity
    seen = 'count by (node) (label_replace(DCGM_FI_DEV_GPU_UTIL, "node", "$1", "Hostname", "(.*)"))'
    hw, app = sorted(XID_HARDWARE), sorted(XID_APPLICATION)
    where = "GPU {{ $labels.gpu }} on {{ $labels.Hostname }}"
    out = [
        _alert("GPUXidHardwareError", _xid(hw), "critical",
               f"{where} reported XID {{{{ $value }}}}, a hardware or driver fault",
               "XIDs " + ", ".join(f"{c} ({XID_HARDWARE[c]})" for c in hw) + " need the node drained and the "
               "GPU reset; persistent ones mean replacing it (`kubeforge nodes validate`)."),
        _alert("GPUXidApplicationError", _xid(app), "info",
               f"{where} reported XID {{{{ $value }}}}: an application fault",
               "XIDs " + ", ".join(f"{c} ({XID_APPLICATION[c]})" for c in app) + " usually mean the job "
               "on that GPU crashed (bad memory access, killed mid-kernel); the GPU itself is fine."),
        _alert("GPUXidError", f"DCGM_FI_DEV_XID_ERRORS > 0 unless ({_xid(hw + app)})", "warning",
               f"{where} reported XID {{{{ $value }}}}",
               "An XID kubeforge does not classify: look it up in NVIDIA's XID catalog."),
        _alert("GPUTemperatureHigh", f"DCGM_FI_DEV_GPU_TEMP > {v['temperatureC']}", "warning",
               f"{where} is at {{{{ $value }}}} C", f"Above {v['temperatureC']} C for 10 minutes: the GPU "
               "slows itself down; check the node's cooling and airflow.", "10m"),
        _alert("GPUUncorrectableECCErrors", "increase(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL[10m]) > 0", "critical",
               f"{where} has uncorrectable (double-bit) ECC errors",
               "Memory contents were lost: jobs on the GPU may compute wrong results. Drain the node and "
               "reset the GPU."),
        _alert("GPURowRemapFailure", "DCGM_FI_DEV_ROW_REMAP_FAILURE > 0", "critical",
               f"{where} failed to remap a memory row",
               "The GPU has no spare rows left for failing memory: it needs replacing."),
        _alert("GPUUncorrectableRowRemaps", "increase(DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS[1h]) > 0", "warning",
               f"{where} remapped memory rows after uncorrectable errors",
               "The remap takes effect after a GPU reset: drain the node and reset the GPU.",),
        _alert("GPUPowerThrottling", f"rate(DCGM_FI_DEV_POWER_VIOLATION[5m]) / 1e9 > {v['throttledRatio']}",
               "warning", f"{where} is power-throttled {{{{ $value | humanizePercentage }}}} of the time",
               "The GPU runs below its clocks because it hits its power limit (check the power cap and "
               "the node's power supply).", "15m"),
        _alert("GPUThermalThrottling", "rate(DCGM_FI_DEV_THERMAL_VIOLATION[5m]) / 1e9 > 0", "warning",
               f"{where} is thermally throttled", "The GPU slows down to cool off.", "10m"),
        _alert("GPUMemoryNearlyFull",
               f"DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) > {v['memoryUsedRatio']}",
               "warning", f"{where} uses {{{{ $value | humanizePercentage }}}} of its memory",
               "Jobs on it are close to out-of-memory errors.", "15m"),
        _alert("GPUNVLinkErrors", "increase(DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL[10m]) > 0", "warning",
               f"{where} had NVLink recovery errors", "An NVLink link had to recover: multi-GPU jobs on "
               "that node slow down or fail; check the NVLink/NVSwitch fabric."),
        _alert("GPUUnhealthy", f"{allocatable} < {capacity}", "warning",
               "The device plugin marked GPUs of node {{ $labels.node }} unhealthy",
               "Fewer GPUs are allocatable than the node has: the device plugin saw an XID or health "
               "failure and took them out of scheduling.", "10m"),
        _alert("DCGMExporterDown", f'up{{job="{job}"}} == 0', "critical",
               "DCGM exporter {{ $labels.instance }} is down",
               "Prometheus cannot scrape GPU metrics on that node: no GPU alert can fire there.", "5m"),
        _alert("DCGMExporterAbsent",
               f'absent(up{{job="{job}"}} == 1) and on () (sum(kube_node_status_capacity{{resource="{resource}"}}) > 0)',
               "critical", "No DCGM exporter is scraped although the cluster has GPUs",
               "The exporter is not running or its ServiceMonitor selects nothing: GPU alerts are blind.",
               "10m"),
    ]
    if ctx.profile.gpu.mig.strategy == "none":
        # With MIG the advertised resources are MIG devices, not GPUs: no 1:1 comparison.
        out.append(_alert(
            "GPUsMissingFromNode", f"({physical} > on (node) {seen}) or ({physical} > 0 unless on (node) {seen})",
            "critical", "Node {{ $labels.node }} has GPUs the DCGM exporter does not see",
            "The node advertises more GPUs than DCGM reports metrics for: a GPU fell off the bus or "
            "its driver lost it (XID 79). Drain the node and check it with `kubeforge nodes validate`.",
            "10m"))
    return out


def generate(ctx: Any) -> list[dict]:
    ns, _ = _exporter(ctx)
    from kubeforge.kustomize import parse

    roles = monitoring.discovery_rules(parse(ctx.source_bytes("gpu-prometheus-roles")))
    dashboard = json.loads(ctx.source_bytes("dcgm-dashboard"))
    return [
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
         "metadata": {"name": RULE_NAME, "namespace": monitoring.NAMESPACE,
                      "labels": {"prometheus": "k8s", "role": "alert-rules"}},
         "spec": {"groups": [{"name": GROUP, "rules": rules(ctx)}]}},
        monitoring.dashboards_object(ctx.component.name, {DASHBOARD_FILE: dashboard}),
        *monitoring.access(ns, roles),
    ]


def transform(objects: list[dict], ctx: Any) -> list[dict]:
    ns, _ = _exporter(ctx)
    out = []
    for o in objects:
        if o.get("kind") == "ServiceMonitor":
            if not ctx.enabled("dcgm-exporter"):
                continue            # the GPU Operator's chart makes its own ServiceMonitor
            o = {**o, "metadata": {**o["metadata"], "namespace": ns}}
        out.append(o)
    return out
