"""Cloud cluster stack settings (stacks/cluster-eks|gke|aks): `kubeforge:*` config -> one checked
`ClusterSettings`, with no Pulumi or provider import.

The same function serves the Pulumi programs (kubeforge/pulumi/eks.py, gke.py, aks.py) and the CLI
(`kubeforge up|preview --project cluster-*`, `kubeforge plan --cluster`), so a bad stack file fails
the same way in both, before anything reaches a cloud.

Keys (namespace `kubeforge:`), common to the three clouds:
  profile            required: the profile the platform will run (its Kubernetes version and GPU
                     mode decide the cluster's version and the GPU pools' driver setting)
  gpu                object merged over the profile's `gpu` (as in stacks/platform)
  clusterName        required: the cloud's cluster name
  kubernetesVersion  optional; must equal the profile's (a cluster upgrade is a reviewed change of both)
  region, zones      the cloud's region and the zones node pools may use
  network            EKS: {vpcCidr, natGateways} (new VPC) or {subnetIds}; publicAccessCidrs
                     GKE: {network, subnetwork, privateNodes, masterAuthorizedNetworks}
                     AKS: {vnetSubnetId, authorizedIpRanges}
  admins             required: who administers the cluster (EKS IAM principal ARNs, GKE IAM
                     members, AKS Entra ID group object ids)
  systemNodeGroup    {instanceType, count: {min, max, desired}, diskSize}: untainted, no GPUs
  gpuNodeGroups      [{name, instanceType, count, capacityType, reservation, zones, diskSize,
                     labels, taints, efa, placementGroup, releaseVersion (EKS), os (EKS), mig
                     (GKE/AKS), accelerator (GKE), driverVersion (GKE)}]
  tags               {key: value} on everything that takes tags/labels
  deletionProtection default true: the cloud's own guard where it has one, and Pulumi `protect`
Per cloud: EKS `addonVersions`; GKE `project` (required), `releaseChannel`; AKS `resourceGroup`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError
from kubeforge.gpu import instances

PROJECTS = {"cluster-eks": "eks", "cluster-gke": "gke", "cluster-aks": "aks"}
TABLE_CLOUD = {"eks": "aws", "gke": "gcp", "aks": "azure"}
COMMON_KEYS = ("profile", "gpu", "clusterName", "kubernetesVersion", "region", "zones", "network", "admins",
               "systemNodeGroup", "gpuNodeGroups", "tags", "deletionProtection")
CLOUD_KEYS = {"eks": ("addonVersions",), "gke": ("project", "releaseChannel"), "aks": ("resourceGroup",)}
GROUP_KEYS = ("name", "instanceType", "count", "capacityType", "reservation", "zones", "diskSize", "labels",
              "taints", "efa", "placementGroup", "releaseVersion", "os", "mig", "accelerator", "driverVersion")
SYSTEM_KEYS = ("instanceType", "count", "diskSize")
NETWORK_KEYS = {"eks": ("vpcCidr", "natGateways", "subnetIds", "publicAccessCidrs"),
                "gke": ("network", "subnetwork", "privateNodes", "masterAuthorizedNetworks"),
                "aks": ("vnetSubnetId", "authorizedIpRanges")}
CAPACITY_TYPES = {"eks": ("ON_DEMAND", "SPOT", "CAPACITY_BLOCK"), "gke": ("ON_DEMAND", "SPOT", "RESERVATION"),
                  "aks": ("ON_DEMAND", "SPOT", "RESERVATION")}
# Capacity that is bought for one placement: one zone, never preemptible.
RESERVED = ("CAPACITY_BLOCK", "RESERVATION")
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
# GKE puts nvidia.com/gpu=present:NoSchedule on GPU nodes itself: the same taint, not a second one.
GPU_TAINT_VALUE = {"eks": "true", "gke": "present", "aks": "true"}
GPU_LABEL = ("nvidia.com/gpu.present", "true")
# GKE: a node with this label runs no GKE device plugin (the GPU Operator brings its own).
GKE_NO_DEVICE_PLUGIN = "gke-no-default-nvidia-gpu-device-plugin"
DEFAULT_SYSTEM = {"eks": "m6i.xlarge", "gke": "e2-standard-4", "aks": "Standard_D4s_v5"}
REGION = {"eks": (r"[a-z]{2}(-gov|-iso[a-z]?)?-(north|south|east|west|central|northeast|northwest|southeast|"
                  r"southwest)-\d", "us-east-1"),
          "gke": (r"[a-z]+-[a-z]+\d{1,2}", "us-central1"),
          "aks": (r"[a-z]+[a-z0-9]*", "eastus2")}
CLUSTER_NAME = {"eks": (r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}", "letters, digits, - and _ (at most 100)"),
                "gke": (r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", "lower-case letters, digits and - (at most 40)"),
                "aks": (r"[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?", "letters, digits, - and _ (at most 63)")}
ADMIN = {"eks": (r"arn:aws(-[a-z]+)*:iam::\d{12}:(role|user)/[\w+=,.@/-]+",
                 "an IAM role or user ARN, e.g. arn:aws:iam::111122223333:role/platform-admins"),
         "gke": (r"(user|group|serviceAccount):[^@\s]+@[^@\s]+", "an IAM member, e.g. group:ml-admins@example.com"),
         "aks": (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                 "an Entra ID group object id (a UUID)")}
# AKS agent pool names are lower-case letters and digits, at most 12: 8 for the group + 4 for the
# suffix that makes a replacement pool a new name (see aks.pool_name).
GROUP_NAME = {"eks": (r"[a-z][a-z0-9-]{0,19}", "lower-case letters, digits and -, starting with a letter, at most 20"),
              "gke": (r"[a-z][a-z0-9-]{0,19}", "lower-case letters, digits and -, starting with a letter, at most 20"),
              "aks": (r"[a-z][a-z0-9]{0,7}", "lower-case letters and digits, starting with a letter, at most 8")}
AKS_MIG = ("MIG1g", "MIG2g", "MIG3g", "MIG4g", "MIG7g")
GKE_MIG = r"[1-7]g\.\d+gb"
GKE_DRIVERS = ("DEFAULT", "LATEST")
EKS_OS = ("al2023", "bottlerocket")


@dataclass
class NodeGroup:
    name: str
    instance_type: str
    min: int
    max: int
    desired: int
    disk_gb: int
    capacity_type: str = "ON_DEMAND"
    reservation: str | None = None
    zones: list[str] = field(default_factory=list)
    subnet_ids: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    efa: bool = False
    placement_group: bool = False
    release_version: str | None = None
    os: str = "al2023"
    mig: str | None = None
    accelerator: tuple[str, int] | None = None   # GKE (type, count)
    driver_version: str = "DEFAULT"
    gpu: instances.GpuType | None = None        # None on the system group and for unknown types

    @property
    def spot(self) -> bool:
        return self.capacity_type == "SPOT"


@dataclass
class ClusterSettings:
    cloud: str                    # eks | gke | aks
    file: str
    profile: str
    profile_file: str
    kubernetes_version: str
    gpu_mode: str
    sharing: tuple[str, int]      # (strategy, replicas) from the profile
    tolerations: list[dict[str, Any]]
    cluster_name: str
    region: str
    zones: list[str]
    network: dict[str, Any]
    admins: list[str]
    system: NodeGroup
    gpu_groups: list[NodeGroup]
    tags: dict[str, str]
    deletion_protection: bool
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def capacity(self) -> list[str]:
        """What the environment will offer, one line per GPU group ("2 × p5.48xlarge = 16 H100 80GB")."""
        out = []
        for g in self.gpu_groups:
            if g.gpu is None:
                out.append(f"{g.name}: {g.desired} × {g.instance_type} = unknown GPUs (not in kubeforge/gpu/instances.yaml)")
            else:
                out.append(f"{g.name}: {instances.capacity(g.desired, g.gpu)}"
                           + (f" (up to {g.max * g.gpu.count})" if g.max > g.desired else ""))
        return out

    def expected_gpus(self) -> dict[str, int]:
        """instance type -> GPUs per node, for the types this cluster runs that the table knows."""
        return {g.instance_type: g.gpu.count for g in self.gpu_groups if g.gpu is not None}


def _err(message: str, file: str, key: str, fix: str) -> KubeforgeError:
    return KubeforgeError(message, file=file, field=f"config.kubeforge:{key}", fix=fix)


def _unknown(given: dict[str, Any], allowed: tuple[str, ...], file: str, where: str, prefix: str = "") -> None:
    bad = sorted(k for k in given if k not in allowed)
    if bad:
        raise _err(f"unknown key {bad[0]}" + (f" in {where}" if where else ""), file, f"{where}.{bad[0]}" if where else bad[0],
                   f"use one of: {', '.join(prefix + k for k in allowed)}")


def _obj(value: Any, file: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _err(f"kubeforge:{key} must be a mapping, got {type(value).__name__}", file, key,
                   "write it as a YAML mapping")
    return value


def _strs(value: Any, file: str, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _err(f"kubeforge:{key} must be a list of strings", file, key, "write it as a YAML list")
    return list(value)


def _int(value: Any, file: str, key: str, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _err(f"kubeforge:{key} must be an integer >= {lo}, got {value!r}", file, key, f"e.g. {max(lo, 1)}")
    return value


def parse(cloud: str, config: dict[str, Any], *, file: str, check_profile: bool = True) -> ClusterSettings:
    """Checked settings of a cloud cluster stack; raises KubeforgeError (exit 2) naming file, field and fix.

    check_profile=False (destroy): only the stack file's own shape; the profile may have moved on."""
    _unknown(config, COMMON_KEYS + CLOUD_KEYS[cloud], file, "", "kubeforge:")
    profile_name = config.get("profile")
    if not profile_name or not isinstance(profile_name, str):
        raise _err("the stack names no profile", file, "profile",
                   "add `kubeforge:profile: <name>` (the profile the platform stack runs on this cluster)")
    version = config.get("kubernetesVersion")
    if isinstance(version, float):
        raise _err("kubeforge:kubernetesVersion is a YAML number (1.30 would read as 1.3)", file,
                   "kubernetesVersion", 'quote it, e.g. "1.34"')
    gpu_over = _obj(config.get("gpu"), file, "gpu")
    if check_profile:
        from kubeforge.profile import load_profile

        prof = load_profile(profile_name, {"gpu": gpu_over} if gpu_over else None)
        from kubeforge.plan import make_plan

        make_plan(prof)                      # the GPU mode must plan (one advertiser per node)
        k8s, mode = prof.kubernetesVersion, prof.gpu.mode
        sharing = (prof.gpu.sharing.strategy, prof.gpu.sharing.replicas)
        tolerations, pfile = list(prof.gpu.tolerations), prof.source_file
        if version is not None and str(version) != k8s:
            raise _err(f"kubernetesVersion {version} does not match the profile's {k8s} ({pfile})", file,
                       "kubernetesVersion",
                       f"set kubeforge:kubernetesVersion: \"{k8s}\" in {file}, or change kubernetesVersion in "
                       f"{pfile}: the cluster runs the version the platform is planned for")
    else:
        k8s, mode, sharing, tolerations, pfile = str(version or ""), "none", ("none", 1), [], ""

    name = config.get("clusterName")
    pattern, what = CLUSTER_NAME[cloud]
    if not isinstance(name, str) or not re.fullmatch(pattern, name):
        raise _err(f"clusterName {name!r} is missing or not a valid {cloud.upper()} cluster name", file,
                   "clusterName", f"use {what}")
    region = config.get("region")
    rpattern, example = REGION[cloud]
    if not isinstance(region, str) or not re.fullmatch(rpattern, region):
        raise _err(f"region {region!r} is missing or not a {cloud.upper()} region name", file, "region",
                   f"e.g. kubeforge:region: {example}")
    zones = _strs(config.get("zones"), file, "zones")
    for z in zones:
        if not _zone_ok(cloud, region, z):
            raise _err(f"zone {z!r} is not a zone of region {region}", file, "zones",
                       f"use zones of {region}, e.g. {_zone_example(cloud, region)}")
    admins = _strs(config.get("admins"), file, "admins")
    if not admins:
        raise _err("no admins: nobody could administer the cluster (no cluster-creator admin is granted)",
                   file, "admins", f"list at least one: {ADMIN[cloud][1]}")
    for a in admins:
        if not re.fullmatch(ADMIN[cloud][0], a):
            raise _err(f"admin {a!r} is not {ADMIN[cloud][1]}", file, "admins", f"use {ADMIN[cloud][1]}")
    tags = _obj(config.get("tags"), file, "tags")
    if not all(isinstance(v, str) for v in tags.values()):
        raise _err("kubeforge:tags values must be strings", file, "tags", "quote them")
    dp = config.get("deletionProtection", True)
    if not isinstance(dp, bool):
        raise _err(f"kubeforge:deletionProtection must be true or false, got {dp!r}", file, "deletionProtection",
                   "true (prod) or false (throw-away environments)")
    network = _network(cloud, _obj(config.get("network"), file, "network"), zones, file)
    extra = _extra(cloud, config, file)

    s = ClusterSettings(cloud=cloud, file=file, profile=profile_name, profile_file=pfile, kubernetes_version=k8s,
                        gpu_mode=mode, sharing=sharing, tolerations=tolerations, cluster_name=name, region=region,
                        zones=zones, network=network, admins=admins, system=_system(cloud, config, zones, file),
                        gpu_groups=[], tags=dict(tags), deletion_protection=dp, extra=extra)
    groups = config.get("gpuNodeGroups") or []
    if not isinstance(groups, list):
        raise _err("kubeforge:gpuNodeGroups must be a list of node groups", file, "gpuNodeGroups",
                   "e.g. gpuNodeGroups: [{name: gpu, instanceType: ..., count: {min: 0, max: 2, desired: 1}}]")
    seen: set[str] = set()
    for i, raw in enumerate(groups):
        g = _gpu_group(s, raw, i)
        if g.name in seen or g.name == "system":
            raise _err(f"node group name {g.name!r} is used twice", file, f"gpuNodeGroups[{i}].name",
                       "give every node group its own name")
        seen.add(g.name)
        s.gpu_groups.append(g)
    if check_profile:
        _coherence(s)
    return s


