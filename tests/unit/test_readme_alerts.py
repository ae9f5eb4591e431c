"""README's alerts table is the rendered rules: every alert kubeforge writes, with its severity,
`for` and meaning, as `kubeforge render -p full` makes them (regenerate with
`python -m kubeforge.monitoring README.md`)."""
from __future__ import annotations

import re

from kubeforge import api, monitoring


def test_readme_alerts_table_is_the_rendered_rules(repo_root, mirror_dir):
    rendered = api.render(api.plan(api.load_profile("full")), mirror=str(mirror_dir))
    objects = rendered.objects()
    text = (repo_root / "README.md").read_text()
    assert monitoring.with_alerts_table(text, monitoring.alerts_markdown(objects)) == text
    # and the table is not empty by construction: every alert of gpu.rules is a row
    rows = set(re.findall(r"^\| `([A-Za-z]+)` \| gpu\.rules \|", text, re.M))
    gpu_rules = next(o for o in objects if o["kind"] == "PrometheusRule" and o["metadata"]["name"] == "gpu-rules")
    assert rows == {r["alert"] for r in gpu_rules["spec"]["groups"][0]["rules"]}


def test_readme_says_how_to_reach_grafana_and_prometheus(repo_root):
    text = (repo_root / "README.md").read_text()
    for svc, port in (("grafana", 3000), ("prometheus-k8s", 9090)):
        assert f"kubectl -n {monitoring.NAMESPACE} port-forward svc/{svc} {port}" in text
    assert "kubeforge secrets get -p gpu-onprem grafana-admin-password" in text
