"""Container images: a strict reference grammar, the places images hide in Kubernetes objects, and
the registry rewrite for air-gapped installs.

One walker (`_visit_object`) finds every image. `list_images` and `rewrite_registry` (re-exported by
kubeforge.transforms) both drive it, so the image list a site mirrors and the references the
rendered objects pull can never disagree.

Where images are looked for (known locations, checked with the strict grammar below):
- every container-shaped dict (`containers`, `initContainers`, `ephemeralContainers` lists; a
  singular `container`) anywhere in an object: Pod templates of Deployment, DaemonSet, StatefulSet,
  ReplicaSet, Job, CronJob, Pod, and custom resources that embed containers (KServe
  ClusterServingRuntime/ServingRuntime incl. `workerSpec`, ClusterStorageContainer, Argo templates);
  inside them also env values named `*_IMAGE` / `RELATED_IMAGE_*` (an untagged `X_IMAGE` beside a
  literal `X_TAG` is the pair, as KFP's profile controller composes them) and `--*image[=]VALUE`
  args (cert-manager's `--acme-http01-solver-image=`, Argo's `--executor-image VALUE`);
- any field whose name ends in "image" (Knative `Image` spec.image, `sidecar.istio.io/proxyImage`
  pod annotations, KServe's JSON `image`/`defaultJobImage`), and KServe's `image` +
  `defaultImageVersion` pairs;
- ConfigMaps that carry images in text (`_CONFIGMAP_TEXT`): KServe inferenceservice-config (JSON),
  Katib katib-config and trial templates (YAML), local-path helper pod (YAML), Argo executor (YAML),
  Istio's sidecar injector (`hub`/`tag` values and literal images in the injection templates);
- ConfigMap keys that name their format wherever they appear (`_CONFIGMAP_KEYS`): the Jupyter web
  app's `spawner_ui_config.yaml` (notebook images offered in the spawner: `value` and `options` of
  `image`, `imageGroupOne`, `imageGroupTwo`), whose ConfigMap name carries a kustomize hash.
CustomResourceDefinitions are skipped: their schemas describe images, they hold none.

Outside containers (env, args, ConfigMap keys, annotations) a value counts as an image only if it
also has a `/`, `:` or `@`: a bare word like `true` is valid grammar but not evidence of an image.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from kubeforge.errors import KubeforgeError

# --- grammar: github.com/distribution/reference (regexp.go, normalize.go) ------------------------

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")
_REGISTRY = re.compile(rf"(?P<domain>{_DOMAIN})(?P<path>(?:/{_PATH_COMPONENT})*)")
_NAME_MAX = 255
DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference. `domain` and `path` are normalized the way container runtimes do:
    no registry means Docker Hub, and a one-component Docker Hub path lives under `library/`."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    def suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def canonical(self) -> str:
        """Fully qualified, with the implicit `:latest` spelled out: what a mirror must hold."""
        tag = self.tag or (None if self.digest else "latest")
        return self.name + (f":{tag}" if tag else "") + (f"@{self.digest}" if self.digest else "")


def _split_domain(name: str) -> tuple[str, str]:
    # The first component is a registry host only if it looks like one (normalize.go).
    first, slash, rest = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"
                     and first == first.lower()):
        domain, path = DOCKER_HUB, name
    else:
        domain, path = first, rest
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = "library/" + path
    return domain, path


def parse_image(value: object) -> ImageRef | None:
    """The reference `value` names, or None if it is not a valid image reference."""
    if not isinstance(value, str) or not value:
        return None
    m = _REFERENCE.fullmatch(value)
    if not m or len(m["name"]) > _NAME_MAX:
        return None
    domain, path = _split_domain(m["name"])
    return ImageRef(domain, path, m["tag"], m["digest"])


def floating_tag(image: str) -> str | None:
    """How a reference floats: "latest", or "" for no tag (which means latest); None when it is
    pinned by a version tag or a digest. The one judgement validate and the policy pack share."""
    ref = parse_image(image)
    if ref is not None:
        if ref.digest:
            return None
        return "" if ref.tag is None else ("latest" if ref.tag == "latest" else None)
    # Not a valid reference: judge its last component the way a runtime would read it.
    if "@" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return ""
    return "latest" if last.rsplit(":", 1)[1] == "latest" else None


def _image_like(value: object) -> bool:
    """Stricter test for places that are not a container's `image` field."""
    return isinstance(value, str) and any(c in value for c in "/:@") and parse_image(value) is not None


