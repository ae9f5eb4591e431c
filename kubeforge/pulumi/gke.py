"""The cluster-gke stack (stacks/cluster-gke/__main__.py calls `main()`): a regional GKE cluster
with GPU node pools from pulumi-gcp primitives, under one `kubeforge:cluster:GKE` component.

Order: node service account (only roles/container.defaultNodeServiceAccount) -> cluster (default
pool removed, deletion_protection explicit, Workload Identity) -> admins (roles/container.admin,
conditioned on this cluster) and node pools (system, then GPU pools).
GPU mode: provider = GKE installs the driver and runs its own device plugin (the profile's
time-sharing/MPS is GKE's gpu_sharing_config); operator = driver installation disabled and GKE's
device plugin switched off on the pool (the GPU Operator brings both). host is refused: on GKE the
cloud's device plugin runs whenever it installs the driver.
"""
from __future__ import annotations

import math
from typing import Any

import pulumi
import pulumi_gcp as gcp

from kubeforge.pulumi import cloud
from kubeforge.pulumi.clusters import GKE_NO_DEVICE_PLUGIN, ClusterSettings, NodeGroup, gke_driver

NODE_ROLES = ("roles/container.defaultNodeServiceAccount",)
ADMIN_ROLE = "roles/container.admin"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]   # access is the service account's roles
SHARING = {"time-slicing": "TIME_SHARING", "mps": "MPS"}
TAINT_EFFECT = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}


