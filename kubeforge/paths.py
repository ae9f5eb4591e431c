"""Where the catalog, profiles and stacks live: the repository root beside the package
(kubeforge is installed editable from its checkout), or KUBEFORGE_HOME."""
from __future__ import annotations

import os
from functools import cache
from pathlib import Path


@cache
def home() -> Path:
    env = os.environ.get("KUBEFORGE_HOME")
    return Path(env) if env else Path(__file__).resolve().parents[1]


def components_dir() -> Path:
    return home() / "components"


def profiles_dir() -> Path:
    return home() / "profiles"
