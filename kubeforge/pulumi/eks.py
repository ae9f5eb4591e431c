"""The cluster-eks stack (stacks/cluster-eks/__main__.py calls `main()`): an EKS cluster with GPU
managed node groups from pulumi-aws primitives, under one `kubeforge:cluster:EKS` component.

Primitives, not pulumi-eks: its `eks.Cluster` is a remote component, one opaque box to the mock
runtime and to the policy pack, so none of its roles, add-ons or node groups could be tested.

Order (each an explicit edge, so `destroy` runs it backwards):
  network (VPC, subnets, NAT) -> cluster role + AmazonEKSClusterPolicy -> cluster (API
  authentication, no self-managed add-ons) -> admin access entries;
  pod-identity agent, vpc-cni (pod-identity role with the CNI policy), kube-proxy -> node role
  policies -> system node group -> coredns, aws-ebs-csi-driver (pod-identity role),
  metrics-server; GPU node groups wait for the same add-ons and node role policies.
GPU mode: host = AL2023 NVIDIA AMI (driver + toolkit; the platform brings the device plugin),
provider = Bottlerocket NVIDIA (its own device plugin), operator = AL2023 standard (no driver).
"""
from __future__ import annotations

import ipaddress
import json
from typing import Any

import pulumi
import pulumi_aws as aws

from kubeforge.pulumi import cloud
from kubeforge.pulumi.clusters import ClusterSettings, NodeGroup, eks_ami_type

MANAGED = "arn:{p}:iam::aws:policy/{name}"
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly")
CNI_POLICIES = ("AmazonEKS_CNI_Policy",)
EBS_POLICIES = ("service-role/AmazonEBSCSIDriverPolicy",)
ADMIN_ACCESS_POLICY = "arn:{p}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
# Trust: who may assume each role, and how (pod identity also tags the session).
EKS_TRUST = ("eks.amazonaws.com", ("sts:AssumeRole",))
EC2_TRUST = ("ec2.amazonaws.com", ("sts:AssumeRole",))
POD_IDENTITY_TRUST = ("pods.eks.amazonaws.com", ("sts:AssumeRole", "sts:TagSession"))
BEFORE_NODES = ("eks-pod-identity-agent", "vpc-cni", "kube-proxy")   # node networking and credentials
AFTER_SYSTEM = ("coredns", "aws-ebs-csi-driver", "metrics-server")  # Deployments: need a node to run on
TAINT_EFFECT = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}


