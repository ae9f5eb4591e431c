"""Remote kustomize references rewritten into the build tree, so an offline build never needs the network.

There is no network here, so a kustomize build that succeeds on a tree with remote bases proves
that the rewrite pointed kustomize at the materialized copy.
"""
from __future__ import annotations

import pytest
from mirror_trees import ARGO, PIPELINE_ARGO, kustomize_source

from kubeforge import kustomize
from kubeforge.errors import KubeforgeError
from kubeforge.sources import _rewrite_text, is_remote, parse_github, sync

PIPELINE_KUSTOMIZATION = ("github/kubeflow/manifests/26.03/applications/pipeline/upstream/third-party/argo/"
                          "installs/cluster/kustomization.yaml")


def test_pipeline_argo_builds_offline_against_the_argo_source(cache, mirror_dir):
    pipeline = kustomize_source(mirror_dir, "pipeline-argo", *PIPELINE_ARGO)
    argo = kustomize_source(mirror_dir, "argo-manifests", ARGO, "manifests", "cluster-install")
    result = sync([pipeline, argo], mirror_dir)
    text = (result["pipeline-argo"] / "kustomization.yaml").read_text()
    assert "github.com" not in text.split("patches:")[0]
    assert "argoproj/argo-workflows/v3.7.3/manifests/base/crds/minimal\n" in text
    objs = kustomize.build(result["pipeline-argo"])
    crds = sorted(o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition")
    assert "workflows.argoproj.io" in crds and "workflowtemplates.argoproj.io" in crds
    assert len(crds) == len(list((mirror_dir / ARGO.mirror_path("manifests/base/crds/minimal")).glob("argoproj.io_*")))
    # The rewritten base of the Argo controller came in too (third-party/argo/base -> workflow-controller).
    assert any(o["kind"] == "Deployment" and o["metadata"]["name"] == "workflow-controller" for o in objs)
    # The blob keeps the upstream bytes; only the tree copy is rewritten.
    assert (mirror_dir / PIPELINE_KUSTOMIZATION).read_text() != text


def test_remote_reference_without_a_covering_source_is_an_error(cache, mirror_dir):
    pipeline = kustomize_source(mirror_dir, "pipeline-argo", *PIPELINE_ARGO)
    with pytest.raises(KubeforgeError) as e:
        sync([pipeline], mirror_dir)
    err = e.value
    assert err.file == PIPELINE_KUSTOMIZATION
    assert "https://github.com/argoproj/argo-workflows/manifests/base/crds/minimal?ref=v3.7.3" in err.message
    assert "argoproj/argo-workflows" in err.fix and "v3.7.3" in err.fix and "manifests/base/crds/minimal" in err.fix
    assert not (cache / "tree").exists()


def test_a_source_that_covers_only_part_of_the_remote_tree_is_not_enough(cache, mirror_dir):
    pipeline = kustomize_source(mirror_dir, "pipeline-argo", *PIPELINE_ARGO)
    crds_only = kustomize_source(mirror_dir, "argo-crds", ARGO, "manifests/base/crds", "minimal")
    with pytest.raises(KubeforgeError) as e:
        sync([pipeline, crds_only], mirror_dir)
    assert "cluster-install-no-crds/workflow-controller-rbac" in e.value.message


def test_the_wrong_ref_does_not_resolve(cache, mirror_dir, tmp_path):
    """Argo at v3.6.0 (the v3.7.3 files, relabelled in a private mirror) does not satisfy ?ref=v3.7.3."""
    import os
    import shutil

    other = ARGO.__class__(**{**ARGO.__dict__, "ref": "v3.6.0"})
    mirror = tmp_path / "mirror"
    for repo_from, repo_to, root in ((PIPELINE_ARGO[0], PIPELINE_ARGO[0], PIPELINE_ARGO[1]),
                                     (ARGO, other, "manifests")):
        shutil.copytree(mirror_dir / repo_from.mirror_path(root), mirror / repo_to.mirror_path(root),
                        copy_function=os.link)
    pipeline = kustomize_source(mirror, "pipeline-argo", *PIPELINE_ARGO)
    argo = kustomize_source(mirror, "argo", other, "manifests", "cluster-install")
    with pytest.raises(KubeforgeError) as e:
        sync([pipeline, argo], mirror)
    assert "?ref=v3.7.3" in e.value.message and "at v3.7.3, which no source of this sync covers" in e.value.message


def test_unreachable_remote_refs_do_not_matter(cache, mirror_dir):
    """training-operator's v2 overlays point at a JobSet release URL; the v1 standalone build never uses them."""
    from mirror_trees import TREES

    src = kustomize_source(mirror_dir, "training-operator", *TREES["training-operator"])
    assert any("jobset" in (mirror_dir / src.repo.mirror_path(f"{src.root}/{p}")).read_text()
               for p, _ in src.files if p.endswith("kustomization.yaml"))
    result = sync([src], mirror_dir)
    assert (result["training-operator"] / "kustomization.yaml").is_file()
    v2 = src.__class__(**{**src.__dict__, "id": "to-v2", "path": "v2/overlays/standalone"})
    with pytest.raises(KubeforgeError) as e:
        sync([v2], mirror_dir)
    assert "jobset/releases/download/v0.6.0/manifests.yaml" in e.value.message
    assert "release asset" in e.value.message and "overlay" in e.value.fix


@pytest.mark.parametrize("url, expected", [
    ("https://github.com/argoproj/argo-workflows/manifests/base/crds/minimal?ref=v3.7.3",
     (("argoproj", "argo-workflows", "v3.7.3"), "manifests/base/crds/minimal")),
    ("github.com/Owner/Repo/some/path?ref=X", (("owner", "repo", "X"), "some/path")),
    ("https://github.com/owner/repo.git//deep/dir/?ref=v1&timeout=90s", (("owner", "repo", "v1"), "deep/dir")),
    ("git::https://github.com/owner/repo//dir?ref=v1", (("owner", "repo", "v1"), "dir")),
    ("ssh://git@github.com/owner/repo/dir?ref=v1", (("owner", "repo", "v1"), "dir")),
    ("git@github.com:owner/repo.git/dir?version=v2", (("owner", "repo", "v2"), "dir")),
    ("https://github.com/owner/repo?ref=v1", (("owner", "repo", "v1"), ".")),
    ("https://github.com/owner/repo/dir", None),                       # unpinned
    ("https://github.com/owner/repo/../../etc?ref=v1", None),
    ("https://gitlab.com/owner/repo/dir?ref=v1", None),
])
def test_parse_github(url, expected):
    assert is_remote(url)
    assert parse_github(url) == expected


@pytest.mark.parametrize("entry", ["../../base", "crd.yaml", "github.com-sa.yaml", "base/github.com"])
def test_local_entries_are_not_remote(entry):
    assert not is_remote(entry)


def test_rewrite_keeps_comments_and_other_lines():
    raw = (b"# head\nresources:\n- https://github.com/o/r/a?ref=v1  # why\n"
           b"  - 'github.com/o/r/b?ref=v1'\n- local.yaml\n# - https://github.com/o/r/a?ref=v1\n")
    out = _rewrite_text(raw, {"https://github.com/o/r/a?ref=v1": "../x/a", "github.com/o/r/b?ref=v1": "../x/b"}, {})
    assert out == (b"# head\nresources:\n- ../x/a  # why\n  - '../x/b'\n- local.yaml\n"
                   b"# - https://github.com/o/r/a?ref=v1\n")


def test_rewrite_of_flow_style_lists_falls_back_to_yaml():
    import yaml

    raw = b"resources: ['https://github.com/o/r/a?ref=v1', local.yaml]\n"
    doc = yaml.safe_load(raw)
    out = yaml.safe_load(_rewrite_text(raw, {"https://github.com/o/r/a?ref=v1": "../x/a"}, doc))
    assert out == {"resources": ["../x/a", "local.yaml"]}


def test_local_reference_outside_the_fetched_roots_is_named(cache, mirror_dir):
    from mirror_trees import TREES

    istio = kustomize_source(mirror_dir, "istio-install", *TREES["istio-install"])
    with pytest.raises(KubeforgeError) as e:
        sync([istio], mirror_dir)
    assert e.value.file == ("github/kubeflow/manifests/26.03/common/istio/istio-install/overlays/oauth2-proxy/"
                            "kustomization.yaml")
    assert "../../../../oauth2-proxy/components/istio-external-auth-patches" in e.value.message
    assert "github/kubeflow/manifests/26.03/common/oauth2-proxy/components/istio-external-auth-patches" in e.value.message
    assert "'istio-install'" in e.value.fix
    # With a second source covering common/oauth2-proxy the overlay builds.
    oauth = kustomize_source(mirror_dir, "oauth2-proxy", *TREES["oauth2-proxy"])
    result = sync([istio, oauth], mirror_dir)
    assert any(o["kind"] == "Deployment" and o["metadata"]["name"] == "istiod"
               for o in kustomize.build(result["istio-install"]))


def test_a_file_the_mirror_lacks_is_named_at_sync_time(cache, mirror_dir, tmp_path):
    """common/oauth2-proxy/base generates a ConfigMap from oauth2_proxy.cfg. The shared mirror holds it
    now, so the test makes its own gap: a copy of that tree with the file deleted, as a mirror."""
    import shutil

    from mirror_trees import KUBEFLOW

    gapped = tmp_path / "gapped-mirror"
    tree = KUBEFLOW.mirror_path("common/oauth2-proxy")
    shutil.copytree(mirror_dir / tree, gapped / tree)
    (gapped / tree / "base" / "oauth2_proxy.cfg").unlink()
    src = kustomize_source(gapped, "oauth2-proxy-base", KUBEFLOW, "common/oauth2-proxy", "base")
    with pytest.raises(KubeforgeError) as e:
        sync([src], gapped)
    assert e.value.file == "github/kubeflow/manifests/26.03/common/oauth2-proxy/base/kustomization.yaml"
    assert "oauth2_proxy.cfg" in e.value.message and "mirror lacks" in e.value.fix
    assert not (cache / "tree").exists()
    # The same tree with the file present syncs: the gap, not the tree, made the error.
    whole = kustomize_source(mirror_dir, "oauth2-proxy-base", KUBEFLOW, "common/oauth2-proxy", "base")
    assert (sync([whole], mirror_dir)["oauth2-proxy-base"] / "oauth2_proxy.cfg").is_file()
