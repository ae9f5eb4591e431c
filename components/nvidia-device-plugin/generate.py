"""NVIDIA device plugin + GFD: move them into the component's namespace, set the MIG strategy, and
render and mount the sharing config (time-slicing / MPS, from the gpu-sharing component's values)
when that component is enabled.

The plugin and GFD read the config from CONFIG_FILE (documented for v0.20.0 in upstream's
docs/customizing.md: `--config-file` / `$CONFIG_FILE`). One config serves every node, so the
helm chart's config-manager sidecar (per-node configs chosen by a node label) is not needed.
"""
from __future__ import annotations

import copy
from typing import Any

from kubeforge.errors import KubeforgeError
from kubeforge.gpu import manifests as m
from kubeforge.gpu import sharing

COMPONENT = "nvidia-device-plugin"
PLUGIN, PLUGIN_CTR = "nvidia-device-plugin-daemonset", "nvidia-device-plugin-ctr"
GFD, GFD_CTR = "gpu-feature-discovery", "gpu-feature-discovery"
MPS_DAEMON = "nvidia-device-plugin-mps-control-daemon"
CONFIG_VOLUME = "device-plugin-config"
SHA_ANNOTATION = "kubeforge.io/device-plugin-config-sha256"
# The sharing ConfigMap is this component's own object (the pods that mount it and the namespace
# it lives in are), so it is applied before the DaemonSets and their rollout can be awaited. Only
# the MPS control daemon skips the await: it runs on the nodes GFD labels MPS-capable, later.
SKIP_AWAIT = "pulumi.com/skipAwait"


def _namespace(ctx: Any) -> str:
    return next(iter(ctx.component.component.namespaces))


def _check_mig(ctx: Any) -> str:
    mig = ctx.values.get("migStrategy", "none")
    want = sharing.setting(ctx.profile, "gpu", "mig", "strategy", default="none")
    if mig != want:
        raise KubeforgeError(
            f"nvidia-device-plugin values.migStrategy is {mig} but the profile's gpu.mig.strategy is {want}",
            file=sharing.profile_file(ctx.profile),
            field="components.nvidia-device-plugin.values.migStrategy",
            fix=f"set both to the same strategy (migStrategy: {want})")
    return mig


def transform(objects: list[dict], ctx: Any) -> list[dict]:
    ns = _namespace(ctx)
    mig = _check_mig(ctx)
    objs = m.set_namespace(copy.deepcopy(objects), ns)
    plugin = m.find(objs, "DaemonSet", PLUGIN, COMPONENT)
    gfd = m.find(objs, "DaemonSet", GFD, COMPONENT)
    pc, gc = m.container(plugin, PLUGIN_CTR), m.container(gfd, GFD_CTR)
    m.gpu_nodes_only(plugin)

    # GFD's MIG_STRATEGY comes with upstream's variant (selected by `when:`); the plugin's
    # static manifest has none, so set it, and give it what the helm chart gives a MIG plugin.
    m.set_env(pc, "MIG_STRATEGY", mig)
    if mig != "none":
        m.set_env(pc, "NVIDIA_MIG_MONITOR_DEVICES", "all")
        pc["securityContext"] = {"capabilities": {"add": ["SYS_ADMIN"]}}

    strategy = sharing.setting(ctx.profile, "gpu", "sharing", "strategy", default="none")
    if not ctx.enabled("gpu-sharing"):
        if strategy != "none":
            raise KubeforgeError(
                f"gpu.sharing.strategy is {strategy} but the gpu-sharing component is not enabled",
                file=sharing.profile_file(ctx.profile), field="gpu.sharing.strategy",
                fix="enable it (components: {gpu-sharing: {enabled: true}}) or set the strategy to none")
        return objs

    s = sharing.settings(ctx.profile, ctx.plan.components["gpu-sharing"].values)
    text = sharing.config_text(sharing.plugin_config(s))
    sha = sharing.config_sha256(text)
    objs.append(sharing.configmap(ns, text))
    for ds, c in ((plugin, pc), (gfd, gc)):
        m.add_volume(ds, {"name": CONFIG_VOLUME, "configMap": {"name": sharing.CONFIGMAP_NAME}})
        m.add_mount(c, CONFIG_VOLUME, sharing.CONFIG_DIR, read_only=True)
        m.set_env(c, "CONFIG_FILE", sharing.CONFIG_FILE)
        m.annotate_pods(ds, SHA_ANNOTATION, sha)
    if s.strategy == "mps":
        _mps_plugin(plugin, pc)
        objs.append(_mps_control_daemon(plugin, pc, ns, mig, sha))
    return objs


def _mps_volumes() -> list[dict]:
    return [{"name": "mps-root", "hostPath": {"path": sharing.MPS_ROOT, "type": "DirectoryOrCreate"}},
            {"name": "mps-shm", "hostPath": {"path": f"{sharing.MPS_ROOT}/shm"}}]


def _mps_plugin(plugin: dict, pc: dict) -> None:
    # The plugin refuses to start with MPS sharing and no MPS_ROOT; /dev/shm is the MPS daemon's
    # (upstream helm chart, daemonset-device-plugin.yml).
    m.set_env(pc, "MPS_ROOT", sharing.MPS_ROOT)
    for v in _mps_volumes():
        m.add_volume(plugin, v)
    m.add_mount(pc, "mps-root", "/mps")
    m.add_mount(pc, "mps-shm", "/dev/shm")


def _mps_control_daemon(plugin: dict, pc: dict, ns: str, mig: str, sha: str) -> dict:
    """The MPS control daemon the plugin's MPS sharing needs, as upstream's helm chart runs it
    (daemonset-mps-control-daemon.yml) without the config-manager sidecar. It runs only on nodes
    GFD labels nvidia.com/mps.capable=true."""
    image = pc["image"]
    labels = {"name": MPS_DAEMON}
    pod = plugin["spec"]["template"]["spec"]
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": MPS_DAEMON, "namespace": ns, "annotations": {SKIP_AWAIT: "true"}},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels, "annotations": {SHA_ANNOTATION: sha}},
                "spec": {
                    "priorityClassName": pod.get("priorityClassName", "system-node-critical"),
                    "tolerations": copy.deepcopy(pod.get("tolerations") or []),
                    "nodeSelector": {"nvidia.com/mps.capable": "true"},
                    "initContainers": [{
                        "name": "mps-control-daemon-mounts", "image": image,
                        "command": ["mps-control-daemon", "mount-shm"],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"name": "mps-root", "mountPath": "/mps",
                                          "mountPropagation": "Bidirectional"}],
                    }],
                    "containers": [{
                        "name": "mps-control-daemon-ctr", "image": image, "command": ["mps-control-daemon"],
                        "env": [
                            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                                             "fieldPath": "spec.nodeName"}}},
                            {"name": "MIG_STRATEGY", "value": mig},
                            {"name": "CONFIG_FILE", "value": sharing.CONFIG_FILE},
                            {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
                            {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"},
                        ],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"name": "mps-shm", "mountPath": "/dev/shm"},
                                         {"name": "mps-root", "mountPath": "/mps"},
                                         {"name": CONFIG_VOLUME, "mountPath": sharing.CONFIG_DIR, "readOnly": True}],
                    }],
                    "volumes": _mps_volumes() + [{"name": CONFIG_VOLUME,
                                                  "configMap": {"name": sharing.CONFIGMAP_NAME}}],
                },
            },
        },
    }
