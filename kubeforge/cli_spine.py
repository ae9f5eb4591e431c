"""CLI commands of the spine: profiles, components, plan, sync, render, images, validate."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from kubeforge.errors import CheckFailed, KubeforgeError

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile name (profiles/<name>.yaml) or path.")]
MirrorOpt = Annotated[str | None, typer.Option(
    "--mirror", help="Sources mirror: a directory or http(s) URL laid out github/<owner>/<repo>/<ref>/<path>. "
    "Default: the profile's `mirror`, then $KUBEFORGE_MIRROR, then upstream.")]
# One convention for machine-readable output (README, "The CLI"): --json prints one JSON document on
# stdout and everything for humans (progress, notes, warnings) on stderr.
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout (human output on stderr).")]


def _console():
    from rich.console import Console

    return Console(stderr=False, highlight=False)


def _plan(profile: str, release: str | None = None):
    from kubeforge.plan import make_plan
    from kubeforge.profile import load_profile

    return make_plan(load_profile(profile), release=release)


def _warn(plan) -> None:
    for w in plan.warnings:
        print(f"warning: {w}", file=sys.stderr)


def _cluster_capacity(ref: str, plan) -> dict:
    """`--cluster cluster-eks/prod`: that stack checked against this plan's profile, and its GPUs."""
    from kubeforge.paths import home
    from kubeforge.pulumi import clusters

    project, _, env = ref.partition("/")
    if project not in clusters.PROJECTS or not env:
        raise KubeforgeError(f"--cluster {ref!r}", field="--cluster",
                             fix=f"PROJECT/ENV with PROJECT one of {', '.join(clusters.PROJECTS)}, e.g. cluster-eks/prod")
    c = clusters.check_consumer(plan.profile, f"kubeforge-{project}/{env}", file=plan.profile.source_file,
                                root=home() / "stacks")
    if c is None:
        raise KubeforgeError(f"no stack file stacks/{project}/Pulumi.{env}.yaml", field="--cluster",
                             fix=f"use an environment of stacks/{project}")
    for w in c.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return {"stack": ref, "cloud": c.cloud, "clusterName": c.cluster_name, "gpus": c.capacity(),
            "expectedGpus": c.expected_gpus()}


