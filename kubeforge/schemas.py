"""Schemas to validate Kubernetes objects against, built once and reused.

Built-in kinds: kubernetes-validate ships the OpenAPI schema of every Kubernetes minor it supports
as JSON Schema (`kubernetes-json-schema/v1.NN.0-local-strict/_definitions.json`; "strict" objects
reject unknown fields, as `kubectl apply` with server-side field validation does). Its own
`validate()` re-reads and re-resolves the schema files on every call; here the definitions of a
version are read once and each definition is compiled once into a plain Python closure, so
checking an object is one walk over the object. That schema dialect uses only `type`, `$ref`,
`properties`, `additionalProperties`, `required`, `items`, `enum` and `oneOf`; anything else
raises at compile time rather than being skipped silently. tests/validate checks the compiled
validators against jsonschema on the real upstream objects.

Custom resources: a CRD's `openAPIV3Schema` (OpenAPI 3.0 plus Kubernetes extensions) is turned
into a draft-4 JSON Schema with the apiserver's semantics (`crd_jsonschema`) and checked with
jsonschema. CEL rules (`x-kubernetes-validations`) and `format` are not evaluated.

Only the standard library is imported at module level; jsonschema is imported when a custom
resource is first checked.
"""
from __future__ import annotations

import datetime
import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError

# An error is (path, message); a path is a nested (parent, key) chain built only as the walk
# descends, turned into a list only when an error is reported.
Chain = tuple | None
Check = Callable[[Any, Chain, list], None]

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

_JSON_TYPE = {
    dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
    float: "number", type(None): "null",
    # PyYAML turns unquoted timestamps into these; they serialize as JSON strings.
    datetime.datetime: "string", datetime.date: "string",
}
_KNOWN_KEYWORDS = {"type", "$ref", "properties", "additionalProperties", "required", "items", "enum",
                   "oneOf", "format", "description", "default"}
_UNKNOWN = object()
_OBJECT_OR_NULL = frozenset({"object", "null"})


def json_type(value: Any) -> str:
    return _JSON_TYPE.get(type(value), type(value).__name__)


def path_list(chain: Chain) -> list:
    out = []
    while chain is not None:
        chain, key = chain
        out.append(key)
    out.reverse()
    return out


_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