def validate_registry(value: object, *, file: str | None = None) -> str:
    """The mirror registry `host[:port][/path]`, normalized (no trailing slash), or a clear error."""
    fix = ("give a registry host, optional port and path, e.g. registry.example.com, "
           "registry.local:5000 or registry.example.com/mirror")
    if not isinstance(value, str) or not value.strip():
        raise KubeforgeError("the image registry override is empty", file=file, field="registry", fix=fix)
    text = value[:-1] if value.endswith("/") and len(value) > 1 else value
    if "://" in text:
        raise KubeforgeError(f"{value!r} is a URL, not a registry name", file=file, field="registry",
                             fix=f"drop the scheme: {text.split('://', 1)[1]!r}")
    m = _REGISTRY.fullmatch(text)
    if not m:
        raise KubeforgeError(
            f"{value!r} is not a valid registry name (host[:port][/path]; path components are "
            "lower-case letters, digits and . _ - separators; no tag or digest)",
            file=file, field="registry", fix=fix)
    domain = m["domain"]
    port = domain.rsplit(":", 1)[1] if ":" in domain and not domain.endswith("]") else ""
    if port and not 0 < int(port) < 65536:
        raise KubeforgeError(f"{value!r} has an invalid port", file=file, field="registry", fix=fix)
    if "." not in domain and ":" not in domain and domain != "localhost":
        # Without a dot or port, runtimes read `mirror/kserve/agent` as docker.io/mirror/kserve/agent.
        raise KubeforgeError(
            f"{value!r} would be read as a Docker Hub namespace, not a registry host",
            file=file, field="registry",
            fix=f"use a fully qualified host or add the port, e.g. {domain}.local or {domain}:5000")
    return text


def rewrite_ref(value: str, registry: str) -> str:
    """`value` moved to `registry`, keeping repository path, tag and digest.

    Rule: REGISTRY/<path of the image in its source registry>[:tag][@digest]. The source registry
    host is dropped (the layout `skopeo sync`/`crane copy` mirrors and Harbor projects use);
    Docker Hub official images keep their implicit `library/` (busybox:1.36 ->
    REGISTRY/library/busybox:1.36). An image already under REGISTRY stays as it is, so rewriting
    twice changes nothing. `registry` must come from validate_registry.
    """
    ref = parse_image(value)
    if ref is None:
        raise ValueError(f"not an image reference: {value!r}")
    if ref.name.startswith(registry + "/"):
        return value
    return f"{registry}/{ref.path}{ref.suffix()}"


# --- the walker ---------------------------------------------------------------------------------

Mapper = Callable[[str], str]
_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})
_ENV_IMAGE = re.compile(r"(?:^|_)IMAGE$|^RELATED_IMAGE_", re.IGNORECASE)
_FLAG_IMAGE = re.compile(r"(-{1,2}[\w.-]*image)(=?)(.*)", re.IGNORECASE | re.DOTALL)
# Istio injection templates: literal `image: REF` lines (templated ones never match the grammar).
_TEMPLATE_IMAGE = re.compile(r"^([ \t]*-?[ \t]*image:[ \t]*)([\"']?)([^\s\"'{}]+)\2[ \t]*$", re.MULTILINE)
# Docs-only keys (Knative's and KServe's `_example`) are not configuration.
_DOC_KEY = "_"
# ConfigMaps that carry images inside text: name -> {data key or "*": format}.
_CONFIGMAP_TEXT: dict[str, dict[str, str]] = {
    "config-deployment": {"queue-sidecar-image": "plain"},          # Knative Serving queue-proxy
    "inferenceservice-config": {"*": "json"},                      # KServe sidecars, explainers
    "katib-config": {"katib-config.yaml": "yaml"},                 # Katib collectors, suggestions
    "local-path-config": {"helperPod.yaml": "yaml"},               # local-path helper pod
    "workflow-controller-configmap": {"executor": "yaml", "mainContainer": "yaml"},  # Argo
    "istio-sidecar-injector": {"values": "istio-values", "config": "template"},
}
# Data keys whose format is known whatever the ConfigMap is called (kustomize hash suffixes).
_CONFIGMAP_KEYS: dict[str, str] = {"spawner_ui_config.yaml": "jupyter-spawner"}   # Jupyter web app
# The spawner's image groups: each has a default `value` and the `options` of its dropdown.
_SPAWNER_GROUPS = ("image", "imageGroupOne", "imageGroupTwo")
# ConfigMaps found by label: Katib's UI finds trial templates (Job/PyTorchJob YAML) the same way.
_CONFIGMAP_LABELS: dict[tuple[str, str], str] = {("katib.kubeflow.org/component", "trial-templates"): "yaml"}