def _zone_ok(cloud: str, region: str, zone: str) -> bool:
    if cloud == "aks":
        return zone in ("1", "2", "3")
    if cloud == "eks":
        return bool(re.fullmatch(re.escape(region) + r"[a-z]", zone))
    return bool(re.fullmatch(re.escape(region) + r"-[a-z]", zone))


def _zone_example(cloud: str, region: str) -> str:
    return {"aks": '"1", "2"', "eks": f"{region}a, {region}b"}.get(cloud, f"{region}-a, {region}-b")


def _network(cloud: str, net: dict[str, Any], zones: list[str], file: str) -> dict[str, Any]:
    _unknown(net, NETWORK_KEYS[cloud], file, "network")
    if cloud == "eks":
        if net.get("vpcCidr") and net.get("subnetIds"):
            raise _err("network sets both vpcCidr (make a VPC) and subnetIds (use existing subnets)", file,
                       "network", "keep one: vpcCidr for a new VPC, or subnetIds of an existing one")
        if not net.get("subnetIds"):
            cidr = net.get("vpcCidr", "10.0.0.0/16")
            m = re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}/(\d{1,2})", str(cidr))
            if not m or not 16 <= int(m.group(2)) <= 20:
                raise _err(f"network.vpcCidr {cidr!r} is not an IPv4 CIDR of /16 to /20", file, "network.vpcCidr",
                           "e.g. 10.40.0.0/16 (kubeforge cuts one public and one private subnet per zone from it)")
            if len(zones) < 2:
                raise _err("a new VPC needs at least two zones (EKS places its control plane in two)", file,
                           "zones", "list two or more zones of the region")
            nat = net.get("natGateways", "single")
            if nat not in ("single", "perZone"):
                raise _err(f"network.natGateways {nat!r}", file, "network.natGateways", "single or perZone")
            return {"vpcCidr": str(cidr), "natGateways": nat, "publicAccessCidrs": _cidrs(net, "publicAccessCidrs", file)}
        subnets = _strs(net.get("subnetIds"), file, "network.subnetIds")
        bad = [x for x in subnets if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", x)]
        if bad or len(subnets) < 2:
            raise _err(f"network.subnetIds {bad[0] if bad else subnets!r}: want two or more subnet ids", file,
                       "network.subnetIds", "e.g. [subnet-0a1b2c3d4e5f60718, subnet-0f1e2d3c4b5a69788] in two zones")
        return {"subnetIds": subnets, "publicAccessCidrs": _cidrs(net, "publicAccessCidrs", file)}
    if cloud == "gke":
        return {"network": str(net.get("network", "default")), "subnetwork": net.get("subnetwork"),
                "privateNodes": bool(net.get("privateNodes", True)),
                "masterAuthorizedNetworks": _cidrs(net, "masterAuthorizedNetworks", file)}
    sub = net.get("vnetSubnetId")
    if sub is not None and not re.fullmatch(r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
                                            r"Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+", str(sub)):
        raise _err(f"network.vnetSubnetId {sub!r} is not a subnet resource id", file, "network.vnetSubnetId",
                   "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<name>")
    return {"vnetSubnetId": sub, "authorizedIpRanges": _cidrs(net, "authorizedIpRanges", file)}


def _cidrs(net: dict[str, Any], key: str, file: str) -> list[str]:
    out = _strs(net.get(key), file, f"network.{key}")
    for c in out:
        if not re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}/\d{1,2}", c):
            raise _err(f"network.{key}: {c!r} is not an IPv4 CIDR", file, f"network.{key}", "e.g. 203.0.113.0/24")
    return out


