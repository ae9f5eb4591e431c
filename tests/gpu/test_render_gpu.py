"""The GPU components through the real pipeline: profile file -> plan -> render (mirror) -> validate.

A GPU-only profile (written by the test, extending the shipped `base`) keeps this fast; the
shipped gpu-onprem and full profiles are rendered by the spine's render tests.
"""
from __future__ import annotations

import pytest

from kubeforge import api


def render(tmp_path, mirror_dir, gpu: str, components: str):
    p = tmp_path / "gpu-test.yaml"
    p.write_text(f"extends: base\nname: gpu-test\ngpu:\n{gpu}\ncomponents:\n{components}\n")
    rendered = api.render(api.load_profile(str(p)), mirror=str(mirror_dir), use_cache=False)
    return rendered, api.validate(rendered)


@pytest.mark.parametrize("sharing,mig,extra", [
    ("none", "none", 0),
    ("time-slicing", "none", 0),
    ("mps", "none", 1),            # + the MPS control daemon
    ("time-slicing", "single", 0),
])
def test_gpu_profile_renders_and_validates(tmp_path, mirror_dir, sharing, mig, extra):
    gpu = f"  mode: host\n  sharing: {{strategy: {sharing}, replicas: 4}}\n  mig: {{strategy: {mig}}}"
    comps = (f"  nvidia-device-plugin: {{enabled: true, values: {{migStrategy: {mig}}}}}\n"
             "  dcgm-exporter: {enabled: true}\n  gpu-sharing: {enabled: true}")
    rendered, report = render(tmp_path, mirror_dir, gpu, comps)
    assert [e.line() for e in report.errors] == []
    dp = rendered.components["nvidia-device-plugin"].objects
    assert [(o["kind"], o["metadata"]["name"]) for o in dp][:1] == [("Namespace", "nvidia-device-plugin")]
    assert sum(o["kind"] == "DaemonSet" for o in dp) == 2 + extra
    (cm,) = [o for o in dp if o["kind"] == "ConfigMap"]
    assert cm["metadata"]["namespace"] == "nvidia-device-plugin"
    assert rendered.components["gpu-sharing"].objects == []     # settings only
    # in apply order the ConfigMap precedes the DaemonSets that mount it
    kinds = [o["kind"] for o in dp]
    assert kinds.index("ConfigMap") < kinds.index("DaemonSet")
    assert f"migStrategy: {mig}" in cm["data"]["config.yaml"]
    gfd = next(o for o in dp if o["metadata"]["name"] == "gpu-feature-discovery")
    env = {e["name"]: e["value"] for e in gfd["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MIG_STRATEGY"] == mig and env["CONFIG_FILE"] == "/config/config.yaml"
    # the render's GPU scheduling transform gave every GPU DaemonSet the profile's toleration
    for o in rendered.objects():
        if o["kind"] == "DaemonSet" and o["metadata"]["namespace"] in ("nvidia-device-plugin", "dcgm-exporter"):
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
                o["spec"]["template"]["spec"]["tolerations"]
