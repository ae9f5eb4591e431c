"""Check logic on the real objects the spine renders from the mirror.

No cluster runs here, so where a check judges what the API server returns, the test gives it the
rendered object plus the `status` block the API server writes (the boundary we cannot reach);
everything else is the real code on real upstream objects.
"""
from __future__ import annotations

import copy

import pytest
from lifecycle_helpers import PROFILES, REPO, objects_of

from kubeforge import api
from kubeforge.errors import KubeforgeError
from kubeforge.verify import gpu, readiness
from kubeforge.verify.checks import FUNCTION, READINESS, collect, select
from kubeforge.verify.images import CHECK_IMAGES, check_image, with_registry


# -- which checks a profile runs ----------------------------------------------------------
def test_training_profile_gets_derived_and_component_checks(training):
    checks = collect(training.plan, training)
    names = [c.name for c in checks]
    assert len(names) == len(set(names)), "check names must be unique"
    for expected in ("katib/crds-established", "katib/workloads-available", "katib/webhooks-ready",
                     "katib/pods-healthy", "katib/random-experiment", "training-operator/pytorchjob-gloo",
                     "argo-workflows/hello-world", "storage/default-class-binds-pvc",
                     "kubeflow-namespace/pod-security"):
        assert expected in names
    # Readiness comes from the rendered objects: katib renders 3 CRDs and 2 webhook configurations.
    crds = objects_of(training, "katib", "CustomResourceDefinition")
    crd_check = next(c for c in checks if c.name == "katib/crds-established")
    assert crd_check.description.startswith(f"{len(crds)} CRD")


def test_checks_run_in_dependency_order(training):
    checks = collect(training.plan, training)
    pos = {c.name: i for i, c in enumerate(checks)}
    for c in checks:
        for dep in c.needs + c.after:
            assert pos[dep] < pos[c.name], f"{c.name} listed before its prerequisite {dep}"
    # Functional checks need their own component's readiness and that of its dependencies.
    katib_fn = next(c for c in checks if c.name == "katib/random-experiment")
    assert "katib/webhooks-ready" in katib_fn.needs
    assert "kubeflow-namespace/pod-security" in katib_fn.needs
    for c in checks:
        if c.kind == READINESS:
            assert not c.needs, "readiness checks always run: they are the diagnosis"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_collects_loadable_checks(profile, render_profile):
    rendered = render_profile(profile)
    checks = collect(rendered.plan, rendered)
    comps = {c.component for c in checks}
    assert comps <= set(rendered.plan.components)
    for c in checks:
        assert c.timeout > 0 and callable(c.fn)
    gpu_checks = [c for c in checks if c.name.endswith("gpu-allocatable")]
    if rendered.plan.profile.gpu.mode == "none":
        assert all(c.skip_reason for c in gpu_checks)
    else:
        assert gpu_checks and not any(c.skip_reason for c in gpu_checks)


def test_kserve_modes_follow_the_profile():
    """Standard mode runs everywhere KServe is; the Knative-mode check needs Knative Serving."""
    from kubeforge.verify.checks import component_checks

    for profile, knative in (("dev", True), ("serving", None)):
        plan = api.plan(api.load_profile(profile))
        if "kserve" not in plan.components:
            continue
        found = {c.name: c for c in component_checks(plan, "kserve", [])}
        assert found["kserve/predict-standard"].skip_reason is None
        has_knative = "knative-serving" in plan.components
        assert (found["kserve/predict-knative"].skip_reason is None) == has_knative
        if knative is not None:
            assert has_knative == knative


def test_unknown_check_name_is_a_usage_error(training):
    checks = collect(training.plan, training)
    with pytest.raises(KubeforgeError) as err:
        select(checks, ["katib/no-such-check"])
    assert err.value.exit_code == 2
    assert err.value.field == "--check" and "katib/random-experiment" in err.value.fix


def test_selecting_a_check_pulls_in_what_it_needs(training):
    checks = collect(training.plan, training)
    picked = [c.name for c in select(checks, ["katib/random-experiment"])]
    assert "katib/random-experiment" in picked and "katib/crds-established" in picked
    assert "argo-workflows/hello-world" not in picked
    by_component = select(checks, ["storage"])
    assert {c.component for c in by_component} == {"storage"}
    assert any(c.kind == FUNCTION for c in by_component)