def _extra(cloud: str, config: dict[str, Any], file: str) -> dict[str, Any]:
    if cloud == "gke":
        project = config.get("project")
        if not isinstance(project, str) or not re.fullmatch(r"[a-z][-a-z0-9]{4,28}[a-z0-9]", project):
            raise _err(f"project {project!r} is missing or not a Google Cloud project id", file, "project",
                       "e.g. kubeforge:project: ml-platform-prod")
        channel = config.get("releaseChannel", "REGULAR")
        if channel not in ("RAPID", "REGULAR", "STABLE", "EXTENDED"):
            raise _err(f"releaseChannel {channel!r}", file, "releaseChannel", "RAPID, REGULAR, STABLE or EXTENDED")
        return {"project": project, "releaseChannel": channel}
    if cloud == "aks":
        rg = config.get("resourceGroup") or f"{config.get('clusterName', 'kubeforge')}-rg"
        if not re.fullmatch(r"[-\w._()]{1,90}", str(rg)) or str(rg).endswith("."):
            raise _err(f"resourceGroup {rg!r} is not a resource group name", file, "resourceGroup",
                       "letters, digits, - _ . ( ), at most 90")
        return {"resourceGroup": str(rg)}
    versions = _obj(config.get("addonVersions"), file, "addonVersions")
    for k, v in versions.items():
        if not re.fullmatch(r"v\d+\.\d+\.\d+-eksbuild\.\d+", str(v)):
            raise _err(f"addonVersions.{k}: {v!r} is not an EKS add-on version", file, f"addonVersions.{k}",
                       "e.g. v1.20.4-eksbuild.1 (`aws eks describe-addon-versions --addon-name ...`)")
    return {"addonVersions": dict(versions)}


