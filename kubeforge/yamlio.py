"""YAML with libyaml's C loader when present: the pure-Python loader costs ~10x on the plan path.

One departure from PyYAML's YAML 1.1 rules: a plain `=` is the string "=" (as in YAML 1.2 and in
sigs.k8s.io/yaml, which kubectl and the API server use). PyYAML resolves it to the 1.1 "value"
type and SafeLoader then has no constructor for it, so `yaml.safe_load` rejects real upstream files
such as the Prometheus Operator's AlertmanagerConfig CRD (an enum `- =`).
"""
from __future__ import annotations

from typing import Any

import yaml

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
YAMLError = yaml.YAMLError
_VALUE_TAG = "tag:yaml.org,2002:value"


def without_resolvers(base: type, *tags: str) -> type:
    """A subclass of the loader `base` whose implicit resolvers leave out `tags`."""
    cls = type(f"{base.__name__}Kubeforge", (base,), {})
    cls.yaml_implicit_resolvers = {
        ch: [(tag, rx) for tag, rx in rs if tag not in tags]
        for ch, rs in base.yaml_implicit_resolvers.items()
    }
    return cls


Loader = without_resolvers(_Base, _VALUE_TAG)


def load(text: str) -> Any:
    return yaml.load(text, Loader=Loader)


def load_all(text: str) -> list[Any]:
    return [d for d in yaml.load_all(text, Loader=Loader) if d is not None]