# -- readiness logic on real objects ------------------------------------------------------
def _established(crd: dict, status: str = "True") -> dict:
    live = copy.deepcopy(crd)
    live["status"] = {"conditions": [
        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
        {"type": "Established", "status": status, "reason": "InitialNamesAccepted" if status == "True"
         else "Installing", "message": "the initial names have been accepted"}]}
    return live


def test_crd_readiness_on_real_katib_crds(training):
    crds = objects_of(training, "katib", "CustomResourceDefinition")
    assert crds
    for crd in crds:
        name = crd["metadata"]["name"]
        assert readiness.crd_problems(name, _established(crd)) == []
        problems = readiness.crd_problems(name, _established(crd, "False"))
        assert problems == [f"CRD {name} is not Established (Installing: the initial names have been accepted)"]
        assert readiness.crd_problems(name, None) == [f"CRD {name} is missing"]


def test_workload_readiness_on_real_deployments_and_daemonsets(training):
    dep = objects_of(training, "katib", "Deployment")[0]
    ref = f"{dep['metadata']['namespace']}/{dep['metadata']['name']}"
    want = dep["spec"].get("replicas", 1)
    live = copy.deepcopy(dep)
    live["metadata"]["generation"] = 2
    live["status"] = {"observedGeneration": 2, "replicas": want, "updatedReplicas": want,
                      "availableReplicas": 0, "conditions": [{"type": "Available", "status": "False"}]}
    assert readiness.workload_problems("Deployment", ref, live) == [
        f"Deployment {ref}: 0/{want} available, {want}/{want} updated"]
    live["status"]["availableReplicas"] = want
    live["status"]["conditions"] = [{"type": "Available", "status": "True"}]
    assert readiness.workload_problems("Deployment", ref, live) == []
    live["status"]["observedGeneration"] = 1
    assert "has not observed generation 2" in readiness.workload_problems("Deployment", ref, live)[0]

    ds = objects_of(training, "nvidia-device-plugin", "DaemonSet")[0]
    live = copy.deepcopy(ds)
    live["status"] = {"desiredNumberScheduled": 2, "numberAvailable": 1, "updatedNumberScheduled": 2}
    assert readiness.workload_problems("DaemonSet", "x/y", live) == ["DaemonSet x/y: 1/2 available, 2/2 updated"]
    live["status"]["numberAvailable"] = 2
    assert readiness.workload_problems("DaemonSet", "x/y", live) == []


def test_webhook_readiness_on_real_katib_webhooks(training):
    hooks = objects_of(training, "katib", "ValidatingWebhookConfiguration") + \
        objects_of(training, "katib", "MutatingWebhookConfiguration")
    assert hooks
    for wh in hooks:
        services = {(ns, svc) for _n, ns, svc in readiness.webhook_services(wh)}
        assert services, "katib's webhooks are service-backed"
        live = copy.deepcopy(wh)
        for w in live["webhooks"]:
            w["clientConfig"].pop("caBundle", None)
        problems = readiness.webhook_problems(wh["kind"], wh["metadata"]["name"], live, {})
        assert any("has no caBundle" in p for p in problems)
        assert any("has no ready endpoints" in p for p in problems)
        for w in live["webhooks"]:
            w["clientConfig"]["caBundle"] = "LS0tLS1CRUdJTi=="  # what the cert injector writes
        assert readiness.webhook_problems(wh["kind"], wh["metadata"]["name"], live,
                                          {s: 1 for s in services}) == []


