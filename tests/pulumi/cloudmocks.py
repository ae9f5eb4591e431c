"""STAND-INS for the AWS, Google Cloud and Azure providers under Pulumi's mock runtime.

No cloud is reachable from here (and no provider plugin can be downloaded), so each resource type
the cluster programs register gets a mock that answers like the real provider does: the inputs
back plus what the cloud computes (ids and ARNs in the cloud's own formats, the EKS endpoint and
certificate authority, GKE's master auth, AKS's FQDN, auto-names with a random suffix where the
provider auto-names). Outputs matter: the programs wire node groups to the cluster's `name`,
launch templates to the cluster security group, the kubeconfig to endpoint and CA; a mock that
echoed inputs would silently drop those edges. Written from the providers' schemas (registry
docs: aws.eks.Cluster/NodeGroup/Addon/AccessEntry, aws.iam.Role, aws.ec2.*, gcp.container.Cluster/
NodePool, gcp.serviceaccount.Account, azure-native containerservice.ManagedCluster/AgentPool,
listManagedClusterUserCredentials). A cloud type without a mock here fails the run.
"""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from mockrun import UnmockedInvoke
from pulumi.runtime import mocks

ACCOUNT = "111122223333"
SUBSCRIPTION = "00000000-0000-4000-8000-000000000000"
TENANT = "00000000-0000-4000-8000-0000000000aa"
CLOUD_PACKAGES = ("aws", "gcp", "azure-native")
CA_PEM = ("-----BEGIN CERTIFICATE-----\nMIIBmockCAkubeforgeNotARealCertificate\n-----END CERTIFICATE-----\n")
CA_B64 = base64.b64encode(CA_PEM.encode()).decode()
AKS_SERVER_APP = "6dae42f8-4368-4678-94ff-3960e28e3630"   # the AKS Entra ID server application


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def autoname(name: str) -> str:
    """What the providers' Check does for an unset name: logical name + '-' + 7 random hex."""
    return f"{name}-{_hex('autoname' + name, 7)}"


