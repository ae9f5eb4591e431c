"""Kubeflow Pipelines on the cluster's one Argo, rendered from the real kubeflow/manifests 26.03
tree in the mirror (its remote Argo bases resolved to the mirror's argo-workflows v3.7.3).

Expected values come from upstream: KFP's own Argo overlay is built on its own to say which
objects are Argo's; upstream's secret files say which values are its defaults.
"""
from __future__ import annotations

import dataclasses
import json

import pytest
from shipped_profiles import SHIPPED

from kubeforge import kustomize
from kubeforge.errors import KubeforgeError
from kubeforge.images import list_images, parse_image
from kubeforge.plan import make_plan
from kubeforge.profile import load_profile
from kubeforge.render import render, selected_sources
from kubeforge.secrets import Store
from kubeforge.sources import sync
from kubeforge.validate import validate

UPSTREAM_SEAWEEDFS_SECRET = ("github/kubeflow/manifests/26.03/applications/pipeline/upstream/third-party/"
                             "seaweedfs/base/seaweedfs/mlpipeline-minio-artifact-secret.yaml")




def _profile(tmp_path, name: str, text: str):
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return load_profile(str(p))


@pytest.fixture(scope="module")
def kubeflow(cache, mirror_dir):
    return render(make_plan(load_profile("kubeflow")), mirror=str(mirror_dir), secrets=Store())


def _objs(rendered, component):
    return rendered.components[component].objects


