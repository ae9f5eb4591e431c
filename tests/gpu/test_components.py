"""The GPU components' generators on the real upstream manifests from the mirror.

The render Context is a stand-in (types.SimpleNamespace with the same fields: profile, plan,
component, values, enabled) built from the real catalog and a real Profile, so these tests run
without the render stage; the lead's render tests run the same generate.py files for real.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from kubeforge.catalog import load_catalog
from kubeforge.errors import KubeforgeError
from kubeforge.gpu import sharing
from kubeforge.profile import Profile
from kubeforge.render import selected_sources

NS = "nvidia-device-plugin"


def gen(name: str):
    path = Path(__file__).resolve().parents[2] / "components" / name / "generate.py"
    spec = importlib.util.spec_from_file_location(f"gen_{name.replace('-', '_')}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def profile(sharing_="none", replicas=4, mig="none", mode="host"):
    p = Profile.model_validate({"name": "test", "gpu": {"mode": mode, "sharing": {"strategy": sharing_, "replicas": replicas},
                                                        "mig": {"strategy": mig}}})
    p.files.append("profiles/test.yaml")
    return p


def ctx(name: str, prof, values: dict | None = None, enabled=("nvidia-device-plugin", "gpu-sharing"),
        others: dict | None = None):
    """Stand-in render.Context: planned components carry catalog defaults merged with values."""
    cat = load_catalog()
    vals = {n: {**cat[n].defaults, **((others or {}).get(n) or {})} for n in enabled}
    vals[name] = {**cat[name].defaults, **(values or {})}
    comps = {n: SimpleNamespace(name=n, version=cat[n].version, values=vals[n], component=cat[n])
             for n in {*enabled, name}}
    plan = SimpleNamespace(components=comps, profile=prof)
    return SimpleNamespace(profile=prof, plan=plan, component=comps[name], values=vals[name],
                           enabled=lambda n: n in comps)


def sharing_configmaps(prof, values: dict | None, mirror: Path) -> list[dict]:
    """The sharing ConfigMap(s) the device plugin renders from gpu-sharing's `values`."""
    c = ctx("nvidia-device-plugin", prof, {"migStrategy": prof.gpu.mig.strategy},
            others={"gpu-sharing": values or {}})
    return [o for o in gen("nvidia-device-plugin").transform(upstream(c, mirror), c) if o["kind"] == "ConfigMap"]


def upstream(c, mirror: Path) -> list[dict]:
    objs = []
    for s in selected_sources(c.component):
        if s.raw:                       # a file generate.py reads (ctx.source_bytes), not manifests
            continue
        path = mirror / s.repo.mirror_path(s.path)
        objs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return objs


def ds(objs, name):
    (d,) = [o for o in objs if o["kind"] == "DaemonSet" and o["metadata"]["name"] == name]
    return d


def ctr(d, name=None):
    cs = d["spec"]["template"]["spec"]["containers"]
    return cs[0] if name is None else next(c for c in cs if c["name"] == name)


def env(c):
    return {e["name"]: e.get("value") for e in c.get("env") or []}


# --- catalog entries ---------------------------------------------------------------------------

def test_catalog_entries(mirror_dir):
    cat = load_catalog()
    dp, dcgm, gs, op = (cat[n] for n in ("nvidia-device-plugin", "dcgm-exporter", "gpu-sharing", "gpu-operator"))
    assert dp.version == "0.20.0" and dcgm.version == "4.5.3-4.8.2"
    assert {s.id: s.path for s in dp.sources} == {
        "device-plugin": "deployments/static/nvidia-device-plugin.yml",
        "gfd": "deployments/static/gpu-feature-discovery-daemonset.yaml",
        "gfd-mig-single": "deployments/static/gpu-feature-discovery-daemonset-with-mig-single.yaml",
        "gfd-mig-mixed": "deployments/static/gpu-feature-discovery-daemonset-with-mig-mixed.yaml"}
    assert {s.repo.ref for s in dp.sources} == {"v0.20.0"} and {s.repo.ref for s in dcgm.sources} == {"4.5.3-4.8.2"}
    assert dp.namespaces == {NS: "privileged"} and dcgm.namespaces == {"dcgm-exporter": "privileged"}
    assert gs.requires == ["nvidia-device-plugin"] and gs.namespaces == {}
    assert set(op.conflicts) == {"nvidia-device-plugin", "dcgm-exporter", "gpu-sharing"}
    (chart,) = [s for s in op.sources if s.kind == "helm"]
    assert [(s.id, s.path, s.raw) for s in op.sources if s.kind != "helm"] == [
        ("dcgm-default-counters", "etc/default-counters.csv", True)]
    assert (chart.kind, chart.chart, chart.version, chart.repo_url) == (
        "helm", "gpu-operator", f"v{op.version}", "https://helm.ngc.nvidia.com/nvidia")
    for c in (dp, dcgm, gs, op):
        assert c.values_schema["additionalProperties"] is False


