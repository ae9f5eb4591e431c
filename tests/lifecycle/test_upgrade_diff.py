"""Upgrade analysis on real upstream objects: the new side is the real render from the mirror;
the old side is an EDITED COPY of it made here (the mirror holds one release per component), with
the edits named in each test."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import yaml
from lifecycle_helpers import objects_of

from kubeforge import api
from kubeforge.cli import main
from kubeforge.errors import KubeforgeError
from kubeforge.lifecycle import upgrade as up
from kubeforge.model import LABEL_VERSION
from kubeforge.render import write_dir
from kubeforge.yamlio import load_all

EXP = "experiments.kubeflow.org"


def _experiment_crd(rendered) -> dict:
    return next(o for o in objects_of(rendered, "katib", "CustomResourceDefinition") if o["metadata"]["name"] == EXP)


def _edited_copy_with_extra_version(crd: dict, name: str, storage: bool) -> dict:
    """EDITED COPY: the CRD with one more version `name` (same schema), optionally the storage one."""
    edited = copy.deepcopy(crd)
    base = edited["spec"]["versions"][0]
    extra = copy.deepcopy(base)
    extra["name"] = name
    if storage:
        for v in edited["spec"]["versions"]:
            v["storage"] = False
    extra["storage"] = storage
    edited["spec"]["versions"].append(extra)
    return edited


def test_crd_versions_added_and_storage_move_on_real_katib_crd(training):
    new_crd = _experiment_crd(training)
    newer = _edited_copy_with_extra_version(new_crd, "v1", storage=True)   # a future release
    ch = up.diff_crd(new_crd, newer)
    assert ch.versions_added == ["v1"] and ch.versions_removed == []
    assert ch.storage == ("v1beta1", "v1")
    assert up.strand_blockers("katib", ch) == []


def test_removing_the_stored_version_is_refused_with_a_fix(training):
    new_crd = _experiment_crd(training)
    old = _edited_copy_with_extra_version(new_crd, "v1alpha3", storage=True)  # old release stored v1alpha3
    ch = up.diff_crd(old, new_crd)
    assert ch.versions_removed == ["v1alpha3"] and ch.stored_versions == ["v1alpha3"] and not ch.stored_known
    [blocker] = up.strand_blockers("katib", ch)
    assert "removes version v1alpha3" in blocker.reason and "stranded" in blocker.reason
    assert "v1beta1 with v1beta1 as the storage version" in blocker.fix
    assert f"kubectl get {EXP} -A -o json | kubectl replace -f -" in blocker.fix
    # The cluster says nothing is stored as v1alpha3 any more: safe.
    ch = up.diff_crd(old, new_crd, stored=["v1beta1"])
    assert ch.stored_known and up.strand_blockers("katib", ch) == []
    # An older version lingering in storedVersions (not the storage one) gets the rewrite-only fix.
    old2 = _edited_copy_with_extra_version(new_crd, "v1alpha3", storage=False)
    [b2] = up.strand_blockers("katib", up.diff_crd(old2, new_crd, stored=["v1alpha3", "v1beta1"]))
    assert "status.storedVersions to [v1beta1]" in b2.fix


def _pytorchjob_crd(rendered) -> dict:
    return next(o for o in objects_of(rendered, "training-operator", "CustomResourceDefinition")
                if o["metadata"]["name"] == "pytorchjobs.kubeflow.org")


def test_removed_schema_fields_are_listed(training):
    old = _pytorchjob_crd(training)   # katib's CRDs preserve unknown fields; the PyTorchJob CRD is structural
    new = copy.deepcopy(old)          # EDITED COPY: the new release drops spec.elasticPolicy.rdzvConf
    schema = new["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    del schema["properties"]["spec"]["properties"]["elasticPolicy"]["properties"]["rdzvConf"]
    ch = up.diff_crd(old, new)
    assert ch.fields_removed == {"v1": ["spec.elasticPolicy.rdzvConf", "spec.elasticPolicy.rdzvConf[].key",
                                        "spec.elasticPolicy.rdzvConf[].value"]}
    assert up.strand_blockers("training-operator", ch) == []


def test_schema_paths_walk_properties_items_and_maps(training):
    paths = up.schema_paths(_pytorchjob_crd(training)["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    assert {"spec.nprocPerNode", "spec.runPolicy.backoffLimit", "spec.elasticPolicy.metrics[].type",
            "spec.pytorchReplicaSpecs.*.template.spec.containers[].name"} <= paths


def test_istio_moves_one_minor_at_a_time():
    [b] = up.version_gates({"istio": "1.27.3"}, {"istio": "1.29.0"})
    assert "one minor at a time" in b.reason and b.fix.startswith("upgrade to istio 1.28.x first")
    assert up.version_gates({"istio": "1.28.2"}, {"istio": "1.29.0"}) == []
    assert up.version_gates({"katib": "0.17.0"}, {"katib": "0.19.0"}) == []


def test_the_istio_knative_kserve_tuple_is_gated():
    plan = api.plan(api.load_profile("dev"))
    assert up.compat_gates(plan) == [], "the default tuple is the one tested together"
    skewed = copy.copy(plan)   # EDITED COPY of the plan: Istio one minor ahead of what KServe was tested with
    skewed.components = dict(plan.components, istio=dataclasses.replace(plan.components["istio"], version="1.30.0"))
    blockers = up.compat_gates(skewed)
    assert any(b.component == "kserve" and "istio 1.30.0" in b.reason for b in blockers)


def _edited_old_render_dir(rendered, tmp_path):
    """EDITED COPY of the training render as if katib 0.18.0 were installed: its version labels say
    0.18.0 and its Experiment CRD also has v1alpha3, the storage version then."""
    out = tmp_path / "edited-old-render-katib-0.18"
    write_dir(rendered, out)
    path = next(out.glob("*-katib.yaml"))
    docs = load_all(path.read_text())
    for d in docs:
        d["metadata"]["labels"][LABEL_VERSION] = "0.18.0"
        if d["kind"] == "CustomResourceDefinition" and d["metadata"]["name"] == EXP:
            d.update(_edited_copy_with_extra_version(d, "v1alpha3", storage=True))
    path.write_text(yaml.dump_all(docs, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)))
    return out


def test_analyze_old_render_against_new_profile(training, tmp_path):
    old = up.load_from(str(_edited_old_render_dir(training, tmp_path)))
    new = up.side_from_rendered(training, "profile training")
    result = up.analyze(old, new)
    katib = next(c for c in result.components if c.name == "katib")
    assert (katib.old_version, katib.new_version, katib.change) == ("0.18.0", "0.19.0", "upgrade")
    assert [c.crd for c in katib.crds] == [EXP]
    assert not result.ok and result.blockers[0].component == "katib"
    wave = training.components["katib"].wave
    assert [(s["wave"], s["phase"]) for s in result.order] == [
        (wave, "crds"), (wave, "workloads"), (wave, "webhooks"), (wave, "custom-resources")]
    assert result.order[0]["components"] == ["katib"] and result.order[0]["objects"] == 3
    others = [c for c in result.components if c.name != "katib"]
    assert all(c.change == "same" and not c.crds for c in others)


def test_from_accepts_a_lock_a_render_dir_and_a_profile(training, tmp_path, mirror_dir):
    lock = tmp_path / "platform.lock.json"
    import json

    lock.write_text(json.dumps(up.lock_of(up.side_from_rendered(training, "x"))))
    assert up.load_from(str(lock)).versions == {n: c.version for n, c in training.components.items()}
    write_dir(training, tmp_path / "render")
    assert up.load_from(str(tmp_path / "render")).versions["katib"] == training.components["katib"].version
    assert up.load_from("training", mirror=str(mirror_dir)).versions["katib"] == training.components["katib"].version


@pytest.mark.parametrize("content, field", [("kind: PlatformLock\n", "components"),
                                            ("kind: PlatformLock\ncomponents: {istio: {}}\n", "components.istio")])
def test_bad_locks_are_clear_usage_errors(tmp_path, content, field):
    bad = tmp_path / "bad.lock"
    bad.write_text(content)
    with pytest.raises(KubeforgeError) as err:
        up.load_from(str(bad))
    assert err.value.exit_code == 2 and err.value.field == field and err.value.file == str(bad)


def test_cli_upgrade_dry_run_refuses_with_reason_and_fix(training, tmp_path, capsys, mirror_dir):
    old_dir = _edited_old_render_dir(training, tmp_path)
    rc = main(["upgrade", "-p", "training", "--from", str(old_dir), "--dry-run", "--mirror", str(mirror_dir)])
    out = capsys.readouterr()
    assert rc == 1
    assert "katib                    0.18.0 -> 0.19.0     upgrade" in out.out
    assert "BLOCKED katib: CRD experiments.kubeflow.org: the new release removes version v1alpha3" in out.out
    assert "fix:" in out.out and "upgrade refused" in out.err
    rc = main(["upgrade", "-p", "training", "--from", "training", "--dry-run", "--json", "--mirror", str(mirror_dir)])
    import json

    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["ok"] is True and data["blockers"] == []


def test_upgrade_applies_crds_then_webhooks_then_the_custom_resources_they_admit(render_profile):
    """The apply path of `kubeforge upgrade` (render | kubectl installs), wave by wave against a
    stand-in API server (no cluster here): every webhook configuration is applied before the
    custom resources its rules admit, every CRD before the resources of its kind."""
    from apiserver_standin import ApiServerStandIn
    from order_facts import assert_webhooks_first, crds_of, webhook_pairs

    from kubeforge.lifecycle.apply import apply_upgrade

    rendered = render_profile("dev")
    objs = [o for rc in rendered.components.values() for o in rc.objects]
    cluster = ApiServerStandIn()   # its controllers move while the upgrade waits (its clock and sleep)
    apply_upgrade(cluster, rendered, list(rendered.plan.components), echo=lambda _: None, wait_s=300,
                  clock=cluster.clock, sleep=cluster.advance)
    assert cluster.rejections == []
    assert len(cluster.applied) == len(objs)
    pairs = webhook_pairs(objs)
    assert len(pairs) >= 10
    assert_webhooks_first(cluster.applied, pairs, "kubeforge upgrade")
    crds = crds_of(objs)
    first = {}
    for i, o in enumerate(cluster.applied):
        if o["kind"] == "CustomResourceDefinition":
            first[(o["spec"]["group"], o["spec"]["names"]["kind"])] = i
    for i, o in enumerate(cluster.applied):
        key = (o["apiVersion"].rpartition("/")[0], o["kind"])
        if key in crds:
            assert first[key] < i, f"{o['kind']} {o['metadata']['name']} applied before its CRD"
