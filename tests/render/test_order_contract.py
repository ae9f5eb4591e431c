"""The apply-order contract on the real renders of every shipped platform (from the mirror):
what a custom resource is, and webhook configurations before the custom resources they admit,
in every order something applies: the global render order, each component's order and the
files `kubeforge render -o DIR` writes (what `kubectl apply -f DIR` walks).

Expected values come from the render itself, read independently of kubeforge.ordering: an object
is a custom resource when a CustomResourceDefinition among the objects defines its group and kind,
and a webhook admits an object when one of its rules names the object's group and plural.
"""
from __future__ import annotations

import pytest
from order_facts import assert_webhooks_first, crds_of, webhook_pairs
from shipped_profiles import distinct

from kubeforge.ordering import CUSTOM_RANK, apply_order, is_custom, kind_rank
from kubeforge.render import write_dir
from kubeforge.yamlio import load_all

PROFILES = distinct()
@pytest.mark.parametrize("profile", PROFILES)
def test_custom_resource_means_a_crd_defines_it(profile, render_profile):
    """One definition of custom resource, on every kind in every shipped render: exactly the
    objects whose group/kind a CRD of the platform defines (HPAs, PDBs, NetworkPolicies are not)."""
    rendered = render_profile(profile)
    objs = [o for rc in rendered.components.values() for o in rc.objects]
    crds = crds_of(objs)
    kinds = {(o["apiVersion"], o["kind"]) for o in objs}
    wrong = sorted(k for k in kinds if is_custom({"apiVersion": k[0], "kind": k[1]})
                   != ((k[0].split("/")[0] if "/" in k[0] else "", k[1]) in crds))
    assert not wrong, f"misclassified: {wrong}"
    for api, kind in kinds:
        obj = {"apiVersion": api, "kind": kind}
        assert (kind_rank(obj) == CUSTOM_RANK) == is_custom(obj), (api, kind)


@pytest.mark.parametrize("profile", PROFILES)
def test_webhooks_come_before_the_custom_resources_they_admit(profile, render_profile):
    rendered = render_profile(profile)
    objs = [o for rc in rendered.components.values() for o in rc.objects]
    pairs = webhook_pairs(objs)
    if profile in ("dev", "full", "serving"):
        # Istio's validator admits the Gateways and policies that Istio, Knative and KServe ship;
        # KServe's webhook admits its ClusterServingRuntimes: the property is not vacuous here.
        assert len(pairs) >= 10, pairs
    assert_webhooks_first(rendered.objects(), pairs, "render order")
    for name, rc in rendered.components.items():
        assert_webhooks_first(rc.objects, pairs, f"{name}'s order")


def test_the_files_render_writes_keep_webhooks_before_what_they_admit(render_profile, tmp_path):
    """What `kubectl apply -f DIR` walks: the files in name order, each file top to bottom
    (full: every component that can coexist, so every webhook/custom-resource pair there is)."""
    rendered = render_profile("full")
    objs = [o for rc in rendered.components.values() for o in rc.objects]
    write_dir(rendered, tmp_path)
    written = [d for f in sorted(tmp_path.glob("*.yaml")) for d in load_all(f.read_text()) if d]
    assert len(written) == len(objs)
    assert_webhooks_first(written, webhook_pairs(objs), f"files of kubeforge render -o {tmp_path.name}")


def test_a_dependent_custom_resource_applies_after_what_it_references(render_profile):
    """KServe's Certificates name the selfsigned Issuer (spec.issuerRef): the Issuer applies first."""
    kserve = render_profile("dev").components["kserve"].objects
    order = [(o["kind"], o["metadata"]["name"]) for o in kserve if o["apiVersion"].startswith("cert-manager.io/")]
    certs = [o["metadata"]["name"] for o in kserve if o["kind"] == "Certificate"
             and (o["spec"].get("issuerRef") or {}).get("name") == "selfsigned-issuer"]
    assert certs and ("Issuer", "selfsigned-issuer") in order
    issuer = order.index(("Issuer", "selfsigned-issuer"))
    assert all(order.index(("Certificate", c)) > issuer for c in certs), order
    # The same holds for any batch, whatever order it comes in.
    assert apply_order(list(reversed(kserve))) == apply_order(kserve)