class CloudMocks:
    """`resources` for mockrun.run: per-type outputs, and the invokes the programs make."""

    def __init__(self) -> None:
        self.region = "us-east-1"
        self.state: dict[tuple[str, str], dict[str, Any]] = {}     # (type, logical name) -> outputs
        self.kubeconfig_user: dict[str, Any] | None = None          # AKS: what the credentials call returns

    # -- mockrun hook --------------------------------------------------------------------------
    def __call__(self, args: mocks.MockResourceArgs) -> tuple[str, dict] | None:
        typ = args.typ
        if typ.startswith("pulumi:providers:"):
            if typ == "pulumi:providers:aws" and args.inputs.get("region"):
                self.region = args.inputs["region"]
            return f"{args.name}-provider-id", dict(args.inputs)
        pkg = typ.split(":", 1)[0]
        if pkg not in CLOUD_PACKAGES:
            return None
        fn = HANDLERS.get(typ)
        if fn is None:
            raise UnmockedInvoke(f"unmocked resource type {typ} ({args.name}): add its outputs to cloudmocks.py")
        inputs = dict(args.inputs)
        id_, computed = fn(self, args.name, inputs)
        out = {**inputs, **computed}
        self.state[(typ, args.name)] = out
        return id_, out

    def invokes(self) -> dict[str, Any]:
        return {"azure-native:containerservice:listManagedClusterUserCredentials":
                lambda args: _aks_credentials_for(self, args)}

    # -- AWS -----------------------------------------------------------------------------------
    def arn(self, service: str, resource: str, region: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{ACCOUNT}:{resource}"

    def _aws_id(self, prefix: str, name: str) -> str:
        return f"{prefix}-0{_hex(prefix + name, 16)}"


def _vpc(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    vid = m._aws_id("vpc", name)
    return vid, {"arn": m.arn("ec2", f"vpc/{vid}"), "defaultSecurityGroupId": m._aws_id("sg", name),
                 "mainRouteTableId": m._aws_id("rtb", name + "main"), "ownerId": ACCOUNT,
                 "defaultNetworkAclId": m._aws_id("acl", name)}


def _simple_aws(prefix: str, service: str, kind: str):
    def fn(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
        rid = m._aws_id(prefix, name)
        return rid, {"arn": m.arn(service, f"{kind}/{rid}"), "ownerId": ACCOUNT}
    return fn


def _subnet(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    sid = m._aws_id("subnet", name)
    zone = i.get("availabilityZone", "")
    return sid, {"arn": m.arn("ec2", f"subnet/{sid}"), "availabilityZoneId": f"use1-az{(ord(zone[-1]) - 96) if zone else 1}",
                 "ownerId": ACCOUNT}


def _eip(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    aid = m._aws_id("eipalloc", name)
    return aid, {"allocationId": aid, "publicIp": f"198.18.{int(_hex(name, 2), 16)}.1", "arn": m.arn("ec2", f"elastic-ip/{aid}")}


def _nat(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    nid = m._aws_id("nat", name)
    return nid, {"publicIp": "198.18.0.10", "privateIp": "10.0.128.10", "networkInterfaceId": m._aws_id("eni", name)}


def _assoc(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    return m._aws_id("rtbassoc", name), {}


def _role(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    rname = i.get("name") or autoname(name)
    return rname, {"name": rname, "arn": f"arn:aws:iam::{ACCOUNT}:role/{rname}",
                   "uniqueId": "AROA" + _hex(rname, 17).upper(), "createDate": "2026-11-26T12:00:00Z"}


def _attach(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    return f"{i['role']}-20261126120000{_hex(name, 12)}", {}


def _cluster(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    cname = i.get("name") or autoname(name)
    endpoint = f"https://{_hex(cname, 32).upper()}.gr7.{m.region}.eks.amazonaws.com"
    vpc = {**(i.get("vpcConfig") or {}), "clusterSecurityGroupId": m._aws_id("sg", cname + "cluster"),
           "vpcId": m._aws_id("vpc", "vpc")}
    return cname, {"name": cname, "arn": m.arn("eks", f"cluster/{cname}"), "endpoint": endpoint,
                   "certificateAuthority": {"data": CA_B64}, "platformVersion": "eks.7", "status": "ACTIVE",
                   "createdAt": "2026-11-26T12:00:00Z", "vpcConfig": vpc,
                   "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{m.region}.amazonaws.com/id/{_hex(cname, 32).upper()}"}]}]}


def _access_entry(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    c, p = i["clusterName"], i["principalArn"]
    return f"{c}:{p}", {"accessEntryArn": m.arn("eks", f"access-entry/{c}/{_hex(p, 8)}"), "kubernetesGroups": [],
                        "userName": p, "createdAt": "2026-11-26T12:00:00Z"}


def _access_policy(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    return f"{i['clusterName']}#{i['principalArn']}#{i['policyArn']}", {"associatedAt": "2026-11-26T12:00:00Z"}


def _addon(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    c, a = i["clusterName"], i["addonName"]
    # Without addonVersion EKS installs the add-on's default version for the cluster's Kubernetes.
    return f"{c}:{a}", {"arn": m.arn("eks", f"addon/{c}/{a}/{_hex(a, 8)}"),
                        "addonVersion": i.get("addonVersion") or "v1.0.0-eksbuild.1", "createdAt": "2026-11-26T12:00:00Z"}


def _node_group(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    c = i["clusterName"]
    ng = i.get("nodeGroupName") or autoname(name)
    return f"{c}:{ng}", {"nodeGroupName": ng, "arn": m.arn("eks", f"nodegroup/{c}/{ng}/{_hex(ng, 8)}"),
                         "status": "ACTIVE", "version": i.get("version"),
                         "releaseVersion": i.get("releaseVersion") or f"{i.get('version')}.0-20261120",
                         "resources": [{"autoscalingGroups": [{"name": f"eks-{ng}-{_hex(ng, 8)}"}],
                                        "remoteAccessSecurityGroupId": ""}]}


def _launch_template(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    lid = "lt-0" + _hex(name, 16)
    lname = i.get("name") or autoname(name)
    return lid, {"name": lname, "arn": m.arn("ec2", f"launch-template/{lid}"), "latestVersion": 1, "defaultVersion": 1}


def _placement_group(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    pname = i.get("name") or autoname(name)
    return pname, {"name": pname, "arn": m.arn("ec2", f"placement-group/{pname}"),
                   "placementGroupId": "pg-0" + _hex(name, 16)}


# -- Google Cloud ------------------------------------------------------------------------------
def _project(i: dict, default: str = "mock-project") -> str:
    return i.get("project") or default


def _sa(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    p = _project(i)
    email = f"{i['accountId']}@{p}.iam.gserviceaccount.com"
    return f"projects/{p}/serviceAccounts/{email}", {"email": email, "name": f"projects/{p}/serviceAccounts/{email}",
                                                     "uniqueId": str(int(_hex(email, 12), 16)),
                                                     "member": f"serviceAccount:{email}"}


def _iam_member(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    return f"{i['project']}/{i['role']}/{i['member']}", {"etag": "BwY" + _hex(name, 8)}


def _gke_cluster(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    cname = i.get("name") or autoname(name)
    loc, p = i.get("location"), _project(i)
    rid = f"projects/{p}/locations/{loc}/clusters/{cname}"
    return rid, {"name": cname, "endpoint": f"34.{int(_hex(cname, 2), 16)}.10.2", "selfLink":
                 f"https://container.googleapis.com/v1/{rid}", "masterVersion": f"{i.get('minMasterVersion')}.3-gke.1200000",
                 "masterAuth": {"clusterCaCertificate": CA_B64, "clientCertificateConfig": {"issueClientCertificate": False}},
                 "servicesIpv4Cidr": "10.96.0.0/20", "labelFingerprint": _hex(cname, 8), "operation": None,
                 "project": p}


def _gke_pool(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    pname = i.get("name") or autoname(name)
    cluster = i["cluster"]
    rid = f"projects/{_project(i)}/locations/{i.get('location')}/clusters/{cluster}/nodePools/{pname}"
    return rid, {"name": pname, "instanceGroupUrls": [f"https://www.googleapis.com/compute/v1/projects/{_project(i)}/"
                                                       f"zones/{i.get('location')}-a/instanceGroupManagers/gke-{pname}"],
                 "managedInstanceGroupUrls": [], "version": i.get("version") or "1.34.3-gke.1200000", "operation": None}


# -- Azure -------------------------------------------------------------------------------------
def _rg(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    rg = i.get("resourceGroupName") or autoname(name)
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}", {"name": rg, "provisioningState": "Succeeded",
                                                                 "type": "Microsoft.Resources/resourceGroups",
                                                                 "azureApiVersion": "2024-03-01"}


def _arm_id(i: dict, provider: str, kind: str, name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{i['resourceGroupName']}/providers/{provider}/{kind}/{name}"


def _aks(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    cname = i.get("resourceName") or autoname(name)
    loc = i.get("location")
    fqdn = f"{i.get('dnsPrefix')}-{_hex(cname, 8)}.hcp.{loc}.azmk8s.io"
    return _arm_id(i, "Microsoft.ContainerService", "managedClusters", cname), {
        "name": cname, "fqdn": fqdn, "azurePortalFQDN": f"{i.get('dnsPrefix')}-{_hex(cname, 8)}.portal.hcp.{loc}.azmk8s.io",
        "currentKubernetesVersion": f"{i.get('kubernetesVersion')}.4", "provisioningState": "Succeeded",
        "powerState": {"code": "Running"}, "nodeResourceGroup": f"MC_{i['resourceGroupName']}_{cname}_{loc}",
        "identity": {**(i.get("identity") or {}), "principalId": "00000000-0000-4000-8000-" + _hex(cname, 12),
                     "tenantId": TENANT},
        "identityProfile": {"kubeletidentity": {"clientId": "00000000-0000-4000-8000-" + _hex(cname + "k", 12),
                                                "objectId": "00000000-0000-4000-8000-" + _hex(cname + "o", 12)}},
        "type": "Microsoft.ContainerService/ManagedClusters", "azureApiVersion": "2025-09-01"}


def _agent_pool(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    pool = i.get("agentPoolName") or name
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{i['resourceGroupName']}/providers/Microsoft.ContainerService/"
            f"managedClusters/{i['resourceName']}/agentPools/{pool}"), {
        "name": pool, "provisioningState": "Succeeded", "currentOrchestratorVersion": f"{i.get('orchestratorVersion')}.4",
        "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202611.20.0", "type": "Microsoft.ContainerService/managedClusters/agentPools"}


def _ppg(m: CloudMocks, name: str, i: dict) -> tuple[str, dict]:
    pname = i.get("proximityPlacementGroupName") or autoname(name)
    return _arm_id(i, "Microsoft.Compute", "proximityPlacementGroups", pname), {"name": pname,
                                                                              "type": "Microsoft.Compute/proximityPlacementGroups"}


def _aks_credentials_for(m: CloudMocks, args: dict) -> dict:
    cluster = next((v for (t, _), v in m.state.items() if t == "azure-native:containerservice:ManagedCluster"
                    and v.get("name") == args.get("resourceName")
                    and v.get("resourceGroupName") == args.get("resourceGroupName")), None)
    if cluster is None:
        raise UnmockedInvoke(f"listManagedClusterUserCredentials for a cluster that was not created: {args}")
    user = m.kubeconfig_user or {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin",
        "args": ["get-token", "--login", "devicecode", "--server-id", AKS_SERVER_APP, "--environment", "AzurePublicCloud",
                 "--tenant-id", TENANT], "provideClusterInfo": False, "interactiveMode": "IfAvailable"}}
    if args.get("format") != "exec" and m.kubeconfig_user is None:
        # format=azure returns the deprecated auth-provider kubeconfig (as the real API does).
        user = {"auth-provider": {"name": "azure", "config": {"apiserver-id": AKS_SERVER_APP, "tenant-id": TENANT}}}
    name = cluster["name"]
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": name,
           "clusters": [{"name": name, "cluster": {"server": f"https://{cluster['fqdn']}:443",
                                                   "certificate-authority-data": CA_B64}}],
           "contexts": [{"name": name, "context": {"cluster": name, "user": f"clusterUser_{args['resourceGroupName']}_{name}"}}],
           "users": [{"name": f"clusterUser_{args['resourceGroupName']}_{name}", "user": user}]}
    value = base64.b64encode(json.dumps(doc).encode()).decode()
    return {"kubeconfigs": [{"name": "clusterUser", "value": value}]}


HANDLERS = {
    "aws:ec2/vpc:Vpc": _vpc,
    "aws:ec2/internetGateway:InternetGateway": _simple_aws("igw", "ec2", "internet-gateway"),
    "aws:ec2/subnet:Subnet": _subnet,
    "aws:ec2/routeTable:RouteTable": _simple_aws("rtb", "ec2", "route-table"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _assoc,
    "aws:ec2/eip:Eip": _eip,
    "aws:ec2/natGateway:NatGateway": _nat,
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:ec2/placementGroup:PlacementGroup": _placement_group,
    "aws:iam/role:Role": _role,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _attach,
    "aws:eks/cluster:Cluster": _cluster,
    "aws:eks/accessEntry:AccessEntry": _access_entry,
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": _access_policy,
    "aws:eks/addon:Addon": _addon,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "gcp:serviceaccount/account:Account": _sa,
    "gcp:projects/iAMMember:IAMMember": _iam_member,
    "gcp:container/cluster:Cluster": _gke_cluster,
    "gcp:container/nodePool:NodePool": _gke_pool,
    "azure-native:resources:ResourceGroup": _rg,
    "azure-native:containerservice:ManagedCluster": _aks,
    "azure-native:containerservice:AgentPool": _agent_pool,
    "azure-native:compute:ProximityPlacementGroup": _ppg,
}