class _Ctx:
    """One walk: `fn` maps each image found; with `write`, changed values are stored back.
    `changes` records (old field text, new field text) so embedded documents can be edited as
    text and keep their formatting."""

    __slots__ = ("fn", "write", "changes")

    def __init__(self, fn: Mapper, write: bool):
        self.fn = fn
        self.write = write
        self.changes: list[tuple[str, str]] = []

    def site(self, holder, key, value: str, prefix: str = "") -> None:
        new = self.fn(value)
        if new != value:
            self.changes.append((value, new))
            if self.write:
                holder[key] = prefix + new


def _container(c: dict, ctx: _Ctx) -> None:
    image = c.get("image")
    # `auto` is Istio's gateway-injection placeholder, replaced by the injector.
    if image != "auto" and parse_image(image):
        ctx.site(c, "image", image)
    envs = [e for e in c.get("env") or () if isinstance(e, dict)]
    for env in envs:
        if _ENV_IMAGE.search(str(env.get("name", ""))) and _image_like(env.get("value")):
            if not _env_pair(env, envs, ctx):
                ctx.site(env, "value", env["value"])
    for field in ("command", "args"):
        _flags(c.get(field), ctx)


def _env_pair(env: dict, envs: list[dict], ctx: _Ctx) -> bool:
    """`X_IMAGE` without a tag beside a literal `X_TAG` (KFP's profile controller composes
    FRONTEND_IMAGE:FRONTEND_TAG): the pulled image is the pair; only `X_IMAGE` moves."""
    name, value = str(env["name"]), env["value"]
    if not name.upper().endswith("IMAGE"):
        return False
    tag_name = name[: -len("IMAGE")] + ("TAG" if name.isupper() else "tag")
    tag = next((e.get("value") for e in envs if e.get("name") == tag_name), None)
    ref = parse_image(value)
    if not isinstance(tag, str) or ref is None or ref.tag or ref.digest or not parse_image(f"{value}:{tag}"):
        return False
    composed = f"{value}:{tag}"
    new = ctx.fn(composed)
    if new != composed:
        _set_part(env, "value", value, new, f":{tag}", ctx)
    return True


def _flags(args, ctx: _Ctx) -> None:
    if not isinstance(args, list):
        return
    for i, arg in enumerate(args):
        m = _FLAG_IMAGE.fullmatch(arg) if isinstance(arg, str) else None
        if not m:
            continue
        if m[2]:                                            # --flag-image=REF
            if _image_like(m[3]):
                ctx.site(args, i, m[3], prefix=m[1] + "=")
        elif not m[3] and i + 1 < len(args) and _image_like(args[i + 1]):   # --flag-image REF
            ctx.site(args, i + 1, args[i + 1])


def _image_field(holder: dict, key: str, value: str, ctx: _Ctx) -> None:
    version = holder.get("defaultImageVersion") if key == "image" else None
    ref = parse_image(value)
    if isinstance(version, str) and ref and not ref.tag and not ref.digest and "/" in value:
        # KServe explainers: the pulled image is image:defaultImageVersion; only `image` moves.
        composed = f"{value}:{version}"
        if parse_image(composed):
            new = ctx.fn(composed)
            if new != composed:
                _set_part(holder, key, value, new, f":{version}", ctx)
            return
    if _image_like(value):
        ctx.site(holder, key, value)


