"""CLI: `kubeforge verify`, `kubeforge apply`, `kubeforge teardown`, `kubeforge upgrade`. Heavy imports
stay inside."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kubeforge.errors import CheckFailed, KubeforgeError

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile name (profiles/<name>.yaml) or path.")]
KubeconfigOpt = Annotated[str | None, typer.Option(
    "--kubeconfig", help="Kubeconfig of the cluster (default: $KUBECONFIG, then ~/.kube/config).")]
MirrorOpt = Annotated[str | None, typer.Option(
    "--mirror", help="Sources mirror for rendering (default: the profile's, then $KUBEFORGE_MIRROR).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout (human output on stderr).")]


def _out(text: str) -> None:
    print(text)


def _write_json(dest: str, data: dict) -> None:
    text = json.dumps(data, indent=2) + "\n"
    if dest == "-":
        sys.stdout.write(text)
    else:
        Path(dest).write_text(text)


def _rendered(profile: str, mirror: str | None):
    """Rendered objects of the profile; Helm-chart components without `helm` come back empty."""
    from kubeforge import api
    from kubeforge.lifecycle.rendered import render_available

    rendered, missing = render_available(api.plan(api.load_profile(profile)), mirror=mirror)
    for name in missing:
        print(f"note: {name} is a Helm chart and `helm` is not on PATH: its objects are found on the "
              "cluster by label instead of from the render", file=sys.stderr)
    return rendered


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify_cmd(
        profile: ProfileOpt,
        kubeconfig: KubeconfigOpt = None,
        inventory: Annotated[str | None, typer.Option(
            "--inventory", "-i", help="Ansible inventory: also run the node checks on its hosts (testinfra).")] = None,
        junit: Annotated[str | None, typer.Option("--junit", help="Write a JUnit XML report here.")] = None,
        json_out: JsonOpt = False,
        json_file: Annotated[str | None, typer.Option(
            "--json-file", help="Also write the JSON summary {ok, counts, results, failures} to this file.")] = None,
        keep_on_failure: Annotated[bool, typer.Option(
            "--keep-on-failure", help="Keep the throw-away namespaces of failed checks for inspection.")] = False,
        check: Annotated[list[str] | None, typer.Option(
            "--check", "-c", help="Run only this check (or every check of this component); repeatable.")] = None,
        workers: Annotated[int, typer.Option("--workers", help="Checks run in parallel at most.")] = 4,
        list_only: Annotated[bool, typer.Option("--list", help="List the checks of the profile and exit "
                                                "(offline).")] = False,
        images: Annotated[bool, typer.Option("--images", help="List the images the checks pull (with the "
                                             "profile's registry) and exit (offline).")] = False,
        mirror: MirrorOpt = None,
    ) -> None:
        """Run the conformance suite of the profile's components against a cluster.

        Readiness (CRDs, workloads, webhooks, pods, Pod Security) is derived from the rendered objects; functional checks come from components/<name>/checks.py and run in throw-away namespaces. Exit 0: all passed; 1: a check failed; 2: bad input or no usable cluster.
        """
        from kubeforge.verify import session

        if workers < 1:
            raise KubeforgeError("must be at least 1", field="--workers", fix="--workers 4")
        if list_only or images:
            plan, _rendered_objs, checks = session.prepare(profile, only=check, inventory=inventory,
                                                           mirror=mirror)
            if images:
                from kubeforge.verify.images import CHECK_IMAGES, check_image

                refs = [check_image(key, plan.profile.registry) for key in CHECK_IMAGES]
                _out(json.dumps(refs, indent=2) if json_out else "\n".join(refs))
                return
            if json_out:
                _write_json("-", {"profile": plan.profile.name, "checks": [
                    {"name": c.name, "component": c.component, "kind": c.kind, "timeout_s": c.timeout,
                     "description": c.description, "skip": c.skip_reason or None} for c in checks]})
                return
            for c in checks:
                note = f"  [skip: {c.skip_reason}]" if c.skip_reason else ""
                _out(f"{c.name:55} {c.kind:9} {c.timeout:5.0f}s  {c.description}{note}")
            return
        out = session.verify(profile, kubeconfig=kubeconfig, inventory=inventory, junit=junit,
                             json_out=json_file, keep_on_failure=keep_on_failure,
                             only=check, workers=workers, mirror=mirror, progress=not json_out)
        if json_out:
            _write_json("-", out)
        if not out["ok"]:
            raise CheckFailed(f"{len(out['failures'])} check(s) failed: {', '.join(out['failures'])}",
                              fix="read each failure above; rerun one with --check NAME --keep-on-failure")

    @app.command("apply")
    def apply_cmd(
        profile: ProfileOpt,
        kubeconfig: KubeconfigOpt = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Send every object with dryRun=All: the "
                                              "server admits or refuses each one, nothing is persisted, "
                                              "nothing is waited for.")] = False,
        force_conflicts: Annotated[bool, typer.Option(
            "--force-conflicts", help="Take over fields another field manager owns (default: report the "
            "conflict and stop).")] = False,
        wait: Annotated[float, typer.Option("--wait", help="Seconds each wait may take (CRDs Established, "
                                            "workloads available, webhooks serving).")] = 300.0,
        write_lock: Annotated[str | None, typer.Option(
            "--write-lock", help="Where to record what was installed (the lock `kubeforge upgrade --from` "
            "reads). Default: ~/.kubeforge/locks/<cluster>/<profile>.lock.json.")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="JSON summary on stdout (progress goes to "
                                               "stderr).")] = False,
        mirror: MirrorOpt = None,
    ) -> None:
        """Install or update the profile on a cluster without Pulumi, in one pass: wave by wave; per wave Namespaces and CRDs (wait Established), then workloads (wait available), then webhook configurations (wait caBundle and ready endpoints), then custom resources. Server-side apply, field manager kubeforge. Rerun it to pick up after an interruption: what is applied reports unchanged. Exit 0: applied; 1: an object was refused or a wait ran out; 2: bad input or no usable cluster."""
        from kubeforge import api
        from kubeforge.lifecycle import apply as ap

        if wait <= 0:
            raise KubeforgeError("must be positive", field="--wait", fix="--wait 300")
        # Everything is rendered, validated and ordered before the cluster is touched.
        from kubeforge.render import render_key
        from kubeforge.validate import validate_cached

        rendered = api.render(api.plan(api.load_profile(profile)), mirror=mirror)
        report, _cached = validate_cached(rendered, render_key(rendered.plan))
        if report.errors:
            for f in report.errors:
                print(f.line(), file=sys.stderr)
            raise CheckFailed(f"{len(report.errors)} validation error(s) in profile {rendered.plan.profile.name} "
                              "(listed above): nothing was applied", fix="fix what each line names, then rerun")
        ap.plan_apply(rendered)
        from kubeforge.verify.cluster import connect

        cluster = connect(kubeconfig)
        if ap.detect_installer(cluster, rendered) == "pulumi":
            raise KubeforgeError(f"profile {rendered.plan.profile.name} on {cluster.server} was installed by "
                                 "Pulumi (its field manager owns the objects); applying it directly would "
                                 "fight the stack", field="--profile",
                                 fix="update it with `kubeforge up -e ENV` (or pulumi up in stacks/platform)")
        lock = None if dry_run else _lock_path(rendered, cluster.server, write_lock)
        echo = (lambda s: print(s, file=sys.stderr)) if json_out else print
        result = ap.Applier(cluster, dry_run=dry_run, force_conflicts=force_conflicts, wait_s=wait,
                            echo=echo).run(rendered)
        summary = result.as_dict()
        if result.ok and not dry_run:
            summary["lock"] = str(_write_install_lock(rendered, lock))
        if json_out:
            _write_json("-", summary)
        c = result.counts()
        echo(("dry run: " if dry_run else "") + ", ".join(f"{n} {a}" for a, n in sorted(c.items()))
             + (f"; lock: {summary['lock']} (pass it to kubeforge upgrade --from)" if summary.get("lock") else ""))
        if result.ok and not dry_run:
            from kubeforge.login import hints

            for line in hints(rendered.plan, profile=profile):
                echo(line)
        if not result.ok:
            if result.errors and dry_run:
                raise CheckFailed(f"dry run: {len(result.errors)} object(s) refused by the API server "
                                  "(listed above)", fix="fix them and rerun; nothing was persisted")
            raise CheckFailed(f"apply stopped: {result.stopped}",
                              fix="fix the cause and rerun kubeforge apply: what is applied stays and "
                                  "reports unchanged")

    @app.command("teardown")
    def teardown_cmd(
        profile: ProfileOpt,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the ordered plan; touch nothing "
                                              "(offline unless --kubeconfig is given).")] = False,
        keep_crds: Annotated[bool, typer.Option("--keep-crds", help="Leave the CRDs (and so any data in "
                                                "custom resources outside the platform).")] = False,
        force_finalizers: Annotated[bool, typer.Option(
            "--force-finalizers", help="Remove finalizers of objects still stuck after the wait "
            "(their controllers' clean-up is skipped); at once where no controller is left to remove them "
            "(none of their component's workloads runs).")] = False,
        kubeconfig: KubeconfigOpt = None,
        wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for each step's objects to go.")] = 180.0,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
        json_out: JsonOpt = False,
        component: Annotated[list[str] | None, typer.Option(
            "--component", "-c", help="Tear down only this component of the profile (repeatable); none "
            "that stays may need it.")] = None,
        mirror: MirrorOpt = None,
    ) -> None:
        """Remove the platform: reverse plan order; per component custom resources, webhooks, workloads, namespaces; CRDs last. Stuck objects are reported with their finalizers."""
        from kubeforge.lifecycle import teardown as td

        if wait <= 0:
            raise KubeforgeError("must be positive", field="--wait", fix="--wait 180")
        rendered = _rendered(profile, mirror)
        if component:
            td.check_removable(rendered.plan, component)
        plan = td.plan_teardown(rendered, keep_crds=keep_crds, components=component or None)
        if dry_run and not kubeconfig:
            if json_out:
                _write_json("-", plan.as_dict())
                return
            _print_teardown(plan)
            return
        if not dry_run and not yes and not sys.stdin.isatty():
            raise KubeforgeError("teardown deletes the platform and needs confirmation", field="--yes",
                                 fix="pass --yes (or run --dry-run first to see the plan)")
        from kubeforge.verify.cluster import connect, require_installed

        cluster = connect(kubeconfig)
        require_installed(cluster, rendered.plan)
        ex = td.Executor(cluster, rendered, force_finalizers=force_finalizers, wait_s=wait,
                         echo=(lambda s: print(s, file=sys.stderr)) if json_out else print)
        if dry_run:
            for s in plan.steps:
                s.objects = ex.resolve(s)
                s.all_instances_of = []
            if json_out:
                _write_json("-", plan.as_dict())
            else:
                _print_teardown(plan)
            return
        if not yes:
            what = f"{', '.join(component)} of profile" if component else "profile"
            typer.confirm(f"Delete {what} {plan.profile} from {cluster.server}?", abort=True)
        from kubeforge.lifecycle.apply import detect_installer

        how = detect_installer(cluster, rendered)
        results = ex.run(plan)
        rep = td.report(results)
        rep["installer"] = how
        if json_out:
            _write_json("-", rep)
        for s in rep["stuck"]:
            print(f"stuck: {s['object']} ({s['component']} {s['phase']}): finalizers "
                  f"{', '.join(s['finalizers']) or 'none'}" + (f"; {s['detail']}" if s["detail"] else ""),
                  file=sys.stderr)
        if how == "pulumi":
            print("note: Pulumi installed this platform; run `pulumi refresh --yes` in stacks/platform so "
                  "its state forgets the deleted resources", file=sys.stderr)
        if not rep["ok"]:
            raise CheckFailed(f"teardown stopped: {len(rep['stuck'])} object(s) stuck (listed above)",
                              fix="let their controllers finish (they still run), remove what holds them, "
                                  "or rerun with --force-finalizers to skip their clean-up")

    @app.command("upgrade")
    def upgrade_cmd(
        profile: ProfileOpt,
        from_: Annotated[str, typer.Option(
            "--from", help="What is installed now: `cluster` (read it from the cluster: kubeforge's labels, "
            "else the images of a kubeflow/manifests install), a release kubeforge knows (v1.11.0), a render "
            "directory of the old release (kubeforge render -o DIR), a lock (kubeforge upgrade --write-lock), "
            "or a profile.")],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the analysis and order; touch nothing "
                                              "(offline unless --kubeconfig is given or --from cluster).")] = False,
        kubeconfig: KubeconfigOpt = None,
        accept_skip: Annotated[list[str] | None, typer.Option(
            "--accept-skip", help="Accept the documented risk of jumping over minor releases of this component "
            "against its project's upgrade policy (the refusal names it); repeatable.")] = None,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before pruning the objects the new "
                                          "release no longer has.")] = False,
        keep_removed: Annotated[bool, typer.Option(
            "--keep-removed", help="Leave the objects the new release no longer has on the cluster.")] = False,
        write_lock: Annotated[str | None, typer.Option(
            "--write-lock", help="Also write the target's lock here, to pass as --from next time.")] = None,
        json_out: JsonOpt = False,
        mirror: MirrorOpt = None,
    ) -> None:
        """Upgrade to PROFILE from what --from describes: version changes, objects added/changed/removed, CRD changes, gates (each project's upgrade policy, the Istio/Knative/KServe tuple on both sides), and the order. An install kubeforge did not make is taken over (server-side apply ownership). Refuses an upgrade that would strand stored objects or skip minor releases against upstream's policy, with the reason and the fix (exit 1)."""
        from kubeforge.catalog import load_catalog
        from kubeforge.lifecycle import upgrade as up

        accept = list(accept_skip or [])
        unknown = [a for a in accept if a not in load_catalog()]
        if unknown:
            raise KubeforgeError(f"unknown component {unknown[0]!r}", field="--accept-skip",
                                 fix=f"use one of: {', '.join(sorted(load_catalog()))}")
        from_cluster = from_ == up.FROM_CLUSTER
        new_rendered = _rendered(profile, mirror)
        new = up.side_from_rendered(new_rendered, f"profile {profile}")
        cluster = None
        stored = live_crds = None
        if from_cluster or not dry_run or kubeconfig:  # a dry run reads the cluster when given one
            from kubeforge.verify.cluster import connect, require_installed

            cluster = connect(kubeconfig)
            if not from_cluster:
                require_installed(cluster, new.plan)
                crds = cluster.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
                live_crds = {c["metadata"]["name"]: c for c in crds}
                stored = {n: list((c.get("status") or {}).get("storedVersions") or []) for n, c in live_crds.items()}
        old = up.load_from(from_, mirror=mirror, profile=profile, cluster=cluster)
        result = up.analyze(old, new, stored=stored, live_crds=live_crds, accept=accept,
                            known=up.known_releases(),
                            mirror_refs=up.mirror_refs(mirror or new_rendered.plan.profile.mirror))
        if write_lock:
            Path(write_lock).write_text(json.dumps(up.lock_of(new), indent=2) + "\n")
        if json_out:
            _write_json("-", result.as_dict())
        else:
            _print_upgrade(result)
        if not result.ok:
            raise CheckFailed(f"upgrade refused: {len(result.blockers)} blocker(s) (reasons and fixes above)",
                              fix="apply the fixes listed, then rerun")
        if dry_run:
            return
        from kubeforge.lifecycle.adopt import Adopting, prune
        from kubeforge.lifecycle.apply import apply_upgrade, detect_installer

        changed = sorted({c for step in result.order if step["wave"] is not None for c in step["components"]})
        say = (lambda s: print(s, file=sys.stderr)) if json_out else print
        if detect_installer(cluster, new_rendered) == "pulumi":
            say("Pulumi installed this platform: run `pulumi up` in stacks/platform; it applies in this order.")
            return
        pruned = [] if keep_removed else result.prune
        if pruned and not yes:
            if not sys.stdin.isatty():
                raise KubeforgeError(f"the upgrade prunes {len(pruned)} object(s) the new release no longer has "
                                     "(listed above) and needs confirmation", field="--yes",
                                     fix="pass --yes to prune them, or --keep-removed to leave them")
            typer.confirm(f"Upgrade {cluster.server} and delete the {len(pruned)} object(s) listed under prune?",
                          abort=True)
        adopting = Adopting(cluster)
        apply_upgrade(adopting, new_rendered, changed, echo=say)
        if adopting.adopted:
            say(f"took over {len(adopting.adopted)} object(s) from kubectl's field managers")
        if pruned:
            rep = prune(cluster, new_rendered, pruned)
            if not rep["ok"]:
                raise CheckFailed(f"prune stopped: {len(rep['stuck'])} object(s) stuck: "
                                  + ", ".join(f"{s['object']} ({', '.join(s['finalizers']) or 'no finalizers'})"
                                              for s in rep["stuck"]),
                                  fix="let their controllers finish, or remove what holds them, then rerun")
        elif result.prune:
            say(f"kept {len(result.prune)} object(s) the new release no longer has (--keep-removed)")
        removed = [c.name for c in result.components if c.change == "removed"]
        if removed and old.rendered is None:
            say(f"note: {', '.join(removed)} left the profile; --from names no profile to render them from, so "
                f"remove them with `kubeforge teardown -p <old profile> --component NAME`")
        elif removed:
            from kubeforge.lifecycle import teardown as td

            rep = td.report(td.remove_components(cluster, old.rendered, removed, echo=say))
            if not rep["ok"]:
                raise CheckFailed(f"upgraded, but removing {', '.join(removed)} stopped: "
                                  f"{len(rep['stuck'])} object(s) stuck",
                                  fix="see why above, then rerun the upgrade: it removes what is left")


def _lock_path(rendered, server: str, dest: str | None) -> Path:
    """Where `kubeforge apply` records what it installed; its folder made before anything is applied."""
    import re

    if dest:
        path = Path(dest)
    else:
        where = re.sub(r"[^A-Za-z0-9.-]+", "_", server.split("://", 1)[-1]).strip("_") or "cluster"
        path = Path.home() / ".kubeforge" / "locks" / where / f"{rendered.plan.profile.name}.lock.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KubeforgeError(f"cannot create the lock's folder: {exc.strerror}", file=str(path.parent),
                             field="--write-lock", fix="pass --write-lock PATH in a writable directory") from None
    if path.is_dir():
        raise KubeforgeError("is a directory, not a lock file", file=str(path), field="--write-lock",
                             fix="pass a file path, e.g. --write-lock dev.lock.json")
    return path


def _write_install_lock(rendered, path: Path) -> Path:
    """The lock `kubeforge upgrade --write-lock` writes, for what `kubeforge apply` installed."""
    from kubeforge.lifecycle.upgrade import lock_of, side_from_rendered

    try:
        path.write_text(json.dumps(lock_of(side_from_rendered(rendered, "apply")), indent=2) + "\n")
    except OSError as exc:
        raise KubeforgeError(f"cannot write the lock: {exc.strerror}", file=str(path), field="--write-lock",
                             fix="pass --write-lock PATH in a writable directory (the platform is applied; "
                                 "rerun kubeforge apply to record it)") from None
    return path


def _print_teardown(plan) -> None:
    n = 0
    only = f"{', '.join(plan.components)} of " if plan.components is not None else ""
    print(f"teardown of {only}profile {plan.profile}" + (" (CRDs kept)" if plan.keep_crds else ""))
    for s in plan.steps:
        n += 1
        lines = s.describe()
        head = f"{n:3}. {s.component:20} {s.phase:17} {len(lines)} item(s)"
        print(head + (f"  - {s.note}" if s.note else ""))
        for line in lines[:12]:
            print(f"       {line}")
        if len(lines) > 12:
            print(f"       ... and {len(lines) - 12} more")


def _crd_bits(ch) -> list[str]:
    bits = []
    if ch.new:
        bits.append(f"new CRD ({','.join(ch.versions_added)})")
    if ch.removed:
        bits.append("CRD removed")
    if ch.versions_added and not ch.new:
        bits.append(f"+versions {','.join(ch.versions_added)}")
    if ch.versions_removed:
        bits.append(f"-versions {','.join(ch.versions_removed)}")
    if ch.served[0] != ch.served[1] and not ch.new:
        bits.append(f"served {','.join(ch.served[0]) or '-'} -> {','.join(ch.served[1]) or '-'}")
    if ch.storage[0] != ch.storage[1] and not ch.new:
        bits.append(f"storage {ch.storage[0]} -> {ch.storage[1]}")
    for v in ch.schema_changed:
        plus, minus = len(ch.fields_added.get(v, [])), len(ch.fields_removed.get(v, []))
        bits.append(f"schema {v}: +{plus}/-{minus} fields" if plus or minus else f"schema {v}: edited")
    if ch.spec_changed:
        bits.append(f"{','.join(ch.spec_changed)} changed")
    if not ch.new:
        bits.append(f"stored {','.join(ch.stored_versions)}{'' if ch.stored_known else ' (assumed)'}")
    return bits


def _names(items: list[str], most: int) -> str:
    return ", ".join(items[:most]) + (f", ... ({len(items) - most} more)" if len(items) > most else "")


def _print_upgrade(result) -> None:
    print(f"upgrade from {result.old} to {result.new}")
    for c in result.components:
        found = f"  ({c.found})" if c.found else ""
        print(f"  {c.name:20} {c.old_version or '-':>10} -> {c.new_version or '-':10} {c.change}{found}")
        objs = c.objects or {}
        if any(objs.values()):
            print(f"      objects: {len(objs.get('added', []))} added, {len(objs.get('changed', []))} changed, "
                  f"{len(objs.get('removed', []))} removed")
            for kind, most in (("added", 20), ("removed", 20), ("changed", 6)):
                if objs.get(kind):
                    print(f"        {kind}: {_names(objs[kind], most)}")
        if c.adopt:
            print(f"      adopt: {c.adopt} object(s) whose fields kubectl's apply owns are taken over by kubeforge")
        for ch in c.crds:
            print(f"      CRD {ch.crd}: {'; '.join(_crd_bits(ch))}")
        for note in c.notes:
            print(f"      read: {note}")
    t = result.tuples or {}
    if t.get("components"):
        print(f"tuple: {t['old'] or '-'}  ->  {t['new']}")
        for side in ("old", "new"):
            for p in t.get(f"{side}_problems", []):
                print(f"  {'installed' if side == 'old' else 'target'}: {p}")
    for w in result.warnings:
        print(f"warning: {w}")
    if result.order:
        print("order:")
        for s in result.order:
            wave = f"wave {s['wave']}" if s["wave"] is not None else "after"
            print(f"  {wave:7} {s['phase']:17} {', '.join(s['components'])}"
                  + (f" ({s['objects']} objects)" if s.get("objects") is not None else f" ({s.get('note')})"))
    if result.prune:
        print("prune (after the upgrade, in teardown order, after confirmation):")
        for p in result.prune:
            print(f"  {p['component']:20} {p['object']}")
    for b in result.blockers:
        print(f"BLOCKED {b.component}: {b.reason}\n  fix: {b.fix}")
    print("OK: the upgrade is safe to apply" if result.ok else "REFUSED")
