"""The kubeforge policy pack (stacks/policy): plain functions over a resource's type and inputs.

Kubernetes objects of the platform stack (Pod Security, pinned images, privileged allowlist,
requests) and the cloud resources of the cluster stacks (IAM least privilege, named admins).

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


# -- cloud IAM: least privilege for the cluster stacks (stacks/cluster-eks|gke|aks) ------------
# AWS managed policies a kubeforge cluster attaches, each with the reason it needs it.
AWS_MANAGED_ALLOWLIST: dict[str, str] = {
    "AmazonEKSClusterPolicy": "the EKS control plane's role manages the cluster's network interfaces",
    "AmazonEKSWorkerNodePolicy": "nodes describe the cluster to join it",
    "AmazonEC2ContainerRegistryPullOnly": "nodes pull images from ECR, read only",
    "AmazonEKS_CNI_Policy": "the VPC CNI (aws-node, by pod identity) assigns pod IP addresses",
    "AmazonEBSCSIDriverPolicy": "the EBS CSI controller (by pod identity) creates and attaches volumes",
}
# Who may assume a kubeforge role: the EKS control plane, EC2 nodes, EKS pod identity.
TRUSTED_SERVICES = ("eks.amazonaws.com", "ec2.amazonaws.com", "pods.eks.amazonaws.com")
AWS_ADMIN_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")
GCP_BROAD_ROLES = ("roles/owner", "roles/editor", "roles/iam.securityAdmin", "roles/resourcemanager.projectIamAdmin",
                   "roles/iam.serviceAccountUser", "roles/iam.serviceAccountTokenCreator")
AZURE_BROAD_ROLES = {"8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner", "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
                     "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator"}
_POLICY_DOCS = {"aws:iam/role:Role": ("assumeRolePolicy",), "aws:iam/policy:Policy": ("policy",),
                "aws:iam/rolePolicy:RolePolicy": ("policy",), "aws:iam/userPolicy:UserPolicy": ("policy",),
                "aws:iam/groupPolicy:GroupPolicy": ("policy",)}


def _doc(raw: Any) -> dict[str, Any]:
    import json

    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    return raw if isinstance(raw, dict) else {}


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    st = doc.get("Statement") or []
    return [x for x in (st if isinstance(st, list) else [st]) if isinstance(x, dict)]


def _listed(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [] if v is None else [v]


def _aws_docs(args: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    props = args.props or {}
    for key in _POLICY_DOCS.get(args.resource_type, ()):
        yield key, _doc(props.get(key))
    if args.resource_type == "aws:iam/role:Role":
        for p in props.get("inlinePolicies") or []:
            yield f"inlinePolicies.{(p or {}).get('name')}", _doc((p or {}).get("policy"))


def iam_no_wildcard_actions(args: Any, report_violation: Report) -> None:
    """IAM policy documents allow named actions only: no "*", no "service:*", no NotAction."""
    for where, doc in _aws_docs(args):
        for st in _statements(doc):
            if st.get("Effect") != "Allow":
                continue
            if "NotAction" in st:
                report_violation(f"{args.name}: {where} allows NotAction (everything but a list)")
            for action in _listed(st.get("Action")):
                if action == "*" or str(action).endswith(":*"):
                    report_violation(f"{args.name}: {where} allows action {action!r}; name the actions it needs")


def iam_trusted_principals(args: Any, report_violation: Report) -> None:
    """A role is assumable only by the EKS control plane, EC2 nodes or EKS pod identity."""
    if args.resource_type != "aws:iam/role:Role":
        return
    for st in _statements(_doc((args.props or {}).get("assumeRolePolicy"))):
        if st.get("Effect") != "Allow":
            continue
        principal = st.get("Principal")
        services = _listed(principal.get("Service")) if isinstance(principal, dict) else []
        others = sorted(k for k in principal if k != "Service") if isinstance(principal, dict) else [str(principal)]
        if others or not services:
            report_violation(f"{args.name}: trust policy allows {principal!r}; only services "
                             f"{', '.join(TRUSTED_SERVICES)} may assume kubeforge roles")
        for svc in services:
            if svc not in TRUSTED_SERVICES:
                report_violation(f"{args.name}: trust policy allows service {svc}; only {', '.join(TRUSTED_SERVICES)}")


def iam_managed_policy_allowlist(args: Any, report_violation: Report) -> None:
    """Only the AWS managed policies a kubeforge cluster needs are attached (never AdministratorAccess)."""
    props = args.props or {}
    arns: list[Any] = []
    if args.resource_type in ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:iam/policyAttachment:PolicyAttachment"):
        arns = [props.get("policyArn")]
    elif args.resource_type == "aws:iam/role:Role":
        arns = list(props.get("managedPolicyArns") or [])
    for arn in arns:
        name = str(arn).rsplit("/", 1)[-1]
        if name in AWS_ADMIN_POLICIES:
            report_violation(f"{args.name}: attaches {name}: administrator rights for a cluster role")
        elif not str(arn).startswith("arn:aws") or ":iam::aws:policy/" not in str(arn) or name not in AWS_MANAGED_ALLOWLIST:
            report_violation(f"{args.name}: attaches {arn}, which is not one kubeforge needs "
                             f"({', '.join(sorted(AWS_MANAGED_ALLOWLIST))})")


def cloud_no_broad_roles(args: Any, report_violation: Report) -> None:
    """Google Cloud and Azure grants: no owner/editor-like roles; GKE admin scoped to the cluster."""
    props = args.props or {}
    t = args.resource_type
    if t.startswith("gcp:") and t.rsplit(":", 1)[-1] in ("IAMMember", "IAMBinding"):
        role = props.get("role")
        if role in GCP_BROAD_ROLES:
            report_violation(f"{args.name}: grants {role}; grant the narrow role the principal needs")
        if role == "roles/container.admin" and not ((props.get("condition") or {}).get("expression")):
            report_violation(f"{args.name}: grants roles/container.admin on every cluster of the project; "
                             "add a condition on the cluster's resource name")
    if t == "azure-native:authorization:RoleAssignment":
        guid = str(props.get("roleDefinitionId", "")).rsplit("/", 1)[-1]
        if guid in AZURE_BROAD_ROLES:
            report_violation(f"{args.name}: assigns {AZURE_BROAD_ROLES[guid]}; assign a narrow built-in role")


def cluster_admins_explicit(args: Any, report_violation: Report) -> None:
    """Cluster admins are named, not implied: EKS API auth without creator admin, AKS without local
    accounts (Entra ID only), GKE without client certificates."""
    props = args.props or {}
    t = args.resource_type
    if t == "aws:eks/cluster:Cluster":
        ac = props.get("accessConfig") or {}
        if ac.get("authenticationMode") != "API" or ac.get("bootstrapClusterCreatorAdminPermissions") is not False:
            report_violation(f"{args.name}: set accessConfig authenticationMode API and "
                             "bootstrapClusterCreatorAdminPermissions false (admins by access entries)")
    elif t == "azure-native:containerservice:ManagedCluster":
        if props.get("disableLocalAccounts") is not True or not (props.get("aadProfile") or {}).get("managed"):
            report_violation(f"{args.name}: set disableLocalAccounts true and aadProfile.managed (Entra ID admins)")
    elif t == "gcp:container/cluster:Cluster":
        cert = ((props.get("masterAuth") or {}).get("clientCertificateConfig") or {}).get("issueClientCertificate")
        if cert:
            report_violation(f"{args.name}: issues a client certificate (a static admin credential)")


POLICIES: list[tuple[str, str, Callable[[Any, Report], None], str]] = [
    ("namespace-pod-security", "Namespaces carry a Pod Security enforce label", namespace_pod_security,
     "mandatory"),
    ("no-latest-images", "Container images are pinned (no :latest, no missing tag)", no_latest_images, "mandatory"),
    ("privileged-allowlist", "Privileged containers only for the device plugin, DCGM exporter and Istio CNI",
     privileged_allowlist, "mandatory"),
    # Advisory: cert-manager, Argo Workflows and Katib ship controllers without requests upstream
    # (kubeforge validate reports the same as a warning); blocking them would block every profile.
    ("resource-requests", "Workload containers set resource requests", resource_requests, "advisory"),
    ("iam-no-wildcard-actions", "IAM policies allow named actions only", iam_no_wildcard_actions, "mandatory"),
    ("iam-trusted-principals", "Roles are assumable only by EKS, EC2 nodes and EKS pod identity",
     iam_trusted_principals, "mandatory"),
    ("iam-managed-policy-allowlist", "Only the AWS managed policies a cluster needs; never AdministratorAccess",
     iam_managed_policy_allowlist, "mandatory"),
    ("cloud-no-broad-roles", "No owner/editor-like Google Cloud or Azure grants; GKE admin scoped to the cluster",
     cloud_no_broad_roles, "mandatory"),
    ("cluster-admins-explicit", "Cluster admins are named (EKS access entries, Entra ID), no static admin credential",
     cluster_admins_explicit, "mandatory"),
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