def format_path(parts: list) -> str:
    """JSON path as users read it: spec.template.spec.containers[0].image, labels["a.b/c"]."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _PLAIN_KEY.match(p):
            out += f".{p}" if out else p
        else:
            out += f"[{json.dumps(p)}]"
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_ok(value: Any, types: frozenset) -> bool:
    t = _JSON_TYPE.get(type(value))
    if t in types:
        return True
    if t == "integer":
        return "number" in types
    if t == "number":
        return "integer" in types and value.is_integer()
    return False


class _Compiler:
    """Compiles the kubernetes-validate definitions dialect into closures, one per definition."""

    def __init__(self, defs: dict[str, dict]):
        self.defs = defs
        self.memo: dict[str, Check | None] = {}

    def ref(self, name: str) -> Check | None:
        if name in self.memo:
            return self.memo[name]
        cell: list[Check | None] = []

        def late(v: Any, p: Chain, e: list) -> None:   # recursion (JSONSchemaProps) goes via here
            if cell[0] is not None:
                cell[0](v, p, e)

        self.memo[name] = late
        compiled = self.compile(self.defs[name])
        cell.append(compiled)
        self.memo[name] = compiled
        return compiled

    def compile(self, node: dict) -> Check | None:
        """A closure that appends (chain, message) for each violation, or None: accepts all."""
        unknown = set(node) - _KNOWN_KEYWORDS
        unknown = {k for k in unknown if not k.startswith("x-kubernetes-")}
        if unknown:
            raise ValueError(f"schema keyword(s) {sorted(unknown)} not supported by the compiler")
        checks: list[Check] = []
        if "$ref" in node:
            target = self.ref(node["$ref"].rsplit("/", 1)[-1])
            if target is not None:
                checks.append(target)
        t = node.get("type")
        types = frozenset([t] if isinstance(t, str) else t) if t is not None else None
        props = {k: self.compile(s) for k, s in (node.get("properties") or {}).items()}
        addl = node.get("additionalProperties", True)
        addl_check = self.compile(addl) if isinstance(addl, dict) else None
        strict = addl is False
        required = tuple(node.get("required") or ())
        items = self.compile(node["items"]) if isinstance(node.get("items"), dict) else None
        enum = node.get("enum")
        one_of = [self.compile(s) for s in node.get("oneOf") or ()]

        if props or strict or addl_check or required:
            def check_object(v: Any, p: Chain, e: list) -> None:
                if type(v) is not dict:
                    return
                for k, x in v.items():
                    f = props.get(k, _UNKNOWN)
                    if f is _UNKNOWN:
                        if strict:
                            e.append(((p, k), f'unknown field "{k}"'))
                        elif addl_check is not None:
                            addl_check(x, (p, k), e)
                    elif f is not None:
                        f(x, (p, k), e)
                for r in required:
                    if r not in v:
                        e.append((p, f'missing required field "{r}"'))
            checks.append(check_object)
        if items is not None:
            def check_items(v: Any, p: Chain, e: list) -> None:
                if type(v) is list:
                    for i, x in enumerate(v):
                        items(x, (p, i), e)
            checks.append(check_items)
        if enum is not None:
            def check_enum(v: Any, p: Chain, e: list) -> None:
                if v not in enum:
                    e.append((p, f"{_short(v)} is not one of {_short(enum, 120)}"))
            checks.append(check_enum)
        if one_of:
            def check_one_of(v: Any, p: Chain, e: list) -> None:
                ok = 0
                for f in one_of:
                    sub: list = []
                    if f is not None:
                        f(v, p, sub)
                    ok += not sub
                if ok != 1:
                    e.append((p, f"{_short(v)} must match exactly one of {len(one_of)} alternatives "
                                 f"(matches {ok})"))
            checks.append(check_one_of)

        if types is None and not checks:
            return None
        if types is None and len(checks) == 1:
            return checks[0]
        want = " or ".join(sorted(types - {"null"})) or "null" if types else ""

        if types == _OBJECT_OR_NULL and len(checks) == 1:    # most definitions: a fast path
            only = checks[0]

            def check_typed_object(v: Any, p: Chain, e: list) -> None:
                if type(v) is dict:
                    only(v, p, e)
                elif v is not None:
                    e.append((p, f"expected object, got {json_type(v)} {_short(v)}"))
            return check_typed_object

        def check(v: Any, p: Chain, e: list) -> None:
            if types is not None and _JSON_TYPE.get(type(v)) not in types and not _type_ok(v, types):
                e.append((p, f"expected {want}, got {json_type(v)} {_short(v)}"))
                return
            for c in checks:
                c(v, p, e)
        return check


def _schema_root() -> Path:
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise KubeforgeError("the kubernetes-validate package is not installed",
                             fix="run `make setup` (it installs the pinned dependencies)")
    return Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"


def supported_versions() -> list[str]:
    """Kubernetes minors ("1.34") with a bundled schema, oldest first."""
    out = []
    for d in _schema_root().iterdir():
        m = re.fullmatch(r"v(\d+)\.(\d+)\.0-local-strict", d.name)
        if m:
            out.append((int(m[1]), int(m[2])))
    return [f"{a}.{b}" for a, b in sorted(out)]


def minor(version: str) -> str:
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?", str(version).strip())
    if not m:
        raise KubeforgeError(f"{version!r} is not a Kubernetes version", field="kubernetesVersion",
                             fix='write it as MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. "1.34"')
    return f"{m[1]}.{m[2]}"


class BuiltinSchemas:
    """The OpenAPI schema of one Kubernetes minor: kind lookup and compiled validators."""

    def __init__(self, version: str):
        self.version = version
        path = _schema_root() / f"v{version}.0-local-strict" / "_definitions.json"
        self.defs: dict[str, dict] = json.loads(path.read_text())["$defs"]
        self.gvk: dict[tuple[str, str, str], str] = {}
        for name, d in self.defs.items():
            if name.endswith("List") or "apiVersion" not in d.get("properties", {}):
                continue
            for g in d.get("x-kubernetes-group-version-kind", ()):
                self.gvk.setdefault((g["group"], g["version"], g["kind"]), name)
        self.groups = {g for g, _, _ in self.gvk}
        self._compiler = _Compiler(self.defs)
        self.validators: dict[tuple[str, str, str], Check | None] = {}

    def validator(self, group: str, version: str, kind: str) -> Check | None | bool:
        """The compiled check for a built-in kind; False if this version does not serve it."""
        key = (group, version, kind)
        if key not in self.validators:
            name = self.gvk.get(key)
            self.validators[key] = False if name is None else self._compiler.ref(name)
        return self.validators[key]

    def object_meta(self) -> Check | None:
        return self._compiler.ref(OBJECT_META)

    def served(self, group: str | None = None, kind: str | None = None) -> list[str]:
        """apiVersion/kind pairs this version serves, for suggestions in error messages."""
        return sorted(f"{g + '/' if g else ''}{v} {k}" for g, v, k in self.gvk
                      if (group is None or g == group) and (kind is None or k == kind))


_BUILTIN: dict[str, BuiltinSchemas] = {}


def builtin(kubernetes_version: str) -> BuiltinSchemas:
    """Schemas for a Kubernetes version ("1.34", "v1.34.2"), loaded once per process."""
    mm = minor(kubernetes_version)
    if mm not in _BUILTIN:
        versions = supported_versions()
        if mm not in versions:
            raise KubeforgeError(
                f"no bundled OpenAPI schema for Kubernetes {mm} "
                f"(kubernetes-validate ships {versions[0]}–{versions[-1]})",
                field="kubernetesVersion",
                fix=f"target a version from {versions[0]} to {versions[-1]}, or upgrade kubernetes-validate")
        _BUILTIN[mm] = BuiltinSchemas(mm)
    return _BUILTIN[mm]


def clear_caches() -> None:
    _BUILTIN.clear()
    _CRD_VALIDATORS.clear()


# --- custom resources -------------------------------------------------------------------------

_NESTED = ("allOf", "anyOf", "oneOf")


def crd_jsonschema(schema: dict, root: bool = True) -> dict:
    """A CRD version's openAPIV3Schema as a draft-4 JSON Schema with the apiserver's semantics.

    - unknown fields are errors (server-side field validation, kubectl's default) unless the
      node has `x-kubernetes-preserve-unknown-fields` or `additionalProperties`;
    - null is accepted everywhere: the apiserver prunes nulls of non-nullable fields rather than
      rejecting them, and `nullable: true` keeps them;
    - `x-kubernetes-int-or-string` accepts an integer or a string;
    - `x-kubernetes-embedded-resource` objects need apiVersion and kind and may carry metadata;
    - at the root apiVersion, kind and metadata are implicit (metadata is checked as ObjectMeta
      by the caller).
    """
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if "properties" in schema:
        out["properties"] = {k: crd_jsonschema(s, False) for k, s in schema["properties"].items()}
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = crd_jsonschema(schema["additionalProperties"], False)
    if isinstance(schema.get("items"), dict):
        out["items"] = crd_jsonschema(schema["items"], False)
    elif isinstance(schema.get("items"), list):
        out["items"] = [crd_jsonschema(s, False) for s in schema["items"]]
    for k in _NESTED:
        if k in schema:
            out[k] = [crd_jsonschema(s, False) for s in schema[k]]
    if isinstance(schema.get("not"), dict):
        out["not"] = crd_jsonschema(schema["not"], False)

    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string", "null"]
        if all(set(alt) == {"type"} for alt in schema.get("anyOf", ())):
            out.pop("anyOf", None)      # the usual [{type: integer}, {type: string}]: said once
    elif isinstance(schema.get("type"), str):
        out["type"] = [schema["type"], "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]

    embedded = schema.get("x-kubernetes-embedded-resource")
    if root or embedded:
        props = out.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        # Root metadata is ObjectMeta whatever the CRD says; embedded metadata is pruned to it.
        props["metadata"] = {"type": ["object", "null"]}
    if embedded:
        out["required"] = sorted({*out.get("required", ()), "apiVersion", "kind"})
    is_object = schema.get("type") == "object" or "properties" in schema
    if (is_object and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


_CRD_VALIDATORS: dict[str, Any] = {}


def crd_validator(schema: dict) -> Callable[[dict], list[tuple[list, str]]]:
    """A function obj -> [(path parts, message)] for one CRD version schema, cached by content
    (callers keep the result per CRD version, so the key is computed once per validate call)."""
    key = json.dumps(schema, separators=(",", ":"), default=str)
    if key not in _CRD_VALIDATORS:
        import jsonschema

        v = jsonschema.Draft4Validator(crd_jsonschema(schema))

        def run(obj: dict) -> list[tuple[list, str]]:
            return [err for e in v.iter_errors(obj) for err in _explain(e)]

        _CRD_VALIDATORS[key] = run
    return _CRD_VALIDATORS[key]


def _explain(e: Any) -> list[tuple[list, str]]:
    """jsonschema errors as (path, message), short and in the compiled validators' words."""
    path = list(e.absolute_path)
    kw, inst = e.validator, e.instance
    if kw == "additionalProperties" and isinstance(inst, dict):
        known = e.schema.get("properties", {})
        return [([*path, k], f'unknown field "{k}"') for k in inst if k not in known]
    if kw == "type":
        want = e.validator_value
        want = " or ".join(w for w in ([want] if isinstance(want, str) else want) if w != "null")
        return [(path, f"expected {want}, got {json_type(inst)} {_short(inst)}")]
    if kw == "required":
        missing = [r for r in e.validator_value if r not in inst]
        return [(path, f'missing required field "{r}"') for r in missing]
    if kw == "enum":
        allowed = [x for x in e.validator_value if x is not None]
        return [(path, f"{_short(inst)} is not one of {_short(allowed, 120)}")]
    if kw == "pattern":
        return [(path, f"{_short(inst)} does not match the pattern {e.validator_value!r}")]
    return [(path, e.message if len(e.message) <= 200 else e.message[:197] + "...")]