def _count(raw: Any, file: str, where: str) -> tuple[int, int, int]:
    c = _obj(raw, file, f"{where}.count")
    _unknown(c, ("min", "max", "desired"), file, f"{where}.count")
    lo = _int(c.get("min", 1), file, f"{where}.count.min")
    hi = _int(c.get("max", max(lo, 1)), file, f"{where}.count.max", 1)
    if lo > hi:
        raise _err(f"count.min {lo} is greater than count.max {hi}", file, f"{where}.count",
                   "min <= desired <= max")
    want = _int(c.get("desired", lo), file, f"{where}.count.desired")
    if not lo <= want <= hi:
        raise _err(f"count.desired {want} is outside min {lo} .. max {hi}", file, f"{where}.count.desired",
                   "min <= desired <= max")
    return lo, hi, want


def _system(cloud: str, config: dict[str, Any], zones: list[str], file: str) -> NodeGroup:
    raw = _obj(config.get("systemNodeGroup"), file, "systemNodeGroup")
    _unknown(raw, SYSTEM_KEYS, file, "systemNodeGroup")
    itype = str(raw.get("instanceType", DEFAULT_SYSTEM[cloud]))
    gpu = instances.lookup(TABLE_CLOUD[cloud], itype)
    if gpu is not None:
        raise _err(f"systemNodeGroup.instanceType {itype} is a GPU type ({gpu.count} × {gpu.model}); the "
                   "system group runs the cluster's own pods", file, "systemNodeGroup.instanceType",
                   f"use a CPU type (e.g. {DEFAULT_SYSTEM[cloud]}) and put GPUs in gpuNodeGroups")
    lo, hi, want = _count(raw.get("count", {"min": 2, "max": 4, "desired": 2}), file, "systemNodeGroup")
    if hi < 1:
        raise _err("the system node group needs at least one node", file, "systemNodeGroup.count.max", "max >= 1")
    return NodeGroup("system", itype, max(lo, 1), hi, max(want, 1),
                     _int(raw.get("diskSize", 50), file, "systemNodeGroup.diskSize", 20), zones=list(zones))


