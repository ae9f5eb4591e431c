"""The DCGM exporter's counters when kubeforge monitors GPUs: upstream's default counters plus the
fields the GPU alerts read (ECC, retired pages, NVLink errors, throttling by reason).

The extra rows are upstream's own: default-counters.csv ships them commented out, so kubeforge
uncomments them, keeping upstream's field names, Prometheus types and help texts. The same
ConfigMap serves the exporter of the device-plugin path (dcgm-exporter, mounted by
`mount_counters`) and the GPU Operator's (its chart's dcgmExporter.config.name).
"""
from __future__ import annotations

from typing import Any

CONFIGMAP = "dcgm-exporter-counters"
KEY = "dcgm-metrics.csv"                  # the file name the GPU Operator expects
MOUNT = "/etc/kubeforge/dcgm"
COLLECTORS_ENV = "DCGM_EXPORTER_COLLECTORS"
LABEL = "kubeforge.io/dcgm-counters"      # kubeforge.validate_monitoring finds the GPU Operator's by it
EXTRA = (
    # uncorrectable (double-bit) and correctable ECC errors, volatile and aggregate
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
    # page retirement (pre-Ampere GPUs; Ampere and later remap rows, which the defaults count)
    "DCGM_FI_DEV_RETIRED_SBE", "DCGM_FI_DEV_RETIRED_DBE", "DCGM_FI_DEV_RETIRED_PENDING",
    # NVLink errors
    "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
    "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL",
    # time throttled, by reason (ns)
    "DCGM_FI_DEV_POWER_VIOLATION", "DCGM_FI_DEV_THERMAL_VIOLATION", "DCGM_FI_DEV_SYNC_BOOST_VIOLATION",
    "DCGM_FI_DEV_BOARD_LIMIT_VIOLATION", "DCGM_FI_DEV_LOW_UTIL_VIOLATION", "DCGM_FI_DEV_RELIABILITY_VIOLATION",
)


class CountersError(ValueError):
    """Upstream's counters file no longer has a row kubeforge enables."""


def counters_csv(upstream: str, extra: tuple[str, ...] = EXTRA) -> str:
    """upstream default-counters.csv with the `extra` rows uncommented."""
    lines = upstream.splitlines()
    found = set()
    for i, line in enumerate(lines):
        body = line.lstrip("#").strip()
        field = body.split(",", 1)[0].strip()
        if line.lstrip().startswith("#") and field in extra and body.count(",") >= 2:
            lines[i] = body
            found.add(field)
        elif not line.lstrip().startswith("#") and field in extra:
            found.add(field)
    missing = [f for f in extra if f not in found]
    if missing:
        raise CountersError(f"default-counters.csv has no row for {', '.join(missing)}")
    return "\n".join(lines) + "\n"


def configmap(namespace: str, csv: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": namespace, "labels": {LABEL: "true"}},
            "data": {KEY: csv}}


def mount_counters(daemonset: dict[str, Any]) -> None:
    """Point the exporter container of a DaemonSet at the counters ConfigMap (in place)."""
    pod = daemonset["spec"]["template"]["spec"]
    pod.setdefault("volumes", []).append({"name": CONFIGMAP, "configMap": {"name": CONFIGMAP}})
    for c in pod["containers"]:
        if "dcgm-exporter" in c.get("image", ""):
            c.setdefault("volumeMounts", []).append({"name": CONFIGMAP, "mountPath": MOUNT, "readOnly": True})
            c["env"] = [e for e in c.get("env") or [] if e.get("name") != COLLECTORS_ENV]
            c["env"].append({"name": COLLECTORS_ENV, "value": f"{MOUNT}/{KEY}"})


def chart_values() -> dict[str, Any]:
    """GPU Operator chart values that make its exporter read the counters ConfigMap (in the
    operator's namespace) and create its ServiceMonitor."""
    return {"dcgmExporter": {"config": {"name": CONFIGMAP},
                             "env": [{"name": COLLECTORS_ENV, "value": f"/etc/dcgm-exporter/{KEY}"}],
                             "serviceMonitor": {"enabled": True}}}
