"""`kubeforge secrets path|list|get|set`: where an install's per-install secrets live, their names,
and one value when asked for by name; `set` stores one the user holds (an external OIDC client
secret). Nothing secret is printed by any other command."""
from __future__ import annotations

import json
from typing import Annotated

import typer

from kubeforge.errors import KubeforgeError

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile name (profiles/<name>.yaml) or path.")]


def _store(profile: str):
    from kubeforge import api
    from kubeforge.secrets import store_for

    plan = api.plan(api.load_profile(profile))
    return plan, store_for(plan.profile)


def register(app: typer.Typer) -> None:
    sec = typer.Typer(help="Per-install secrets of a directory render / kubeforge apply install "
                      "(Pulumi stacks keep theirs in the stack config: `pulumi config get kubeforge:secrets`).",
                      no_args_is_help=True)
    app.add_typer(sec, name="secrets")

    @sec.command("path")
    def path_cmd(profile: ProfileOpt) -> None:
        """Print the secrets file of the install (it may not exist before the first render)."""
        print(_store(profile)[1].path)

    @sec.command("list")
    def list_cmd(profile: ProfileOpt,
                 json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
        """Names of the install's secrets and the components that declare them (never values)."""
        plan, store = _store(profile)
        rows = []
        for name in store.names():
            owners = [n for n, pc in plan.components.items()
                      if any(s.matches(name) for s in pc.component.secrets.values())]
            rows.append({"name": name, "components": owners})
        if json_out:
            print(json.dumps({"file": str(store.path), "secrets": rows}, indent=2))
            return
        print(f"# {store.path}")
        for r in rows:
            print(f"{r['name']}\t{', '.join(r['components']) or '(no enabled component)'}")

    @sec.command("get")
    def get_cmd(profile: ProfileOpt, name: Annotated[str, typer.Argument(help="The secret's name.")]) -> None:
        """Print one secret's value (e.g. a static user's first login password)."""
        _, store = _store(profile)
        value = store.peek(name)
        if value is None:
            known = ", ".join(store.names()) or "none yet: render or apply the profile first"
            raise KubeforgeError(f"no secret {name!r} in {store.path}", field="NAME", fix=f"one of: {known}")
        print(value)

    @sec.command("set")
    def set_cmd(profile: ProfileOpt, name: Annotated[str, typer.Argument(help="The secret's name.")]) -> None:
        """Store a secret you hold (e.g. dex-oidc-connector-client-secret, Dex's client secret at your
        OIDC provider), read from stdin (a prompt that does not echo on a terminal). Replaces an
        existing value; a derived one (a bcrypt hash) cannot be set."""
        import sys

        plan, store = _store(profile)
        from kubeforge.secrets import lookup

        specs = {s.name: s for pc in plan.components.values() for s in pc.component.secrets.values()}
        spec = lookup(specs, name, "?") if any(s.matches(name) for s in specs.values()) else None
        if spec is None:
            raise KubeforgeError(f"no enabled component of profile {profile} declares a secret {name!r}",
                                 field="NAME", fix="one of: " + (", ".join(sorted(specs)) or "none"))
        if spec.generate == "bcrypt":
            raise KubeforgeError(f"{name} is derived (the bcrypt hash of {spec.source_of(name)})", field="NAME",
                                 fix=f"set {spec.source_of(name)} instead; the hash follows on the next render")
        if sys.stdin.isatty():
            value = typer.prompt(f"value of {name}", hide_input=True)
        else:
            value = sys.stdin.read().rstrip("\n")
        if not value:
            raise KubeforgeError(f"no value given for {name}", field="stdin", fix=f"echo -n VALUE | kubeforge secrets set -p {profile} {name}")
        store.put(name, value)
        print(f"stored {name} in {store.path}", file=sys.stderr)
