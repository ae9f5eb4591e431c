"""The cluster-aks stack (stacks/cluster-aks/__main__.py calls `main()`): an AKS cluster with GPU
agent pools from pulumi-azure-native primitives, under one `kubeforge:cluster:AKS` component.

Order: resource group -> ManagedCluster (a System pool, Entra ID admins, local accounts off) ->
User GPU AgentPools. The kubeconfig comes from the user-credentials call in exec format (kubelogin)
and is a secret; a kubeconfig with a static credential is refused.
GPU mode: host = gpuProfile.driver Install (AKS's driver; the platform brings the device plugin),
operator = driver None (the GPU Operator owns it). provider is refused: AKS runs no device plugin.
"""
from __future__ import annotations

import base64
from typing import Any

import pulumi
from pulumi_azure_native import compute, containerservice, resources

from kubeforge.pulumi import cloud
from kubeforge.pulumi.clusters import ClusterSettings, NodeGroup, aks_driver

# AgentPool properties AKS cannot change in place: a change replaces the pool.
IMMUTABLE = ("instance_type", "zones", "disk_gb", "capacity_type", "reservation", "mig", "placement_group")


def pool_name(s: ClusterSettings, g: NodeGroup) -> str:
    """The group name + 4 hex of what forces a replacement: a replaced pool gets a new name, so it
    is created (and its nodes ready) before the old one is deleted, as auto-names do elsewhere."""
    import hashlib
    import json

    fixed = json.dumps([getattr(g, k) for k in IMMUTABLE] + [aks_driver(s)], sort_keys=True, default=str)
    return g.name + hashlib.sha256(fixed.encode()).hexdigest()[:4]


class _Aks:
    def __init__(self, s: ClusterSettings):
        import pulumi_azure_native as azure

        self.s = s
        self.provider = azure.Provider("azure-native", location=s.region)
        self.comp = cloud.ClusterComponent("aks", s.cluster_name, pulumi.ResourceOptions(providers=[self.provider]))
        self.tags = {**s.tags, "kubeforge.io/cluster": s.cluster_name}

    def opts(self, **kw: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self.comp, provider=self.provider, **kw)

    def pool(self, g: NodeGroup, rg: resources.ResourceGroup, cluster: containerservice.ManagedCluster
             ) -> containerservice.AgentPool:
        s = self.s
        ppg = None
        if g.placement_group:
            ppg = compute.ProximityPlacementGroup(f"gpu-{g.name}", resource_group_name=rg.name, location=s.region,
                                                  proximity_placement_group_type="Standard", tags=self.tags,
                                                  opts=self.opts())
        spot = dict(scale_set_priority="Spot", scale_set_eviction_policy="Delete", spot_max_price=-1) if g.spot else {}
        return containerservice.AgentPool(
            f"gpu-{g.name}",
            agent_pool_name=pool_name(s, g),
            resource_group_name=rg.name,
            resource_name_=cluster.name,       # an output of the cluster: the edge the graph needs
            mode="User",
            vm_size=g.instance_type,
            orchestrator_version=s.kubernetes_version,
            count=g.desired,
            min_count=g.min,
            max_count=g.max,
            enable_auto_scaling=True,
            availability_zones=g.zones or s.zones or None,
            os_type="Linux",
            os_disk_size_gb=g.disk_gb,
            node_labels={**g.labels, "kubeforge.io/node-group": g.name},
            node_taints=[f"{t['key']}={t['value']}:{t['effect']}" for t in g.taints],
            gpu_profile=containerservice.GPUProfileArgs(driver=aks_driver(s)),
            gpu_instance_profile=g.mig,
            capacity_reservation_group_id=g.reservation if g.capacity_type == "RESERVATION" else None,
            proximity_placement_group_id=ppg.id if ppg else None,
            upgrade_settings=containerservice.AgentPoolUpgradeSettingsArgs(max_surge="1"),
            tags=self.tags,
            **spot,
            # The autoscaler owns the node count after creation.
            opts=self.opts(ignore_changes=["count"]),
        )

    def deploy(self) -> None:
        s = self.s
        rg = resources.ResourceGroup("resource-group", resource_group_name=s.extra["resourceGroup"], location=s.region,
                                     tags=self.tags, opts=self.opts(protect=s.deletion_protection))
        system = s.system
        net = s.network
        cluster = containerservice.ManagedCluster(
            "cluster",
            resource_name_=s.cluster_name,
            resource_group_name=rg.name,
            location=s.region,
            dns_prefix=s.cluster_name,
            kubernetes_version=s.kubernetes_version,
            identity=containerservice.ManagedClusterIdentityArgs(type="SystemAssigned"),
            aad_profile=containerservice.ManagedClusterAADProfileArgs(managed=True, enable_azure_rbac=False,
                                                                      admin_group_object_ids=s.admins),
            disable_local_accounts=True,       # no static admin kubeconfig exists to leak
            enable_rbac=True,
            agent_pool_profiles=[containerservice.ManagedClusterAgentPoolProfileArgs(
                name="system", mode="System", vm_size=system.instance_type, count=system.desired,
                min_count=system.min, max_count=system.max, enable_auto_scaling=True, os_type="Linux",
                os_disk_size_gb=system.disk_gb, type="VirtualMachineScaleSets", availability_zones=s.zones or None,
                vnet_subnet_id=net["vnetSubnetId"], orchestrator_version=s.kubernetes_version,
                node_labels={"kubeforge.io/node-group": "system"},
                upgrade_settings=containerservice.AgentPoolUpgradeSettingsArgs(max_surge="33%"))],
            network_profile=containerservice.ContainerServiceNetworkProfileArgs(
                network_plugin="azure", network_plugin_mode="overlay"),
            api_server_access_profile=containerservice.ManagedClusterAPIServerAccessProfileArgs(
                authorized_ip_ranges=net["authorizedIpRanges"]) if net["authorizedIpRanges"] else None,
            auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel="none", node_os_upgrade_channel="NodeImage"),
            sku=containerservice.ManagedClusterSKUArgs(name="Base", tier="Standard"),
            tags=self.tags,
            opts=self.opts(protect=s.deletion_protection, ignore_changes=["agentPoolProfiles[0].count"]),
        )
        groups: dict[str, Any] = {"system": {"instanceType": system.instance_type, "gpus": 0}}
        for g in s.gpu_groups:
            p = self.pool(g, rg, cluster)
            groups[g.name] = {"instanceType": g.instance_type, "gpus": g.gpu.count if g.gpu else None,
                              "driver": aks_driver(s), "pool": p.name}
        creds = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=rg.name, resource_name=cluster.name, format="exec",
            opts=pulumi.InvokeOutputOptions(provider=self.provider, depends_on=[cluster]))
        kubeconfig = pulumi.Output.secret(creds.kubeconfigs[0].value.apply(
            lambda v: cloud.require_exec_auth(base64.b64decode(v).decode(), "listManagedClusterUserCredentials")))
        self.comp.register_outputs({"clusterName": cluster.name})
        cloud.export(s, kubeconfig, groups, cluster.id, cluster.fqdn)


def main() -> None:
    cloud.run("aks", lambda s: _Aks(s).deploy())