def _set_part(holder: dict, key: str, old: str, new_composed: str, suffix: str, ctx: _Ctx) -> None:
    """Store the part of a composed image that lives in holder[key] (the rest is `suffix`)."""
    if not new_composed.endswith(suffix):
        raise ValueError(f"image mapping changed the fixed part {suffix!r} of {old!r}")
    new = new_composed[: -len(suffix)]
    ctx.changes.append((old, new))
    if ctx.write:
        holder[key] = new


def _scan(node, ctx: _Ctx) -> None:
    """Generic walk: container-shaped dicts and fields named *image, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _CONTAINER_LISTS and isinstance(value, list):
                for c in value:
                    if isinstance(c, dict) and "image" in c:
                        _container(c, ctx)
                    else:
                        _scan(c, ctx)
            elif key == "container" and isinstance(value, dict) and "image" in value:
                _container(value, ctx)
            elif isinstance(value, str):
                if isinstance(key, str) and key.lower().endswith("image"):
                    _image_field(node, key, value, ctx)
            elif isinstance(value, (dict, list)):
                _scan(value, ctx)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                _scan(item, ctx)


def _istio_values(doc, ctx: _Ctx) -> None:
    """Istio's injector builds the sidecar image as <global.hub>/<proxy.image>:<global.tag>[-variant]."""
    g = doc.get("global") if isinstance(doc, dict) else None
    if isinstance(g, dict) and isinstance(g.get("hub"), str) and isinstance(g.get("tag"), str) and g["hub"]:
        hub, variant = g["hub"], g.get("variant") or ""
        for section in ("proxy", "proxy_init"):
            image = (g.get(section) or {}).get("image")
            if isinstance(image, str) and image and "/" not in image:
                suffix = f"/{image}:{g['tag']}" + (f"-{variant}" if variant else "")
                if parse_image(hub + suffix):
                    new = ctx.fn(hub + suffix)
                    if new != hub + suffix:
                        _set_part(g, "hub", hub, new, suffix, ctx)
    _scan(doc, ctx)   # full references elsewhere (e.g. proxy.image with a registry)


def _jupyter_spawner(docs, ctx: _Ctx) -> None:
    """The Jupyter web app's spawner config: notebook images the user picks from (not container
    fields, so the generic walk cannot see them)."""
    for doc in docs if isinstance(docs, list) else [docs]:
        defaults = doc.get("spawnerFormDefaults") if isinstance(doc, dict) else None
        for group in (defaults.get(g) for g in _SPAWNER_GROUPS) if isinstance(defaults, dict) else ():
            if not isinstance(group, dict):
                continue
            if _image_like(group.get("value")):
                ctx.site(group, "value", group["value"])
            options = group.get("options")
            for i, opt in enumerate(options if isinstance(options, list) else ()):
                if _image_like(opt):
                    ctx.site(options, i, opt)


_WALKERS = {"istio-values": _istio_values, "jupyter-spawner": _jupyter_spawner}