def _gpu_group(s: ClusterSettings, raw: Any, i: int) -> NodeGroup:
    file, cloud, where = s.file, s.cloud, f"gpuNodeGroups[{i}]"
    raw = _obj(raw, file, where)
    _unknown(raw, GROUP_KEYS, file, where)
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(GROUP_NAME[cloud][0], name):
        raise _err(f"node group name {name!r} is missing or invalid", file, f"{where}.name",
                   f"use {GROUP_NAME[cloud][1]}")
    itype = raw.get("instanceType")
    if not isinstance(itype, str) or not itype:
        raise _err("the node group names no instanceType", file, f"{where}.instanceType",
                   f"a GPU type from kubeforge/gpu/instances.yaml ({TABLE_CLOUD[cloud]}), e.g. "
                   f"{next(iter(instances.table()[TABLE_CLOUD[cloud]]))}")
    lo, hi, want = _count(raw.get("count", {"min": 0, "max": 1, "desired": 0}), file, where)
    ctype = raw.get("capacityType", "ON_DEMAND")
    if ctype not in CAPACITY_TYPES[cloud]:
        raise _err(f"capacityType {ctype!r} is not one {cloud.upper()} offers", file, f"{where}.capacityType",
                   f"use one of: {', '.join(CAPACITY_TYPES[cloud])}")
    g = NodeGroup(name, itype, lo, hi, want, _int(raw.get("diskSize", 200), file, f"{where}.diskSize", 50),
                  capacity_type=ctype, reservation=raw.get("reservation"),
                  zones=_strs(raw.get("zones"), file, f"{where}.zones"),
                  labels={str(k): str(v) for k, v in _obj(raw.get("labels"), file, f"{where}.labels").items()},
                  efa=bool(raw.get("efa", False)), placement_group=bool(raw.get("placementGroup", raw.get("efa", False))),
                  release_version=raw.get("releaseVersion"), os=str(raw.get("os", "al2023")), mig=raw.get("mig"),
                  driver_version=str(raw.get("driverVersion", "DEFAULT")))
    g.gpu = instances.lookup(TABLE_CLOUD[cloud], itype)
    if g.gpu is None:
        s.warnings.append(f"{file}: {where}.instanceType {itype} is not in kubeforge/gpu/instances.yaml: "
                          "kubeforge cannot say how many GPUs it has, and verify will not count them")
    for z in g.zones:
        if z not in s.zones:
            raise _err(f"zone {z!r} of node group {name} is not one of the cluster's zones {s.zones}", file,
                       f"{where}.zones", "use zones listed in kubeforge:zones")
    _taints(cloud, g, raw.get("taints"), file, where)
    if GPU_LABEL[0] in g.labels and g.labels[GPU_LABEL[0]] != GPU_LABEL[1]:
        raise _err(f"label {GPU_LABEL[0]} must be {GPU_LABEL[1]} on a GPU group", file, f"{where}.labels",
                   "drop it: kubeforge sets it")
    g.labels[GPU_LABEL[0]] = GPU_LABEL[1]
    # Reserved capacity and EFA: one zone, not preemptible, tied to its reservation or placement.
    if g.spot and (g.reservation or g.efa):
        raise _err(f"node group {name} is SPOT but sets {'a reservation' if g.reservation else 'efa'}: "
                   "reserved or EFA-connected capacity is never preemptible", file, f"{where}.capacityType",
                   "use CAPACITY_BLOCK/RESERVATION (or ON_DEMAND) for reserved and EFA groups")
    if g.capacity_type in RESERVED or g.efa:
        if len(g.zones) != 1:
            raise _err(f"node group {name} ({g.capacity_type}{', efa' if g.efa else ''}) must sit in exactly "
                       f"one zone, got {g.zones or 'none'}", file, f"{where}.zones",
                       "set zones: [<the zone of the reservation / placement group>]")
    if g.capacity_type in RESERVED and not g.reservation:
        raise _err(f"node group {name} is {g.capacity_type} but names no reservation", file, f"{where}.reservation",
                   {"eks": "the capacity block's reservation id, e.g. cr-0123456789abcdef0"}.get(
                       cloud, "the reservation's name"))
    if g.reservation and g.capacity_type not in RESERVED:
        raise _err(f"node group {name} names a reservation but capacityType is {g.capacity_type}", file,
                   f"{where}.capacityType", f"set capacityType: {'CAPACITY_BLOCK' if cloud == 'eks' else 'RESERVATION'}")
    if cloud == "eks" and g.reservation and not re.fullmatch(r"cr-[0-9a-f]{17}", str(g.reservation)):
        raise _err(f"reservation {g.reservation!r} is not a capacity reservation id", file, f"{where}.reservation",
                   "e.g. cr-0123456789abcdef0")
    if cloud == "aks" and g.reservation and not re.fullmatch(
            r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/capacityReservationGroups/[^/]+",
            str(g.reservation)):
        raise _err(f"reservation {g.reservation!r} is not a capacity reservation group id", file, f"{where}.reservation",
                   "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/capacityReservationGroups/<name>")
    if cloud == "gke" and g.reservation and not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", str(g.reservation)):
        raise _err(f"reservation {g.reservation!r} is not a Compute Engine reservation name", file,
                   f"{where}.reservation", "e.g. h100-prod-reservation")
    if g.efa and cloud != "eks":
        raise _err("efa is an AWS network adapter", file, f"{where}.efa",
                   "drop it; use placementGroup for a compact placement")
    if g.efa and g.gpu is not None and g.gpu.count < 8:
        s.warnings.append(f"{file}: {where}: efa on {itype}, which is not an 8-GPU instance: check it has an EFA")
    _per_cloud(s, g, raw, where)
    return g


