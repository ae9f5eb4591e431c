"""`kubeforge up | preview | destroy | stacks` through Pulumi's Automation API.

Everything that can be wrong with the input is checked before any Pulumi command runs (the
environment exists, its stack file names a profile, the profile plans and renders, a cluster is
named, the `pulumi` executable and a passphrase are there). State goes to a local file backend
unless told otherwise, so no account is needed; the location is always printed.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError
from kubeforge.paths import home
from kubeforge.pulumi import settings as stack_settings

PROJECTS = {"platform": "stacks/platform", "cluster-onprem": "stacks/cluster-onprem",
            "cluster-eks": "stacks/cluster-eks", "cluster-gke": "stacks/cluster-gke", "cluster-aks": "stacks/cluster-aks"}
CLUSTER_PROJECTS = tuple(p for p in PROJECTS if p.startswith("cluster-"))
PULUMI_VERSION = "3.272.0"   # the version the SDK in constraints.txt is released with
INSTALL_FIX = (f"install the Pulumi CLI: `curl -fsSL https://get.pulumi.com | sh -s -- --version {PULUMI_VERSION}` "
               "(installs to ~/.pulumi/bin; put that on PATH) or `brew install pulumi`; see docs/pulumi.md")
DEFAULT_STATE = Path("~/.kubeforge/state")


@dataclass
class Target:
    """A validated environment of a project: everything a Pulumi operation needs, nothing started."""

    project: str
    env: str
    stack_dir: Path
    stack_file: Path
    config: dict[str, Any]
    settings: stack_settings.StackSettings | None = None   # platform only
    cluster: Any = None                                     # cloud cluster projects: ClusterSettings
    plan: Any = None                                        # platform only
    totals: dict[str, int] = field(default_factory=dict)    # component -> resources
    waves: dict[str, int] = field(default_factory=dict)
    type_names: dict[str, str] = field(default_factory=dict)
    kubeconfig_source: str = ""

    @property
    def profile(self) -> str | None:
        return self.settings.profile if self.settings else self.cluster.profile if self.cluster else None


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def project_dir(project: str) -> Path:
    if project not in PROJECTS:
        raise KubeforgeError(f"unknown project {project!r}", field="--project",
                             fix=f"use one of: {', '.join(PROJECTS)}")
    return home() / PROJECTS[project]


def environments(project: str = "platform") -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir(project).glob("Pulumi.*.yaml"))


def resolve(project: str, env: str, *, kubeconfig: str | None = None, need_cluster: bool = True,
            render: bool = True, plan: bool = True) -> Target:
    """Validate an environment without starting anything. Raises KubeforgeError (exit 2)."""
    sdir = project_dir(project)
    envs = environments(project)
    if env not in envs:
        raise KubeforgeError(f"unknown environment {env!r}", field="-e/--env",
                             fix=f"use one of: {', '.join(envs) or '(none)'}, or create "
                                 f"{_rel(sdir / f'Pulumi.{env}.yaml')}")
    sfile = sdir / f"Pulumi.{env}.yaml"
    config, secret_keys = stack_settings.read_stack_file(sfile)
    target = Target(project, env, sdir, sfile, config)
    if project == "cluster-onprem":
        from kubeforge.pulumi.onprem import parse_settings

        parse_settings(config, base=sdir, file=_rel(sfile))
        return target
    if project in CLUSTER_PROJECTS:
        from kubeforge.pulumi import clusters

        # plan=False (destroy, stacks): the stack file's own shape only; the profile may have moved on.
        target.cluster = clusters.parse(clusters.PROJECTS[project], config, file=_rel(sfile), check_profile=plan)
        return target

    s = stack_settings.parse(config, file=_rel(sfile), secret_keys=secret_keys)
    target.settings = s
    if not plan:
        return target
    if kubeconfig is not None:
        if not Path(kubeconfig).expanduser().is_file():
            raise KubeforgeError(f"kubeconfig {kubeconfig} does not exist", field="--kubeconfig",
                                 fix="give the path of a kubeconfig file")
        target.kubeconfig_source = f"--kubeconfig {kubeconfig}"
    elif s.kubeconfig_secret or s.kubeconfig:
        if s.kubeconfig and not s.kubeconfig_secret:
            stack_settings.kubeconfig_text(s.kubeconfig, base=sdir, field="config.kubeforge:kubeconfig")
        target.kubeconfig_source = "config kubeforge:kubeconfig"
    elif s.cluster_stack:
        target.kubeconfig_source = f"stack {s.cluster_stack} (output kubeconfig)"
    elif any(p and Path(p).is_file() for p in os.environ.get("KUBECONFIG", "").split(os.pathsep)):
        target.kubeconfig_source = f"$KUBECONFIG ({os.environ['KUBECONFIG']})"
    elif need_cluster:
        raise KubeforgeError(
            "no cluster for this environment: the stack sets neither kubeforge:kubeconfig nor "
            "kubeforge:clusterStack, and KUBECONFIG names no file", file=_rel(sfile),
            field="config.kubeforge:kubeconfig",
            fix="pass --kubeconfig PATH, export KUBECONFIG, or set kubeforge:clusterStack to the cluster stack")

    from kubeforge import api
    from kubeforge.pulumi.graph import component_type

    profile = api.load_profile(s.profile, s.overrides or None)
    target.plan = api.plan(profile)
    if s.cluster_stack:
        from kubeforge.pulumi import clusters

        clusters.check_consumer(profile, s.cluster_stack, file=_rel(sfile), root=home() / "stacks")
    target.waves = {n: pc.wave for n, pc in target.plan.components.items()}
    target.type_names = {component_type(n): n for n in target.plan.components}
    if render:
        from kubeforge.pulumi.graph import stack_graph
        from kubeforge.secrets import Store

        # Counting resources needs no real secrets: throw-away values, never stored or shown.
        graph = stack_graph(target.plan, s, file=_rel(sfile), secrets=Store(stand_in=True))
        target.totals = {n: len(keys) + len(graph.charts.get(n, [])) for n, keys in graph.components.items()}
    return target


def find_pulumi() -> Path:
    """The `pulumi` executable: PATH, then the installer's ~/.pulumi/bin."""
    found = shutil.which("pulumi")
    if found:
        return Path(found)
    fallback = Path.home() / ".pulumi" / "bin" / "pulumi"
    if fallback.is_file() and os.access(fallback, os.X_OK):
        return fallback
    raise KubeforgeError("the `pulumi` executable is not installed (not on PATH, not in ~/.pulumi/bin)",
                         fix=INSTALL_FIX)


