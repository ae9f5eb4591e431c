"""component.yaml `defaultsWhen`: defaults that apply while another component is enabled (the
multi-user overlays while kubeflow-auth is), read by the planner; the profile's values win."""
from __future__ import annotations

import jsonschema
import pytest

from kubeforge.catalog import load_catalog
from kubeforge.errors import KubeforgeError
from kubeforge.plan import make_plan
from kubeforge.profile import deep_merge, load_profile

DEMO = """name: demo-overlay
version: "1"
values:
  schema: {type: object, additionalProperties: false, properties: {mode: {enum: [plain, fancy, custom]}, n: {type: integer}}}
  defaults: {mode: plain, n: 1}
defaultsWhen:
  - {enabled: katib, values: {mode: fancy}}
  - {enabled: kubeflow-auth, values: {n: 2}}
"""


def test_rules_apply_in_order_only_while_their_component_is_enabled(catalog_with, tmp_path):
    catalog_with(components={"demo-overlay": {"component.yaml": DEMO}}, profiles={
        "p1": "extends: base\ncomponents:\n  demo-overlay: {enabled: true}\n",
        "p2": "extends: dev\ncomponents:\n  demo-overlay: {enabled: true}\n",
        "p3": "extends: kubeflow\ncomponents:\n  demo-overlay: {enabled: true}\n",
        "p4": "extends: kubeflow\ncomponents:\n  demo-overlay: {enabled: true, values: {mode: custom}}\n"})
    values = lambda p: make_plan(load_profile(p)).components["demo-overlay"].values  # noqa: E731
    assert values("p1") == {"mode": "plain", "n": 1}
    assert values("p2") == {"mode": "fancy", "n": 1}
    assert values("p3") == {"mode": "fancy", "n": 2}
    assert values("p4") == {"mode": "custom", "n": 2}          # the profile wins


@pytest.mark.parametrize("rule", ["[{enabled: katib}]", "[{enabled: katib, values: x}]", "{enabled: katib}",
                                  "[{when: katib, values: {}}]"])
def test_a_malformed_rule_names_the_file_and_field(catalog_with, rule):
    catalog_with(components={"demo-overlay": {"component.yaml": DEMO.split("defaultsWhen:")[0]
                                              + f"defaultsWhen: {rule}\n"}})
    with pytest.raises(KubeforgeError) as exc:
        load_catalog()
    assert exc.value.field.startswith("defaultsWhen[") and exc.value.file.endswith("demo-overlay/component.yaml")


def test_every_shipped_rule_names_a_component_and_gives_values_its_schema_accepts():
    catalog = load_catalog()
    users = 0
    for comp in catalog.values():
        merged = comp.defaults
        for rule in comp.defaults_when:
            assert rule["enabled"] in catalog, (comp.name, rule)
            merged = deep_merge(merged, rule["values"])
            users += 1
        jsonschema.validate(merged, comp.values_schema)
    assert users >= 4     # istio, katib, training-operator, kubeflow-namespace


def test_the_kubeflow_profile_plans_every_existing_component_multi_user():
    on = make_plan(load_profile("kubeflow")).components
    off = make_plan(load_profile("dev")).components
    for name in ("istio", "katib", "training-operator", "kubeflow-namespace"):
        assert on[name].values["multiUser"] is True and off[name].values["multiUser"] is False, name