def _find(objs, kind, name):
    import re

    found = [o for o in objs if o["kind"] == kind and re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?",
                                                                   o["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in found])
    return found[0]


def _env(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


@pytest.fixture(scope="module")
def upstream(cache, mirror_dir, kubeflow):
    """KFP's upstream build (the component's source, built by kustomize with nothing dropped), and
    KFP's Argo overlay (third-party/argo/installs/cluster) built on its own from the same sync."""
    pc = kubeflow.plan.components["pipelines"]
    srcs = selected_sources(pc)
    paths = sync(srcs, mirror=str(mirror_dir))
    main = next(s for s in srcs if s.build)
    argo_dir = paths[main.id].parents[2] / "third-party" / "argo" / "installs" / "cluster"
    return kustomize.build(paths[main.id]), kustomize.build(argo_dir)


def _ident(o):
    return o["apiVersion"].rpartition("/")[0], o["kind"], o["metadata"]["name"]


def test_remote_argo_refs_resolve_offline_and_kfp_argo_is_what_generate_drops(kubeflow, upstream):
    full, argo = upstream
    argo_ids = {_ident(o) for o in argo}
    # The overlay's remote bases came from the mirror's argo-workflows tree: its CRDs and controller.
    assert ("apps", "Deployment", "workflow-controller") in argo_ids
    assert ("rbac.authorization.k8s.io", "ClusterRoleBinding", "argo-binding") in argo_ids
    mod = _generate()
    assert mod.KFP_ARGO == argo_ids
    ours = {_ident(o) for o in _objs(kubeflow, "pipelines")}
    assert not ours & argo_ids
    # Everything else upstream renders is kept (no Namespace is in the tree; nothing else dropped).
    assert {_ident(o) for o in full} - argo_ids == ours


def test_kfp_argo_collides_with_the_argo_component_without_the_drop(kubeflow, upstream):
    """The collision the drop removes is real: upstream's Argo shares cluster-scoped objects
    (argo-binding among them) with the argo-workflows component, with different subjects."""
    _, argo = upstream
    ours = {(_ident(o)): o for o in _objs(kubeflow, "argo-workflows")}
    cluster_scoped = [o for o in argo if "namespace" not in o["metadata"] and _ident(o) in ours]
    assert len(cluster_scoped) >= 13, [_ident(o) for o in cluster_scoped]
    binding = next(o for o in cluster_scoped if o["metadata"]["name"] == "argo-binding")
    assert binding["subjects"] != ours[_ident(binding)]["subjects"]
    # Dropping KFP's copy loses no permission: its ClusterRoles are the argo-workflows component's.
    for o in cluster_scoped:
        if o["kind"] == "ClusterRole":
            assert o.get("rules") == ours[_ident(o)].get("rules"), o["metadata"]["name"]
            assert o["metadata"].get("labels", {}).items() - {("application-crd-id", "kubeflow-pipelines")} <= \
                ours[_ident(o)]["metadata"]["labels"].items(), o["metadata"]["name"]


def test_render_refuses_the_duplicate_when_kfp_keeps_its_argo(cache, mirror_dir, monkeypatch):
    """Plant the bug: a pipelines transform that keeps KFP's Argo. Render's duplicate check fires."""
    from kubeforge import render as render_mod

    real = render_mod._load_generate

    def keep_argo(pc):
        module = real(pc)
        if pc.name == "pipelines":
            module.KFP_ARGO = frozenset()
            module._drop = lambda objects, wanted, what: objects
        return module

    monkeypatch.setattr(render_mod, "_load_generate", keep_argo)
    with pytest.raises(KubeforgeError) as e:
        render(make_plan(load_profile("kubeflow")), mirror=str(mirror_dir), secrets=Store(), use_cache=False)
    assert "rendered by both argo-workflows and pipelines" in e.value.message


def _generate():
    import importlib.util

    from kubeforge.catalog import load_catalog

    spec = importlib.util.spec_from_file_location("pipelines_generate_under_test",
                                                  load_catalog()["pipelines"].generate_py)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("profile", SHIPPED)
def test_at_most_one_workflow_controller_in_every_shipped_profile(cache, mirror_dir, profile):
    plan = make_plan(load_profile(profile))
    if "argo-workflows" not in plan.components and "pipelines" not in plan.components:
        pytest.skip(f"{profile} has no Argo")
    from kubeforge.lifecycle.rendered import render_available

    rendered, _ = render_available(plan, mirror=str(mirror_dir))
    controllers = [(n, o["metadata"]["namespace"]) for n, rc in rendered.components.items() for o in rc.objects
                   if o["kind"] == "Deployment" and o["metadata"]["name"] == "workflow-controller"]
    assert controllers == [("argo-workflows", "argo")]


def test_kubeflow_validates_with_zero_errors(kubeflow):
    report = validate(kubeflow.objects(), kubeflow.plan.profile.kubernetesVersion)
    assert report.errors == [], report.summary()


def test_no_upstream_default_secret_survives(kubeflow, mirror_dir, upstream):
    import yaml

    full, _ = upstream
    up_secret = yaml.safe_load((mirror_dir / UPSTREAM_SEAWEEDFS_SECRET).read_text())
    default_key = up_secret["stringData"]["secretkey"]
    assert default_key == "minio123"
    # Upstream's own build carries it, and an empty MySQL root password.
    assert default_key in set(_strings(full))
    assert _find(full, "Secret", "mysql-secret")["stringData"]["password"] == ""
    assert _env(_find(full, "Deployment", "mysql")["spec"]["template"]["spec"]["containers"][0]).get(
        "MYSQL_ALLOW_EMPTY_PASSWORD") == "true"
    # The known-defaults list names it.
    from kubeforge.paths import components_dir

    listed = yaml.safe_load((components_dir() / "_default_secrets.yaml").read_text())["entries"]
    assert any(e["component"] == "pipelines" and e["value"] == default_key for e in listed)

    ours = _objs(kubeflow, "pipelines")
    strings = set(_strings(ours))
    assert default_key not in strings
    s3 = _find(ours, "Secret", "mlpipeline-minio-artifact")["stringData"]
    db = _find(ours, "Secret", "mysql-secret")["stringData"]
    assert len(s3["accesskey"]) == 20 and len(s3["secretkey"]) == 40 and len(db["password"]) == 32
    assert s3["accesskey"] != up_secret["stringData"]["accesskey"]
    mysql = _env(_find(ours, "Deployment", "mysql")["spec"]["template"]["spec"]["containers"][0])
    assert "MYSQL_ALLOW_EMPTY_PASSWORD" not in mysql
    assert mysql["MYSQL_ROOT_PASSWORD"] == {"secretKeyRef": {"name": "mysql-secret", "key": "password"}}
    assert sorted(kubeflow.components["pipelines"].secrets) == [
        "pipelines-mysql-password", "pipelines-object-store-access-key", "pipelines-object-store-secret-key"]


def test_two_installs_never_share_kfp_secrets_and_one_install_reads_them_back(cache, mirror_dir, kubeflow):
    plan = make_plan(load_profile("kubeflow"))
    a, b = Store(), Store()
    ra, rb = (render(plan, mirror=str(mirror_dir), secrets=s) for s in (a, b))
    sa, sb = (_find(_objs(r, "pipelines"), "Secret", "mlpipeline-minio-artifact") for r in (ra, rb))
    assert sa["stringData"]["secretkey"] != sb["stringData"]["secretkey"]
    again = render(plan, mirror=str(mirror_dir), secrets=Store(a.values()))
    assert _objs(again, "pipelines") == _objs(ra, "pipelines")


def test_images_hidden_outside_image_fields_are_pinned_and_listed(kubeflow):
    ours = _objs(kubeflow, "pipelines")
    install = _find(ours, "ConfigMap", "pipeline-install-config")["data"]
    assert parse_image(install["cacheImage"]).tag                       # upstream: untagged
    images = list_images(ours + _objs(kubeflow, "argo-workflows"))
    for want in ("ghcr.io/containerd/busybox:1.36", "ghcr.io/kubeflow/kfp-driver:2.16.0",
                 "ghcr.io/kubeflow/kfp-launcher:2.16.0", "ghcr.io/kubeflow/kfp-frontend:2.16.0",
                 "quay.io/argoproj/argoexec:v3.7.3"):
        assert want in images
    assert not [i for i in images if i.endswith(":latest")], images
    controller = _env(_find(ours, "Deployment", "kubeflow-pipelines-profile-controller")
                      ["spec"]["template"]["spec"]["containers"][0])
    assert (controller["FRONTEND_IMAGE"], controller["FRONTEND_TAG"]) == ("ghcr.io/kubeflow/kfp-frontend", "2.16.0")


def test_registry_rewrite_covers_the_hidden_images(cache, mirror_dir, tmp_path):
    prof = _profile(tmp_path, "kfp-airgap", "extends: kubeflow\nregistry: registry.example.internal:5000/m\n")
    rendered = render(make_plan(prof), mirror=str(mirror_dir), secrets=Store())
    images = list_images(rendered.objects())
    assert images and all(i.startswith("registry.example.internal:5000/m/") for i in images), images
    ours = _objs(rendered, "pipelines")
    assert _find(ours, "ConfigMap", "pipeline-install-config")["data"]["cacheImage"] == \
        "registry.example.internal:5000/m/containerd/busybox:1.36"
    api = _env(_find(ours, "Deployment", "ml-pipeline")["spec"]["template"]["spec"]["containers"][0])
    assert api["V2_DRIVER_IMAGE"] == "registry.example.internal:5000/m/kubeflow/kfp-driver:2.16.0"
    controller = _env(_find(ours, "Deployment", "kubeflow-pipelines-profile-controller")
                      ["spec"]["template"]["spec"]["containers"][0])
    assert controller["FRONTEND_IMAGE"] == "registry.example.internal:5000/m/kubeflow/kfp-frontend"
    assert controller["FRONTEND_TAG"] == "2.16.0"


def test_pvcs_on_the_default_class_sized_by_values(cache, mirror_dir, kubeflow, tmp_path):
    pvcs = {o["metadata"]["name"]: o["spec"] for o in _objs(kubeflow, "pipelines") if o["kind"] == "PersistentVolumeClaim"}
    assert {n: (s["storageClassName"], s["resources"]["requests"]["storage"]) for n, s in pvcs.items()} == {
        "mysql-pv-claim": ("local-path", "20Gi"), "seaweedfs-pvc": ("local-path", "20Gi")}
    prof = _profile(tmp_path, "kfp-sizes", "extends: kubeflow\ncomponents:\n  pipelines:\n    values: "
                    "{mysqlStorage: 50Gi, objectStoreStorage: 1Ti}\n")
    objs = _objs(render(make_plan(prof), mirror=str(mirror_dir), secrets=Store()), "pipelines")
    assert _find(objs, "PersistentVolumeClaim", "seaweedfs-pvc")["spec"]["resources"]["requests"]["storage"] == "1Ti"
    assert _find(objs, "PersistentVolumeClaim", "mysql-pv-claim")["spec"]["resources"]["requests"]["storage"] == "50Gi"


def test_bad_pvc_size_is_a_clear_error(tmp_path):
    prof = _profile(tmp_path, "kfp-bad", "extends: kubeflow\ncomponents:\n  pipelines:\n    values: "
                    "{mysqlStorage: lots}\n")
    with pytest.raises(KubeforgeError) as e:
        make_plan(prof)
    assert "mysqlStorage" in f"{e.value.field} {e.value.message}"


def test_argo_is_configured_for_kfp_only_when_pipelines_is_enabled(kubeflow, cache, mirror_dir, upstream):
    import yaml

    cm = _find(_objs(kubeflow, "argo-workflows"), "ConfigMap", "workflow-controller-configmap")
    repo = yaml.safe_load(cm["data"]["artifactRepository"])
    # What KFP's Argo overlay sets on its own copy (built above, not restated here).
    _, argo = upstream
    kfp_cm = _find(argo, "ConfigMap", "workflow-controller-configmap")["data"]
    assert repo == yaml.safe_load(kfp_cm["artifactRepository"].replace("$(kfp-namespace)", "kubeflow")
                                  .replace("$(kfp-artifact-bucket-name)", "mlpipeline"))
    assert yaml.safe_load(cm["data"]["executor"]) == yaml.safe_load(kfp_cm["executor"])
    dev = render(make_plan(load_profile("dev")), mirror=str(mirror_dir))
    plain = _find(_objs(dev, "argo-workflows"), "ConfigMap", "workflow-controller-configmap")
    assert "artifactRepository" not in (plain.get("data") or {})


def test_external_mysql_and_object_store(cache, mirror_dir, tmp_path):
    prof = _profile(tmp_path, "kfp-external", """extends: kubeflow
components:
  pipelines:
    values:
      mysql: {external: {host: db.example.internal, port: 3307, user: kfp}}
      objectStore: {external: {host: s3.example.internal, port: 443, region: eu-west-1,
                               iamEndpoint: "https://iam.example.internal"}}
""")
    rendered = render(make_plan(prof), mirror=str(mirror_dir), secrets=Store())
    objs = _objs(rendered, "pipelines")
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for gone in (("Deployment", "mysql"), ("Deployment", "seaweedfs"), ("PersistentVolumeClaim", "mysql-pv-claim"),
                 ("PersistentVolumeClaim", "seaweedfs-pvc")):
        assert gone not in names
    install = _find(objs, "ConfigMap", "pipeline-install-config")["data"]
    assert (install["dbHost"], install["dbPort"], install["mysqlHost"]) == ("db.example.internal", "3307",
                                                                           "db.example.internal")
    assert _find(objs, "Secret", "mysql-secret")["stringData"]["username"] == "kfp"
    api = _env(_find(objs, "Deployment", "ml-pipeline")["spec"]["template"]["spec"]["containers"][0])
    assert (api["OBJECTSTORECONFIG_HOST"], api["OBJECTSTORECONFIG_PORT"], api["OBJECTSTORECONFIG_SECURE"]) == (
        "s3.example.internal", "443", "true")
    ctl = _env(_find(objs, "Deployment", "kubeflow-pipelines-profile-controller")["spec"]["template"]["spec"]
               ["containers"][0])
    assert ctl["AWS_ENDPOINT_URL"] == "https://iam.example.internal"
    assert ctl["S3_ENDPOINT_URL"] == "https://s3.example.internal:443"
    code = _find(objs, "ConfigMap", "kubeflow-pipelines-profile-controller-code")["data"]["sync.py"]
    assert "'s3.example.internal:443'" in code and '"insecure": False,' in code
    compile(code, "sync.py", "exec")          # still Python
    repo = json.loads(json.dumps(_find(_objs(rendered, "argo-workflows"), "ConfigMap",
                                       "workflow-controller-configmap")["data"]["artifactRepository"]))
    assert "s3.example.internal:443" in repo and '"insecure": false' in repo
    assert validate(rendered.objects(), "1.34").errors == []


def test_kubernetes_native_pipeline_definitions(cache, mirror_dir, tmp_path):
    prof = _profile(tmp_path, "kfp-native", "extends: kubeflow\ncomponents:\n  pipelines:\n    values: "
                    "{pipelineDefinitions: kubernetes}\n")
    rendered = render(make_plan(prof), mirror=str(mirror_dir), secrets=Store())
    objs = _objs(rendered, "pipelines")
    crds = {o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"}
    assert {"pipelines.pipelines.kubeflow.org", "pipelineversions.pipelines.kubeflow.org"} <= crds
    assert _find(objs, "ValidatingWebhookConfiguration", "pipelineversions.pipelines.kubeflow.org")
    assert not [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "workflow-controller"]
    assert validate(rendered.objects(), "1.34").errors == []


def test_a_source_with_build_false_is_fetched_not_built(kubeflow):
    srcs = kubeflow.plan.components["pipelines"].component.sources
    refs = next(s for s in srcs if not s.build)
    assert refs.repo.owner == "argoproj" and refs.repo.ref == "v3.7.3"
    assert dataclasses.replace(refs, build=True) != refs


def test_default_secret_rule_fails_upstream_kfp_and_passes_kubeforges(kubeflow, upstream):
    """Rule default-secret (components/_default_secrets.yaml) on upstream's unmodified KFP build,
    on kubeforge's render, and on kubeforge's render with upstream's key planted back."""
    import copy

    full, _ = upstream
    found = sorted((f.kind, f.name, f.path) for f in validate(copy.deepcopy(full), "1.34").errors
                   if f.rule == "default-secret")
    assert found == [("Secret", "mlpipeline-minio-artifact", "stringData.accesskey"),
                     ("Secret", "mlpipeline-minio-artifact", "stringData.secretkey")]
    ours = copy.deepcopy(_objs(kubeflow, "pipelines"))
    assert [f for f in validate(ours, "1.34").errors if f.rule == "default-secret"] == []
    _find(ours, "Secret", "mlpipeline-minio-artifact")["stringData"]["secretkey"] = "minio123"
    assert [(f.name, f.path) for f in validate(ours, "1.34").errors if f.rule == "default-secret"] == [
        ("mlpipeline-minio-artifact", "stringData.secretkey")]


@pytest.mark.parametrize("source,words", [
    ("  - {id: x, kind: manifest, repo: kubeflow-manifests, path: a.yaml, build: false, sha256: '%s'}" % ("a" * 64),
     "false only on a kustomize source"),
    ("  - {id: x, kind: kustomize, repo: kubeflow-manifests, root: a, path: ., build: 'no', sha256: '%s'}" % ("a" * 64),
     "true or false"),
])
def test_a_bad_build_flag_names_the_source_and_field(tmp_path, source, words):
    from kubeforge.catalog import load_component

    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "component.yaml").write_text(f"name: c\nversion: '1'\nsources:\n{source}\n")
    (folder / "sources.lock").write_text("x:\n- {path: kustomization.yaml, sha256: %s}\n" % ("0" * 64))
    with pytest.raises(KubeforgeError) as e:
        load_component(folder, repos={"kubeflow-manifests": {"owner": "o", "name": "n", "ref": "r"}})
    assert e.value.field == "sources[x].build" and words in e.value.message and e.value.file.endswith("component.yaml")