def _taints(cloud: str, g: NodeGroup, raw: Any, file: str, where: str) -> None:
    g.taints = [{**GPU_TAINT, "value": GPU_TAINT_VALUE[cloud]}]
    for t in raw or []:
        m = re.fullmatch(r"([\w./-]+)=([\w.-]*):(NoSchedule|PreferNoSchedule|NoExecute)", str(t))
        if not m:
            raise _err(f"taint {t!r} is not key=value:Effect", file, f"{where}.taints",
                       "e.g. team=research:NoSchedule")
        if m.group(1) == GPU_TAINT["key"]:
            raise _err(f"taint {t!r}: kubeforge sets {GPU_TAINT['key']}=true:NoSchedule on every GPU group", file,
                       f"{where}.taints", "drop it")
        g.taints.append({"key": m.group(1), "value": m.group(2), "effect": m.group(3)})


def _per_cloud(s: ClusterSettings, g: NodeGroup, raw: dict[str, Any], where: str) -> None:
    file, cloud = s.file, s.cloud
    only = {"releaseVersion": "eks", "os": "eks", "accelerator": "gke", "driverVersion": "gke"}
    for key, c in only.items():
        if key in raw and c != cloud:
            raise _err(f"{key} is a {c.upper()} setting", file, f"{where}.{key}", "drop it")
    if cloud == "eks":
        if g.os not in EKS_OS:
            raise _err(f"os {g.os!r}", file, f"{where}.os", "al2023 (AL2023 NVIDIA AMI) or bottlerocket (Bottlerocket NVIDIA)")
        if g.mig:
            raise _err("MIG partitions on EKS are made on the node (the GPU Operator's MIG manager, profile "
                       "gpu.mig), not by the node group", file, f"{where}.mig", "drop mig")
        rv = g.release_version
        if rv is not None and s.profile_file and not re.fullmatch(re.escape(s.kubernetes_version) + r"\.\d+-\d{8}", str(rv)) \
                and not (g.os == "bottlerocket" and re.fullmatch(r"\d+\.\d+\.\d+-[0-9a-f]{8}", str(rv))):
            raise _err(f"releaseVersion {rv!r} is not an AMI release of Kubernetes {s.kubernetes_version}", file,
                       f"{where}.releaseVersion", f"e.g. {s.kubernetes_version}.2-20251120 (AL2023) or drop it")
    elif cloud == "gke":
        acc = raw.get("accelerator")
        if acc is not None:
            a = _obj(acc, file, f"{where}.accelerator")
            _unknown(a, ("type", "count"), file, f"{where}.accelerator")
            if not isinstance(a.get("type"), str):
                raise _err("accelerator.type is missing", file, f"{where}.accelerator.type", "e.g. nvidia-tesla-t4")
            g.accelerator = (a["type"], _int(a.get("count", 1), file, f"{where}.accelerator.count", 1))
            if g.gpu is not None and g.accelerator != (g.gpu.accelerator, g.gpu.count):
                raise _err(f"accelerator {g.accelerator} contradicts {g.instance_type}, which comes with "
                           f"{g.gpu.count} × {g.gpu.accelerator}", file, f"{where}.accelerator",
                           "drop accelerator: the machine type decides it")
        elif g.gpu is not None:
            g.accelerator = (str(g.gpu.accelerator), g.gpu.count)
        else:
            raise _err(f"{g.instance_type} is not in kubeforge/gpu/instances.yaml, so its GPUs are unknown", file,
                       f"{where}.accelerator", "add accelerator: {type: nvidia-tesla-t4, count: 1} (N1 machines) "
                       "or use a GPU machine type from the table")
        if g.driver_version not in GKE_DRIVERS:
            raise _err(f"driverVersion {g.driver_version!r}", file, f"{where}.driverVersion", "DEFAULT or LATEST")
        if g.mig is not None and not re.fullmatch(GKE_MIG, str(g.mig)):
            raise _err(f"mig {g.mig!r} is not a GPU partition size", file, f"{where}.mig", "e.g. 1g.10gb")
    else:
        if g.mig is not None and g.mig not in AKS_MIG:
            raise _err(f"mig {g.mig!r} is not an AKS GPU instance profile", file, f"{where}.mig",
                       f"one of: {', '.join(AKS_MIG)}")
    if g.mig is not None and g.gpu is not None and not g.gpu.mig:
        raise _err(f"mig {g.mig} on {g.instance_type}: its {g.gpu.model} is not MIG capable", file, f"{where}.mig",
                   "drop mig, or use a MIG-capable type (A100, H100, H200)")