def backend_url(explicit: str | None = None, *, create: bool = True) -> str:
    """--backend, else $PULUMI_BACKEND_URL, else a local file backend under ~/.kubeforge/state."""
    url = explicit or os.environ.get("PULUMI_BACKEND_URL")
    if url:
        return url
    path = DEFAULT_STATE.expanduser()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path.resolve().as_uri()


def require_passphrase() -> None:
    if "PULUMI_CONFIG_PASSPHRASE" not in os.environ and "PULUMI_CONFIG_PASSPHRASE_FILE" not in os.environ:
        raise KubeforgeError(
            "stack secrets (the kubeconfig) are encrypted with a passphrase, and none is set",
            field="PULUMI_CONFIG_PASSPHRASE",
            fix="export PULUMI_CONFIG_PASSPHRASE=... (or PULUMI_CONFIG_PASSPHRASE_FILE=path); keep it with the state")


def open_stack(target: Target, backend: str, pulumi_exe: Path, *, create: bool = True):
    """Select (or create) the environment's stack in the project directory."""
    from pulumi import automation as auto

    opts = auto.LocalWorkspaceOptions(
        work_dir=str(target.stack_dir), pulumi_command=_command(pulumi_exe), secrets_provider="passphrase",
        env_vars={"PULUMI_BACKEND_URL": backend, "PULUMI_SKIP_UPDATE_CHECK": "true"})
    if create:
        return auto.create_or_select_stack(target.env, work_dir=str(target.stack_dir), opts=opts)
    return auto.select_stack(target.env, work_dir=str(target.stack_dir), opts=opts)


def _command(exe: Path):
    """The Automation API's handle on exactly this executable (it runs `pulumi version` once)."""
    from pulumi import automation as auto

    if exe.parent.name == "bin":
        return auto.PulumiCommand(root=str(exe.parent.parent))
    return auto.PulumiCommand()


