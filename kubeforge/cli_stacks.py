"""CLI: `kubeforge up | preview | destroy | stacks` (Pulumi Automation API, kubeforge/pulumi/).

Imports of Pulumi happen inside the commands; this module itself is cheap to import.
"""
from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Environment: stacks/<project>/Pulumi.<env>.yaml.")]
ProjectOpt = Annotated[str, typer.Option("--project", help="platform (the ML platform), cluster-onprem "
                                         "(bare-metal nodes via Ansible) or cluster-eks|cluster-gke|cluster-aks "
                                         "(a managed cluster with GPU node pools).")]
KubeconfigOpt = Annotated[str | None, typer.Option(
    "--kubeconfig", help="Kubeconfig of the target cluster; its path is remembered in the stack. Default: the "
    "stack's kubeforge:kubeconfig / kubeforge:clusterStack, then $KUBECONFIG.")]
BackendOpt = Annotated[str | None, typer.Option(
    "--backend", help="Pulumi state backend URL (file://, s3://, gs://, azblob://, https://api.pulumi.com). "
    "Default: $PULUMI_BACKEND_URL, then file://~/.kubeforge/state.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Also print Pulumi's own output.")]


def _emit_to(json_out: bool):
    # With --json, progress goes to stderr so stdout stays one JSON document.
    return (lambda line: print(line, file=sys.stderr, flush=True)) if json_out else \
        (lambda line: print(line, flush=True))


def _finish(result: dict, json_out: bool) -> None:
    if json_out:
        print(json.dumps(result, indent=2, default=str))
        return
    changes = ", ".join(f"{k} {v}" for k, v in sorted(result.get("changes", {}).items())) or "no changes"
    print(f"{result['action']} {result['environment']}: {changes}")
    for k, v in (result.get("outputs") or {}).items():
        print(f"  {k}: {json.dumps(v) if not isinstance(v, str) else v}")


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(env: EnvOpt, project: ProjectOpt = "platform", kubeconfig: KubeconfigOpt = None,
           backend: BackendOpt = None, json_out: JsonOpt = False, verbose: VerboseOpt = False) -> None:
        """Install or update an environment (`pulumi up` of its stack), progress per component."""
        from kubeforge.login import hints
        from kubeforge.pulumi import automation

        prep = automation.prepare(project, env, kubeconfig=kubeconfig, backend=backend)
        result = automation.run("up", prep, kubeconfig=kubeconfig, emit=_emit_to(json_out), verbose=verbose)
        _finish(result, json_out)
        for line in hints(getattr(prep.target, "plan", None), env=env):
            _emit_to(json_out)(line)

    @app.command("preview")
    def preview(env: EnvOpt, project: ProjectOpt = "platform", kubeconfig: KubeconfigOpt = None,
                backend: BackendOpt = None, policy: Annotated[bool, typer.Option(
                    "--policy", help="Also run the policy pack stacks/policy.")] = False,
                json_out: JsonOpt = False, verbose: VerboseOpt = False) -> None:
        """Show what `up` would change, per component, without changing anything."""
        from kubeforge.pulumi import automation

        prep = automation.prepare(project, env, kubeconfig=kubeconfig, backend=backend)
        _finish(automation.run("preview", prep, kubeconfig=kubeconfig, emit=_emit_to(json_out),
                               policy_pack=policy, verbose=verbose), json_out)

    @app.command("destroy")
    def destroy(env: EnvOpt, project: ProjectOpt = "platform", backend: BackendOpt = None,
                yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
                json_out: JsonOpt = False, verbose: VerboseOpt = False) -> None:
        """Remove everything the environment's stack installed (reverse dependency order)."""
        from kubeforge.pulumi import automation

        # The cluster is reached through the provider saved in the state: no kubeconfig, no plan
        # and no render needed (a profile that no longer validates must not block a teardown).
        prep = automation.prepare(project, env, kubeconfig=None, backend=backend, need_cluster=False,
                                  render=False, plan=False)
        automation.guard_cluster_destroy(prep)     # no cluster goes while a platform stack runs on it
        if not yes:
            what = f"{prep.target.project} stack {env!r} (state {prep.backend})"
            if not typer.confirm(f"Destroy every resource of the {what}?", default=False):
                print("not destroyed: nothing was changed", file=sys.stderr)
                raise typer.Exit(1)
        _finish(automation.run("destroy", prep, emit=_emit_to(json_out), verbose=verbose), json_out)

    @app.command("stacks")
    def stacks(env: Annotated[str | None, typer.Option("--env", "-e", help="Show this environment's stack "
                                                         "outputs.")] = None,
               project: ProjectOpt = "platform", backend: BackendOpt = None, json_out: JsonOpt = False) -> None:
        """List the environments (and their stacks in the state backend), or one stack's outputs."""
        from kubeforge.errors import KubeforgeError
        from kubeforge.pulumi import automation

        if env is not None:
            prep = automation.prepare(project, env, kubeconfig=None, backend=backend, need_cluster=False,
                                      render=False, plan=False)
            outs = automation.stack_outputs(prep)
            if json_out:
                print(json.dumps(outs, indent=2, default=str))
            else:
                for k, v in outs.items():
                    print(f"{k}: {json.dumps(v) if not isinstance(v, str) else v}")
            return
        rows = []
        for name in automation.environments(project):
            target = automation.resolve(project, name, need_cluster=False, render=False)
            rows.append({"environment": name, "profile": target.profile,
                         "file": str(target.stack_file.relative_to(target.stack_dir.parents[1])),
                         "cluster": target.kubeconfig_source or "$KUBECONFIG at run time"})
            if target.cluster is not None:
                rows[-1]["cluster"] = f"{target.cluster.cloud} {target.cluster.cluster_name} ({target.cluster.region})"
                rows[-1]["gpus"] = target.cluster.capacity()
        url, note = automation.backend_url(backend, create=False), ""
        try:
            state = automation.list_stacks(url, automation.find_pulumi(), project)
        except KubeforgeError as exc:
            state, note = {}, exc.message
        for r in rows:
            r["state"] = state.get(r["environment"])
        if json_out:
            print(json.dumps({"backend": url, "note": note, "environments": rows}, indent=2, default=str))
            return
        print(f"state: {url}" + (f"  ({note})" if note else ""))
        for r in rows:
            st = r["state"]
            status = (f"{st['resources']} resources, updated {st['last_update']}" if st
                      else "state unknown" if note else "not deployed")
            print(f"  {r['environment']:<10} profile {r['profile'] or '-':<12} {status}  [{r['file']}]")
            for line in r.get("gpus") or []:
                print(f"  {'':<10} GPUs {line}")
