"""The policy pack: the plain policy functions, and the pack itself spoken to over the analyzer
protocol the Pulumi engine uses for `pulumi preview --policy-pack stacks/policy` (the engine is
not available here; the test plays its part: start the pack, read its port, call Analyze).
"""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from kubeforge.pulumi import policies

REPO = Path(__file__).resolve().parents[2]


def _violations(fn, resource_type: str, props: dict) -> list[str]:
    out: list[str] = []
    fn(types.SimpleNamespace(resource_type=resource_type, props=props, name="n"), lambda msg, urn=None: out.append(msg))
    return out


def _deploy(name: str, **container) -> dict:
    c = {"name": "c", "image": "registry.example.com/app:1.2.3", "resources": {"requests": {"cpu": "10m"}}}
    c.update(container)
    return {"metadata": {"name": name, "namespace": "x"}, "spec": {"template": {"spec": {"containers": [c]}}}}


DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"


def test_namespace_needs_a_pod_security_level():
    fn = policies.namespace_pod_security
    ns = "kubernetes:core/v1:Namespace"
    assert _violations(fn, ns, {"metadata": {"name": "a"}})
    assert _violations(fn, ns, {"metadata": {"name": "a", "labels": {policies.PSA_LABEL: "lax"}}})
    assert not _violations(fn, ns, {"metadata": {"name": "a", "labels": {policies.PSA_LABEL: "baseline"}}})
    assert not _violations(fn, DEPLOYMENT, _deploy("d"))


@pytest.mark.parametrize("image, bad", [
    ("nginx", True), ("docker.io/library/nginx:latest", True), ("localhost:5000/app", True),
    ("nginx:1.27", False), ("localhost:5000/app:1.0", False),
    ("ghcr.io/x/y@sha256:" + "a" * 64, False),
])
def test_images_are_pinned(image, bad):
    assert bool(_violations(policies.no_latest_images, DEPLOYMENT, _deploy("d", image=image))) is bad


