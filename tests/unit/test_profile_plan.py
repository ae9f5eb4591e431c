"""Profiles and plan: layering, schema, DAG and constraints, on the shipped catalog."""
from __future__ import annotations

import json
import shutil

import pytest

from kubeforge.catalog import load_catalog
from kubeforge.errors import KubeforgeError
from kubeforge.plan import make_plan, plan_dict, plan_dot, plan_mermaid
from kubeforge.profile import deep_merge, list_profiles, load_profile, profile_schema

SHIPPED = ["base", "dev", "full", "gpu-onprem", "gpu-operator", "serving", "training"]


def test_shipped_profiles_are_all_there():
    assert set(SHIPPED) <= set(list_profiles())


def test_deep_merge_later_wins_and_lists_replace():
    a = {"x": {"y": 1, "z": [1, 2]}, "k": 1}
    b = {"x": {"z": [3]}, "k": 2}
    assert deep_merge(a, b) == {"x": {"y": 1, "z": [3]}, "k": 2}


def test_extends_chain_is_resolved():
    p = load_profile("gpu-onprem")
    assert [f.split("/")[-1] for f in p.files] == ["base.yaml", "dev.yaml", "gpu-onprem.yaml"]
    assert p.gpu.mode == "host"
    assert p.components["kserve"].values == {"deploymentMode": "Knative"}
    assert p.storage.default == "local-path"   # from base


def test_serving_has_no_knative_and_standard_mode():
    plan = make_plan(load_profile("serving"))
    assert "knative-serving" not in plan.components
    assert plan.components["kserve"].values["deploymentMode"] == "Standard"


def test_dev_waves_respect_dependencies():
    plan = make_plan(load_profile("dev"))
    pos = {n: c.wave for n, c in plan.components.items()}
    for name, pc in plan.components.items():
        for dep in pc.depends_on:
            assert pos[dep] < pos[name], (dep, name)
    assert pos["cert-manager"] < pos["kserve"]
    assert pos["istio"] < pos["knative-serving"] < pos["kserve"]
    assert plan.warnings == []


def test_every_profile_plans_and_formats():
    for name in SHIPPED:
        try:
            plan = make_plan(load_profile(name))
        except KubeforgeError as exc:  # only while a component folder is missing
            pytest.fail(exc.render())
        d = plan_dict(plan)
        json.dumps(d)
        assert d["components"] and plan_mermaid(plan).startswith("graph LR")
        assert plan_dot(plan).startswith("digraph")


def test_full_enables_every_component_that_can_coexist(repo_root):
    """README: `full` is every component that can coexist. The expectation comes from the catalog's
    `conflicts:` data: a component stays out only when it conflicts with one that is in (either
    way round), and each one that is in is named in profiles/full.yaml itself, not inherited."""
    import yaml

    cat = load_catalog()
    plan = make_plan(load_profile("full"))
    enabled = set(plan.components)

    def clash(a: str, b: str) -> bool:
        return b in cat[a].conflicts or a in cat[b].conflicts

    for name in set(cat) - enabled:
        assert any(clash(name, other) for other in enabled), f"{name} can coexist with full but is not in it"
    assert not [(a, b) for a in enabled for b in enabled if clash(a, b)]
    own = yaml.safe_load((repo_root / "profiles" / "full.yaml").read_text())["components"]
    assert {n for n, c in own.items() if c.get("enabled")} == enabled


def test_profile_schema_is_json_schema():
    s = profile_schema()
    assert s["type"] == "object"
    assert {"kubernetesVersion", "gpu", "components", "registry", "mirror"} <= set(s["properties"])
    assert "files" not in s["properties"]


# ---- bad inputs: one clear message naming file, field and fix ------------------------------

def _write(tmp_path, name, text):
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


def test_malformed_yaml(tmp_path):
    p = _write(tmp_path, "bad", "components:\n  kserve: {enabled: true\n")
    with pytest.raises(KubeforgeError) as e:
        load_profile(str(p))
    assert "malformed YAML at line" in e.value.message and e.value.file.endswith("bad.yaml")


def test_unknown_profile():
    with pytest.raises(KubeforgeError) as e:
        load_profile("nope")
    assert "unknown profile 'nope'" in e.value.message and "dev" in e.value.fix


def test_unknown_top_level_field_names_the_file(tmp_path):
    p = _write(tmp_path, "typo", "extends: dev\nkubernetsVersion: '1.34'\n")
    with pytest.raises(KubeforgeError) as e:
        load_profile(str(p))
    assert e.value.field == "kubernetsVersion" and e.value.file.endswith("typo.yaml")
    assert "unknown field" in e.value.message


def test_bad_gpu_mode(tmp_path):
    p = _write(tmp_path, "g", "extends: dev\ngpu: {mode: sometimes}\n")
    with pytest.raises(KubeforgeError) as e:
        load_profile(str(p))
    assert e.value.field == "gpu.mode" and "sometimes" in e.value.message


def _layers(tmp_path, middle: str, top: str = "description: the top layer\n"):
    """base (shipped) <- a.yaml <- b.yaml (sets `middle`) <- c.yaml (sets `top`)."""
    _write(tmp_path, "a", "extends: base\ngpu: {mode: host}\n")
    _write(tmp_path, "b", "extends: a\n" + middle)
    return _write(tmp_path, "c", "extends: b\n" + top)