def test_pins_match_the_mirror(mirror_dir):
    import hashlib
    for name in ("nvidia-device-plugin", "dcgm-exporter"):
        for s in load_catalog()[name].sources:
            data = (mirror_dir / s.repo.mirror_path(s.path)).read_bytes()
            assert hashlib.sha256(data).hexdigest() == s.sha256, (name, s.id)


@pytest.mark.parametrize("mig,variant", [("none", None), ("single", "single"), ("mixed", "mixed")])
def test_gfd_variant_follows_mig_strategy(mirror_dir, mig, variant):
    c = ctx("nvidia-device-plugin", profile(mig=mig), {"migStrategy": mig}, enabled=("nvidia-device-plugin",))
    ids = [s.id for s in selected_sources(c.component)]
    assert ids == ["device-plugin", "gfd" if variant is None else f"gfd-mig-{variant}"]
    objs = gen("nvidia-device-plugin").transform(upstream(c, mirror_dir), c)
    assert env(ctr(ds(objs, "gpu-feature-discovery")))["MIG_STRATEGY"] == mig
    plugin = ctr(ds(objs, "nvidia-device-plugin-daemonset"))
    assert env(plugin)["MIG_STRATEGY"] == mig
    if mig == "none":   # upstream's locked-down context stays
        assert plugin["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    else:               # as the helm chart: MIG monitoring needs SYS_ADMIN
        assert env(plugin)["NVIDIA_MIG_MONITOR_DEVICES"] == "all"
        assert plugin["securityContext"] == {"capabilities": {"add": ["SYS_ADMIN"]}}


def test_plugin_without_sharing_moves_to_its_namespace_only(mirror_dir):
    c = ctx("nvidia-device-plugin", profile(), enabled=("nvidia-device-plugin",))
    src = upstream(c, mirror_dir)
    objs = gen("nvidia-device-plugin").transform(src, c)
    assert [(o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in objs] == [
        ("DaemonSet", "nvidia-device-plugin-daemonset", NS), ("DaemonSet", "gpu-feature-discovery", NS)]
    assert src[0]["metadata"]["namespace"] == "kube-system"   # the input is not modified
    plugin = ds(objs, "nvidia-device-plugin-daemonset")
    assert "CONFIG_FILE" not in env(ctr(plugin))
    assert "annotations" not in plugin["metadata"]
    assert [v["name"] for v in plugin["spec"]["template"]["spec"]["volumes"]] == ["kubelet-device-plugins-dir"]


def test_time_slicing_configmap_and_mounts(mirror_dir):
    prof = profile("time-slicing", replicas=4)
    c = ctx("nvidia-device-plugin", prof)
    objs = gen("nvidia-device-plugin").transform(upstream(c, mirror_dir), c)
    # The plugin owns the ConfigMap its pods mount, so it is applied before them (one pass).
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap"]
    assert cm["metadata"] == {"name": "nvidia-device-plugin-config", "namespace": NS}
    assert yaml.safe_load(cm["data"]["config.yaml"]) == {
        "version": "v1", "flags": {"migStrategy": "none"},
        "sharing": {"timeSlicing": {"renameByDefault": False, "failRequestsGreaterThanOne": False,
                                    "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}}
    sha = sharing.config_sha256(cm["data"]["config.yaml"])
    for name in ("nvidia-device-plugin-daemonset", "gpu-feature-discovery"):
        d = ds(objs, name)
        pod = d["spec"]["template"]["spec"]
        assert {"name": "device-plugin-config", "configMap": {"name": "nvidia-device-plugin-config"}} in pod["volumes"]
        assert {"name": "device-plugin-config", "mountPath": "/config", "readOnly": True} in ctr(d)["volumeMounts"]
        assert env(ctr(d))["CONFIG_FILE"] == "/config/config.yaml"
        assert d["spec"]["template"]["metadata"]["annotations"]["kubeforge.io/device-plugin-config-sha256"] == sha
        # their ConfigMap is applied with them: Pulumi awaits their rollout like any DaemonSet's
        assert "pulumi.com/skipAwait" not in (d["metadata"].get("annotations") or {})
    assert not [o for o in objs if o["metadata"]["name"] == "nvidia-device-plugin-mps-control-daemon"]


def test_config_change_rolls_the_plugin(mirror_dir):
    shas = set()
    for replicas in (2, 8):
        c = ctx("nvidia-device-plugin", profile("time-slicing", replicas=replicas))
        objs = gen("nvidia-device-plugin").transform(upstream(c, mirror_dir), c)
        shas.add(ds(objs, "nvidia-device-plugin-daemonset")["spec"]["template"]["metadata"]["annotations"][
            "kubeforge.io/device-plugin-config-sha256"])
    assert len(shas) == 2


def test_mps_adds_control_daemon_and_paths(mirror_dir):
    prof = profile("mps", replicas=10)
    c = ctx("nvidia-device-plugin", prof)
    objs = gen("nvidia-device-plugin").transform(upstream(c, mirror_dir), c)
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap"]
    assert yaml.safe_load(cm["data"]["config.yaml"])["sharing"] == {"mps": {
        "renameByDefault": False, "failRequestsGreaterThanOne": False,
        "resources": [{"name": "nvidia.com/gpu", "replicas": 10}]}}
    plugin = ds(objs, "nvidia-device-plugin-daemonset")
    assert env(ctr(plugin))["MPS_ROOT"] == "/run/nvidia/mps"
    assert {m["mountPath"] for m in ctr(plugin)["volumeMounts"]} >= {"/mps", "/dev/shm", "/config"}
    daemon = ds(objs, "nvidia-device-plugin-mps-control-daemon")
    pod = daemon["spec"]["template"]["spec"]
    assert daemon["metadata"]["namespace"] == NS
    assert daemon["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    assert pod["nodeSelector"] == {"nvidia.com/mps.capable": "true"}
    assert ctr(daemon)["image"] == ctr(plugin)["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
    assert env(ctr(daemon))["CONFIG_FILE"] == "/config/config.yaml"
    assert pod["initContainers"][0]["command"] == ["mps-control-daemon", "mount-shm"]


def test_mig_mixed_time_slicing_validated_against_the_h100(mirror_dir):
    prof = profile("time-slicing", replicas=2, mig="mixed")
    values = {"mig": {"card": "nvidia-h100-80gb-hbm3", "layout": {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}}}
    (cm,) = sharing_configmaps(prof, values, mirror_dir)
    cfg = yaml.safe_load(cm["data"]["config.yaml"])
    assert cfg["flags"] == {"migStrategy": "mixed"}
    assert [r["name"] for r in cfg["sharing"]["timeSlicing"]["resources"]] == [
        "nvidia.com/mig-1g.10gb", "nvidia.com/mig-2g.20gb", "nvidia.com/mig-3g.40gb"]


def test_profiles_file_is_the_real_lgip_output(h100, mirror_dir):
    (cm,) = sharing_configmaps(profile(mig="single"), {"mig": {"profilesFile": str(h100 / "nvidia-smi-mig-lgip.txt"),
                                                              "layout": {"1g.10gb": 7}}}, mirror_dir)
    assert yaml.safe_load(cm["data"]["config.yaml"]) == {"version": "v1", "flags": {"migStrategy": "single"}}


def test_bundled_card_is_the_captured_output(h100):
    assert (sharing.CARDS_DIR / "nvidia-h100-80gb-hbm3.lgip.txt").read_bytes() == (
        h100 / "nvidia-smi-mig-lgip.txt").read_bytes()


@pytest.mark.parametrize("prof,values,field,message", [
    (profile(mig="single"), {"mig": {"card": "nvidia-h100-80gb-hbm3", "layout": {"1g.10gb": 8}}},
     "components.gpu-sharing.values.mig.layout", "at most 7"),
    (profile(mig="mixed"), {"mig": {"card": "nvidia-h100-80gb-hbm3", "layout": {"7g.80gb": 1, "1g.10gb": 1}}},
     "components.gpu-sharing.values.mig.layout", "8 compute slices, the card has 7"),
    (profile(mig="single"), {"mig": {"card": "nvidia-h100-80gb-hbm3", "layout": {"1g.5gb": 7}}},
     "components.gpu-sharing.values.mig.layout", "1g.5gb is not offered"),
    (profile(), {"mig": {"layout": {"1g.10gb": 7}}}, "components.gpu-sharing.values.mig.layout",
     "the MIG strategy is none"),
    (profile("time-slicing", mig="mixed"), {}, "components.gpu-sharing.values.mig.layout",
     "needs mig.layout to name the MIG resources"),
    (profile("mps", mig="single"), {}, "gpu.sharing.strategy", "cannot share MIG devices with MPS"),
    (profile(mig="single"), {"mig": {"card": "a100-40gb", "layout": {"1g.5gb": 7}}},
     "components.gpu-sharing.values.mig.card", "no MIG profile table for card 'a100-40gb'"),
    (profile(mig="single"), {"mig": {"profilesFile": "/nonexistent/lgip.txt"}},
     "components.gpu-sharing.values.mig.profilesFile", "does not exist"),
])
def test_bad_sharing_settings(prof, values, field, message, mirror_dir):
    with pytest.raises(KubeforgeError) as e:
        sharing_configmaps(prof, values, mirror_dir)
    assert e.value.field == field and message in e.value.message
    assert e.value.file == "profiles/test.yaml" and e.value.fix


def test_plugin_rejects_mig_value_disagreeing_with_profile(mirror_dir):
    c = ctx("nvidia-device-plugin", profile(mig="mixed"), {"migStrategy": "none"}, enabled=("nvidia-device-plugin",))
    with pytest.raises(KubeforgeError) as e:
        gen("nvidia-device-plugin").transform(upstream(c, mirror_dir), c)
    assert e.value.field == "components.nvidia-device-plugin.values.migStrategy" and "migStrategy: mixed" in e.value.fix


def test_plugin_rejects_sharing_without_gpu_sharing_component(mirror_dir):
    c = ctx("nvidia-device-plugin", profile("time-slicing"), enabled=("nvidia-device-plugin",))
    with pytest.raises(KubeforgeError, match="gpu-sharing component is not enabled"):
        gen("nvidia-device-plugin").transform(upstream(c, mirror_dir), c)


@pytest.mark.parametrize("service_monitor", [False, True])
def test_dcgm_exporter(mirror_dir, service_monitor):
    c = ctx("dcgm-exporter", profile(), {"serviceMonitor": service_monitor}, enabled=())
    objs = gen("dcgm-exporter").transform(upstream(c, mirror_dir), c)
    kinds = [(o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in objs]
    want = [("DaemonSet", "dcgm-exporter", "dcgm-exporter"), ("Service", "dcgm-exporter", "dcgm-exporter")]
    assert kinds == want + ([("ServiceMonitor", "dcgm-exporter", "dcgm-exporter")] if service_monitor else [])
    assert ctr(ds(objs, "dcgm-exporter"))["image"] == "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless"


def test_gpu_operator_values_and_configmap():
    op = gen("gpu-operator")
    c = ctx("gpu-operator", profile("time-slicing", replicas=3, mig="single", mode="operator"),
            {"chart": {"driver": {"enabled": False}, "mig": {"strategy": "single"}}}, enabled=())
    (cm,) = op.generate(c)
    assert cm["metadata"] == {"name": "nvidia-device-plugin-config", "namespace": "gpu-operator"}
    assert yaml.safe_load(cm["data"]["config.yaml"])["sharing"]["timeSlicing"]["resources"] == [
        {"name": "nvidia.com/gpu", "replicas": 3}]
    assert op.chart_values(c) == {
        "mig": {"strategy": "single"}, "driver": {"enabled": False},
        "devicePlugin": {"config": {"name": "nvidia-device-plugin-config", "create": False, "default": "config.yaml"}}}
    plain = ctx("gpu-operator", profile(mode="operator"), enabled=())
    assert op.generate(plain) == [] and op.chart_values(plain) == {"mig": {"strategy": "none"}}


def test_rendered_objects_pass_kubernetes_schema(mirror_dir):
    """The edited DaemonSets and the generated ConfigMap are valid for Kubernetes 1.34."""
    from kubeforge.validate import validate
    prof = profile("mps", replicas=4)
    c = ctx("nvidia-device-plugin", prof)
    objs = gen("nvidia-device-plugin").transform(upstream(c, mirror_dir), c)   # the ConfigMap included
    d = ctx("dcgm-exporter", profile(), enabled=())
    objs += gen("dcgm-exporter").transform(upstream(d, mirror_dir), d)
    report = validate(objs, "1.34", allowlist=[])
    errors = [f.line() for f in report.errors if f.rule in ("schema", "namespace-scope", "metadata-name", "label")]
    assert errors == []
    assert report.objects == len(objs) == 6


def test_plugin_and_exporter_keep_to_gpu_nodes_like_gfd(mirror_dir):
    from kubeforge.gpu.manifests import GPU_NODE_AFFINITY
    c = ctx("nvidia-device-plugin", profile(), enabled=("nvidia-device-plugin",))
    src = upstream(c, mirror_dir)
    assert ds(src, "gpu-feature-discovery")["spec"]["template"]["spec"]["affinity"] == GPU_NODE_AFFINITY
    assert "affinity" not in ds(src, "nvidia-device-plugin-daemonset")["spec"]["template"]["spec"]
    objs = gen("nvidia-device-plugin").transform(src, c)
    assert ds(objs, "nvidia-device-plugin-daemonset")["spec"]["template"]["spec"]["affinity"] == GPU_NODE_AFFINITY
    d = ctx("dcgm-exporter", profile(), enabled=())
    objs = gen("dcgm-exporter").transform(upstream(d, mirror_dir), d)
    assert ds(objs, "dcgm-exporter")["spec"]["template"]["spec"]["affinity"] == GPU_NODE_AFFINITY