def register(app: typer.Typer) -> None:
    profiles = typer.Typer(help="List, show and describe profiles.", no_args_is_help=True)
    app.add_typer(profiles, name="profiles")

    @profiles.command("list")
    def profiles_list(json_out: JsonOpt = False) -> None:
        """List the shipped profiles."""
        from kubeforge.profile import list_profiles, load_profile

        rows = []
        for name in list_profiles():
            p = load_profile(name)
            rows.append({"name": name, "description": p.description, "gpuMode": p.gpu.mode,
                         "components": p.enabled()})
        if json_out:
            print(json.dumps(rows, indent=2))
            return
        from rich.table import Table

        t = Table("profile", "gpu", "components", "description")
        for r in rows:
            t.add_row(r["name"], r["gpuMode"], str(len(r["components"])), r["description"])
        _console().print(t)

    @profiles.command("show")
    def profiles_show(profile: ProfileOpt, json_out: JsonOpt = False) -> None:
        """Print a profile with `extends` resolved, as YAML (or JSON)."""
        from kubeforge.profile import load_profile

        data = load_profile(profile).model_dump(mode="json", exclude={"files"})
        if json_out:
            print(json.dumps(data, indent=2))
            return
        import yaml

        print(yaml.safe_dump(data, sort_keys=False), end="")

    @profiles.command("schema")
    def profiles_schema() -> None:
        """Print the profile JSON Schema (for editors: yaml-language-server)."""
        from kubeforge.profile import profile_schema

        print(json.dumps(profile_schema(), indent=2))

    @app.command("components")
    def components(json_out: JsonOpt = False) -> None:
        """List the component catalog with versions and dependencies."""
        from kubeforge.catalog import load_catalog

        cat = load_catalog()
        rows = [{"name": c.name, "version": c.version, "requires": c.requires, "provides": c.provides,
                 "conflicts": c.conflicts, "description": c.description} for c in cat.values()]
        if json_out:
            print(json.dumps(rows, indent=2))
            return
        from rich.table import Table

        t = Table("component", "version", "requires", "provides", "description")
        for r in rows:
            t.add_row(r["name"], r["version"], ", ".join(r["requires"]), ", ".join(r["provides"]),
                      r["description"])
        _console().print(t)

    @app.command("plan")
    def plan_cmd(
        profile: ProfileOpt,
        fmt: Annotated[str, typer.Option("--format", "-f", help="table | json | mermaid | dot")] = "table",
        cluster: Annotated[str | None, typer.Option(
            "--cluster", help="A cloud cluster environment, PROJECT/ENV (e.g. cluster-eks/prod): check that its "
            "node pools fit the profile's GPU mode and Kubernetes version, and print the GPUs it will have.")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Resolve a profile into components, dependencies and install waves."""
        from kubeforge.plan import plan_dict, plan_dot, plan_mermaid

        if json_out:
            if fmt not in ("table", "json"):
                raise KubeforgeError(f"--json and --format {fmt} ask for two outputs", field="--format",
                                     fix="drop one of them (--json is --format json)")
            fmt = "json"
        if fmt not in ("table", "json", "mermaid", "dot"):
            raise KubeforgeError(f"unknown format {fmt!r}", field="--format", fix="use table, json, mermaid or dot")
        plan = _plan(profile)
        _warn(plan)
        gpus = _cluster_capacity(cluster, plan) if cluster else None
        if fmt == "json":
            print(json.dumps({**plan_dict(plan), **({"cluster": gpus} if gpus else {})}, indent=2))
        elif fmt == "mermaid":
            print(plan_mermaid(plan), end="")
        elif fmt == "dot":
            print(plan_dot(plan), end="")
        else:
            from rich.table import Table

            t = Table("wave", "component", "version", "after", title=f"profile {plan.profile.name} "
                      f"(Kubernetes {plan.profile.kubernetesVersion}, GPU {plan.profile.gpu.mode})")
            for i, wave in enumerate(plan.waves):
                for n in wave:
                    c = plan.components[n]
                    t.add_row(str(i), n, c.version, ", ".join(c.depends_on) or "-")
            _console().print(t)
            for line in (gpus or {}).get("gpus", []):
                print(f"GPUs {line}")

    @app.command("sync")
    def sync_cmd(profile: ProfileOpt, mirror: MirrorOpt = None, json_out: JsonOpt = False) -> None:
        """Fetch the profile's pinned sources into the cache, verifying every sha256."""
        from kubeforge import sources
        from kubeforge.render import selected_sources

        plan = _plan(profile)
        wanted = [s for pc in plan.components.values() for s in selected_sources(pc) if s.kind != "helm"]
        t0 = time.perf_counter()
        paths = sources.sync(wanted, mirror=mirror or plan.profile.mirror)
        dt = time.perf_counter() - t0
        if json_out:
            print(json.dumps({"sources": {k: str(v) for k, v in paths.items()}, "seconds": round(dt, 3)},
                             indent=2))
        else:
            print(f"{len(paths)} sources verified in {dt:.2f}s (cache: {sources.cache_root()})")

    @app.command("render")
    def render_cmd(
        profile: ProfileOpt,
        out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the ordered YAML to.")],
        mirror: MirrorOpt = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore cached renders.")] = False,
        release: Annotated[str | None, typer.Option(
            "--release", help="Render the components as they were at an earlier release kubeforge knows "
            "(`previous:` in components/_repos.yaml, e.g. v1.11.0), to compare or upgrade from.")] = None,
        no_validate: Annotated[bool, typer.Option(
            "--no-validate", help="Write without validating (by default validation errors exit 1 and "
            "nothing is written).")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Render the profile to validated, ordered YAML files (one per component, in apply order)."""
        from kubeforge.render import check_out_dir, render, render_key, write_dir

        plan = _plan(profile, release)
        check_out_dir(out)   # before any work: a file in the way is bad input (exit 2)
        _warn(plan)
        say = (lambda s: print(s, file=sys.stderr)) if json_out else print
        t0 = time.perf_counter()
        rendered = render(plan, mirror=mirror, use_cache=not no_cache)
        counts = None
        if not no_validate:
            from kubeforge.validate import validate_cached

            report, _cached = validate_cached(rendered, render_key(plan), use_cache=not no_cache)
            counts = report.counts()
            if report.errors:
                for f in report.errors:
                    print(f.line(), file=sys.stderr)
                raise CheckFailed(f"{len(report.errors)} validation error(s) in profile {plan.profile.name} "
                                  f"(listed above): nothing written to {out}",
                                  fix="fix what each line names, or write anyway with --no-validate")
        files = write_dir(rendered, out, use_cache=not no_cache)
        n = sum(len(c.objects) for c in rendered.components.values())
        checked = "not validated" if counts is None else \
            f"validated against Kubernetes {plan.profile.kubernetesVersion}: {counts['warnings']} warning(s)"
        say(f"{n} objects from {len(rendered.components)} components in {len(files)} files under {out}, "
            f"{checked} ({time.perf_counter() - t0:.2f}s)")
        from kubeforge.login import hints

        for line in hints(plan, profile=profile):
            say(line)
        if json_out:
            names = [name for wave in plan.waves for name in wave]
            print(json.dumps({
                "profile": plan.profile.name, "out": str(out), "objects": n,
                "files": [{"file": f.name, "component": c, "wave": rendered.components[c].wave,
                           "objects": len(rendered.components[c].objects)} for f, c in zip(files, names, strict=True)],
                "validation": counts}, indent=2))

    @app.command("images")
    def images_cmd(profile: ProfileOpt, mirror: MirrorOpt = None, json_out: JsonOpt = False) -> None:
        """List every container image the profile installs, once (for mirroring into a registry)."""
        from kubeforge.render import render
        from kubeforge.transforms import list_images

        rendered = render(_plan(profile), mirror=mirror)
        images = list_images(rendered.objects())
        print(json.dumps(images, indent=2) if json_out else "\n".join(images))

    @app.command("validate")
    def validate_cmd(profile: ProfileOpt, mirror: MirrorOpt = None, json_out: JsonOpt = False) -> None:
        """Validate every rendered object: Kubernetes OpenAPI, CRD schemas, policies. Exit 1 on errors."""
        from kubeforge.render import render
        from kubeforge.validate import validate

        plan = _plan(profile)
        _warn(plan)
        rendered = render(plan, mirror=mirror)
        report = validate(rendered.objects(), plan.profile.kubernetesVersion, cluster=plan.profile.cluster)
        if json_out:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            print(report.summary())
        if report.errors:
            raise CheckFailed(f"{len(report.errors)} validation error(s) in profile {plan.profile.name}")