def _load(text: str, fmt: str):
    if fmt in ("json", "istio-values"):
        return json.loads(text)
    import yaml  # lazy: kubeforge's CLI start-up must not pay for it

    return list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def _dump(doc, fmt: str) -> str:
    if fmt in ("json", "istio-values"):
        return json.dumps(doc, indent=2) + "\n"
    import yaml

    return yaml.dump_all(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


def _replace_text(text: str, changes: list[tuple[str, str]]) -> str:
    for old, new in sorted(set(changes), key=lambda p: (-len(p[0]), p)):
        text = re.sub(rf"(?<![\w./:@-]){re.escape(old)}(?![\w./:@-])", lambda _m, n=new: n, text)
    return text


def _text(data: dict, key: str, fmt: str, ctx: _Ctx) -> None:
    text = data.get(key)
    if not isinstance(text, str) or key.startswith(_DOC_KEY):
        return
    if fmt == "plain":
        if _image_like(text):
            ctx.site(data, key, text)
        return
    if fmt == "template":
        out, pos = [], 0
        for m in _TEMPLATE_IMAGE.finditer(text):
            if _image_like(m[3]):
                new = ctx.fn(m[3])
                if new != m[3]:
                    out.append(text[pos:m.start(3)] + new)
                    pos = m.end(3)
        if ctx.write and out:
            data[key] = "".join(out) + text[pos:]
        elif out:
            ctx.changes.append((text, text))   # marks "changed" for the read pass
        return
    try:
        doc = _load(text, fmt)
    except Exception:   # not the format we know: not ours to judge
        return
    sub = _Ctx(ctx.fn, ctx.write)
    _WALKERS.get(fmt, _scan)(doc, sub)
    if not sub.changes:
        return
    ctx.changes.append((text, text))
    if ctx.write:
        # Edit the text in place to keep comments and layout; re-serialize only if that would
        # not give exactly the intended document.
        new_text = _replace_text(text, sub.changes)
        try:
            same = _load(new_text, fmt) == doc
        except Exception:
            same = False
        data[key] = new_text if same else _dump(doc, fmt)


def _configmap(obj: dict, ctx: _Ctx) -> None:
    data = obj.get("data")
    if not isinstance(data, dict):
        return
    md = obj.get("metadata") or {}
    formats = {**_CONFIGMAP_KEYS, **_CONFIGMAP_TEXT.get(md.get("name"), {})}
    for (label, value), fmt in _CONFIGMAP_LABELS.items():
        if (md.get("labels") or {}).get(label) == value:
            formats.setdefault("*", fmt)
    for key in list(data):
        fmt = formats.get(key) or formats.get("*")
        if fmt:
            _text(data, key, fmt, ctx)
        elif isinstance(key, str) and key.lower().endswith("image") and not key.startswith(_DOC_KEY):
            _text(data, key, "plain", ctx)


def _visit_object(obj, ctx: _Ctx) -> None:
    if not isinstance(obj, dict) or obj.get("kind") == "CustomResourceDefinition":
        return
    if obj.get("kind") == "ConfigMap":
        _configmap(obj, ctx)
        return
    for key, value in obj.items():
        if key not in ("metadata", "apiVersion", "kind") and isinstance(value, (dict, list)):
            _scan(value, ctx)


def _copy(node):
    """Deep copy of plain YAML/JSON data (much faster than copy.deepcopy)."""
    if isinstance(node, dict):
        return {k: _copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_copy(v) for v in node]
    return node


def map_images(objs: list[dict], fn: Mapper) -> list[dict]:
    """A new list where every image reference r is replaced by fn(r). Objects without a change are
    the same dict objects as in `objs` (nothing in `objs` is modified)."""
    out = []
    for obj in objs:
        if isinstance(obj, dict) and obj.get("kind") == "ConfigMap" and isinstance(obj.get("data"), dict):
            # One pass over a shallow copy: data values are strings, so this copy is a full one.
            copy = {**obj, "data": dict(obj["data"])}
            ctx = _Ctx(fn, write=True)
            _configmap(copy, ctx)
            out.append(copy if ctx.changes else obj)
            continue
        probe = _Ctx(fn, write=False)
        _visit_object(obj, probe)
        if probe.changes:
            obj = _copy(obj)
            _visit_object(obj, _Ctx(fn, write=True))
        out.append(obj)
    return out


def list_images(objs: list[dict]) -> list[str]:
    """Every image the objects pull, once, fully qualified (docker.io/library/busybox:latest), sorted."""
    found: set[str] = set()

    def collect(value: str) -> str:
        found.add(parse_image(value).canonical())
        return value

    for obj in objs:
        _visit_object(obj, _Ctx(collect, write=False))
    return sorted(found)


def rewrite_registry(objs: list[dict], registry: str, *, file: str | None = None) -> list[dict]:
    """Every image moved to the mirror `registry` (rule: see rewrite_ref). Pure: returns new objects."""
    registry = validate_registry(registry, file=file)
    seen: dict[str, str] = {}        # rewritten canonical -> source canonical

    def move(value: str) -> str:
        new = rewrite_ref(value, registry)
        if new == value:
            return new
        source, target = parse_image(value).canonical(), parse_image(new).canonical()
        if seen.setdefault(target, source) != source:
            raise KubeforgeError(
                f"images {seen[target]} and {source} would both become {target} in the mirror",
                file=file, field="registry",
                fix="the mirror layout drops the source registry host; override one of the two "
                    "images in its component's values so their repository paths differ")
        return new

    return map_images(objs, move)