def partition(region: str) -> str:
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def trust_policy(service: str, actions: tuple[str, ...]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": list(actions)}]})


class _Eks:
    def __init__(self, s: ClusterSettings):
        self.s = s
        self.p = partition(s.region)
        self.provider = aws.Provider("aws", region=s.region,
                                     default_tags=aws.ProviderDefaultTagsArgs(tags={**s.tags, "kubeforge.io/cluster": s.cluster_name}))
        self.comp = cloud.ClusterComponent("eks", s.cluster_name, pulumi.ResourceOptions(providers=[self.provider]))

    def opts(self, **kw: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self.comp, provider=self.provider, **kw)

    # -- network -----------------------------------------------------------------------------
    def network(self) -> tuple[list[pulumi.Input[str]], dict[str, pulumi.Input[str]], list[pulumi.Resource]]:
        """(subnet ids for the cluster, private subnet id per zone, resources the cluster waits for)."""
        net = self.s.network
        if "subnetIds" in net:
            return list(net["subnetIds"]), {}, []
        name = self.s.cluster_name
        cidr = ipaddress.ip_network(net["vpcCidr"])
        blocks = list(cidr.subnets(new_prefix=cidr.prefixlen + 4))   # 16 blocks: private 0.., public 8..
        vpc = aws.ec2.Vpc("vpc", cidr_block=str(cidr), enable_dns_hostnames=True, enable_dns_support=True,
                          tags={"Name": name}, opts=self.opts())
        igw = aws.ec2.InternetGateway("igw", vpc_id=vpc.id, tags={"Name": name}, opts=self.opts())
        public_rt = aws.ec2.RouteTable("public", vpc_id=vpc.id, routes=[aws.ec2.RouteTableRouteArgs(
            cidr_block="0.0.0.0/0", gateway_id=igw.id)], tags={"Name": f"{name}-public"}, opts=self.opts())
        private: dict[str, pulumi.Input[str]] = {}
        # The cluster waits for all of the network, so `destroy` removes none of it before the cluster.
        waits: list[pulumi.Resource] = [vpc, igw, public_rt]
        nat = None
        for i, zone in enumerate(self.s.zones):
            pub = aws.ec2.Subnet(f"public-{zone}", vpc_id=vpc.id, cidr_block=str(blocks[8 + i]), availability_zone=zone,
                                 tags={"Name": f"{name}-public-{zone}", "kubernetes.io/role/elb": "1"},
                                 opts=self.opts())
            pub_assoc = aws.ec2.RouteTableAssociation(f"public-{zone}", subnet_id=pub.id, route_table_id=public_rt.id,
                                                      opts=self.opts())
            if nat is None or net["natGateways"] == "perZone":
                eip = aws.ec2.Eip(f"nat-{zone}", domain="vpc", tags={"Name": f"{name}-nat-{zone}"}, opts=self.opts())
                nat = aws.ec2.NatGateway(f"nat-{zone}", allocation_id=eip.allocation_id, subnet_id=pub.id,
                                         tags={"Name": f"{name}-{zone}"}, opts=self.opts(depends_on=[igw]))
                waits.append(eip)
            priv = aws.ec2.Subnet(f"private-{zone}", vpc_id=vpc.id, cidr_block=str(blocks[i]), availability_zone=zone,
                                  tags={"Name": f"{name}-private-{zone}", "kubernetes.io/role/internal-elb": "1"},
                                  opts=self.opts())
            rt = aws.ec2.RouteTable(f"private-{zone}", vpc_id=vpc.id, routes=[aws.ec2.RouteTableRouteArgs(
                cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)], tags={"Name": f"{name}-private-{zone}"},
                opts=self.opts())
            assoc = aws.ec2.RouteTableAssociation(f"private-{zone}", subnet_id=priv.id, route_table_id=rt.id,
                                                  opts=self.opts())
            private[zone] = priv.id
            waits += [pub, pub_assoc, priv, rt, assoc, nat]
        return list(private.values()), private, waits

    # -- IAM ----------------------------------------------------------------------------------
    def role(self, name: str, trust: tuple[str, tuple[str, ...]], policies: tuple[str, ...]
             ) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
        role = aws.iam.Role(name, assume_role_policy=trust_policy(*trust), opts=self.opts())
        attached = [aws.iam.RolePolicyAttachment(f"{name}-{p.rsplit('/', 1)[-1]}", role=role.name,
                                                 policy_arn=MANAGED.format(p=self.p, name=p), opts=self.opts())
                    for p in policies]
        return role, attached

    def addon(self, name: str, cluster: aws.eks.Cluster, deps: list[pulumi.Resource],
              pod_identity: tuple[aws.iam.Role, str] | None = None) -> aws.eks.Addon:
        assoc = None
        if pod_identity:
            assoc = [aws.eks.AddonPodIdentityAssociationArgs(role_arn=pod_identity[0].arn,
                                                             service_account=pod_identity[1])]
        return aws.eks.Addon(name, cluster_name=cluster.name, addon_name=name,
                             addon_version=self.s.extra["addonVersions"].get(name),
                             resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="PRESERVE",
                             pod_identity_associations=assoc, opts=self.opts(depends_on=deps))

    # -- node groups --------------------------------------------------------------------------
    def node_group(self, rname: str, g: NodeGroup, cluster: aws.eks.Cluster, node_role: aws.iam.Role,
                   subnets: list[pulumi.Input[str]], deps: list[pulumi.Resource], *, gpu: bool) -> aws.eks.NodeGroup:
        s = self.s
        launch_template = None
        disk = g.disk_gb
        if gpu and (g.efa or g.capacity_type == "CAPACITY_BLOCK"):
            launch_template = self.launch_template(rname, g, cluster)
            disk = None     # the launch template's block device mapping sizes the disk
        taints = [aws.eks.NodeGroupTaintArgs(key=t["key"], value=t["value"], effect=TAINT_EFFECT[t["effect"]])
                  for t in g.taints] if gpu else None
        return aws.eks.NodeGroup(
            rname,
            cluster_name=cluster.name,          # an output of the cluster: the edge the graph needs
            node_role_arn=node_role.arn,
            subnet_ids=subnets,
            version=s.kubernetes_version,
            release_version=g.release_version,
            ami_type=eks_ami_type(s, g) if gpu else "AL2023_x86_64_STANDARD",
            instance_types=[g.instance_type],
            capacity_type=g.capacity_type,
            disk_size=disk,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(min_size=g.min, max_size=g.max, desired_size=g.desired),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels={**g.labels, "kubeforge.io/node-group": g.name},
            taints=taints,
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(id=launch_template.id,
                                                                version=launch_template.latest_version.apply(str))
            if launch_template else None,
            # No node_group_name: auto-named, so a replacement is created before the old group goes.
            # The autoscaler owns the desired size; Pulumi must not reset it on every `up`.
            opts=self.opts(depends_on=deps, ignore_changes=["scalingConfig.desiredSize"]),
        )

    def launch_template(self, rname: str, g: NodeGroup, cluster: aws.eks.Cluster) -> aws.ec2.LaunchTemplate:
        placement = None
        if g.placement_group:
            pg = aws.ec2.PlacementGroup(rname, strategy="cluster", opts=self.opts())
            placement = aws.ec2.LaunchTemplatePlacementArgs(group_name=pg.name)
        market = reservation = None
        if g.capacity_type == "CAPACITY_BLOCK":
            market = aws.ec2.LaunchTemplateInstanceMarketOptionsArgs(market_type="capacity-block")
            reservation = aws.ec2.LaunchTemplateCapacityReservationSpecificationArgs(
                capacity_reservation_target=aws.ec2.LaunchTemplateCapacityReservationSpecificationCapacityReservationTargetArgs(
                    capacity_reservation_id=g.reservation))
        nics = None
        if g.efa:
            nics = [aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                device_index=0, network_card_index=0, interface_type="efa", delete_on_termination="true",
                security_groups=[cluster.vpc_config.cluster_security_group_id])]
        return aws.ec2.LaunchTemplate(
            rname, placement=placement, instance_market_options=market, capacity_reservation_specification=reservation,
            network_interfaces=nics, update_default_version=True,
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda", ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=g.disk_gb, volume_type="gp3", encrypted="true", delete_on_termination="true"))],
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(http_tokens="required", http_put_response_hop_limit=2),
            opts=self.opts())

    # -- the whole cluster ----------------------------------------------------------------------
    def deploy(self) -> None:
        s = self.s
        subnets, by_zone, network = self.network()
        cluster_role, cluster_policies = self.role("cluster-role", EKS_TRUST, CLUSTER_POLICIES)
        cidrs = s.network.get("publicAccessCidrs") or []
        cluster = aws.eks.Cluster(
            "cluster",
            name=s.cluster_name,
            version=s.kubernetes_version,
            role_arn=cluster_role.arn,
            access_config=aws.eks.ClusterAccessConfigArgs(authentication_mode="API",
                                                          bootstrap_cluster_creator_admin_permissions=False),
            bootstrap_self_managed_addons=False,
            vpc_config=aws.eks.ClusterVpcConfigArgs(subnet_ids=subnets, endpoint_private_access=True,
                                                    endpoint_public_access=bool(cidrs),
                                                    public_access_cidrs=cidrs or None),
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type="STANDARD"),
            deletion_protection=s.deletion_protection,
            opts=self.opts(depends_on=cluster_policies + network, protect=s.deletion_protection),
        )
        for i, arn in enumerate(s.admins):
            entry = aws.eks.AccessEntry(f"admin-{i}", cluster_name=cluster.name, principal_arn=arn, type="STANDARD",
                                        opts=self.opts())
            aws.eks.AccessPolicyAssociation(f"admin-{i}", cluster_name=cluster.name, principal_arn=entry.principal_arn,
                                            policy_arn=ADMIN_ACCESS_POLICY.format(p=self.p),
                                            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                                            opts=self.opts())
        cni_role, cni_policies = self.role("vpc-cni-role", POD_IDENTITY_TRUST, CNI_POLICIES)
        ebs_role, ebs_policies = self.role("ebs-csi-role", POD_IDENTITY_TRUST, EBS_POLICIES)
        agent = self.addon("eks-pod-identity-agent", cluster, [])
        cni = self.addon("vpc-cni", cluster, [agent, *cni_policies], (cni_role, "aws-node"))
        proxy = self.addon("kube-proxy", cluster, [])
        node_role, node_policies = self.role("node-role", EC2_TRUST, NODE_POLICIES)
        before_nodes: list[pulumi.Resource] = [agent, cni, proxy, *node_policies]
        system = self.node_group("system", s.system, cluster, node_role, subnets, before_nodes, gpu=False)
        for name in AFTER_SYSTEM:
            deps: list[pulumi.Resource] = [system]
            pod = None
            if name == "aws-ebs-csi-driver":
                deps += ebs_policies
                pod = (ebs_role, "ebs-csi-controller-sa")
            self.addon(name, cluster, deps, pod)
        groups: dict[str, Any] = {"system": {"instanceType": s.system.instance_type, "gpus": 0,
                                             "nodeGroupName": system.node_group_name}}
        for g in s.gpu_groups:
            nets = [by_zone[z] for z in g.zones] if g.zones and by_zone else subnets
            ng = self.node_group(f"gpu-{g.name}", g, cluster, node_role, nets, before_nodes, gpu=True)
            groups[g.name] = {"instanceType": g.instance_type, "gpus": g.gpu.count if g.gpu else None,
                              "amiType": eks_ami_type(s, g), "nodeGroupName": ng.node_group_name}
        kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority.data).apply(
            lambda a: cloud.exec_kubeconfig(
                f"eks-{a[0]}", a[1], a[2], "aws", ["eks", "get-token", "--cluster-name", a[0], "--region", s.region,
                                                   "--output", "json"],
                hint="install the AWS CLI v2 (aws eks get-token) and sign in as one of kubeforge:admins"))
        self.comp.register_outputs({"clusterName": cluster.name})
        cloud.export(s, kubeconfig, groups, cluster.arn, cluster.endpoint)


def main() -> None:
    cloud.run("eks", lambda s: _Eks(s).deploy())
