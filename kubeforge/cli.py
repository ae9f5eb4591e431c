"""The `kubeforge` command line. Heavy imports stay inside the commands (plan < 0.5 s cold)."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from kubeforge.errors import KubeforgeError

app = typer.Typer(
    help="kubeforge: install a GPU-ready ML platform on Kubernetes, prove it works, upgrade it "
    "and tear it down cleanly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Sub-apps and command groups living in their own modules; each exposes register(app).
_PLUGINS = ("kubeforge.cli_spine", "kubeforge.cli_stacks", "kubeforge.cli_nodes",
            "kubeforge.cli_lifecycle", "kubeforge.cli_secrets")
SECRETS_ENV = "KUBEFORGE_SECRETS"    # kubeforge.secrets.ENV_FILE (not imported: start-up stays cheap)


@app.callback()
def _root(secrets: Annotated[Path | None, typer.Option(
        "--secrets", metavar="FILE",
        help="The install's per-install secrets file (made with mode 0600 on first use). Default: "
             "$KUBEFORGE_SECRETS, else ~/.config/kubeforge/secrets/<profile>.yaml.")] = None) -> None:
    if secrets is not None:
        os.environ[SECRETS_ENV] = str(secrets)


def _register() -> None:
    for mod in _PLUGINS:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name == mod:
                continue  # that capability is not in this build
            raise
        module.register(app)


def _usage_error_types() -> tuple[tuple, tuple]:
    """(abort types, usage-error types): typer >= 0.24 raises its vendored copy of click's
    exceptions (typer._click, with Abort in typer.exceptions), not click's own classes."""
    aborts, usage = [], []
    for mod, abort in (("typer._click.exceptions", "typer.exceptions"), ("click.exceptions", "click.exceptions")):
        try:
            usage.append(importlib.import_module(mod).ClickException)
            aborts.append(importlib.import_module(abort).Abort)
        except (ModuleNotFoundError, AttributeError):
            pass
    return tuple(aborts), tuple(usage)


def main(argv: list[str] | None = None) -> int:
    _register()
    before = os.environ.get(SECRETS_ENV)
    try:
        rc = app(args=argv, standalone_mode=False)
    except KubeforgeError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # typer/click exits (--help, usage errors)
        return int(exc.code or 0)
    except Exception as exc:  # click usage errors come as ClickException
        aborts, usage = _usage_error_types()
        if isinstance(exc, aborts):
            print("aborted", file=sys.stderr)
            return 2
        if isinstance(exc, usage):
            exc.show()
            return 2
        raise
    finally:   # --secrets holds for this invocation only (tests call main() many times)
        if before is None:
            os.environ.pop(SECRETS_ENV, None)
        else:
            os.environ[SECRETS_ENV] = before
    # standalone_mode=False hands back typer.Exit codes instead of exiting.
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