def test_ready_endpoints_count_only_ready_addresses():
    slices = [{"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                             {"addresses": ["10.0.0.2"], "conditions": {"ready": False}}]}]
    assert readiness.ready_endpoint_count(slices) == 1


def _pod(restarts: int, waiting: str | None = None) -> dict:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"metadata": {"name": "katib-controller-abc", "namespace": "kubeflow"},
            "status": {"containerStatuses": [{"name": "manager", "restartCount": restarts, "state": state,
                                              "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}}


def test_pod_health_catches_crashloop_and_rising_restarts():
    assert readiness.pod_problems([_pod(3)], [_pod(3)]) == []
    rising = readiness.pod_problems([_pod(3)], [_pod(4)])
    assert rising == ["container kubeflow/katib-controller-abc:manager restarted 1 time(s) while being "
                      "watched (restartCount 3 -> 4)"]
    crash = readiness.pod_problems([_pod(5, "CrashLoopBackOff")], [_pod(5, "CrashLoopBackOff")])
    assert crash == ["pod kubeflow/katib-controller-abc container manager is in CrashLoopBackOff "
                     "(last exit 1: Error)"]


def test_pod_security_check_targets_enforcing_namespaces(training):
    namespaces = [o for rc in training.components.values() for o in rc.objects if o["kind"] == "Namespace"]
    enforcing = {o["metadata"]["name"]: readiness.enforces_pod_security(o) for o in namespaces}
    assert enforcing.get("kubeflow") in ("baseline", "restricted")
    pod = readiness.privileged_pod("kubeflow", check_image("pause", None))
    assert pod["spec"]["containers"][0]["securityContext"]["privileged"] is True


def test_pod_security_verdict_reads_the_admission_answer():
    from kubernetes.client.exceptions import ApiException

    # The body the API server returns when PSA rejects (status 403, reason Forbidden).
    rejected = ApiException(status=403, reason="Forbidden")
    rejected.body = ('{"kind":"Status","message":"pods \\"kubeforge-psa-probe\\" is forbidden: violates '
                     'PodSecurity \\"baseline:latest\\": privileged (container \\"probe\\" must not set '
                     'securityContext.privileged=true)","reason":"Forbidden","code":403}')
    assert readiness.pod_security_verdict(rejected) is None
    assert readiness.pod_security_verdict(None) == "a privileged pod was admitted"
    quota = ApiException(status=403, reason="Forbidden")
    quota.body = '{"message":"exceeded quota"}'
    assert "not by Pod Security" in readiness.pod_security_verdict(quota)


# -- images and the registry override ----------------------------------------------------
def test_check_images_are_pinned_and_follow_the_registry_override():
    for key, ref in CHECK_IMAGES.items():
        assert ":" in ref.rsplit("/", 1)[-1] and not ref.endswith(":latest"), key
    assert with_registry("docker.io/library/busybox:1.37.0", "registry.example.com:5000/mirror") == \
        "registry.example.com:5000/mirror/library/busybox:1.37.0"
    assert with_registry("nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0", "reg.local") == \
        "reg.local/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0"
    assert with_registry("busybox:1.37.0", "reg.local") == "reg.local/library/busybox:1.37.0"
    assert with_registry("registry.k8s.io/pause:3.10", None) == "registry.k8s.io/pause:3.10"


def test_context_pulls_check_images_from_the_profile_registry(training):
    from kubeforge.verify.context import CheckContext

    plan = api.plan(api.load_profile("training", {"registry": "registry.example.com:5000/mirror"}))
    ctx = CheckContext(cluster=None, plan=plan, component="katib", objects=[], timeout=10)
    assert ctx.image("busybox") == "registry.example.com:5000/mirror/library/busybox:1.37.0"
    pod = ctx.pod("p", "curl", ["true"])
    assert pod["spec"]["containers"][0]["image"].startswith("registry.example.com:5000/mirror/")
    assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"


# -- GPU judging on real H100 output ------------------------------------------------------
def test_nvidia_smi_list_parser_on_real_h100_output(gpu_fixtures):
    text = next(gpu_fixtures.glob("*/nvidia-smi-L.txt")).read_text()
    assert gpu.parse_nvidia_smi_list(text) == ["NVIDIA H100 80GB HBM3"]


def _gpu_node(alloc: str, labels: dict) -> dict:
    return {"metadata": {"name": "gpu-1", "labels": labels}, "status": {"allocatable": {"nvidia.com/gpu": alloc}}}


def test_gfd_and_time_slicing_judgement():
    full = {label: "x" for label in gpu.GFD_LABELS}
    assert gpu.missing_gfd_labels(_gpu_node("1", full)) == []
    assert gpu.missing_gfd_labels(_gpu_node("1", {})) == list(gpu.GFD_LABELS)
    assert gpu.gpu_nodes([_gpu_node("8", {}), _gpu_node("0", {})]) == {"gpu-1": 8}
    shared = {"nvidia.com/gpu.count": "2", "nvidia.com/gpu.replicas": "4"}
    assert gpu.sharing_problems(_gpu_node("8", shared), 4) == []
    assert gpu.sharing_problems(_gpu_node("2", shared), 4) == [
        "node gpu-1: allocatable nvidia.com/gpu is 2, want 2 GPUs x 4"]
    assert gpu.sharing_problems(_gpu_node("8", shared), 4, "nvidia.com/gpu.shared") == [
        "node gpu-1: allocatable nvidia.com/gpu.shared is 0, want 2 GPUs x 4"]


def test_gpu_resource_follows_the_sharing_settings():
    plain = api.plan(api.load_profile("gpu-onprem"))
    assert gpu.gpu_resource(plain) == "nvidia.com/gpu"
    renamed = api.plan(api.load_profile("gpu-onprem", {
        "gpu": {"sharing": {"strategy": "time-slicing", "replicas": 4}},
        "components": {"gpu-sharing": {"values": {"renameByDefault": True}}}}))
    assert gpu.gpu_resource(renamed) == "nvidia.com/gpu.shared"
    assert gpu.sharing_on(renamed) is True


def test_gpu_checks_skip_without_gpus():
    plan = api.plan(api.load_profile("base"))
    assert plan.profile.gpu.mode == "none"
    assert isinstance(gpu.gpu_mode_on(plan), str)
    assert isinstance(gpu.sharing_on(plan), str)


def test_dcgm_metrics_service_found_in_rendered_objects(training):
    import importlib.util

    spec = importlib.util.spec_from_file_location("dcgm_checks", REPO / "components/dcgm-exporter/checks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ns, name = mod.metrics_service(training.components["dcgm-exporter"].objects)
    assert name and ns


def test_chart_only_component_gets_readiness_from_health(render_profile, repo_root):
    """The GPU Operator always renders its Namespace, yet without `helm` none of the chart's
    objects: `health:` (components/gpu-operator/component.yaml) stands in for them, so the operator
    Deployment is checked. Run against a stand-in API server (no cluster here)."""
    import yaml
    from lifecycle_helpers import InMemoryCluster

    from kubeforge.verify.checks import collect
    from kubeforge.verify.context import CheckContext

    rendered = render_profile("gpu-operator")
    if "gpu-operator" not in rendered.unrendered:
        pytest.skip("helm is on PATH here: the chart renders and its own objects are checked")
    assert [o["kind"] for o in rendered.components["gpu-operator"].objects if o["kind"] == "Namespace"]
    health = yaml.safe_load((repo_root / "components" / "gpu-operator" / "component.yaml").read_text())["health"]
    (ns, name), = [d.split("/") for d in health["deployments"]]
    check = next(c for c in collect(rendered.plan, rendered) if c.name == "gpu-operator/workloads-available")

    def ctx(cluster):
        return CheckContext(cluster=cluster, plan=rendered.plan, component="gpu-operator", objects=[], timeout=0.5)

    with pytest.raises(AssertionError, match=f"Deployment {ns}/{name} is missing"):
        check.fn(ctx(InMemoryCluster([])))
    up = InMemoryCluster([])
    up.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
              "spec": {"replicas": 1}})
    assert check.fn(ctx(up)) == "1 workloads available"


def test_health_names_what_the_render_has_where_the_chart_renders(render_profile):
    """`health:` is only the stand-in for charts not rendered here; for every rendered component it
    must name objects the render really has, or the stand-in would check something else."""
    from kubeforge.verify.readiness import health_objects

    for profile in ("full", "serving"):
        rendered = render_profile(profile)
        for name, pc in rendered.plan.components.items():
            have = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
                    for o in rendered.components[name].objects}
            for stub in health_objects(pc.component.health or {}):
                key = (stub["kind"], stub["metadata"].get("namespace"), stub["metadata"]["name"])
                assert key in have, f"components/{name}/component.yaml health names {key}, which it does not render"
