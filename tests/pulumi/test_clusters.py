"""The cloud cluster stacks (stacks/cluster-eks|gke|aks) under Pulumi's mock runtime.

The providers are MOCKED because no cloud is reachable from here (and no provider plugin can be
downloaded): tests/pulumi/cloudmocks.py answers every resource type the programs register with the
outputs the real provider returns (ids, ARNs, endpoints, CAs, auto-names), so edges that come
from outputs (node group -> cluster name, launch template -> cluster security group, kubeconfig
-> endpoint and CA) are real edges here. Everything else is real: the stack files in the
repository, the profiles, the planner, the programs and the pulumi-aws/gcp/azure-native SDKs.

Properties (the issue's numbering): 1 version/auth/add-ons, 2 GPU types and images, 3 taints,
labels, untainted system group, 4 add-on and IAM ordering, 5 destroy order, 6 IAM least
privilege, 7 secret exec-auth kubeconfig, 8 replace-safe node groups, 9 reserved capacity and EFA
in one zone, 10 GPU mode per cloud and no unmocked invoke.
"""
from __future__ import annotations

import base64
import importlib
import json
from pathlib import Path

import pytest
import yaml
from cloudmocks import CloudMocks
from mockrun import RunResult, UnmockedInvoke, run

from kubeforge.errors import KubeforgeError
from kubeforge.profile import load_profile
from kubeforge.pulumi import clusters

REPO = Path(__file__).resolve().parents[2]
TABLE = yaml.safe_load((REPO / "kubeforge" / "gpu" / "instances.yaml").read_text())
CLOUD_TABLE = {"eks": "aws", "gke": "gcp", "aks": "azure"}
ENVS = sorted((p.parent.name[len("cluster-"):], p.name[len("Pulumi."):-len(".yaml")])
              for c in ("eks", "gke", "aks") for p in (REPO / "stacks" / f"cluster-{c}").glob("Pulumi.*.yaml"))
