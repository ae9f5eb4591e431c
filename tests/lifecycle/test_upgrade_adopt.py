"""Upgrading a cluster that kubeflow/manifests v1.11.0's own `kubectl apply` installed, and one that
kubeforge installed at v1.11.0, to today's 26.03 tuple, on the API stand-in of ssa_standin.py (the
cluster is the boundary this machine cannot reach: `connect()` is replaced by the stand-in).

The stand-in is loaded with the real v1.11.0 upstream trees built by real kustomize, applied the
way kubeflow/manifests v1.11.0's README applies each of them (README.md at 854bd3a):
client-side `kustomize build ... | kubectl apply -f -` for cert-manager (line 220), Istio
(243-247), Knative Serving (377-378) and Katib (480); server-side
`kubectl apply --server-side --force-conflicts` for KServe (466) and the training operator (561).
"""
from __future__ import annotations

import copy
import json

import pytest
from ssa_standin import LAST_APPLIED, ApiError, ApiStandIn, fieldset

from kubeforge import api
from kubeforge.catalog import load_catalog
from kubeforge.cli import main
from kubeforge.lifecycle.adopt import KUBECTL_MANAGERS, transferred
from kubeforge.lifecycle.upgrade import ident
from kubeforge.model import LABEL_COMPONENT, LABEL_PART_OF
from kubeforge.ordering import sort_key

OLD = "v1.11.0"
README_APPLY = {"cert-manager": "client", "istio": "client", "knative-serving": "client", "katib": "client",
                "kserve": "server", "training-operator": "server"}
ACCEPT = ["--accept-skip", "knative-serving", "--accept-skip", "cert-manager"]


