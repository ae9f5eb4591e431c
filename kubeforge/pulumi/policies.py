"""The kubeforge policy pack (stacks/policy): plain functions over a resource's type and inputs.

Each policy is `fn(args, report_violation)` as pulumi-policy calls it, where `args` only needs
`resource_type`, `props` and `name`; so the same functions run in `pulumi preview --policy-pack
stacks/policy` and in the tests over captured resource graphs, with no engine. pulumi-policy is
imported only by `policy_pack()`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kubeforge.images import floating_tag

PSA_LABEL = "pod-security.kubernetes.io/enforce"
PSA_LEVELS = ("privileged", "baseline", "restricted")
# Privileged containers are allowed only in these node agents (workload names as rendered),
# each with the reason it needs the host.
PRIVILEGED_ALLOWLIST: dict[str, str] = {
    "nvidia-device-plugin-daemonset": "enumerates the node's GPUs through the driver and registers "
                                      "them with the kubelet",
    "gpu-feature-discovery": "reads GPU properties through NVML on the host to label the node "
                             "(part of the device plugin project)",
    "dcgm-exporter": "reads GPU telemetry from the driver (DCGM) on the host",
    "istio-cni-node": "installs the CNI plugin and rewrites pod traffic rules on the node",
}
POD_KINDS = {"Pod": (), "Deployment": ("template",), "StatefulSet": ("template",), "DaemonSet": ("template",),
             "ReplicaSet": ("template",), "Job": ("template",), "CronJob": ("jobTemplate", "spec", "template")}

Report = Callable[..., None]


def kind_of(resource_type: str) -> str:
    """kubernetes:apps/v1:Deployment -> Deployment ('' for anything not Kubernetes)."""
    return resource_type.rsplit(":", 1)[-1] if resource_type.startswith("kubernetes:") else ""


def pod_spec(resource_type: str, props: dict[str, Any]) -> dict[str, Any] | None:
    kind = kind_of(resource_type)
    if kind not in POD_KINDS:
        return None
    node: Any = props.get("spec") or {}
    for step in POD_KINDS[kind]:
        node = (node or {}).get(step) or {}
    return (node.get("spec") if POD_KINDS[kind] else node) or {}


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers"):
        yield from spec.get(key) or []


def _name(args: Any) -> str:
    md = (args.props or {}).get("metadata") or {}
    return md.get("name") or args.name


def namespace_pod_security(args: Any, report_violation: Report) -> None:
    """Every Namespace states its Pod Security level (enforce label)."""
    if kind_of(args.resource_type) != "Namespace":
        return
    labels = ((args.props or {}).get("metadata") or {}).get("labels") or {}
    level = labels.get(PSA_LABEL)
    if level not in PSA_LEVELS:
        report_violation(f"Namespace {_name(args)} has no valid {PSA_LABEL} label (got {level!r}); "
                         f"set one of {', '.join(PSA_LEVELS)}")


def no_latest_images(args: Any, report_violation: Report) -> None:
    """Images are pinned: a tag other than latest, or a digest."""
    spec = pod_spec(args.resource_type, args.props or {})
    if spec is None:
        return
    for c in containers(spec):
        if floating_tag(str(c.get("image", ""))) is not None:
            report_violation(f"{kind_of(args.resource_type)} {_name(args)}: container {c.get('name')} uses "
                             f"{c.get('image')!r}, which floats; pin a version tag or a digest")


def privileged_allowlist(args: Any, report_violation: Report) -> None:
    """Privileged containers only for the allowlisted node agents (device plugin, DCGM, Istio CNI)."""
    spec = pod_spec(args.resource_type, args.props or {})
    if spec is None:
        return
    name = _name(args)
    for c in containers(spec):
        if ((c.get("securityContext") or {}).get("privileged")) and name not in PRIVILEGED_ALLOWLIST:
            report_violation(f"{kind_of(args.resource_type)} {name}: container {c.get('name')} is privileged; "
                             f"only {', '.join(sorted(PRIVILEGED_ALLOWLIST))} may be (each with a reason)")


def resource_requests(args: Any, report_violation: Report) -> None:
    """Workload containers request CPU or memory, so the scheduler can place them."""
    spec = pod_spec(args.resource_type, args.props or {})
    if spec is None:
        return
    for c in spec.get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        if not (req.get("cpu") or req.get("memory")):
            report_violation(f"{kind_of(args.resource_type)} {_name(args)}: container {c.get('name')} sets no "
                             "resources.requests (cpu or memory)")


POLICIES: list[tuple[str, str, Callable[[Any, Report], None], str]] = [
    ("namespace-pod-security", "Namespaces carry a Pod Security enforce label", namespace_pod_security,
     "mandatory"),
    ("no-latest-images", "Container images are pinned (no :latest, no missing tag)", no_latest_images, "mandatory"),
    ("privileged-allowlist", "Privileged containers only for the device plugin, DCGM exporter and Istio CNI",
     privileged_allowlist, "mandatory"),
    # Advisory: cert-manager, Argo Workflows and Katib ship controllers without requests upstream
    # (kubeforge validate reports the same as a warning); blocking them would block every profile.
    ("resource-requests", "Workload containers set resource requests", resource_requests, "advisory"),
]


def policy_pack():
    """Build the PolicyPack (this starts pulumi-policy's analyzer server: the pack's entry point only)."""
    from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy

    levels = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}
    return PolicyPack(
        name="kubeforge",
        policies=[ResourceValidationPolicy(name=n, description=d, validate=fn, enforcement_level=levels[lvl])
                  for n, d, fn, lvl in POLICIES],
    )