NG, ADDON, ROLE, ATTACH = ("aws:eks/nodeGroup:NodeGroup", "aws:eks/addon:Addon", "aws:iam/role:Role",
                           "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
POOL, AGENT_POOL = "gcp:container/nodePool:NodePool", "azure-native:containerservice:AgentPool"
NETWORK_TYPES = ("aws:ec2/vpc:", "aws:ec2/subnet:", "aws:ec2/natGateway:", "aws:ec2/eip:", "aws:ec2/routeTable:",
                 "aws:ec2/routeTableAssociation:", "aws:ec2/internetGateway:")
_RUNS: dict[tuple, tuple[RunResult, CloudMocks]] = {}


def stack_config(cloud: str, env: str) -> dict:
    return yaml.safe_load((REPO / "stacks" / f"cluster-{cloud}" / f"Pulumi.{env}.yaml").read_text())["config"]


def run_cluster(cloud: str, env: str, overrides: dict | None = None, mocks: CloudMocks | None = None
                ) -> tuple[RunResult, CloudMocks]:
    key = (cloud, env, json.dumps(overrides, sort_keys=True))
    if key not in _RUNS or mocks is not None:
        m = mocks or CloudMocks()
        program = importlib.import_module(f"kubeforge.pulumi.{cloud}").main
        res = run(program, config={**stack_config(cloud, env), **(overrides or {})}, project=f"kubeforge-cluster-{cloud}",
                  stack=env, resources=m, invokes=m.invokes())
        if mocks is not None:
            return res, m
        _RUNS[key] = (res, m)
    return _RUNS[key]


def of(res: RunResult, typ: str) -> list:
    return [r for r in res.registrations.values() if r.type == typ]


def one(res: RunResult, typ: str, name: str):
    (r,) = [r for r in of(res, typ) if r.name == name]
    return r


def ancestors(res: RunResult, urn: str) -> set[str]:
    return res.ancestors(urn)


def profile_of(cloud: str, env: str):
    cfg = stack_config(cloud, env)
    gpu = cfg.get("kubeforge:gpu")
    return load_profile(cfg["kubeforge:profile"], {"gpu": gpu} if gpu else None)


def gpu_types(cloud: str) -> set[str]:
    return set(TABLE[CLOUD_TABLE[cloud]])


def is_gpu_group(r) -> bool:
    if r.type == NG:
        return any(t["key"] == "nvidia.com/gpu" for t in r.inputs.get("taints") or [])
    if r.type == POOL:
        return bool(r.inputs["nodeConfig"].get("guestAccelerators"))
    return r.type == AGENT_POOL


# -- every environment: structure, providers, outputs ---------------------------------------

def test_every_cloud_has_its_environments():
    assert {("eks", "dev"), ("eks", "staging"), ("eks", "prod"), ("gke", "prod"), ("aks", "prod")} <= set(ENVS)


@pytest.mark.parametrize("cloud, env", ENVS)
def test_one_component_one_explicit_provider_no_unmocked_invoke(cloud, env):
    res, _ = run_cluster(cloud, env)
    regs = res.registrations
    assert len(res.urns) == len(set(res.urns))
    (comp,) = [r for r in regs.values() if r.type.startswith("kubeforge:cluster:")]
    assert comp.type == f"kubeforge:cluster:{cloud.upper()}"
    providers = [r for r in regs.values() if r.type.startswith("pulumi:providers:")]
    assert len(providers) == 1
    prov = f"{providers[0].urn}::{providers[0].id}"
    for r in regs.values():
        if r.custom and not r.type.startswith("pulumi:providers:"):
            assert r.provider == prov, f"{r.urn} is not on the explicit provider"
            assert r.parent == comp.urn, f"{r.urn} is not inside {comp.type}"
    # 10: no invoke but the ones a cloud needs, each on the explicit provider.
    want = ["azure-native:containerservice:listManagedClusterUserCredentials"] if cloud == "aks" else []
    assert res.invokes == want
    assert all(a.provider == prov for a in res.invoke_args)


@pytest.mark.parametrize("cloud, env", ENVS)
def test_outputs_for_the_platform_and_verify(cloud, env):
    res, _ = run_cluster(cloud, env)
    prof = profile_of(cloud, env)
    out = res.outputs
    assert out["kubernetesVersion"] == prof.kubernetesVersion and out["gpuMode"] == prof.gpu.mode
    assert out["clusterName"] == stack_config(cloud, env)["kubeforge:clusterName"]
    groups = stack_config(cloud, env).get("kubeforge:gpuNodeGroups") or []
    assert out["expectedGpus"] == {g["instanceType"]: TABLE[CLOUD_TABLE[cloud]][g["instanceType"]]["count"]
                                   for g in groups}
    assert set(out["nodeGroups"]) == {"system"} | {g["name"] for g in groups}


def test_prod_eks_offers_what_the_issue_says():
    res, _ = run_cluster("eks", "prod")
    assert "h100: 2 × p5.48xlarge = 16 H100 80GB" in res.outputs["gpuCapacity"]


# -- 1 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", [e for c, e in ENVS if c == "eks"])
def test_1_eks_version_api_auth_no_self_managed_addons(env):
    res, _ = run_cluster("eks", env)
    want = profile_of("eks", env).kubernetesVersion
    (c,) = of(res, "aws:eks/cluster:Cluster")
    assert c.inputs["version"] == want
    assert c.inputs["accessConfig"] == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    assert c.inputs["bootstrapSelfManagedAddons"] is False
    assert all(ng.inputs["version"] == want for ng in of(res, NG))
    # Admins: one access entry + cluster-scoped admin policy each, nothing for the creator.
    admins = stack_config("eks", env)["kubeforge:admins"]
    assert sorted(e.inputs["principalArn"] for e in of(res, "aws:eks/accessEntry:AccessEntry")) == sorted(admins)
    for a in of(res, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        assert a.inputs["policyArn"].endswith(":cluster-access-policy/AmazonEKSClusterAdminPolicy")
        assert a.inputs["accessScope"] == {"type": "cluster"}


def test_1_gke_and_aks_version_and_access():
    res, _ = run_cluster("gke", "prod")
    (c,) = of(res, "gcp:container/cluster:Cluster")
    assert c.inputs["minMasterVersion"] == profile_of("gke", "prod").kubernetesVersion
    assert c.inputs["removeDefaultNodePool"] is True and c.inputs["deletionProtection"] is True
    res, _ = run_cluster("gke", "prod", {"kubeforge:deletionProtection": False})
    (c,) = of(res, "gcp:container/cluster:Cluster")
    assert c.inputs["deletionProtection"] is False and not c.protect   # explicit either way
    res, _ = run_cluster("aks", "prod")
    (c,) = of(res, "azure-native:containerservice:ManagedCluster")
    want = profile_of("aks", "prod").kubernetesVersion
    assert c.inputs["kubernetesVersion"] == want
    assert {p.inputs["orchestratorVersion"] for p in of(res, AGENT_POOL)} == {want}
    assert c.inputs["disableLocalAccounts"] is True and c.inputs["aadProfile"]["managed"] is True
    assert c.inputs["aadProfile"]["adminGroupObjectIDs"] == stack_config("aks", "prod")["kubeforge:admins"]
    assert [p["mode"] for p in c.inputs["agentPoolProfiles"]] == ["System"]


# -- 2 and 3 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("cloud, env", ENVS)
def test_2_3_gpu_groups_gpu_types_nvidia_images_taint_label_and_an_untainted_system_group(cloud, env):
    res, _ = run_cluster(cloud, env)
    gpus = gpu_types(cloud)
    groups = [r for t in (NG, POOL, AGENT_POOL) for r in of(res, t)]
    gpu_groups = [r for r in groups if is_gpu_group(r)]
    want_groups = stack_config(cloud, env).get("kubeforge:gpuNodeGroups") or []
    assert len(gpu_groups) == len(want_groups)
    taint_value = "present" if cloud == "gke" else "true"    # GKE's own taint, not a second one
    for r in gpu_groups:
        i = r.inputs
        if cloud == "eks":
            types_, labels, taints = i["instanceTypes"], i["labels"], i["taints"]
            assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in taints
            if profile_of(cloud, env).gpu.mode != "operator":
                assert i["amiType"] in ("AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA")
        elif cloud == "gke":
            nc = i["nodeConfig"]
            types_, labels, taints = [nc["machineType"]], nc["labels"], nc["taints"]
            assert {"key": "nvidia.com/gpu", "value": taint_value, "effect": "NO_SCHEDULE"} in taints
            (acc,) = nc["guestAccelerators"]
            t = TABLE["gcp"][nc["machineType"]]
            assert (acc["type"], acc["count"]) == (t["accelerator"], t["count"])
        else:
            types_, labels = [i["vmSize"]], i["nodeLabels"]
            assert "nvidia.com/gpu=true:NoSchedule" in i["nodeTaints"]
            assert i["gpuProfile"]["driver"] in ("Install", "None")
        assert set(types_) <= gpus, f"{r.name}: {types_} are not GPU types"
        assert labels["nvidia.com/gpu.present"] == "true"
    # The system group: no GPU type, no NVIDIA image, no taint.
    if cloud == "eks":
        (system,) = [r for r in of(res, NG) if r.name == "system"]
        assert not set(system.inputs["instanceTypes"]) & gpus
        assert "NVIDIA" not in system.inputs["amiType"] and not system.inputs.get("taints")
    elif cloud == "gke":
        system = one(res, POOL, "system")
        nc = system.inputs["nodeConfig"]
        assert nc["machineType"] not in gpus and not nc.get("guestAccelerators") and not nc.get("taints")
    else:
        (c,) = of(res, "azure-native:containerservice:ManagedCluster")
        (system,) = c.inputs["agentPoolProfiles"]
        assert system["vmSize"] not in gpus and not system.get("nodeTaints") and "gpuProfile" not in system


# -- 4 and 5 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("env", [e for c, e in ENVS if c == "eks"])
def test_4_node_groups_wait_for_cni_identity_and_node_policies_addons_wait_for_the_system_group(env):
    res, m = run_cluster("eks", env)
    addon = {r.inputs["addonName"]: r for r in of(res, ADDON)}
    assert set(addon) == {"vpc-cni", "eks-pod-identity-agent", "kube-proxy", "coredns", "aws-ebs-csi-driver",
                          "metrics-server"}
    node_role = m.state[(ROLE, "node-role")]["name"]
    node_policies = {a.urn for a in of(res, ATTACH) if a.inputs["role"] == node_role}
    assert len(node_policies) == 2
    system = one(res, NG, "system")
    for ng in of(res, NG):
        anc = ancestors(res, ng.urn)
        assert {addon["vpc-cni"].urn, addon["eks-pod-identity-agent"].urn} <= anc, ng.name
        assert node_policies <= anc, ng.name
        assert not {addon[n].urn for n in ("coredns", "aws-ebs-csi-driver", "metrics-server")} & anc
    for name in ("coredns", "aws-ebs-csi-driver", "metrics-server"):
        assert system.urn in ancestors(res, addon[name].urn), name
    ebs_role = m.state[(ROLE, "ebs-csi-role")]["name"]
    ebs_policy = next(a.urn for a in of(res, ATTACH) if a.inputs["role"] == ebs_role)
    assert ebs_policy in ancestors(res, addon["aws-ebs-csi-driver"].urn)


@pytest.mark.parametrize("env", [e for c, e in ENVS if c == "eks"])
def test_5_destroy_order_node_groups_then_cluster_then_network(env):
    """Pulumi destroys dependents first: node groups before the cluster before the network, and
    nothing of the network waits for the cluster (no reverse edge)."""
    res, _ = run_cluster("eks", env)
    (cluster,) = of(res, "aws:eks/cluster:Cluster")
    network = [r for r in res.registrations.values() if r.type.startswith(NETWORK_TYPES)]
    cluster_anc = ancestors(res, cluster.urn)
    assert {r.urn for r in network} <= cluster_anc
    assert len(network) > 0 if "vpcCidr" in stack_config("eks", env)["kubeforge:network"] else not network
    cluster_policy = next(a for a in of(res, ATTACH) if a.inputs["policyArn"].endswith("/AmazonEKSClusterPolicy"))
    assert cluster_policy.urn in cluster_anc       # detached only after the cluster is gone
    for ng in of(res, NG):
        assert cluster.urn in ancestors(res, ng.urn)
    groups_and_addons = {r.urn for r in of(res, NG) + of(res, ADDON)}
    assert not groups_and_addons & cluster_anc
    for r in network:
        assert cluster.urn not in ancestors(res, r.urn) and not groups_and_addons & ancestors(res, r.urn)


def test_5_gke_and_aks_pools_after_their_cluster():
    for cloud, typ, ctyp in (("gke", POOL, "gcp:container/cluster:Cluster"),
                             ("aks", AGENT_POOL, "azure-native:containerservice:ManagedCluster")):
        res, _ = run_cluster(cloud, "prod")
        (c,) = of(res, ctyp)
        for p in of(res, typ):
            assert c.urn in ancestors(res, p.urn)
        assert not {p.urn for p in of(res, typ)} & ancestors(res, c.urn)


# -- 6 ----------------------------------------------------------------------------------------

EKS_ROLES = {  # role -> (trust principal, actions, managed policies): from the EKS user guide
    "cluster-role": ("eks.amazonaws.com", ["sts:AssumeRole"], {"AmazonEKSClusterPolicy"}),
    "node-role": ("ec2.amazonaws.com", ["sts:AssumeRole"], {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"}),
    "vpc-cni-role": ("pods.eks.amazonaws.com", ["sts:AssumeRole", "sts:TagSession"], {"AmazonEKS_CNI_Policy"}),
    "ebs-csi-role": ("pods.eks.amazonaws.com", ["sts:AssumeRole", "sts:TagSession"], {"AmazonEBSCSIDriverPolicy"}),
}


@pytest.mark.parametrize("env", [e for c, e in ENVS if c == "eks"])
def test_6_iam_exact_trust_and_managed_policies(env):
    res, m = run_cluster("eks", env)
    roles = {r.name: r for r in of(res, ROLE)}
    assert set(roles) == set(EKS_ROLES)
    for name, (principal, actions, policies) in EKS_ROLES.items():
        doc = json.loads(roles[name].inputs["assumeRolePolicy"])
        assert doc["Statement"] == [{"Effect": "Allow", "Principal": {"Service": principal}, "Action": actions}]
        assert not roles[name].inputs.get("inlinePolicies") and not roles[name].inputs.get("managedPolicyArns")
        rname = m.state[(ROLE, name)]["name"]
        attached = {a.inputs["policyArn"].rsplit("/", 1)[-1] for a in of(res, ATTACH) if a.inputs["role"] == rname}
        assert attached == policies, name
    # Each role is used where it belongs.
    arn = {n: m.state[(ROLE, n)]["arn"] for n in EKS_ROLES}
    (c,) = of(res, "aws:eks/cluster:Cluster")
    assert c.inputs["roleArn"] == arn["cluster-role"]
    assert {ng.inputs["nodeRoleArn"] for ng in of(res, NG)} == {arn["node-role"]}
    pod_ids = {a.inputs["addonName"]: a.inputs.get("podIdentityAssociations") for a in of(res, ADDON)}
    assert pod_ids["vpc-cni"] == [{"roleArn": arn["vpc-cni-role"], "serviceAccount": "aws-node"}]
    assert pod_ids["aws-ebs-csi-driver"] == [{"roleArn": arn["ebs-csi-role"], "serviceAccount": "ebs-csi-controller-sa"}]
    assert sum(1 for v in pod_ids.values() if v) == 2


def test_6_gke_node_account_and_admins_least_privilege():
    res, m = run_cluster("gke", "prod")
    members = of(res, "gcp:projects/iAMMember:IAMMember")
    sa_email = m.state[("gcp:serviceaccount/account:Account", "nodes")]["email"]
    node = [r for r in members if r.inputs["member"] == f"serviceAccount:{sa_email}"]
    assert [r.inputs["role"] for r in node] == ["roles/container.defaultNodeServiceAccount"]
    admins = [r for r in members if r not in node]
    assert sorted(r.inputs["member"] for r in admins) == stack_config("gke", "prod")["kubeforge:admins"]
    for r in admins:
        assert r.inputs["role"] == "roles/container.admin"
        assert r.inputs["condition"]["expression"] == \
            'resource.name.startsWith("projects/ml-platform-prod/locations/us-central1/clusters/kubeforge-prod")'
    for p in of(res, POOL) + of(res, "gcp:container/cluster:Cluster"):
        assert p.inputs["nodeConfig"]["serviceAccount"] == sa_email    # never the Compute Engine default


@pytest.mark.parametrize("cloud, env", ENVS)
def test_6_the_policy_packs_mandatory_policies_hold(cloud, env):
    from mockrun import policy_violations

    assert policy_violations(run_cluster(cloud, env)[0]) == []


# -- 7 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("cloud, env", ENVS)
def test_7_kubeconfig_is_secret_and_uses_exec_auth(cloud, env):
    res, m = run_cluster(cloud, env)
    assert "kubeconfig" in res.secret_outputs
    doc = yaml.safe_load(res.outputs["kubeconfig"])
    (user,) = doc["users"]
    assert set(user["user"]) == {"exec"}
    exe = user["user"]["exec"]
    name = stack_config(cloud, env)["kubeforge:clusterName"]
    (cluster,) = doc["clusters"]
    if cloud == "eks":
        out = m.state[("aws:eks/cluster:Cluster", "cluster")]
        assert exe["command"] == "aws" and exe["args"][:2] == ["eks", "get-token"]
        assert exe["args"][exe["args"].index("--cluster-name") + 1] == name
        assert exe["args"][exe["args"].index("--region") + 1] == stack_config(cloud, env)["kubeforge:region"]
        assert cluster["cluster"] == {"server": out["endpoint"], "certificate-authority-data": out["certificateAuthority"]["data"]}
    elif cloud == "gke":
        out = m.state[("gcp:container/cluster:Cluster", "cluster")]
        assert exe["command"] == "gke-gcloud-auth-plugin"
        assert cluster["cluster"] == {"server": f"https://{out['endpoint']}",
                                      "certificate-authority-data": out["masterAuth"]["clusterCaCertificate"]}
    else:
        out = m.state[("azure-native:containerservice:ManagedCluster", "cluster")]
        assert exe["command"] == "kubelogin"
        assert cluster["cluster"]["server"] == f"https://{out['fqdn']}:443"
        (call,) = res.invoke_args
        assert call.args["format"] == "exec" and call.args["resourceName"] == name


def test_7_aks_refuses_a_kubeconfig_with_a_static_credential():
    m = CloudMocks()
    m.kubeconfig_user = {"token": "a-static-token"}
    with pytest.raises(Exception, match="static credential"):
        run_cluster("aks", "prod", mocks=m)


# -- 8 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", [e for c, e in ENVS if c == "eks"])
def test_8_eks_node_groups_are_replace_safe(env):
    res, m = run_cluster("eks", env)
    cfg = {g["name"]: g for g in stack_config("eks", env).get("kubeforge:gpuNodeGroups") or []}
    for ng in of(res, NG):
        assert "nodeGroupName" not in ng.inputs and "nodeGroupNamePrefix" not in ng.inputs   # auto-named
        assert m.state[(NG, ng.name)]["nodeGroupName"].startswith(ng.name + "-")
        assert ng.ignore_changes == ["scalingConfig.desiredSize"]
        assert ng.inputs["updateConfig"] == {"maxUnavailable": 1}
        assert not ng.delete_before_replace
        group = cfg.get(ng.name.removeprefix("gpu-"))
        if group and "releaseVersion" in group:
            assert ng.inputs["releaseVersion"] == group["releaseVersion"]
    assert any("releaseVersion" in g for g in cfg.values()) is (env == "prod")


def test_8_gke_and_aks_pools_are_replace_safe():
    res, _ = run_cluster("gke", "prod")
    for p in of(res, POOL):
        assert "name" not in p.inputs and p.ignore_changes == ["initialNodeCount", "nodeCount"]
        assert p.inputs["upgradeSettings"] == {"strategy": "SURGE", "maxSurge": 1, "maxUnavailable": 0}
    res, _ = run_cluster("aks", "prod")
    before = {p.name: p.inputs["agentPoolName"] for p in of(res, AGENT_POOL)}
    assert all(p.ignore_changes == ["count"] for p in of(res, AGENT_POOL))
    groups = stack_config("aks", "prod")["kubeforge:gpuNodeGroups"]
    changed = [{**groups[0], "instanceType": "Standard_NC48ads_A100_v4"}, *groups[1:]]
    res2, _ = run_cluster("aks", "prod", {"kubeforge:gpuNodeGroups": changed})
    after = {p.name: p.inputs["agentPoolName"] for p in of(res2, AGENT_POOL)}
    # A change AKS can only make by replacing the pool gives it a new name (created before the old
    # one goes); other pools keep theirs.
    assert after["gpu-a100"] != before["gpu-a100"] and after["gpu-t4spot"] == before["gpu-t4spot"]
    assert after["gpu-a100"].startswith("a100") and len(after["gpu-a100"]) <= 12


# -- 9 ----------------------------------------------------------------------------------------

def test_9_capacity_block_and_efa_in_one_zone_with_reservation_and_placement_never_spot():
    res, m = run_cluster("eks", "prod")
    ng = one(res, NG, "gpu-h100")
    lt = one(res, "aws:ec2/launchTemplate:LaunchTemplate", "gpu-h100")
    zone_a = m.state[("aws:ec2/subnet:Subnet", "private-us-east-1a")]
    assert ng.inputs["subnetIds"] == [m._aws_id("subnet", "private-us-east-1a")] and zone_a["availabilityZone"] == "us-east-1a"
    assert ng.inputs["capacityType"] == "CAPACITY_BLOCK"
    assert ng.inputs["launchTemplate"] == {"id": lt.id, "version": "1"} and lt.id.startswith("lt-0")
    assert lt.inputs["instanceMarketOptions"] == {"marketType": "capacity-block"}
    assert lt.inputs["capacityReservationSpecification"] == {
        "capacityReservationTarget": {"capacityReservationId": "cr-0123456789abcdef0"}}
    pg = m.state[("aws:ec2/placementGroup:PlacementGroup", "gpu-h100")]
    assert lt.inputs["placement"] == {"groupName": pg["name"]} and pg["strategy"] == "cluster"
    (nic,) = lt.inputs["networkInterfaces"]
    sg = m.state[("aws:eks/cluster:Cluster", "cluster")]["vpcConfig"]["clusterSecurityGroupId"]
    assert nic["interfaceType"] == "efa" and nic["securityGroups"] == [sg]   # an edge from a cluster output
    assert "diskSize" not in ng.inputs        # the launch template sizes the disk
    # Generally: every group with a launch template for EFA or a capacity block is one-zone, not spot.
    for g in of(res, NG):
        if g.inputs.get("launchTemplate"):
            assert len(g.inputs["subnetIds"]) == 1 and g.inputs["capacityType"] != "SPOT"


def test_9_gke_reservation_pool_in_one_zone_compact_not_spot():
    res, _ = run_cluster("gke", "prod")
    p = one(res, POOL, "gpu-h100")
    assert p.inputs["nodeLocations"] == ["us-central1-a"]
    assert p.inputs["placementPolicy"] == {"type": "COMPACT"}
    nc = p.inputs["nodeConfig"]
    assert nc["reservationAffinity"] == {"consumeReservationType": "SPECIFIC_RESERVATION",
                                         "key": "compute.googleapis.com/reservation-name",
                                         "values": ["h100-prod-reservation"]}
    assert not nc.get("spot")
    assert one(res, POOL, "gpu-l4").inputs["nodeConfig"]["spot"] is True


# -- 10 ---------------------------------------------------------------------------------------

def _eks_groups(**g) -> list:
    return [{"name": "gpu", "instanceType": "g6.xlarge", "count": {"min": 0, "max": 1, "desired": 0}, **g}]


@pytest.mark.parametrize("mode, os_, ami", [
    ("host", "al2023", "AL2023_x86_64_NVIDIA"),            # driver + toolkit on the AMI, plugin from the platform
    ("provider", "bottlerocket", "BOTTLEROCKET_x86_64_NVIDIA"),   # the OS runs its own device plugin
    ("operator", "al2023", "AL2023_x86_64_STANDARD"),      # no driver: the GPU Operator brings it
])
def test_10_eks_gpu_mode_decides_the_ami(mode, os_, ami):
    profile = {"host": "training", "provider": "serving", "operator": "gpu-operator"}[mode]
    res, _ = run_cluster("eks", "dev", {"kubeforge:profile": profile, "kubeforge:gpu": {"mode": mode},
                                        "kubeforge:gpuNodeGroups": _eks_groups(os=os_)})
    assert one(res, NG, "gpu-gpu").inputs["amiType"] == ami
    assert res.outputs["gpuMode"] == mode


@pytest.mark.parametrize("mode, driver, no_plugin_label", [("provider", "DEFAULT", False),
                                                           ("operator", "INSTALLATION_DISABLED", True)])
def test_10_gke_gpu_mode_decides_driver_and_device_plugin(mode, driver, no_plugin_label):
    over = {"kubeforge:gpu": {"mode": mode, "sharing": {"strategy": "time-slicing", "replicas": 2}}}
    if mode == "operator":
        over["kubeforge:profile"] = "gpu-operator"
    res, _ = run_cluster("gke", "prod", over)
    nc = one(res, POOL, "gpu-h100").inputs["nodeConfig"]
    (acc,) = nc["guestAccelerators"]
    assert acc["gpuDriverInstallationConfig"] == {"gpuDriverVersion": driver}
    assert (nc["labels"].get("gke-no-default-nvidia-gpu-device-plugin") == "true") is no_plugin_label
    # GKE shares the GPUs itself only when it owns the device plugin.
    assert ("gpuSharingConfig" in acc) is (mode == "provider")
    assert nc["shieldedInstanceConfig"]["enableSecureBoot"] is (mode == "provider")


@pytest.mark.parametrize("profile, driver", [("gpu-onprem", "Install"), ("gpu-operator", "None")])
def test_10_aks_gpu_mode_decides_the_driver(profile, driver):
    res, _ = run_cluster("aks", "prod", {"kubeforge:profile": profile})
    assert {p.inputs["gpuProfile"]["driver"] for p in of(res, AGENT_POOL)} == {driver}


def test_10_an_unmocked_resource_type_fails_the_run():
    import pulumi
    import pulumi_aws as aws

    def program():
        aws.s3.Bucket("b", opts=pulumi.ResourceOptions(provider=aws.Provider("aws", region="us-east-1")))

    m = CloudMocks()
    with pytest.raises(UnmockedInvoke, match="aws:s3/bucket:Bucket"):
        run(program, resources=m)


# -- the platform consumes the cluster stack through its StackReference -----------------------

@pytest.mark.parametrize("cloud", ["eks", "gke", "aks"])
def test_platform_reads_the_cluster_stacks_kubeconfig_by_stack_reference(cloud, mirror_dir):
    """The platform program of stacks/platform/Pulumi.<cloud>-prod.yaml, with the StackReference
    answered by the outputs the cluster program itself produced (the boundary is the other stack's
    state): the Kubernetes provider gets exactly that kubeconfig, as a secret."""
    from graph_summary import mockrun as mr

    from kubeforge.pulumi import platform

    cluster_res, _ = run_cluster(cloud, "prod")
    pfile = REPO / "stacks" / "platform" / f"Pulumi.{cloud}-prod.yaml"
    config = {k: v for k, v in yaml.safe_load(pfile.read_text())["config"].items() if k.startswith("kubeforge:")}
    ref = config["kubeforge:clusterStack"]
    assert ref == f"organization/kubeforge-cluster-{cloud}/prod"
    config["kubeforge:mirror"] = str(mirror_dir)
    res = mr.run(platform.main, config=config, stack=f"{cloud}-prod", stack_outputs={ref: cluster_res.outputs})
    (refreg,) = [r for r in res.registrations.values() if r.type == "pulumi:pulumi:StackReference"]
    assert refreg.inputs["name"] == ref
    (prov,) = [r for r in res.registrations.values() if r.type == "pulumi:providers:kubernetes"]
    assert "kubeconfig" in prov.secret_paths
    assert prov.inputs["kubeconfig"] == cluster_res.outputs["kubeconfig"]
    assert refreg.urn in prov.dependencies
    assert res.outputs["kubeconfig"] == cluster_res.outputs["kubeconfig"] and "kubeconfig" in res.secret_outputs


def test_platform_and_cluster_stack_files_agree_on_version_and_gpu_mode():
    for cloud in ("eks", "gke", "aks"):
        pcfg = yaml.safe_load((REPO / "stacks" / "platform" / f"Pulumi.{cloud}-prod.yaml").read_text())["config"]
        gpu = pcfg.get("kubeforge:gpu")
        prof = load_profile(pcfg["kubeforge:profile"], {"gpu": gpu} if gpu else None)
        c = clusters.check_consumer(prof, pcfg["kubeforge:clusterStack"], file="x", root=REPO / "stacks")
        assert c is not None and c.cloud == cloud
    prof = load_profile("dev")
    with pytest.raises(KubeforgeError, match="gpu.mode is none here but host") as e:
        clusters.check_consumer(prof, "organization/kubeforge-cluster-eks/prod", file="Pulumi.x.yaml", root=REPO / "stacks")
    assert "stacks/cluster-eks/Pulumi.prod.yaml" in e.value.message


def test_bad_config_reaches_the_program_as_one_message():
    import pulumi

    with pytest.raises(pulumi.RunError, match=r"kubeforge:admins"):
        run_cluster("eks", "dev", {"kubeforge:admins": []})


# -- bad config: one clear error naming the file, the field and the fix -----------------------

EKS_OK = stack_config("eks", "prod")


def _eks(**over) -> dict:
    cfg = {k.split(":", 1)[1]: v for k, v in EKS_OK.items()}
    for k, v in over.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


def _group(**g) -> list:
    base = {"name": "gpu", "instanceType": "p5.48xlarge", "count": {"min": 0, "max": 2, "desired": 1}}
    return [{**base, **g}]


BAD = [
    ("unknown key", "eks", _eks(clusterNmae="x"), "clusterNmae", "kubeforge:clusterName"),
    ("unknown node group key", "eks", _eks(gpuNodeGroups=_group(instance_type="x")), "gpuNodeGroups[0].instance_type",
     "instanceType"),
    ("version mismatch", "eks", _eks(kubernetesVersion="1.33"), "kubernetesVersion", "profiles/training.yaml"),
    ("unquoted version", "eks", _eks(kubernetesVersion=1.3), "kubernetesVersion", "quote it"),
    ("GPU type on the system group", "eks", _eks(systemNodeGroup={"instanceType": "g5.xlarge"}),
     "systemNodeGroup.instanceType", "gpuNodeGroups"),
    ("min > max", "eks", _eks(gpuNodeGroups=_group(count={"min": 3, "max": 2})), "gpuNodeGroups[0].count", "min <= desired"),
    ("desired outside", "eks", _eks(gpuNodeGroups=_group(count={"min": 0, "max": 2, "desired": 5})),
     "gpuNodeGroups[0].count.desired", "min <= desired"),
    ("spot + capacity block", "eks", _eks(gpuNodeGroups=_group(capacityType="SPOT", reservation="cr-0123456789abcdef0",
                                                              zones=["us-east-1a"])), "gpuNodeGroups[0].capacityType",
     "CAPACITY_BLOCK"),
    ("spot + efa", "eks", _eks(gpuNodeGroups=_group(capacityType="SPOT", efa=True, zones=["us-east-1a"])),
     "gpuNodeGroups[0].capacityType", "never preemptible"),
    ("capacity block in two zones", "eks", _eks(gpuNodeGroups=_group(
        capacityType="CAPACITY_BLOCK", reservation="cr-0123456789abcdef0", zones=["us-east-1a", "us-east-1b"])),
     "gpuNodeGroups[0].zones", "exactly one zone"),
    ("capacity block without reservation", "eks", _eks(gpuNodeGroups=_group(capacityType="CAPACITY_BLOCK",
                                                                           zones=["us-east-1a"])),
     "gpuNodeGroups[0].reservation", "cr-"),
    ("unknown region format", "eks", _eks(region="us-east"), "region", "us-east-1"),
    ("zone of another region", "eks", _eks(zones=["us-west-2a", "us-west-2b"]), "zones", "us-east-1a"),
    ("missing admins", "eks", _eks(admins=None), "admins", "arn:aws:iam::"),
    ("admin that is no ARN", "eks", _eks(admins=["admin@example.com"]), "admins", "IAM role or user ARN"),
    ("missing profile", "eks", _eks(profile=None), "profile", "kubeforge:profile"),
    ("GPU groups with gpu.mode none", "eks", _eks(profile="dev"), "gpuNodeGroups", "gpu.mode"),
    ("host mode on Bottlerocket", "eks", _eks(gpuNodeGroups=_group(os="bottlerocket")), "gpuNodeGroups[0].os",
     "al2023"),
    ("AMI release of another Kubernetes", "eks", _eks(gpuNodeGroups=_group(releaseVersion="1.33.2-20251120")),
     "gpuNodeGroups[0].releaseVersion", "1.34.2-"),
    ("MIG on EKS", "eks", _eks(gpuNodeGroups=_group(mig="1g.10gb")), "gpuNodeGroups[0].mig", "drop mig"),
    ("duplicate group", "eks", _eks(gpuNodeGroups=_group() + _group()), "gpuNodeGroups[1].name", "own name"),
    ("both VPC and subnets", "eks", _eks(network={"vpcCidr": "10.0.0.0/16", "subnetIds": ["subnet-0123456789abcdef0"]}),
     "network", "keep one"),
    ("GKE host mode", "gke", {**{k.split(":", 1)[1]: v for k, v in stack_config("gke", "prod").items()},
                              "gpu": {"mode": "host"}, "profile": "gpu-onprem"}, "gpu", "provider"),
    ("AKS provider mode", "aks", {**{k.split(":", 1)[1]: v for k, v in stack_config("aks", "prod").items()},
                                  "profile": "serving", "gpu": {"mode": "provider"}}, "gpu", "host"),
    ("AKS MIG on a T4", "aks", {**{k.split(":", 1)[1]: v for k, v in stack_config("aks", "prod").items()},
                               "profile": "gpu-onprem", "gpuNodeGroups": [
                                   {"name": "t4", "instanceType": "Standard_NC4as_T4_v3", "mig": "MIG1g"}]},
     "gpuNodeGroups[0].mig", "MIG-capable"),
    ("GKE accelerator that contradicts the machine", "gke", {
        **{k.split(":", 1)[1]: v for k, v in stack_config("gke", "prod").items()},
        "gpuNodeGroups": [{"name": "h100", "instanceType": "a3-highgpu-8g",
                           "accelerator": {"type": "nvidia-l4", "count": 8}}]}, "gpuNodeGroups[0].accelerator",
     "machine type decides"),
    ("node-pool MIG with the GPU Operator", "aks", {
        **{k.split(":", 1)[1]: v for k, v in stack_config("aks", "prod").items()},
        "gpuNodeGroups": [{"name": "a100", "instanceType": "Standard_NC24ads_A100_v4", "mig": "MIG1g"}]},
     "gpuNodeGroups[0].mig", "gpu.mig"),
    ("GKE capacity block", "gke", {**{k.split(":", 1)[1]: v for k, v in stack_config("gke", "prod").items()},
                                   "gpuNodeGroups": [{"name": "x", "instanceType": "a3-highgpu-8g",
                                                      "capacityType": "CAPACITY_BLOCK"}]},
     "gpuNodeGroups[0].capacityType", "RESERVATION"),
    ("GKE unknown machine without accelerator", "gke", {
        **{k.split(":", 1)[1]: v for k, v in stack_config("gke", "prod").items()},
        "gpuNodeGroups": [{"name": "t4", "instanceType": "n1-standard-8"}]}, "gpuNodeGroups[0].accelerator",
     "nvidia-tesla-t4"),
]


@pytest.mark.parametrize("case, cloud, config, field, fix", BAD, ids=[b[0] for b in BAD])
def test_bad_config(case, cloud, config, field, fix):
    with pytest.raises(KubeforgeError) as e:
        clusters.parse(cloud, config, file=f"stacks/cluster-{cloud}/Pulumi.bad.yaml")
    err = e.value
    assert err.file == f"stacks/cluster-{cloud}/Pulumi.bad.yaml"
    assert err.field == f"config.kubeforge:{field}", err.render()
    assert fix in err.render(), err.render()


def test_a_version_mismatch_names_both_files():
    with pytest.raises(KubeforgeError) as e:
        clusters.parse("eks", _eks(kubernetesVersion="1.33"), file="stacks/cluster-eks/Pulumi.prod.yaml")
    text = e.value.render()
    assert "stacks/cluster-eks/Pulumi.prod.yaml" in text and "profiles/training.yaml" in text
    assert "1.33" in text and "1.34" in text


def test_an_unknown_gpu_type_is_a_warning_not_a_guess():
    s = clusters.parse("eks", _eks(gpuNodeGroups=_group(instanceType="p6-b200.48xlarge")), file="Pulumi.x.yaml")
    (g,) = s.gpu_groups
    assert g.gpu is None and s.expected_gpus() == {}
    assert any("p6-b200.48xlarge is not in kubeforge/gpu/instances.yaml" in w for w in s.warnings)
    assert s.capacity() == ["gpu: 1 × p6-b200.48xlarge = unknown GPUs (not in kubeforge/gpu/instances.yaml)"]


def test_destroy_parsing_does_not_need_the_profile():
    cfg = _eks(profile="no-longer-a-profile")
    with pytest.raises(KubeforgeError, match="unknown profile"):
        clusters.parse("eks", cfg, file="x")
    assert clusters.parse("eks", cfg, file="x", check_profile=False).cluster_name == "kubeforge-prod"


def test_kubeconfig_secret_static_check_decodes_base64_the_way_aks_returns_it():
    from kubeforge.pulumi.cloud import require_exec_auth

    good = {"users": [{"name": "u", "user": {"exec": {"command": "kubelogin"}}}]}
    assert require_exec_auth(base64.b64decode(base64.b64encode(json.dumps(good).encode())).decode(), "x")
    with pytest.raises(KubeforgeError):
        require_exec_auth(json.dumps({"users": [{"name": "u", "user": {"client-key-data": "x"}}]}), "x")


@pytest.mark.parametrize("cloud, env", ENVS)
def test_graph_summary_is_the_reviewed_one(cloud, env):
    import cluster_summary

    want = cluster_summary.path(cloud, env)
    got = cluster_summary.dumps(cluster_summary.summarize(cloud, env, run_cluster(cloud, env)[0]))
    assert want.exists(), f"no reviewed summary {want}; run: .venv/bin/python tests/pulumi/cluster_summary.py --write"
    assert got == want.read_text(), (
        f"the cluster-{cloud}/{env} graph changed; review the diff of .venv/bin/python tests/pulumi/cluster_summary.py "
        f"--write {cloud}-{env} and commit it")