@dataclass
class Prepared:
    target: Target
    backend: str
    pulumi: Path


def prepare(project: str, env: str, *, kubeconfig: str | None, backend: str | None,
            need_cluster: bool = True, render: bool = True, plan: bool = True) -> Prepared:
    """All checks, cheapest first; nothing is started until every one passed."""
    resolve(project, env, need_cluster=False, render=False, plan=False)   # environment and stack file
    exe = find_pulumi()
    require_passphrase()
    target = resolve(project, env, kubeconfig=kubeconfig, need_cluster=need_cluster, render=render, plan=plan)
    return Prepared(target, backend_url(backend), exe)


def _progress(target: Target, emit: Callable[[str], None]):
    from kubeforge.pulumi.progress import ComponentProgress

    return ComponentProgress(target.totals, target.waves, target.type_names, emit)


def _set_cli_config(stack: Any, kubeconfig: str | None) -> None:
    """--kubeconfig is remembered in the stack as its absolute path: a path is no secret and never
    puts credentials on a command line (`pulumi config set` takes the value as an argument); the
    program reads the file and passes its content to the provider as a secret."""
    if kubeconfig is not None:
        from pulumi import automation as auto

        path = str(Path(kubeconfig).expanduser().resolve())
        stack.set_config("kubeforge:kubeconfig", auto.ConfigValue(value=path, secret=False))


def ensure_secrets(stack: Any, target: Target) -> list[str]:
    """Make the install's missing per-install secrets once and store them in the stack's config as
    one Pulumi secret (`kubeforge:secrets`), so the program reads the same values on every run and
    two environments never share one. Returns the names it added (never the values)."""
    import json

    from pulumi import automation as auto

    from kubeforge import api
    from kubeforge.secrets import Store

    current: dict[str, str] = {}
    all_config = stack.get_all_config()
    key = f"{stack_settings.NS}:secrets"
    if key in all_config:
        try:
            current = json.loads(all_config[key].value)
        except ValueError:
            raise KubeforgeError("kubeforge:secrets in the stack config is not a JSON object",
                                 field="config.kubeforge:secrets",
                                 fix=f"restore it, or `pulumi config rm {key}` to make new secrets") from None
    store = Store(current)
    api.render(target.plan, mirror=target.settings.mirror or target.plan.profile.mirror, skip_helm=True,
               secrets=store)
    if store.added:
        stack.set_config(key, auto.ConfigValue(value=json.dumps(store.values(), sort_keys=True), secret=True))
    return store.added


def run(action: str, prep: Prepared, *, kubeconfig: str | None = None, emit: Callable[[str], None] = print,
        policy_pack: bool = False, verbose: bool = False) -> dict[str, Any]:
    """Run up / preview / destroy on a prepared target; returns a JSON-able summary."""
    from pulumi.automation import errors as auto_errors

    t = prep.target
    emit(f"state: {prep.backend}  (override with --backend or PULUMI_BACKEND_URL)")
    what = t.project
    if t.settings:
        what = f"profile {t.settings.profile}" + (f", {len(t.totals)} components, "
                                                  f"{sum(t.totals.values())} resources" if t.totals else "")
    if t.cluster is not None:
        c = t.cluster
        what = f"{c.cloud.upper()} cluster {c.cluster_name} in {c.region}, Kubernetes {c.kubernetes_version}, " \
               f"profile {c.profile} (gpu.mode {c.gpu_mode})"
        for line in c.capacity():
            emit(f"  GPUs {line}")
        for w in c.warnings:
            emit(f"warning: {w}")
    emit(f"stack: {t.env} in {_rel(t.stack_dir)} ({what}); cluster from {t.kubeconfig_source or 'stack config'}")
    stack = open_stack(t, prep.backend, prep.pulumi)
    _set_cli_config(stack, kubeconfig)
    if t.plan is not None and action in ("up", "preview") and \
            any(pc.component.secrets for pc in t.plan.components.values()):
        added = ensure_secrets(stack, t)
        if added:
            emit(f"secrets: made {len(added)} per-install secret(s) for {t.env} and stored them as Pulumi "
                 f"secrets in the stack config (kubeforge:secrets): {', '.join(added)}")
    progress = _progress(t, emit)
    on_output = (lambda line: emit(line.rstrip())) if verbose else None
    result: dict[str, Any] = {"environment": t.env, "project": t.project, "action": action,
                              "backend": prep.backend}
    try:
        if action == "up":
            res = stack.up(on_event=progress, on_output=on_output, color="never")
            result["result"] = res.summary.result
            result["changes"] = dict(res.summary.resource_changes or {})
            result["outputs"] = {k: ("[secret]" if v.secret else v.value) for k, v in res.outputs.items()}
        elif action == "preview":
            packs = [str(home() / "stacks" / "policy")] if policy_pack else None
            res = stack.preview(on_event=progress, on_output=on_output, color="never", policy_packs=packs)
            result["changes"] = dict(res.change_summary or {})
        elif action == "destroy":
            res = stack.destroy(on_event=progress, on_output=on_output, color="never")
            result["result"] = res.summary.result
            result["changes"] = dict(res.summary.resource_changes or {})
        else:
            raise ValueError(action)
    except auto_errors.CommandError as exc:
        from kubeforge.errors import CheckFailed

        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        detail = "\n".join(progress.diagnostics[-5:]) or (lines[-1] if lines else "no message")
        raise CheckFailed(f"pulumi {action} failed for stack {t.env}: {detail}",
                          fix="see the messages above; re-run with --verbose for Pulumi's own output") from None
    result["components"] = progress.summary()
    return result


