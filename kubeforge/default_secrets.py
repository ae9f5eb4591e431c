"""The `default-secret` validation rule: no rendered object may carry a secret that upstream
publishes as a sample (Dex's 12341234 user, oauth2-proxy's client and cookie secrets, Grafana's
admin/admin, ...). The known values are data, listed in components/_default_secrets.yaml (its
header documents the format); this module reads them and finds them in objects.

Where a value is looked for ("sites": a key and a string):
- Secret `data` (base64-decoded) and `stringData`, ConfigMap `data`: each key and its value;
- every container's `env` (name, value), in any pod template, custom resources included;
- inside those values, config-file lines (`key = "v"`, `key: v`, `KEY=v`: TOML/INI, YAML,
  .env), so a password in a mounted config file is found as surely as one in an env var.

A finding names the object, the path and what the default is, never the value.
"""
from __future__ import annotations

import base64
import binascii
import fnmatch
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from kubeforge import paths
from kubeforge.errors import KubeforgeError

RULE = "default-secret"
DESCRIPTION = "no object carries a known upstream default secret (components/_default_secrets.yaml)"
_FILE = "components/_default_secrets.yaml"
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
# key = "value" | key: value | KEY=value, one per line; quotes around the value are dropped.
_LINE = re.compile(r"""^\s*-?\s*([A-Za-z0-9_.\-\[\]]+)\s*(?:=|:)\s*(?:"([^"]*)"|'([^']*)'|(\S+))\s*$""", re.M)


@dataclass(frozen=True)
class Entry:
    component: str
    what: str
    value: str
    match: str = "exact"                   # exact | contains
    keys: tuple[str, ...] = ()             # globs (case-insensitive) of the keys it counts under

    def hit(self, key: str, text: str) -> bool:
        if self.keys and not any(fnmatch.fnmatchcase(key.lower(), k.lower()) for k in self.keys):
            return False
        return self.value in text if self.match == "contains" else text == self.value


def file_path() -> Path:
    return paths.components_dir() / "_default_secrets.yaml"


def parse(data: Any, file: str = _FILE) -> list[Entry]:
    """The entries of the file's `entries:`; every mistake names the entry and the fix."""
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise KubeforgeError("expected a mapping with an `entries:` list", file=file, field="entries",
                             fix="see the format at the top of the file")
    out = []
    for i, e in enumerate(data["entries"]):
        where = f"entries[{i}]"
        if not isinstance(e, dict):
            raise KubeforgeError("an entry is a mapping", file=file, field=where, fix="see the format at the top")
        unknown = set(e) - {"component", "what", "value", "match", "keys", "where"}
        missing = {"component", "what", "value", "where"} - set(e)
        if unknown or missing:
            raise KubeforgeError(f"unknown field(s) {sorted(unknown)}" if unknown else f"missing {sorted(missing)}",
                                 file=file, field=where,
                                 fix="fields: component, what, value, where (required); match, keys")
        value, match, keys = e["value"], e.get("match", "exact"), e.get("keys") or []
        if not isinstance(value, str) or not value:
            raise KubeforgeError("value must be a non-empty string (quote numbers: \"12341234\")", file=file,
                                 field=f"{where}.value", fix="write the secret exactly as upstream ships it")
        if match not in ("exact", "contains"):
            raise KubeforgeError(f"match must be exact or contains, not {match!r}", file=file,
                                 field=f"{where}.match", fix="exact: the whole value; contains: anywhere in it")
        if match == "contains" and len(value) < 12:
            raise KubeforgeError("a `contains` value shorter than 12 characters would match ordinary text",
                                 file=file, field=f"{where}.match", fix="use match: exact (with keys:)")
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise KubeforgeError("keys must be a list of key globs", file=file, field=f"{where}.keys",
                                 fix='e.g. keys: ["*PASSWORD*", admin_password]')
        out.append(Entry(str(e["component"]), str(e["what"]), value, match, tuple(keys)))
    return out


@cache
def _load(path: str, mtime_ns: int) -> tuple[Entry, ...]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise KubeforgeError(f"malformed YAML: {exc}", file=_FILE, fix="fix the YAML syntax") from None
    return tuple(parse(data))


def load(path: Path | None = None) -> tuple[Entry, ...]:
    p = path or file_path()
    return _load(str(p), p.stat().st_mtime_ns)


def _decode(v: Any) -> str | None:
    if not isinstance(v, str):
        return None
    try:
        return base64.b64decode(v, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _sites_of_text(key: str, text: str, path: list) -> list[tuple[str, str, list]]:
    out = [(key, text, path)]
    if "\n" in text or "=" in text:
        for m in _LINE.finditer(text):
            v = next(g for g in m.groups()[1:] if g is not None)
            out.append((m.group(1), v, path))
    return out


def _env_sites(node: Any, path: list, out: list) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in _CONTAINER_LISTS and isinstance(v, list):
                for i, c in enumerate(v):
                    env = c.get("env") if isinstance(c, dict) else None
                    for j, e in enumerate(env if isinstance(env, list) else ()):
                        if isinstance(e, dict) and isinstance(e.get("value"), str):
                            out.append((str(e.get("name", "")), e["value"], [*path, k, i, "env", j, "value"]))
            if isinstance(v, (dict, list)):
                _env_sites(v, [*path, k], out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, (dict, list)):
                _env_sites(v, [*path, i], out)


def sites(obj: dict) -> list[tuple[str, str, list]]:
    """(key, value, path) of every place in `obj` a secret could be written."""
    out: list[tuple[str, str, list]] = []
    kind, core = obj.get("kind"), "/" not in str(obj.get("apiVersion", "/"))
    if core and kind == "Secret":
        for k, v in (obj.get("data") or {}).items() if isinstance(obj.get("data"), dict) else ():
            text = _decode(v)
            if text is not None:
                out += _sites_of_text(str(k), text, ["data", k])
        for k, v in (obj.get("stringData") or {}).items() if isinstance(obj.get("stringData"), dict) else ():
            if isinstance(v, str):
                out += _sites_of_text(str(k), v, ["stringData", k])
    elif core and kind == "ConfigMap":
        for k, v in (obj.get("data") or {}).items() if isinstance(obj.get("data"), dict) else ():
            if isinstance(v, str):
                out += _sites_of_text(str(k), v, ["data", k])
    _env_sites(obj.get("spec"), ["spec"], out)
    return out


def check(objects: list, entries: tuple[Entry, ...] | None = None):
    """(rule, message, object, path) for every default secret found."""
    entries = load() if entries is None else entries
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        found = set()
        for key, text, path in sites(obj):
            for e in entries:
                if (e, tuple(path)) not in found and e.hit(key, text):
                    found.add((e, tuple(path)))
                    yield (RULE, f"carries upstream's default {e.what} ({e.component}; listed in {_FILE}): "
                                 "replace it with a per-install secret (docs/secrets.md)", obj, path)
