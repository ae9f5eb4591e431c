"""The previous release (kubeflow/manifests v1.11.0) as data beside today's: pinned, locked,
rendered from the real v1.11.0 trees in the mirror. Expected versions are read from the upstream
files themselves (image tags and version labels), not from component.yaml."""
from __future__ import annotations

import re
import shutil

import pytest
import yaml

from kubeforge import api
from kubeforge.catalog import load_catalog, release_names
from kubeforge.errors import KubeforgeError
from kubeforge.lockfile import relock
from kubeforge.model import LABEL_VERSION

OLD = "v1.11.0"
MANIFESTS = "github/kubeflow/manifests"


def _tag(mirror_dir, ref, rel, image):
    """The tag of `image` in an upstream file of kubeflow/manifests at ref."""
    text = (mirror_dir / MANIFESTS / ref / rel).read_text()
    return re.search(rf"{re.escape(image)}:v?([0-9][^\"'\s@]*)", text).group(1)


@pytest.fixture(scope="module")
def upstream_versions(mirror_dir):
    """Versions of the v1.11.0 tuple as the upstream trees state them."""
    knative = (mirror_dir / MANIFESTS / OLD / "common/knative/knative-serving/base/upstream/serving-core.yaml")
    return {
        "istio": _tag(mirror_dir, OLD, "common/istio/istio-install/base/install.yaml", "gcr.io/istio-release/pilot"),
        "knative-serving": re.search(r'app.kubernetes.io/version: "([0-9.]+)"', knative.read_text()).group(1),
        "cert-manager": _tag(mirror_dir, OLD, "common/cert-manager/base/upstream/cert-manager.yaml",
                             "quay.io/jetstack/cert-manager-controller"),
        "kserve": _tag(mirror_dir, OLD, "applications/kserve/kserve/kserve.yaml", "kserve/kserve-controller"),
    }


def test_the_release_names_come_from_repos_yaml():
    assert release_names() == ("26.03", [OLD])


def test_the_old_catalog_has_the_versions_upstream_v1_11_0_ships(upstream_versions):
    old = load_catalog(release=OLD)
    assert {n: old[n].version for n in upstream_versions} == upstream_versions
    assert upstream_versions == {"istio": "1.28.0", "knative-serving": "1.16.2", "cert-manager": "1.16.1",
                                 "kserve": "0.15.2"}, "the issue's tuple"
    # The tuple that release tested together.
    assert old["kserve"].compat == {"istio": ["1.28"], "knative-serving": ["1.16"]}
    # Components kubeflow/manifests does not ship are unchanged at the release.
    today = load_catalog()
    for name in ("storage", "argo-workflows", "nvidia-device-plugin", "dcgm-exporter"):
        assert old[name].version == today[name].version and old[name].sources == today[name].sources


def test_old_sources_point_at_the_release_ref_with_its_own_pins():
    old, today = load_catalog(release=OLD), load_catalog()
    src = old["knative-serving"].sources[0]
    assert (src.repo.ref, src.repo.commit) == (OLD, "854bd3a21044f767204def71b2dcda83e376891f")
    assert src.sha256 != today["knative-serving"].sources[0].sha256
    assert {p for p, _ in src.files} >= {"base/upstream/serving-core.yaml", "overlays/gateways/kustomization.yaml"}
    # Katib's tree did not change between the releases: it shares today's file list.
    assert old["katib"].sources[0].files == today["katib"].sources[0].files


def test_render_of_the_old_release_is_the_v1_11_0_trees(mirror_dir, upstream_versions):
    rendered = api.render(api.plan(api.load_profile("dev"), release=OLD), mirror=str(mirror_dir))
    assert rendered.plan.release == OLD
    for name, version in upstream_versions.items():
        objs = rendered.components[name].objects
        assert {o["metadata"]["labels"][LABEL_VERSION] for o in objs} == {version}
    istiod = next(o for o in rendered.components["istio"].objects
                  if o["kind"] == "Deployment" and o["metadata"]["name"] == "istiod")
    assert istiod["spec"]["template"]["spec"]["containers"][0]["image"] == "gcr.io/istio-release/pilot:1.28.0"
    # KServe 0.15 has no LLMInferenceService CRD; 0.16 (today) has.
    crds = {o["metadata"]["name"] for o in rendered.components["kserve"].objects
            if o["kind"] == "CustomResourceDefinition"}
    assert "inferenceservices.serving.kserve.io" in crds and "llminferenceservices.serving.kserve.io" not in crds


def test_unknown_release_is_a_clear_error():
    with pytest.raises(KubeforgeError) as err:
        load_catalog(release="v0.1")
    assert err.value.field == "--release" and "v1.11.0" in err.value.fix


def _catalog_copy(repo_root, tmp_path):
    dest = tmp_path / "components"
    shutil.copytree(repo_root / "components", dest)
    return dest


def test_lockfile_maintains_both_releases(repo_root, mirror_dir, tmp_path):
    cat = _catalog_copy(repo_root, tmp_path)
    assert relock(cat, mirror_dir) == [], "the checked-in pins of both releases match the mirror"
    comp = cat / "knative-serving" / "component.yaml"
    pin = yaml.safe_load(comp.read_text())["previous"][OLD]["sources"]["knative-serving"]
    comp.write_text(comp.read_text().replace(pin, "0" * 64))
    lock = cat / "knative-serving" / "sources.lock"
    locked = yaml.safe_load(lock.read_text())
    lock.write_text(yaml.safe_dump({"knative-serving": locked["knative-serving"]}))   # drop the v1.11.0 list
    messages = relock(cat, mirror_dir, ["knative-serving"])
    assert messages == [f"knative-serving/knative-serving@{OLD}: {'0' * 64} -> {pin}"]
    assert yaml.safe_load(comp.read_text())["previous"][OLD]["sources"]["knative-serving"] == pin
    assert yaml.safe_load(lock.read_text()) == locked
    assert comp.read_text() == (repo_root / "components/knative-serving/component.yaml").read_text()


def test_a_component_of_a_released_repo_must_say_what_it_was(repo_root, tmp_path):
    cat = _catalog_copy(repo_root, tmp_path)
    comp = cat / "katib" / "component.yaml"
    doc = comp.read_text()
    comp.write_text(re.sub(r"^previous:\n(?:  .*\n)+", "", doc, flags=re.M))
    assert load_catalog(cat)["katib"].version == "0.19.0", "today's catalog does not need it"
    with pytest.raises(KubeforgeError) as err:
        load_catalog(cat, release=OLD)
    assert err.value.field == f"previous.{OLD}" and err.value.file.endswith("katib/component.yaml")
    assert "python -m kubeforge.lockfile" in err.value.fix
