"""The Kubeflow apps (poddefaults, notebooks, volumes, tensorboards) as rendered from the mirror for
the kubeflow and kubeflow-gpu profiles. Expected objects come from an independent `kubectl
kustomize` of the same upstream trees, expected spawner content from upstream's own
spawner_ui_config.yaml, never from the generators."""
from __future__ import annotations

import collections

import pytest
import yaml

from kubeforge import api
from kubeforge.images import floating_tag, parse_image
from kubeforge.render import selected_sources
from kubeforge.transforms import list_images
from kubeforge.validate import validate

APPS = ("poddefaults", "notebooks", "volumes", "tensorboards")
KF = "github/kubeflow/manifests/26.03"
SPAWNER = f"{KF}/applications/jupyter/jupyter-web-app/upstream/base/configs/spawner_ui_config.yaml"
REG = "registry.example.com:5000/mirror"


def _render(mirror_dir, profile, over=None):
    return api.render(api.plan(api.load_profile(profile, over)), mirror=str(mirror_dir), skip_helm=True)


@pytest.fixture(scope="module")
def cpu(mirror_dir):
    return _render(mirror_dir, "kubeflow")


@pytest.fixture(scope="module")
def gpu(mirror_dir):
    return _render(mirror_dir, "kubeflow-gpu")


def _objs(rendered, component, kind=None):
    return [o for o in rendered.components[component].objects if kind is None or o["kind"] == kind]


def _spawner(rendered) -> tuple[dict, dict]:
    (cm,) = [o for o in _objs(rendered, "notebooks", "ConfigMap") if "spawner_ui_config.yaml" in o["data"]]
    return cm, yaml.safe_load(cm["data"]["spawner_ui_config.yaml"])["spawnerFormDefaults"]


def _upstream_spawner(mirror_dir) -> dict:
    return yaml.safe_load((mirror_dir / SPAWNER).read_text())["spawnerFormDefaults"]


@pytest.mark.parametrize("name", APPS)
def test_objects_are_upstreams_multi_user_overlays(cpu, mirror_dir, upstream_builds, name):
    """Every upstream object and nothing else: the overlays kubeflow/manifests' example composes."""
    pc = cpu.plan.components[name]
    up = [o for s in selected_sources(pc) for o in upstream_builds(s.repo.mirror_path(f"{s.root}/{s.path}"))]
    # Upstream's namespace (kubeflow) is the kubeflow-namespace component's, not theirs.
    expected = collections.Counter((o["kind"], o["metadata"]["name"]) for o in up if o["kind"] != "Namespace")
    ours = collections.Counter((o["kind"], o["metadata"]["name"]) for o in _objs(cpu, name))
    if name == "notebooks":   # the spawner ConfigMap is renamed by its new content (below)
        expected = collections.Counter({k: v for k, v in expected.items() if not k[1].startswith("jupyter-web-app-config-")})
        ours = collections.Counter({k: v for k, v in ours.items() if not k[1].startswith("jupyter-web-app-config-")})
    assert ours == expected
    assert {o["metadata"].get("namespace") for o in _objs(cpu, name)} <= {"kubeflow", None}


@pytest.mark.parametrize("profile", ["kubeflow", "kubeflow-gpu"])
def test_validates_with_zero_errors_and_one_owner_per_object(cpu, gpu, profile):
    rendered = cpu if profile == "kubeflow" else gpu
    report = validate(rendered.objects(), rendered.plan.profile.kubernetesVersion,
                      cluster=rendered.plan.profile.cluster)
    assert report.errors == [], report.summary()
    assert report.objects == sum(len(rc.objects) for rc in rendered.components.values())
    owners: dict[tuple, list[str]] = collections.defaultdict(list)
    for name, rc in rendered.components.items():
        for o in rc.objects:
            md = o["metadata"]
            owners[(o["apiVersion"].rpartition("/")[0], o["kind"], md.get("namespace"), md["name"])].append(name)
    twice = {k: v for k, v in owners.items() if len(v) > 1}
    assert twice == {}
    assert all(any(v == [a] for v in owners.values()) for a in APPS)


def test_cpu_spawner_offers_no_gpu_and_no_cuda_image(cpu, mirror_dir):
    upstream = _upstream_spawner(mirror_dir)
    assert {v["limitsKey"] for v in upstream["gpus"]["value"]["vendors"]} >= {"nvidia.com/gpu"}
    cuda = [i for i in upstream["image"]["options"] if "-cuda-" in i]
    assert len(cuda) == 2                                   # upstream offers two CUDA images
    _cm, spawner = _spawner(cpu)
    assert spawner["gpus"]["value"]["vendors"] == []
    assert spawner["gpus"]["value"]["vendor"] == ""
    assert spawner["gpus"]["readOnly"] is True
    offered = spawner["image"]["options"]
    assert not set(cuda) & set(offered)
    assert not [i for i in offered if "gaudi" in i]
    assert spawner["image"]["value"] == upstream["image"]["value"] in offered
    # everything else as upstream wrote it
    assert {k: v for k, v in spawner.items() if k not in ("gpus", "image")} == \
        {k: v for k, v in upstream.items() if k not in ("gpus", "image")}


