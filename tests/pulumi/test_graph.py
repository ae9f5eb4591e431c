"""The real platform program, for every shipped profile and every example environment, under
Pulumi's mock runtime (the engine and the Kubernetes provider plugin cannot run here: the mock
monitor in mockrun.py stands in for the engine at its gRPC boundary and records every
registration). Everything rendered is real: profiles -> plan -> render from the upstream mirror.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from graph_summary import GATE_TYPE, GRAPHS, KUBECONFIG, dumps, run_profile, summarize, with_stack_secrets
from mockrun import RunResult, UnmockedInvoke
from shipped_profiles import SHIPPED, distinct, representatives

from kubeforge import api
from kubeforge.pulumi.graph import SYSTEM_NAMESPACES, component_type, split_api_version

REPO = Path(__file__).resolve().parents[2]
PLATFORM = REPO / "stacks" / "platform"
ENVS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in PLATFORM.glob("Pulumi.*.yaml"))
PROVIDER = "pulumi:providers:kubernetes"
# The engine's own resources (state-only, served by the engine, no provider plugin): exempt.
BUILTIN_TYPES = {GATE_TYPE, "pulumi:pulumi:StackReference"}
_RUNS: dict[str, RunResult] = {}


def _profile_run(name: str, mirror: Path) -> RunResult:
    if name not in _RUNS:
        _RUNS[name] = run_profile(name, mirror)
    return _RUNS[name]


def _env_config(env: str, mirror: Path) -> tuple[dict, dict]:
    """The stack file's kubeforge:* config as the engine passes it. The internal sources mirror of
    prod is unreachable here: the local copy of the same upstream files replaces it."""
    cfg = yaml.safe_load((PLATFORM / f"Pulumi.{env}.yaml").read_text())["config"]
    config = {k: v for k, v in cfg.items() if k.startswith("kubeforge:")}
    config["kubeforge:mirror"] = str(mirror)
    outputs = {}
    if "kubeforge:clusterStack" in config:
        # The cluster stack's state is another stack's: its output is the boundary we mock.
        outputs[config["kubeforge:clusterStack"]] = {"kubeconfig": KUBECONFIG}
    return config, outputs


def _env_run(env: str, mirror: Path, monkeypatch, tmp_path: Path) -> tuple[RunResult, dict]:
    key = f"env:{env}"
    config, outputs = _env_config(env, mirror)
    if key not in _RUNS:
        from graph_summary import mockrun

        from kubeforge.pulumi import platform

        if not any(k in config for k in ("kubeforge:kubeconfig", "kubeforge:clusterStack")):
            kc = tmp_path / "kubeconfig"      # dev: the cluster comes from $KUBECONFIG
            kc.write_text(KUBECONFIG)
            monkeypatch.setenv("KUBECONFIG", str(kc))
        secret_keys = with_stack_secrets(config)
        _RUNS[key] = mockrun.run(platform.main, config=config, stack=env, stack_outputs=outputs,
                                 secret_keys=secret_keys)
    return _RUNS[key], config


def _plan_for(config: dict):
    from kubeforge.pulumi.settings import parse

    s = parse({k.split(":", 1)[1]: v for k, v in config.items()}, file="test")
    return api.plan(api.load_profile(s.profile, s.overrides or None))


def check_graph(res: RunResult, plan) -> None:
    regs = res.registrations
    # No duplicate URNs: the engine would reject the second registration.
    assert len(res.urns) == len(set(res.urns)), [u for u in res.urns if res.urns.count(u) > 1][:3]
    assert res.invokes == []

    providers = [r for r in regs.values() if r.type == PROVIDER]
    assert len(providers) == 1, "exactly one explicit Kubernetes provider"
    prov = providers[0]
    assert "kubeconfig" in prov.secret_paths, "the provider's kubeconfig input is a secret"
    assert prov.inputs.get("enableServerSideApply") in (True, "true")
    assert prov.inputs.get("clusterIdentifier")
    prov_ref = f"{prov.urn}::{prov.id}"

    comps = {u: r for u, r in regs.items() if r.type.startswith("kubeforge:component:")}
    by_name = {r.name: u for u, r in comps.items()}
    # The component set is the plan's, one kubeforge:component:<Name> each.
    assert set(by_name) == set(plan.components)
    for name, urn in by_name.items():
        assert regs[urn].type == component_type(name)
    gates = {r.parent: u for u, r in regs.items() if r.type == GATE_TYPE}
    assert set(gates) == set(comps), "one readiness gate per component"

    children: dict[str, list[str]] = {}
    for u, r in regs.items():
        if r.parent in comps:
            children.setdefault(r.parent, []).append(u)
    objects = {u: r for u, r in regs.items() if r.type.startswith("kubernetes:") and r.custom}
    for u, r in objects.items():
        # Nothing uses a default provider: every object names the explicit one.
        assert r.provider == prov_ref, f"{u} uses provider {r.provider!r}"
        # Parented by the component its kubeforge.io/component label names.
        label = ((r.inputs.get("metadata") or {}).get("labels") or {}).get("kubeforge.io/component")
        assert regs[r.parent].name == label, u
    for r in regs.values():
        if r.remote:   # Helm charts: the provider goes in the providers map
            assert prov_ref in (r.provider, *r.providers.values()), r.urn
        elif r.custom and r.type not in BUILTIN_TYPES and r.type != PROVIDER:
            assert r.provider == prov_ref, r.urn

    # The plan's DAG: a component's objects wait for the gates of the components it depends on,
    # and each gate waits for everything of its component.
    for name, pc in plan.components.items():
        curn = by_name[name]
        gate = regs[gates[curn]]
        assert set(gate.dependencies) == set(children[curn]) - {gate.urn}
        want = {gates[by_name[d]] for d in pc.depends_on}
        assert set(regs[curn].dependencies) == want
        for u in children[curn]:
            if u != gate.urn:
                assert want <= set(regs[u].dependencies), f"{u} does not wait for {sorted(want)}"
    # Components of one wave are independent: no edge between them, so Pulumi runs them in parallel.
    for wave in plan.waves:
        members = {c for n in wave for c in children[by_name[n]]}
        for n in wave:
            for u in children[by_name[n]]:
                other = (set(regs[u].dependencies) & members) - set(children[by_name[n]])
                assert not other, f"{u} depends on {sorted(other)[:2]} of the same wave"

    ancestors = res.ancestors     # everything an object waits for, through gates and objects

    # Index the graph from the recorded inputs (independently of the program's own index).
    namespaces = {r.inputs["metadata"]["name"]: u for u, r in objects.items() if r.type == "kubernetes:core/v1:Namespace"}
    # Namespaces a custom resource's controller creates at runtime (a Kubeflow Profile's): the
    # resource says so in an annotation and makes Pulumi wait for its controller (waitFor).
    made = {((r.inputs.get("metadata") or {}).get("annotations") or {}).get("kubeforge.io/creates-namespace"): u
            for u, r in objects.items()}
    made.pop(None, None)
    for ns, u in made.items():
        assert ns not in namespaces, f"{u} creates namespace {ns}, which the stack renders too"
        assert (objects[u].inputs["metadata"].get("annotations") or {}).get("pulumi.com/waitFor"), \
            f"{u} creates namespace {ns} but Pulumi does not wait for its controller to do so"
    crds = {}
    for u, r in objects.items():
        if r.type.endswith(":CustomResourceDefinition"):
            spec = r.inputs["spec"]
            crds[(spec["group"], spec["names"]["kind"])] = (u, spec["names"]["plural"])
    hooks = [(u, r) for u, r in objects.items() if r.type.endswith("WebhookConfiguration")]
    charts = {u for u, r in regs.items() if r.remote}

    for u, r in objects.items():
        ns = (r.inputs.get("metadata") or {}).get("namespace")
        anc = None
        if ns:
            if ns in namespaces:
                anc = ancestors(u)
                assert namespaces[ns] in anc, f"{u} is not after its Namespace {ns}"
            elif ns in made:
                anc = ancestors(u)
                assert made[ns] in anc, f"{u} is not after {made[ns]}, which creates its namespace {ns}"
            else:
                assert ns in SYSTEM_NAMESPACES, f"{u} is in namespace {ns}, which nobody creates"
        group, _ = split_api_version(r.inputs["apiVersion"])
        kind = r.inputs["kind"]
        if "." in group and not group.endswith("k8s.io"):
            anc = anc if anc is not None else ancestors(u)
            if (group, kind) in crds:
                crd_urn, plural = crds[(group, kind)]
                assert crd_urn in anc, f"custom resource {u} is not after its CRD"
                controllers = {cu for cu in children[regs[crd_urn].parent]
                               if regs[cu].type in ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet")}
                assert controllers <= anc, f"custom resource {u} is not after the controllers of its CRD's component"
                for hu, hr in hooks:
                    for wh in hr.inputs.get("webhooks") or []:
                        for rule in wh.get("rules") or []:
                            groups, res_ = rule.get("apiGroups") or [], [x.split("/")[0] for x in rule.get("resources") or []]
                            ops = rule.get("operations") or ["*"]
                            if (group in groups or "*" in groups) and (plural in res_ or "*" in res_) \
                                    and ({"CREATE", "*"} & set(ops)) and hu != u:
                                assert hu in anc, f"{u} is not after the webhook {hu} that admits it"
            else:
                assert charts & anc, f"custom resource {u}: no CRD in the stack and no Helm chart before it"

    # A webhook configuration (or APIService) comes after the Service it calls and the workloads
    # that Service selects, so admission never points at a backend that is not running yet.
    services = {(r.inputs["metadata"].get("namespace"), r.inputs["metadata"]["name"]): u
                for u, r in objects.items() if r.type == "kubernetes:core/v1:Service"}
    workloads = [(u, r) for u, r in objects.items()
                 if r.type in ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet",
                               "kubernetes:apps/v1:DaemonSet")]

    def backends(ref: dict | None) -> set[str]:
        svc = services.get(((ref or {}).get("namespace"), (ref or {}).get("name")))
        if svc is None:
            return set()
        selector = (objects[svc].inputs.get("spec") or {}).get("selector") or {}
        out = {svc}
        for wu, wr in workloads:
            labels = ((wr.inputs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
            if selector and wr.inputs["metadata"].get("namespace") == ref.get("namespace") and \
                    all(labels.get(k) == v for k, v in selector.items()):
                out.add(wu)
        return out

    behind = [(hu, b) for hu, hr in hooks for wh in hr.inputs.get("webhooks") or []
              for b in backends((wh.get("clientConfig") or {}).get("service"))]
    behind += [(u, b) for u, r in objects.items() if r.type.endswith(":APIService")
               for b in backends((r.inputs.get("spec") or {}).get("service"))]
    for hu, b in behind:
        assert b in ancestors(hu), f"{hu} is not after {b}, which serves it"
    if any((wh.get("clientConfig") or {}).get("service") for _, hr in hooks for wh in hr.inputs.get("webhooks") or []):
        assert any(regs[b].type.startswith("kubernetes:apps/") for _, b in behind), \
            "service-backed webhooks, yet no workload found behind any"

    # Webhooks whose CA someone injects are waited for until the caBundle is there.
    for hu, hr in hooks:
        hooks_ = hr.inputs.get("webhooks") or []
        if any((w.get("clientConfig") or {}).get("service") and not (w.get("clientConfig") or {}).get("caBundle")
               for w in hooks_):
            ann = (hr.inputs["metadata"].get("annotations") or {})
            assert ann.get("pulumi.com/waitFor", "").startswith("jsonpath={.webhooks[0].clientConfig.caBundle}"), hu

    # Secrets are secret: inputs on the wire and outputs in the state.
    for u, r in objects.items():
        if r.type == "kubernetes:core/v1:Secret":
            for f in ("data", "stringData"):
                if f in r.inputs:
                    assert f in r.secret_paths, f"{u}.{f} is sent in plain text"
            assert {"data", "stringData"} <= set(r.additional_secret_outputs)
    assert "kubeconfig" in res.secret_outputs

    # Outputs: the installed versions, the ingress endpoint, the kubeconfig passthrough.
    assert res.outputs["versions"] == {n: pc.version for n, pc in plan.components.items()}
    assert "ingress" in res.outputs
    if any(r.inputs.get("metadata", {}).get("name") == "istio-ingressgateway" and r.type == "kubernetes:core/v1:Service"
           for r in objects.values()):
        assert res.outputs["ingress"]["service"] == "istio-system/istio-ingressgateway"


PROFILES = distinct()   # a profile that resolves to the same platform as another runs once


def test_every_shipped_profile_is_covered():
    assert {"base", "dev", "gpu-onprem", "serving", "training", "full", "gpu-operator"} <= set(SHIPPED)
    assert {representatives()[p] for p in SHIPPED} == set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_graph(profile, mirror_dir):
    res = _profile_run(profile, mirror_dir)
    check_graph(res, api.plan(api.load_profile(profile)))


@pytest.mark.parametrize("env", ENVS)
def test_environment_graph(env, mirror_dir, monkeypatch, tmp_path):
    res, config = _env_run(env, mirror_dir, monkeypatch, tmp_path)
    plan = _plan_for(config)
    check_graph(res, plan)
    regs = list(res.registrations.values())
    if "kubeforge:registry" in config:
        registry = config["kubeforge:registry"]
        images = [c["image"] for r in regs if r.type.startswith("kubernetes:apps/")
                  for c in (r.inputs["spec"]["template"]["spec"].get("containers") or [])]
        assert images and all(i.startswith(registry + "/") for i in images), \
            [i for i in images if not i.startswith(registry)][:3]
    for key, n in (config.get("kubeforge:replicas") or {}).items():
        ns, name = key.split("/")
        dep = next(r for r in regs if r.type == "kubernetes:apps/v1:Deployment" and r.name == key)
        assert dep.inputs["spec"]["replicas"] == n
    prov = next(r for r in regs if r.type == PROVIDER)
    assert prov.inputs["clusterIdentifier"] == config.get("kubeforge:clusterIdentifier", f"kubeforge-{env}")


def test_environments_differ_like_real_ones(mirror_dir):
    cfgs = {e: yaml.safe_load((PLATFORM / f"Pulumi.{e}.yaml").read_text())["config"] for e in ENVS}
    assert {"dev", "staging", "prod"} <= set(cfgs)
    assert len({c["kubeforge:profile"] for c in cfgs.values()}) == len(cfgs)
    assert len({json.dumps(c.get("kubeforge:gpu"), sort_keys=True) for c in cfgs.values()}) > 1
    assert "kubeforge:registry" not in cfgs["dev"] and "kubeforge:registry" in cfgs["prod"]
    assert cfgs["prod"].get("kubeforge:replicas")


@pytest.mark.parametrize("profile", SHIPPED)
def test_graph_summary_is_the_reviewed_one(profile, mirror_dir):
    want = GRAPHS / f"{profile}.json"
    got = dumps(summarize(profile, _profile_run(representatives()[profile], mirror_dir)))
    assert want.exists(), f"no reviewed summary {want}; run: .venv/bin/python tests/pulumi/graph_summary.py --write {profile}"
    assert got == want.read_text(), (
        f"the {profile} graph changed; review the diff of .venv/bin/python tests/pulumi/graph_summary.py "
        f"--write {profile} and commit it")


def test_gpu_operator_chart_is_pinned_to_the_catalog(mirror_dir):
    res = _profile_run("gpu-operator", mirror_dir)
    charts = [r for r in res.registrations.values() if r.type == "kubernetes:helm.sh/v4:Chart"]
    comp = api.plan(api.load_profile("gpu-operator")).components["gpu-operator"].component
    src = next(s for s in comp.sources if s.kind == "helm")
    assert [(c.inputs["chart"], c.inputs["version"], c.inputs["repositoryOpts"]["repo"]) for c in charts] == \
        [(src.chart, src.version, src.repo_url)]
    assert res.registrations[charts[0].parent].name == "gpu-operator"


def test_an_unmocked_invoke_fails_the_run_loudly():
    import pulumi
    from graph_summary import mockrun

    def program():
        pulumi.runtime.invoke("kubernetes:yaml:decode", {"text": "a: 1"})

    with pytest.raises(UnmockedInvoke, match="kubernetes:yaml:decode"):
        mockrun.run(program)


@pytest.mark.parametrize("profile", PROFILES)
def test_mandatory_policies_hold_on_the_profile_graph(profile, mirror_dir):
    """The policy pack's mandatory policies pass on every object the stack registers (advisory
    ones only report; see kubeforge/pulumi/policies.py)."""
    from mockrun import policy_violations

    assert policy_violations(_profile_run(profile, mirror_dir)) == []


@pytest.mark.parametrize("project", ["platform", "cluster-onprem", "cluster-eks", "cluster-gke", "cluster-aks"])
def test_projects_disable_default_providers_and_run_one_main(project):
    """Pulumi.yaml turns default providers off for every package, and __main__ only calls main()."""
    d = REPO / "stacks" / project
    settings = yaml.safe_load((d / "Pulumi.yaml").read_text())
    assert settings["runtime"]["name"] == "python"
    assert settings["config"]["pulumi:disable-default-providers"]["value"] == ["*"]
    code = [ln for ln in (d / "__main__.py").read_text().splitlines()
            if ln.strip() and not ln.startswith(("#", '"""', "from "))]
    assert code == ["main()"]


@pytest.mark.parametrize("config, message", [
    ({"kubeforge:profile": "no-such-profile"}, "unknown profile 'no-such-profile'"),
    ({}, "kubeforge:profile"),
    ({"kubeforge:profile": "dev", "kubeforge:gpu": {"mode": "sometimes"}}, "gpu.mode"),
])
def test_the_program_reports_bad_config_as_one_message(config, message):
    """Run straight through `pulumi up` (no kubeforge CLI checks): one RunError, no traceback."""
    import pulumi
    from graph_summary import mockrun

    from kubeforge.pulumi import platform

    with pytest.raises(pulumi.RunError, match=message.replace(".", r"\.")):
        mockrun.run(platform.main, config={**config, "kubeforge:kubeconfig": KUBECONFIG})