def test_init_containers_and_cronjobs_are_checked_too():
    cron = {"metadata": {"name": "j"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox"}]}}}}}}
    assert _violations(policies.no_latest_images, "kubernetes:batch/v1:CronJob", cron)
    d = _deploy("d")
    d["spec"]["template"]["spec"]["initContainers"] = [{"name": "i", "image": "busybox:latest"}]
    assert _violations(policies.no_latest_images, DEPLOYMENT, d)


def test_privileged_only_for_the_allowlisted_node_agents():
    priv = {"securityContext": {"privileged": True}}
    assert _violations(policies.privileged_allowlist, DEPLOYMENT, _deploy("my-app", **priv))
    for name, reason in policies.PRIVILEGED_ALLOWLIST.items():
        assert reason.strip()
        assert not _violations(policies.privileged_allowlist, DAEMONSET, _deploy(name, **priv))
    assert not _violations(policies.privileged_allowlist, DEPLOYMENT, _deploy("my-app"))


def test_workloads_request_resources():
    assert _violations(policies.resource_requests, DEPLOYMENT, _deploy("d", resources={}))
    assert _violations(policies.resource_requests, DEPLOYMENT, _deploy("d", resources={"limits": {"cpu": "1"}}))
    assert not _violations(policies.resource_requests, DEPLOYMENT, _deploy("d"))


def test_non_kubernetes_resources_are_ignored():
    for _, _, fn, _ in policies.POLICIES:
        assert not _violations(fn, "pulumi:index:Stash", {"input": {"image": "x:latest"}})


def test_the_pack_answers_the_engines_analyzer_protocol():
    """Start stacks/policy as the engine does (it prints its port), then GetAnalyzerInfo and Analyze."""
    import grpc
    from google.protobuf import empty_pb2, struct_pb2
    from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

    proc = subprocess.Popen([sys.executable, str(REPO / "stacks/policy/__main__.py")], cwd=REPO / "stacks/policy",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(proc.stdout.readline().decode().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = analyzer_pb2_grpc.AnalyzerStub(ch)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            assert info.name == "kubeforge"
            levels = {p.name: p.enforcementLevel for p in info.policies}
            assert set(levels) == {n for n, _, _, _ in policies.POLICIES}
            props = struct_pb2.Struct()
            props.update(_deploy("web", image="nginx:latest", securityContext={"privileged": True}))
            resp = stub.Analyze(analyzer_pb2.AnalyzeRequest(type=DEPLOYMENT, properties=props,
                                                             urn="urn:pulumi:s::p::" + DEPLOYMENT + "::web",
                                                             name="web"), timeout=30)
            got = {d.policyName for d in resp.diagnostics}
            assert got == {"no-latest-images", "privileged-allowlist"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- cloud IAM (cluster stacks) ---------------------------------------------------------------

ROLE = "aws:iam/role:Role"
ATTACH = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


def _trust(principal, actions=("sts:AssumeRole",)) -> dict:
    import json

    return {"assumeRolePolicy": json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": principal, "Action": list(actions)}]})}


@pytest.mark.parametrize("principal, bad", [
    ({"Service": "eks.amazonaws.com"}, False), ({"Service": ["ec2.amazonaws.com"]}, False),
    ({"Service": "pods.eks.amazonaws.com"}, False),
    ({"AWS": "*"}, True), ("*", True), ({"AWS": "arn:aws:iam::111122223333:root"}, True),
    ({"Service": "lambda.amazonaws.com"}, True), ({"Federated": "cognito-identity.amazonaws.com"}, True),
    ({"Service": "eks.amazonaws.com", "AWS": "*"}, True),
])
def test_roles_are_assumable_only_by_eks_ec2_and_pod_identity(principal, bad):
    assert bool(_violations(policies.iam_trusted_principals, ROLE, _trust(principal))) is bad


@pytest.mark.parametrize("statement, bad", [
    ({"Effect": "Allow", "Action": "*", "Resource": "*"}, True),
    ({"Effect": "Allow", "Action": ["s3:GetObject", "ec2:*"], "Resource": "*"}, True),
    ({"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "*"}, True),
    ({"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"}, False),
    ({"Effect": "Deny", "Action": "*", "Resource": "*"}, False),
])
def test_policy_documents_allow_named_actions_only(statement, bad):
    import json

    doc = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    assert bool(_violations(policies.iam_no_wildcard_actions, "aws:iam/policy:Policy", {"policy": doc})) is bad
    inline = {"inlinePolicies": [{"name": "x", "policy": doc}], **_trust({"Service": "eks.amazonaws.com"})}
    assert bool(_violations(policies.iam_no_wildcard_actions, ROLE, inline)) is bad


@pytest.mark.parametrize("arn, bad", [
    ("arn:aws:iam::aws:policy/AmazonEKSClusterPolicy", False),
    ("arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy", False),
    ("arn:aws-us-gov:iam::aws:policy/AmazonEKSWorkerNodePolicy", False),
    ("arn:aws:iam::aws:policy/AdministratorAccess", True),
    ("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryFullAccess", True),
    ("arn:aws:iam::111122223333:policy/AmazonEKSClusterPolicy", True),     # a look-alike customer policy
])
def test_only_the_managed_policies_a_cluster_needs(arn, bad):
    assert bool(_violations(policies.iam_managed_policy_allowlist, ATTACH, {"role": "r", "policyArn": arn})) is bad
    assert bool(_violations(policies.iam_managed_policy_allowlist, ROLE, {"managedPolicyArns": [arn]})) is bad
    for name, reason in policies.AWS_MANAGED_ALLOWLIST.items():
        assert reason.strip() and name in policies.AWS_MANAGED_ALLOWLIST


def test_administrator_access_is_named_as_such():
    (msg,) = _violations(policies.iam_managed_policy_allowlist, ATTACH,
                         {"policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"})
    assert "administrator rights" in msg


@pytest.mark.parametrize("typ, props, bad", [
    ("gcp:projects/iAMMember:IAMMember", {"role": "roles/editor", "member": "user:a@b.c"}, True),
    ("gcp:projects/iAMMember:IAMMember", {"role": "roles/owner", "member": "group:a@b.c"}, True),
    ("gcp:projects/iAMMember:IAMMember", {"role": "roles/container.admin", "member": "group:a@b.c"}, True),
    ("gcp:projects/iAMMember:IAMMember", {"role": "roles/container.admin", "member": "group:a@b.c",
                                          "condition": {"title": "t", "expression": 'resource.name.startsWith("x")'}}, False),
    ("gcp:projects/iAMMember:IAMMember", {"role": "roles/container.defaultNodeServiceAccount", "member": "x"}, False),
    ("azure-native:authorization:RoleAssignment",
     {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"}, True),
    ("azure-native:authorization:RoleAssignment",
     {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"}, False),
])
def test_no_broad_google_cloud_or_azure_grants(typ, props, bad):
    assert bool(_violations(policies.cloud_no_broad_roles, typ, props)) is bad


@pytest.mark.parametrize("typ, props, bad", [
    ("aws:eks/cluster:Cluster", {"accessConfig": {"authenticationMode": "API",
                                                   "bootstrapClusterCreatorAdminPermissions": False}}, False),
    ("aws:eks/cluster:Cluster", {"accessConfig": {"authenticationMode": "API_AND_CONFIG_MAP",
                                                   "bootstrapClusterCreatorAdminPermissions": False}}, True),
    ("aws:eks/cluster:Cluster", {"accessConfig": {"authenticationMode": "API"}}, True),   # creator admin by default
    ("azure-native:containerservice:ManagedCluster", {"disableLocalAccounts": True, "aadProfile": {"managed": True}}, False),
    ("azure-native:containerservice:ManagedCluster", {"aadProfile": {"managed": True}}, True),
    ("gcp:container/cluster:Cluster", {"masterAuth": {"clientCertificateConfig": {"issueClientCertificate": True}}}, True),
    ("gcp:container/cluster:Cluster", {}, False),
])
def test_cluster_admins_are_named_and_no_static_admin_credential(typ, props, bad):
    assert bool(_violations(policies.cluster_admins_explicit, typ, props)) is bad