def _coherence(s: ClusterSettings) -> None:
    """The profile's GPU mode decides each pool's driver setting: exactly one GPU advertiser per node."""
    where = f"the profile {s.profile} ({s.profile_file}) has gpu.mode {s.gpu_mode}"
    if s.gpu_mode == "none" and s.gpu_groups:
        raise _err(f"{where}, but the stack has GPU node groups", s.file, "gpuNodeGroups",
                   "set gpu.mode in the profile (or kubeforge:gpu: {mode: ...}), or drop the GPU groups")
    if s.gpu_mode != "none" and not s.gpu_groups:
        s.warnings.append(f"{s.file}: {where} but no gpuNodeGroups: the platform will find no GPU")
    for i, g in enumerate(s.gpu_groups):
        fld = f"gpuNodeGroups[{i}]"
        if s.cloud == "eks":
            if s.gpu_mode == "host" and g.os == "bottlerocket":
                raise _err(f"{where}: the platform installs the device plugin, but Bottlerocket NVIDIA runs "
                           "its own (two GPU advertisers)", s.file, f"{fld}.os",
                           "os: al2023 (driver + toolkit on the AMI, device plugin from the platform), or "
                           "gpu.mode provider with bottlerocket")
            if s.gpu_mode == "provider" and g.os != "bottlerocket":
                raise _err(f"{where}: the AL2023 NVIDIA AMI runs no device plugin, so nothing would advertise "
                           "the GPUs", s.file, f"{fld}.os", "os: bottlerocket (its own device plugin), or gpu.mode host")
            if s.gpu_mode == "operator" and g.os == "bottlerocket":
                raise _err(f"{where}: the GPU Operator installs the driver, but Bottlerocket NVIDIA brings its "
                           "own driver and device plugin", s.file, f"{fld}.os",
                           "drop os (operator mode uses the AL2023 standard AMI, driver off)")
        elif s.cloud == "gke":
            if s.gpu_mode == "host":
                raise _err(f"{where}: on GKE the node runs GKE's device plugin whenever the driver is GKE's, "
                           "and the platform would add a second", s.file, "gpu",
                           "use gpu.mode provider (GKE-installed drivers and device plugin) or operator "
                           "(drivers off, GPU Operator)")
        elif s.gpu_mode == "provider":
            raise _err(f"{where}: AKS installs the driver but runs no device plugin, so nothing would advertise "
                       "the GPUs", s.file, "gpu", "use gpu.mode host (AKS driver, platform device plugin) or operator")
        if g.mig and s.gpu_mode == "operator":
            raise _err(f"{where}: the GPU Operator's MIG manager owns MIG; a node-pool MIG profile would fight it",
                       s.file, f"{fld}.mig", "drop mig and set the profile's gpu.mig")
    gpu_tolerated = any(t.get("key") == GPU_TAINT["key"] and t.get("effect") in (None, "", GPU_TAINT["effect"])
                        and (t.get("operator") == "Exists" or t.get("value") == GPU_TAINT["value"])
                        for t in s.tolerations)
    if s.gpu_groups and not gpu_tolerated:
        raise _err(f"the profile's gpu.tolerations do not tolerate {GPU_TAINT['key']}=true:NoSchedule, the taint "
                   "of every GPU group: the GPU DaemonSets could not run there", s.file, "gpu",
                   "keep the default toleration {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}")


