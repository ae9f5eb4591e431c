"""YAML with libyaml's C loader when present: the pure-Python loader costs ~10x on the plan path."""
from __future__ import annotations

from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
YAMLError = yaml.YAMLError


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def load_all(text: str) -> list[Any]:
    return [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]
