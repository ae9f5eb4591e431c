"""What kubeforge says after installing a Kubeflow login: who may log in and the command that
prints each first login password. Never a password itself (docs/kubeflow.md)."""
from __future__ import annotations

import os
import shlex
from typing import Any

AUTH = "kubeflow-auth"


def password_secret(email: str) -> str:
    """The per-install secret of a Dex static user's first login password (components/kubeflow-auth)."""
    return f"dex-password-{email}"


def hints(plan: Any, *, profile: str | None = None, env: str | None = None) -> list[str]:
    """Lines to print after render/apply (profile: as the user named it) or up (env: the stack)."""
    if plan is None or AUTH not in plan.components:
        return []
    auth = plan.profile.kubeflow.auth
    lines = []
    if auth.staticUsers:
        lines.append(f"login: Dex static users {', '.join(u.email for u in auth.staticUsers)}; "
                     "each one's first login password:")
        for u in auth.staticUsers:
            name = password_secret(u.email)
            if env is not None:
                lines.append(f"  (cd stacks/platform && pulumi config get kubeforge:secrets --stack {shlex.quote(env)}"
                             f" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{name}\"])')")
            else:
                file = os.environ.get("KUBEFORGE_SECRETS")
                where = f"--secrets {shlex.quote(file)} " if file else ""
                lines.append(f"  kubeforge {where}secrets get -p {shlex.quote(profile or plan.profile.name)} {name}")
    if auth.externalOIDC is not None:
        lines.append(f"login: {auth.externalOIDC.name} ({auth.externalOIDC.issuer}) through Dex at {auth.issuer}")
    return lines