class _Gke:
    def __init__(self, s: ClusterSettings):
        self.s = s
        self.project = s.extra["project"]
        self.provider = gcp.Provider("gcp", project=self.project, region=s.region,
                                     default_labels={**s.tags, "kubeforge-cluster": s.cluster_name})
        self.comp = cloud.ClusterComponent("gke", s.cluster_name, pulumi.ResourceOptions(providers=[self.provider]))

    def opts(self, **kw: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self.comp, provider=self.provider, **kw)

    def node_config(self, g: NodeGroup, sa: gcp.serviceaccount.Account, gpu: bool) -> gcp.container.NodePoolNodeConfigArgs:
        s = self.s
        accel = taints = reservation = None
        labels = {**g.labels, "kubeforge.io/node-group": g.name}
        if gpu:
            kind, count = g.accelerator or ("", 0)
            sharing = None
            strategy, replicas = s.sharing
            if s.gpu_mode == "provider" and strategy in SHARING and not g.mig:
                sharing = gcp.container.NodePoolNodeConfigGuestAcceleratorGpuSharingConfigArgs(
                    gpu_sharing_strategy=SHARING[strategy], max_shared_clients_per_gpu=replicas)
            accel = [gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
                type=kind, count=count, gpu_partition_size=g.mig, gpu_sharing_config=sharing,
                gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                    gpu_driver_version=gke_driver(s, g)))]
            taints = [gcp.container.NodePoolNodeConfigTaintArgs(key=t["key"], value=t["value"], effect=TAINT_EFFECT[t["effect"]])
                      for t in g.taints]
            if s.gpu_mode == "operator":
                labels[GKE_NO_DEVICE_PLUGIN] = "true"
            if g.capacity_type == "RESERVATION":
                reservation = gcp.container.NodePoolNodeConfigReservationAffinityArgs(
                    consume_reservation_type="SPECIFIC_RESERVATION", key="compute.googleapis.com/reservation-name",
                    values=[g.reservation])
        return gcp.container.NodePoolNodeConfigArgs(
            machine_type=g.instance_type, disk_size_gb=g.disk_gb, disk_type="pd-balanced", service_account=sa.email,
            oauth_scopes=SCOPES, labels=labels, guest_accelerators=accel, taints=taints, spot=g.spot or None,
            reservation_affinity=reservation,
            workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(mode="GKE_METADATA"),
            # GKE's driver images are signed; the GPU Operator's driver modules are not.
            shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
                enable_secure_boot=not (gpu and s.gpu_mode == "operator"), enable_integrity_monitoring=True))

    def pool(self, rname: str, g: NodeGroup, cluster: gcp.container.Cluster, sa: gcp.serviceaccount.Account,
             deps: list[pulumi.Resource], gpu: bool) -> gcp.container.NodePool:
        zones = g.zones or self.s.zones
        per_zone = max(1, len(zones))
        return gcp.container.NodePool(
            rname,
            # No name: auto-named (name_prefix semantics), so a replacement pool comes up before the old goes.
            cluster=cluster.name,
            location=cluster.location,
            project=self.project,
            node_locations=zones or None,
            initial_node_count=math.ceil(g.desired / per_zone),
            autoscaling=gcp.container.NodePoolAutoscalingArgs(total_min_node_count=g.min, total_max_node_count=g.max,
                                                              location_policy="BALANCED" if not gpu else "ANY"),
            node_config=self.node_config(g, sa, gpu),
            placement_policy=gcp.container.NodePoolPlacementPolicyArgs(type="COMPACT") if g.placement_group else None,
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            upgrade_settings=gcp.container.NodePoolUpgradeSettingsArgs(strategy="SURGE", max_surge=1, max_unavailable=0),
            # The autoscaler owns the node count after creation.
            opts=self.opts(depends_on=deps, ignore_changes=["initialNodeCount", "nodeCount"]),
        )

    def deploy(self) -> None:
        s = self.s
        net = s.network
        sa = gcp.serviceaccount.Account("nodes", account_id=f"{s.cluster_name[:23]}-nodes", project=self.project,
                                        display_name=f"kubeforge {s.cluster_name} nodes", opts=self.opts())
        node_roles = [gcp.projects.IAMMember(f"nodes-{r.rsplit('/', 1)[-1]}", project=self.project, role=r,
                                             member=sa.member, opts=self.opts()) for r in NODE_ROLES]
        private = gcp.container.ClusterPrivateClusterConfigArgs(enable_private_nodes=True, enable_private_endpoint=False) \
            if net["privateNodes"] else None
        authorized = gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(cidr_blocks=[
            gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(cidr_block=c, display_name=f"admins-{i}")
            for i, c in enumerate(net["masterAuthorizedNetworks"])]) if net["masterAuthorizedNetworks"] else None
        cluster = gcp.container.Cluster(
            "cluster",
            name=s.cluster_name,
            location=s.region,
            node_locations=s.zones or None,
            project=self.project,
            remove_default_node_pool=True,
            initial_node_count=1,
            deletion_protection=s.deletion_protection,        # explicit: the provider's default is true
            min_master_version=s.kubernetes_version,
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=s.extra["releaseChannel"]),
            network=net["network"],
            subnetwork=net["subnetwork"],
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(),
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{self.project}.svc.id.goog"),
            private_cluster_config=private,
            master_authorized_networks_config=authorized,
            # The default pool exists for a moment before it is removed: not with the Compute Engine
            # default service account (Editor), with the node account.
            node_config=gcp.container.ClusterNodeConfigArgs(service_account=sa.email, oauth_scopes=SCOPES),
            resource_labels=dict(s.tags),
            opts=self.opts(depends_on=node_roles, protect=s.deletion_protection),
        )
        scope = f"projects/{self.project}/locations/{s.region}/clusters/{s.cluster_name}"
        for i, member in enumerate(s.admins):
            gcp.projects.IAMMember(
                f"admin-{i}", project=self.project, role=ADMIN_ROLE, member=member,
                condition=gcp.projects.IAMMemberConditionArgs(
                    title=f"kubeforge {s.cluster_name} only", expression=f'resource.name.startsWith("{scope}")'),
                opts=self.opts(depends_on=[cluster]))
        system = self.pool("system", s.system, cluster, sa, node_roles, gpu=False)
        groups: dict[str, Any] = {"system": {"instanceType": s.system.instance_type, "gpus": 0, "pool": system.name}}
        for g in s.gpu_groups:
            p = self.pool(f"gpu-{g.name}", g, cluster, sa, node_roles, gpu=True)
            groups[g.name] = {"instanceType": g.instance_type, "gpus": g.gpu.count if g.gpu else g.accelerator[1],
                              "driver": gke_driver(s, g), "pool": p.name}
        kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate).apply(
            lambda a: cloud.exec_kubeconfig(
                f"gke-{self.project}-{a[0]}", f"https://{a[1]}", a[2], "gke-gcloud-auth-plugin", [],
                hint="install gke-gcloud-auth-plugin (gcloud components install gke-gcloud-auth-plugin)",
                cluster_info=True))
        self.comp.register_outputs({"clusterName": cluster.name})
        cloud.export(s, kubeconfig, groups, cluster.id, cluster.endpoint)


def main() -> None:
    cloud.run("gke", lambda s: _Gke(s).deploy())