def _user_objects():
    """What a team put on the cluster: none of it is kubeforge's to touch."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    app = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a"},
           "spec": {"selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}
    isvc = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "sklearn-iris", "namespace": "team-a"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                             "storageUri": "gs://kfserving-examples/models/sklearn/1.0/model"}}}}
    ksvc = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "hello", "namespace": "team-a"},
            "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/knative/helloworld-go:latest"}]}}}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "site-settings", "namespace": "kube-system"},
          "data": {"owner": "platform-team"}}
    return [ns, app, isvc, ksvc, cm]


def _old_trees():
    """(component, mirror-relative build dir) of each kubeflow/manifests tree at v1.11.0."""
    old = load_catalog(release=OLD)
    # The trees the component's default values select (dev's single-user install, as README_APPLY
    # applies it); multi-user overlays and raw files are other sources.
    return [(name, f"github/kubeflow/manifests/{OLD}/{s.root}/{s.path}".rstrip("/."))
            for name in README_APPLY for s in old[name].sources
            if s.kind == "kustomize" and all(old[name].defaults.get(k) == v for k, v in s.when.items())]


@pytest.fixture(scope="module")
def old_upstream(upstream_builds):
    upstream_builds.prebuild([rel for _, rel in _old_trees()])
    return [(name, o) for name, rel in _old_trees() for o in upstream_builds(rel)]


def kubectl_installed(old_upstream) -> ApiStandIn:
    """A cluster as kubeflow/manifests v1.11.0's README leaves it (its retry loop ends with every
    CRD before the resources it serves: so does this loader)."""
    cluster = ApiStandIn()
    for name, o in sorted(old_upstream, key=lambda t: sort_key(t[1])):
        o = copy.deepcopy(o)
        if cluster.get(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")):
            continue   # the same object in two trees (a Namespace): the second apply changes nothing
        if README_APPLY[name] == "client":
            cluster.kubectl_apply(o)
        else:
            cluster.kubectl_apply_server_side(o)
    for o in _user_objects():
        cluster.kubectl_apply(o)
    cluster.writes.clear()
    return cluster


def _use(monkeypatch, cluster):
    import kubeforge.verify.cluster as kc

    monkeypatch.setattr(kc, "connect", lambda kubeconfig=None, timeout=10.0: cluster)


def _dry_run(capsys, mirror_dir, *extra):
    rc = main(["upgrade", "-p", "dev", "--from", "cluster", "--dry-run", "--json", "--mirror", str(mirror_dir),
               *extra])
    return rc, json.loads(capsys.readouterr().out)


def test_kubectl_install_is_read_from_images_and_refused_for_the_knative_skip(old_upstream, monkeypatch, capsys,
                                                                              mirror_dir):
    cluster = kubectl_installed(old_upstream)
    _use(monkeypatch, cluster)
    rc, data = _dry_run(capsys, mirror_dir)
    assert rc == 1 and not data["ok"]
    comps = {c["name"]: c for c in data["components"]}
    # The v1.11.0 tuple, told from the images (no kubeforge label is on this cluster).
    for name, version in {"knative-serving": "1.16.2", "cert-manager": "1.16.1", "kserve": "0.15.2"}.items():
        assert comps[name]["old_version"] == version, comps[name]
        assert comps[name]["found"].startswith("images of release v1.11.0: "), comps[name]["found"]
    # Katib's images are the same in both releases, and so is its version.
    assert comps["katib"]["old_version"] == "0.19.0" and "26.03 and v1.11.0" in comps["katib"]["found"]
    # kubeflow/manifests 26.03 charts Istio 1.29.0 but runs v1.11.0's 1.28.0 images, so the images
    # cannot tell; Istio's own version label can.
    assert comps["istio"]["old_version"] == "1.28.0"
    assert comps["istio"]["found"] == ("app.kubernetes.io/version label of its workloads "
                                       "(its images are the same at 26.03 and v1.11.0)")
    # kubeflow/manifests does not install these: kubeforge adds them.
    assert comps["storage"]["change"] == comps["argo-workflows"]["change"] == "added"
    # Every object of the installed components is kubectl's: all of them are taken over.
    assert comps["knative-serving"]["adopt"] == len(
        [o for n, o in old_upstream if n == "knative-serving"]), "each live object kubectl applied"
    # CRDs as the cluster has them: stored versions read, not assumed.
    kcrds = {c["crd"]: c for c in comps["knative-serving"]["crds"]}
    assert kcrds["services.serving.knative.dev"]["stored_known"] is True
    assert kcrds["services.serving.knative.dev"]["stored_versions"] == ["v1"]
    assert {b["component"] for b in data["blockers"]} == {"knative-serving", "cert-manager"}
    prune = [p["object"] for p in data["prune"]]
    assert "RoleBinding cert-manager/cert-manager-cert-manager-tokenrequest" in prune
    assert cluster.writes == [], "a dry run writes nothing"


def _dropped_env(old_upstream, new_rendered):
    """(Deployment identity, env var name) that v1.11.0 sets and 26.03 no longer does, from the trees."""
    new = {ident(o): o for rc in new_rendered.components.values() for o in rc.objects}
    out = []
    for _, o in old_upstream:
        n = new.get(ident(o))
        if o["kind"] != "Deployment" or n is None:
            continue
        for c in o["spec"]["template"]["spec"]["containers"]:
            nc = next(x for x in n["spec"]["template"]["spec"]["containers"] if x["name"] == c["name"])
            gone = {e["name"] for e in c.get("env") or []} - {e["name"] for e in nc.get("env") or []}
            out += [(ident(o), c["name"], e) for e in sorted(gone)]
    return out


def _env(cluster, key, container):
    group, kind, ns, name = key
    live = cluster.get(f"{group}/v1", kind, name, ns)
    return {e["name"] for c in live["spec"]["template"]["spec"]["containers"] if c["name"] == container
            for e in c.get("env") or []}


@pytest.fixture(scope="module")
def new_dev(mirror_dir):
    return api.render(api.plan(api.load_profile("dev")), mirror=str(mirror_dir))


def test_upgrade_of_a_kubectl_install_leaves_everything_owned_by_kubeforge(old_upstream, new_dev, monkeypatch,
                                                                          capsys, mirror_dir):
    cluster = kubectl_installed(old_upstream)
    users = {ident(o): copy.deepcopy(cluster.store[ident(o)]) for o in _user_objects()}
    dropped = _dropped_env(old_upstream, new_dev)
    assert ("METRICS_DOMAIN" in {e for _, _, e in dropped} and "GOMEMLIMIT" in {e for _, _, e in dropped}), \
        "v1.11.0 -> 26.03 drops env vars (Knative's OpenCensus METRICS_DOMAIN, istiod's GOMEMLIMIT)"
    for key, container, env in dropped:
        assert env in _env(cluster, key, container)
    _use(monkeypatch, cluster)
    rc = main(["upgrade", "-p", "dev", "--from", "cluster", "--yes", "--mirror", str(mirror_dir), *ACCEPT])
    out = capsys.readouterr()
    assert rc == 0, out.out[-3000:] + out.err
    assert "took over" in out.out

    # Every object of 26.03 is on the cluster, owned by kubeforge alone among the appliers.
    for rc_ in new_dev.components.values():
        for o in rc_.objects:
            live = cluster.store.get(ident(o))
            assert live is not None, f"{o['kind']} {o['metadata']['name']} missing"
            managers = {(e["manager"], e["operation"]) for e in live["metadata"]["managedFields"]}
            assert ("kubeforge", "Apply") in managers and not managers & set(KUBECTL_MANAGERS), (ident(o), managers)
            assert LAST_APPLIED not in (live["metadata"].get("annotations") or {}), ident(o)
            assert live["metadata"]["labels"][LABEL_PART_OF] == "kubeforge"
            assert live["metadata"]["labels"][LABEL_COMPONENT] == rc_.name
    # The fields v1.11.0 set and 26.03 dropped are gone: kubeforge owned them after the take-over.
    for key, container, env in dropped:
        assert env not in _env(cluster, key, container), (key, env)
    # Objects of v1.11.0 that 26.03 does not have are gone.
    assert ("rbac.authorization.k8s.io", "RoleBinding", "cert-manager", "cert-manager-cert-manager-tokenrequest") \
        not in cluster.store
    # Nothing else on the cluster was touched: the team's objects are as they were, and every write
    # went to an object of 26.03 or of the prune list.
    for key, before in users.items():
        assert cluster.store[key] == before, key
    allowed = {ident(o) for rc_ in new_dev.components.values() for o in rc_.objects} | \
        {ident(o) for _, o in old_upstream}
    assert {k for _, k in cluster.writes} <= allowed
    assert not {k for _, k in cluster.writes} & set(users)


def test_without_the_take_over_v1_11_0_fields_would_stay(old_upstream, new_dev):
    """Why the take-over exists: a forced server-side apply alone leaves what kubectl owned."""
    cluster = kubectl_installed(old_upstream)
    dropped = _dropped_env(old_upstream, new_dev)
    for rc_ in new_dev.components.values():
        for o in rc_.objects:
            if o["kind"] in ("Deployment", "CustomResourceDefinition", "Namespace"):
                cluster.apply(o)
    assert all(env in _env(cluster, key, container) for key, container, env in dropped)


def test_take_over_unites_kubectl_entries_into_one_kubeforge_apply_entry():
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"},
           "data": {"a": "1", "b": "2"}}
    csa = {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
           "fieldsType": "FieldsV1", "fieldsV1": fieldset({"data": {"a": "1"}})}
    ssa = {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
           "fieldsV1": fieldset({"data": {"b": "2"}})}
    other = {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:x": {}}}}}
    status = {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "subresource": "status",
              "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}
    live = dict(obj, metadata=dict(obj["metadata"], managedFields=[ssa, csa, other, status]))
    entries = transferred(live)
    assert [(e["manager"], e["operation"], e.get("subresource")) for e in entries] == [
        ("kubeforge", "Apply", None), ("kube-controller-manager", "Update", None), ("kubectl", "Apply", "status")]
    assert entries[0]["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}}
    assert transferred(dict(obj, metadata=dict(obj["metadata"], managedFields=[other]))) is None


def test_take_over_retries_when_the_object_moves_on(old_upstream):
    from kubeforge.lifecycle.adopt import take_over

    class Busy(ApiStandIn):
        moved = 0

        def patch(self, api_version, kind, name, namespace, body):
            if self.moved < 1:           # a controller writes between kubeforge's read and patch
                self.moved += 1
                self.store[self.key(api_version, kind, name, namespace)]["metadata"]["resourceVersion"] += "x"
            return super().patch(api_version, kind, name, namespace, body)

    cluster = Busy()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}, "data": {"a": "1"}}
    cluster.kubectl_apply(cm)
    assert take_over(cluster, cm) is True and cluster.moved == 1
    entries = cluster.get("v1", "ConfigMap", "c", "n")["metadata"]["managedFields"]
    assert [e["manager"] for e in entries] == ["kubeforge"]
    with pytest.raises(ApiError):   # the stand-in's conflict is the API server's 409
        ApiStandIn.patch(cluster, "v1", "ConfigMap", "c", "n", {"metadata": {"resourceVersion": "0"}})


def test_kubeforge_install_of_v1_11_0_is_read_from_its_labels_and_upgraded(mirror_dir, new_dev, monkeypatch, capsys):
    old = api.render(api.plan(api.load_profile("dev"), release=OLD), mirror=str(mirror_dir))
    cluster = ApiStandIn()
    for o in old.objects():
        cluster.apply(o)
    for o in _user_objects():
        cluster.kubectl_apply(o)
    cluster.writes.clear()
    _use(monkeypatch, cluster)
    rc, data = _dry_run(capsys, mirror_dir, *ACCEPT)
    assert rc == 0, data["blockers"]
    comps = {c["name"]: c for c in data["components"]}
    assert comps["knative-serving"]["found"] == "kubeforge.io/component-version label"
    assert (comps["knative-serving"]["old_version"], comps["storage"]["change"]) == ("1.16.2", "same")
    assert all(c["adopt"] == 0 for c in data["components"]), "kubeforge owns it already"
    rc = main(["upgrade", "-p", "dev", "--from", "cluster", "--yes", "--mirror", str(mirror_dir), *ACCEPT])
    assert rc == 0, capsys.readouterr()
    labels = cluster.get("apps/v1", "Deployment", "istiod", "istio-system")["metadata"]["labels"]
    assert labels["kubeforge.io/component-version"] == "1.29.0"
    assert ("rbac.authorization.k8s.io", "RoleBinding", "cert-manager", "cert-manager-cert-manager-tokenrequest") \
        not in cluster.store


def test_pruning_needs_confirmation_and_keep_removed_keeps(old_upstream, monkeypatch, capsys, mirror_dir):
    cluster = kubectl_installed(old_upstream)
    _use(monkeypatch, cluster)
    rc = main(["upgrade", "-p", "dev", "--from", "cluster", "--mirror", str(mirror_dir), *ACCEPT])
    err = capsys.readouterr().err
    assert rc == 2 and "needs confirmation" in err and "--keep-removed" in err
    assert cluster.writes == [], "asked before touching the cluster"
    rc = main(["upgrade", "-p", "dev", "--from", "cluster", "--keep-removed", "--mirror", str(mirror_dir), *ACCEPT])
    assert rc == 0 and "kept 1 object(s)" in capsys.readouterr().out
    assert ("rbac.authorization.k8s.io", "RoleBinding", "cert-manager", "cert-manager-cert-manager-tokenrequest") \
        in cluster.store


def test_the_docs_excerpt_is_what_the_dry_run_prints(old_upstream, repo_root, monkeypatch, capsys, mirror_dir):
    cluster = kubectl_installed(old_upstream)
    _use(monkeypatch, cluster)
    main(["upgrade", "-p", "dev", "--from", "cluster", "--dry-run", "--mirror", str(mirror_dir)])
    printed = capsys.readouterr().out.splitlines()
    doc = (repo_root / "docs" / "lifecycle.md").read_text()
    excerpt = doc.split("(tests/lifecycle/test_upgrade_adopt.py), not from a live cluster:\n\n```\n", 1)[1]
    excerpt = excerpt.split("```", 1)[0].splitlines()
    assert excerpt and [line for line in printed if line in excerpt] == excerpt, "paste the dry run's lines"