def stack_outputs(prep: Prepared) -> dict[str, Any]:
    from pulumi.automation import errors as auto_errors

    try:
        stack = open_stack(prep.target, prep.backend, prep.pulumi, create=False)
    except auto_errors.StackNotFoundError:
        raise KubeforgeError(f"stack {prep.target.env} does not exist in {prep.backend}", field="-e/--env",
                             fix=f"create it with `kubeforge up -e {prep.target.env}`") from None
    return {k: ("[secret]" if v.secret else v.value) for k, v in stack.outputs().items()}


def list_stacks(backend: str, pulumi_exe: Path, project: str = "platform") -> dict[str, dict[str, Any]]:
    from pulumi import automation as auto

    ws = auto.LocalWorkspace(work_dir=str(project_dir(project)), pulumi_command=_command(pulumi_exe),
                             env_vars={"PULUMI_BACKEND_URL": backend, "PULUMI_SKIP_UPDATE_CHECK": "true"})
    out = {}
    for s in ws.list_stacks():
        out[s.name] = {"last_update": s.last_update, "resources": s.resource_count,
                       "running": s.update_in_progress}
    return out


def platform_users(project: str, env: str) -> list[tuple[str, Path]]:
    """Platform environments whose kubeforge:clusterStack names this cluster stack (in this checkout)."""
    from kubeforge.pulumi.clusters import stack_ref_target

    name = f"kubeforge-{project}"
    out = []
    for penv in environments("platform"):
        sfile = project_dir("platform") / f"Pulumi.{penv}.yaml"
        config, _ = stack_settings.read_stack_file(sfile)
        if stack_ref_target(str(config.get("clusterStack") or "")) == (name, env):
            out.append((penv, sfile))
    return out


def guard_cluster_destroy(prep: Prepared) -> None:
    """A cluster stack is not destroyed while a platform stack still runs on it: the platform's load
    balancers and volumes live in the cloud account, outside the cluster stack's state, and would be
    stranded (still billed) once the cluster that manages them is gone. Exit 2 naming what to run."""
    t = prep.target
    if t.project not in CLUSTER_PROJECTS:
        return
    users = platform_users(t.project, t.env)
    if not users:
        return
    deployed = list_stacks(prep.backend, prep.pulumi, "platform")
    live = [(penv, f) for penv, f in users if (deployed.get(penv) or {}).get("resources")]
    if live:
        penv, sfile = live[0]
        n = deployed[penv]["resources"]
        raise KubeforgeError(
            f"platform stack {penv} ({_rel(sfile)}, {n} resources in {prep.backend}) still runs on this cluster "
            f"(kubeforge:clusterStack); destroying the cluster first would strand its load balancers and volumes",
            field="--project", fix=f"run first: kubeforge destroy -e {penv}" +
            "".join(f"; kubeforge destroy -e {p}" for p, _ in live[1:]))