def eks_ami_type(s: ClusterSettings, g: NodeGroup) -> str:
    """GPU mode -> AMI: host = AL2023 NVIDIA (driver + toolkit; device plugin from the platform),
    provider = Bottlerocket NVIDIA (its own device plugin), operator = AL2023 standard (no driver)."""
    if s.gpu_mode == "operator":
        return "AL2023_x86_64_STANDARD"
    return "BOTTLEROCKET_x86_64_NVIDIA" if g.os == "bottlerocket" else "AL2023_x86_64_NVIDIA"


def gke_driver(s: ClusterSettings, g: NodeGroup) -> str:
    """GPU mode -> GKE driver installation: provider = GKE's driver (and device plugin), operator = off."""
    return "INSTALLATION_DISABLED" if s.gpu_mode == "operator" else g.driver_version


def aks_driver(s: ClusterSettings) -> str:
    """GPU mode -> AKS gpuProfile.driver: host = Install (device plugin from the platform), operator = None."""
    return "None" if s.gpu_mode == "operator" else "Install"


def read(project: str, path: Path, *, file: str, check_profile: bool = True) -> ClusterSettings:
    from kubeforge.pulumi.settings import read_stack_file

    config, _ = read_stack_file(path)
    return parse(PROJECTS[project], config, file=file, check_profile=check_profile)


def stack_ref_target(ref: str) -> tuple[str, str] | None:
    """`organization/kubeforge-cluster-eks/prod` (or `kubeforge-cluster-eks/prod`) -> (project, stack)."""
    parts = [p for p in ref.split("/") if p]
    return (parts[-2], parts[-1]) if len(parts) >= 2 else None


def check_consumer(profile: Any, cluster_stack: str, *, file: str, root: Path) -> ClusterSettings | None:
    """A platform stack on a cloud cluster stack of this checkout: same Kubernetes version and GPU
    mode, or exit 2 naming both stack files (checked before Pulumi starts)."""
    target = stack_ref_target(cluster_stack)
    if not target or not target[0].startswith("kubeforge-") or target[0][len("kubeforge-"):] not in PROJECTS:
        return None
    project, env = target[0][len("kubeforge-"):], target[1]
    path = root / project / f"Pulumi.{env}.yaml"
    if not path.is_file():
        return None      # a cluster stack kept elsewhere: its outputs are all we will see
    rel = f"stacks/{project}/Pulumi.{env}.yaml"
    c = read(project, path, file=rel)
    for what, mine, theirs in (("kubernetesVersion", profile.kubernetesVersion, c.kubernetes_version),
                               ("gpu.mode", profile.gpu.mode, c.gpu_mode)):
        if mine != theirs:
            raise KubeforgeError(
                f"{what} is {mine} here but {theirs} on the cluster stack {rel} (profile {c.profile})",
                file=file, field=f"config.kubeforge:{'gpu' if what == 'gpu.mode' else what}",
                fix=f"make them agree: the cluster's node pools are built for {what} {theirs} (edit {file} or {rel})")
    return c
