"""The compiled Kubernetes schema validators agree with jsonschema, the reference implementation,
on real upstream objects and on systematic edits of them; schema versions load and compile."""
from __future__ import annotations

import copy
import json
import re

import jsonschema
import pytest
from referencing import Registry, Resource

from kubeforge import schemas
from kubeforge.errors import KubeforgeError


def _reference(version: str):
    """jsonschema over kubernetes-validate's per-kind files, resolved as kubernetes-validate does."""
    root = schemas._schema_root() / f"v{version}.0-local-strict"
    registry = Resource.from_contents(json.loads((root / "_definitions.json").read_text())) @ Registry()
    cache: dict[str, jsonschema.Validator] = {}

    def errors(obj: dict, api_version: str, kind: str) -> set[tuple]:
        api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        name = f"{kind.lower()}-{api}.json"
        if name not in cache:
            cache[name] = jsonschema.Draft202012Validator(json.loads((root / name).read_text()),
                                                          registry=registry)
        out = set()
        for e in cache[name].iter_errors(obj):
            path = tuple(e.absolute_path)
            if e.validator == "additionalProperties":
                out |= {(*path, k) for k in e.instance if k not in e.schema.get("properties", {})}
            else:
                out.add(path)
        return out
    return errors


def _compiled(version: str):
    k8s = schemas.builtin(version)

    def errors(obj: dict, api_version: str, kind: str) -> set[tuple]:
        group, _, ver = api_version.rpartition("/")
        errs: list = []
        check = k8s.validator(group, ver, kind)
        assert check is not False, kind
        if check:
            check(obj, None, errs)
        return {tuple(schemas.path_list(chain)) for chain, _ in errs}
    return errors


def _nodes(value, parent=None, key=None, out=None):
    out = [] if out is None else out
    if parent is not None:
        out.append((parent, key))
    if isinstance(value, dict):
        for k, v in value.items():
            _nodes(v, value, k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _nodes(v, value, i, out)
    return out


_MISSING = object()


def _edits(obj: dict, per_object: int = 8):
    """In-place edits spread over the object (each undone after use): a value of another type,
    an unknown field, a removed field, null, and a list where a scalar belongs."""
    nodes = _nodes(obj)
    step = max(1, len(nodes) // per_object)
    for n, (parent, key) in enumerate(nodes[::step]):
        old = parent[key]
        how = n % 5
        if how == 1 and isinstance(old, dict):
            old["zzUnknownField"] = 1
            yield
            del old["zzUnknownField"]
            continue
        if how == 2 and isinstance(parent, dict):
            del parent[key]
            yield
            parent[key] = old
            continue
        parent[key] = [{"x": 1}, {"x": 2}] if how == 0 and not isinstance(old, dict) and n % 2 else (
            None if how == 3 else {"x": 1} if not isinstance(old, dict) else 12345)
        yield
        parent[key] = old


@pytest.fixture(scope="module")
def builtin_objects(upstream_sets):
    k8s = schemas.builtin("1.34")
    return [copy.deepcopy(o) for objs in upstream_sets.values() for o in objs
            if k8s.validator(o["apiVersion"].rpartition("/")[0], o["apiVersion"].rpartition("/")[2],
                             o["kind"]) is not False]


def test_compiled_validator_agrees_with_jsonschema_on_upstream_and_edits(builtin_objects):
    reference, compiled = _reference("1.34"), _compiled("1.34")
    kinds, checked, failing = set(), 0, 0
    for obj in builtin_objects:
        ident = obj["apiVersion"], obj["kind"]
        assert compiled(obj, *ident) == reference(obj, *ident) == set(), obj["metadata"]["name"]
        kinds.add(obj["kind"])
        for _ in _edits(obj, per_object=2 if obj["kind"] == "CustomResourceDefinition" else 6):
            got, want = compiled(obj, *ident), reference(obj, *ident)
            assert got == want, f"{obj['kind']} {obj['metadata']['name']}: {got} != {want}"
            checked += 1
            failing += bool(want)
    assert {"Deployment", "DaemonSet", "CustomResourceDefinition", "Service", "ClusterRole",
            "MutatingWebhookConfiguration", "ConfigMap"} <= kinds
    print(f"{checked} edited objects, {failing} with errors")
    assert checked > 1500 and failing > 500      # the edits do exercise error paths


@pytest.mark.parametrize("version", ["1.32", "1.33", "1.34", "1.35"])
def test_every_kind_of_the_target_versions_compiles(version):
    k8s = schemas.builtin(version)
    for gvk in k8s.gvk:
        assert k8s.validator(*gvk) is not False
    assert ("apps", "v1", "Deployment") in k8s.gvk and ("", "v1", "Namespace") in k8s.gvk
    assert ("batch", "v1beta1", "CronJob") not in k8s.gvk        # removed in 1.25


@pytest.mark.parametrize("given,minor", [("1.34", "1.34"), ("v1.33.2", "1.33"), ("1.35.0-rc.1", "1.35")])
def test_version_spellings(given, minor):
    assert schemas.builtin(given).version == minor


@pytest.mark.parametrize("given,text", [("1.12", "no bundled OpenAPI schema for Kubernetes 1.12"),
                                        ("latest", "'latest' is not a Kubernetes version")])
def test_unsupported_versions_are_bad_input(given, text):
    with pytest.raises(KubeforgeError) as e:
        schemas.builtin(given)
    assert text in e.value.message and e.value.field == "kubernetesVersion" and e.value.fix


def test_unsupported_schema_keywords_fail_loudly():
    with pytest.raises(ValueError, match="not supported by the compiler"):
        schemas._Compiler({}).compile({"type": "string", "pattern": "^a$"})


def test_paths_read_like_kubectl():
    assert schemas.format_path(["spec", "template", "spec", "containers", 0, "image"]) \
        == "spec.template.spec.containers[0].image"
    assert schemas.format_path(["metadata", "labels", "app.kubernetes.io/name"]) \
        == 'metadata.labels["app.kubernetes.io/name"]'