def test_gpu_spawner_offers_nvidia_and_cuda_images(gpu, mirror_dir):
    upstream = _upstream_spawner(mirror_dir)
    cm, spawner = _spawner(gpu)
    assert spawner["gpus"]["value"]["vendors"] == [{"limitsKey": "nvidia.com/gpu", "uiName": "NVIDIA"}]
    assert spawner["gpus"]["value"]["vendor"] == "nvidia.com/gpu"
    assert spawner["gpus"]["value"]["num"] == "none"        # a GPU only when the user asks
    assert spawner["gpus"]["readOnly"] is False
    assert spawner["image"]["options"] == [i for i in upstream["image"]["options"] if "gaudi" not in i]
    assert [i for i in spawner["image"]["options"] if "-cuda-" in i]
    # edited in place: upstream's comments for admins are still there
    assert "# the list of available vendors in the dropdown" in cm["data"]["spawner_ui_config.yaml"]


def test_the_value_overrides_the_gpu_mode(mirror_dir):
    on_cpu = _render(mirror_dir, "kubeflow", {"components": {"notebooks": {"values": {"gpu": "enabled"}}}})
    assert _spawner(on_cpu)[1]["gpus"]["value"]["vendors"] == [{"limitsKey": "nvidia.com/gpu", "uiName": "NVIDIA"}]
    off_gpu = _render(mirror_dir, "kubeflow-gpu", {"components": {"notebooks": {"values": {"gpu": "disabled"}}}})
    assert _spawner(off_gpu)[1]["gpus"]["value"]["vendors"] == []


def test_web_app_mounts_the_renamed_spawner_config(cpu, gpu):
    names = set()
    for rendered in (cpu, gpu):
        cm, _ = _spawner(rendered)
        names.add(cm["metadata"]["name"])
        (dep,) = [d for d in _objs(rendered, "notebooks", "Deployment")
                  if d["metadata"]["name"] == "jupyter-web-app-deployment"]
        mounted = {v["configMap"]["name"] for v in dep["spec"]["template"]["spec"]["volumes"] if "configMap" in v}
        assert cm["metadata"]["name"] in mounted
    assert len(names) == 2, "a different offer is a different ConfigMap, so the web app rolls"


def test_images_pinned_and_the_spawners_listed(cpu, gpu):
    cpu_images = list_images([o for a in APPS for o in _objs(cpu, a)])
    gpu_images = list_images([o for a in APPS for o in _objs(gpu, a)])
    for i in gpu_images:
        assert floating_tag(i) is None, i
    nb = "ghcr.io/kubeflow/kubeflow/notebook-servers"
    assert f"{nb}/jupyter-scipy:v1.10.0" in cpu_images and f"{nb}/rstudio-tidyverse:v1.10.0" in cpu_images
    assert f"{nb}/jupyter-pytorch-cuda-full:v1.10.0" in gpu_images
    assert f"{nb}/jupyter-pytorch-cuda-full:v1.10.0" not in cpu_images
    assert "docker.io/tensorflow/tensorflow:2.5.1" in cpu_images          # TENSORBOARD_IMAGE
    assert "docker.io/filebrowser/filebrowser:v2.25.0" in cpu_images      # VOLUME_VIEWER_IMAGE


def test_registry_override_moves_the_spawners_images(mirror_dir):
    rendered = _render(mirror_dir, "kubeflow-gpu", {"registry": REG})
    _cm, spawner = _spawner(rendered)
    for group in ("image", "imageGroupOne", "imageGroupTwo"):
        for ref in [spawner[group]["value"], *spawner[group]["options"]]:
            assert ref.startswith(f"{REG}/kubeflow/kubeflow/notebook-servers/"), ref
            assert parse_image(ref).tag == "v1.10.0"
    assert all(i.startswith(REG + "/") for a in APPS for i in list_images(_objs(rendered, a)))


def test_webhooks_leave_the_ca_bundle_to_cert_managers_injector(cpu):
    """The webhook configurations name a Certificate of their own component for cert-manager's
    cainjector, and carry no caBundle of their own (an empty one would be a field kubeforge owns)."""
    seen = 0
    for name in ("poddefaults", "volumes"):
        certs = {f"{c['metadata']['namespace']}/{c['metadata']['name']}" for c in _objs(cpu, name, "Certificate")}
        for o in _objs(cpu, name):
            if o["kind"] not in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
                continue
            seen += 1
            assert o["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] in certs
            assert all("caBundle" not in w["clientConfig"] for w in o["webhooks"])
    assert seen == 3   # PodDefaults' mutating one, pvcviewer's mutating and validating ones