@pytest.mark.parametrize("middle, field", [
    ("gpu: {sharing: null}\n", "gpu.sharing"),           # null is what fails: that layer set it
    ("gpu: {mode: sometimes}\n", "gpu.mode"),
    ("storage: {defualt: nfs}\n", "storage.defualt"),     # unknown field
    ("kubernetesVersion: null\n", "kubernetesVersion"),
])
def test_profile_errors_name_the_layer_that_set_the_failing_field(tmp_path, middle, field):
    top = _layers(tmp_path, middle)
    with pytest.raises(KubeforgeError) as e:
        load_profile(str(top))
    assert e.value.field == field
    assert e.value.file.endswith("b.yaml"), e.value.render()
    assert "b.yaml" in e.value.render()


def test_profile_error_names_the_later_layer_when_it_sets_the_field_again(tmp_path):
    top = _layers(tmp_path, "gpu: {mode: sometimes}\n", "gpu: {mode: never}\n")
    with pytest.raises(KubeforgeError) as e:
        load_profile(str(top))
    assert e.value.file.endswith("c.yaml") and "never" in e.value.message


def test_unknown_component(tmp_path):
    p = _write(tmp_path, "c", "extends: dev\ncomponents: {kubeflow-pipelines: {enabled: true}}\n")
    with pytest.raises(KubeforgeError) as e:
        make_plan(load_profile(str(p)))
    assert e.value.field == "components.kubeflow-pipelines" and "kserve" in e.value.fix


def test_unknown_values_field(tmp_path):
    p = _write(tmp_path, "v", "extends: dev\ncomponents: {kserve: {values: {deploymentMod: Knative}}}\n")
    with pytest.raises(KubeforgeError) as e:
        make_plan(load_profile(str(p)))
    assert e.value.field == "components.kserve.values"
    assert "deploymentMod" in e.value.message and "deploymentMode" in e.value.fix


def test_bad_values_enum(tmp_path):
    p = _write(tmp_path, "v", "extends: dev\ncomponents: {kserve: {values: {deploymentMode: Raw}}}\n")
    with pytest.raises(KubeforgeError) as e:
        make_plan(load_profile(str(p)))
    assert e.value.field == "components.kserve.values.deploymentMode"


def test_missing_requirement(tmp_path):
    p = _write(tmp_path, "r", "extends: dev\ncomponents: {istio: {enabled: false}}\n")
    with pytest.raises(KubeforgeError) as e:
        make_plan(load_profile(str(p)))
    assert "requires istio" in e.value.message and e.value.field == "components.istio.enabled"


def test_kubernetes_version_outside_range(tmp_path):
    p = _write(tmp_path, "k", "extends: dev\nkubernetesVersion: '1.27'\n")
    with pytest.raises(KubeforgeError) as e:
        make_plan(load_profile(str(p)))
    assert e.value.field == "kubernetesVersion" and "not 1.27" in e.value.message


def test_extends_loop(tmp_path):
    _write(tmp_path, "a", "extends: b\n")
    p = _write(tmp_path, "b", "extends: a\n")
    with pytest.raises(KubeforgeError) as e:
        load_profile(str(p))
    assert "`extends` loop" in e.value.message and e.value.field == "extends"


def test_conflicting_components(tmp_path):
    p = _write(tmp_path, "x", "extends: gpu-onprem\ncomponents: {gpu-operator: {enabled: true}}\n")
    with pytest.raises(KubeforgeError) as e:
        make_plan(load_profile(str(p)))
    assert "conflicts with" in e.value.message and "gpu-operator" in e.value.message


def test_dependency_cycle_in_an_edited_catalog_copy(tmp_path, repo_root):
    cat_dir = tmp_path / "components"
    shutil.copytree(repo_root / "components", cat_dir)
    cm = cat_dir / "cert-manager" / "component.yaml"
    cm.write_text(cm.read_text().replace("provides: [certificates]", "provides: [certificates]\nrequires: [kserve]"))
    catalog = load_catalog(cat_dir)
    with pytest.raises(KubeforgeError) as e:
        make_plan(load_profile("dev"), catalog)
    assert "dependency cycle" in e.value.message
    assert "cert-manager" in e.value.message and "kserve" in e.value.message


def test_untested_tuple_warns_with_reason(tmp_path, repo_root):
    cat_dir = tmp_path / "components"
    shutil.copytree(repo_root / "components", cat_dir)
    ks = cat_dir / "knative-serving" / "component.yaml"
    ks.write_text(ks.read_text().replace("version: 1.21.1", "version: 1.22.0"))
    plan = make_plan(load_profile("dev"), load_catalog(cat_dir))
    assert any("knative-serving 1.22.0" in w or "not 1.22.0" in w for w in plan.warnings), plan.warnings
    assert any("26.03" in w for w in plan.warnings)


@pytest.mark.parametrize("base, advertiser", [("gpu-onprem", "nvidia-device-plugin"),
                                              ("gpu-operator", "gpu-operator")])
def test_provider_gpu_mode_admits_no_second_gpu_advertiser(tmp_path, base, advertiser):
    """gpu.mode provider: the cloud's device plugin advertises the GPUs (GKE-installed drivers);
    a platform device plugin or GPU Operator on the same nodes would be a second advertiser."""
    p = _write(tmp_path, "prov", f"extends: {base}\ngpu: {{mode: provider}}\n")
    with pytest.raises(KubeforgeError) as e:
        make_plan(load_profile(str(p)))
    assert e.value.field == f"components.{advertiser}.enabled"
    assert "one GPU advertiser per node" in e.value.fix


def test_provider_gpu_mode_plans_without_a_platform_device_plugin(tmp_path):
    p = _write(tmp_path, "prov", "extends: dev\ngpu: {mode: provider}\n")
    plan = make_plan(load_profile(str(p)))
    assert plan.profile.gpu.mode == "provider"
    assert not {"nvidia-device-plugin", "gpu-operator"} & set(plan.components)
