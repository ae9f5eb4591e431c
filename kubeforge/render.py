"""Render: plan -> objects. Upstream manifests and kustomize builds plus generated objects, then
transforms (namespaces with Pod Security labels, GPU scheduling, registry rewrite, common labels).

Deterministic: the same plan and sources give byte-identical output. Each component's result is
cached under the hash of everything that went into it, so a warm render reads one pickle per
component and runs neither kustomize nor the transforms; `write_dir` reads the YAML text of each
component from the cache too (component_yaml), so a warm `kubeforge render -o DIR` serialises
nothing.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeforge import __version__
from kubeforge.errors import KubeforgeError
from kubeforge.model import Plan, PlannedComponent, Rendered, RenderedComponent, Source
from kubeforge.ordering import apply_order

# Code whose change must invalidate cached renders.
_CODE = ("render.py", "transforms.py", "images.py", "kustomize.py", "ordering.py", "sources.py", "secrets.py",
         "gpu/sharing.py", "gpu/mig.py", "gpu/manifests.py", "gpu/parsers.py", "gpu/dcgm.py",
         "monitoring.py")


@dataclass
class Context:
    """What a component's generate.py sees."""

    profile: Any
    plan: Plan
    component: PlannedComponent
    values: dict[str, Any]
    store: Any = None                       # kubeforge.secrets.Store of the install
    used: set[str] = field(default_factory=set)
    files: dict[str, Path] = field(default_factory=dict)   # raw sources: id -> verified file

    def source_bytes(self, source_id: str) -> bytes:
        """The pinned, verified bytes of one of the component's `raw: true` sources (a CSV, a
        dashboard JSON: upstream files that are not manifests)."""
        if source_id not in self.files:
            raise KubeforgeError(f"{self.component.name} reads source {source_id!r}, which is not one of "
                                 "its selected raw sources", file=f"components/{self.component.name}/component.yaml",
                                 field="sources", fix="declare it with `raw: true` (and a `when:` that matches)")
        return self.files[source_id].read_bytes()

    def enabled(self, name: str) -> bool:
        return name in self.plan.components

    def secret(self, name: str) -> str:
        """The install's value of a secret the component declares (made once, then read back)."""
        from kubeforge.secrets import resolve

        if self.store is None:
            raise KubeforgeError(f"{self.component.name} needs secret {name!r} but no secrets store was given",
                                 fix="pass secrets= to render()")
        return resolve(self.store, self.component.component.secrets, name, self.component.name, self.used)


def selected_sources(pc: PlannedComponent) -> list[Source]:
    """Sources whose `when:` matches the component's values (no `when:` = always)."""
    return [s for s in pc.component.sources
            if all(pc.values.get(k) == v for k, v in s.when.items())]


def _load_generate(pc: PlannedComponent):
    path = pc.component.generate_py
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location(f"kubeforge_components.{pc.name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_hash() -> str:
    here = Path(__file__).parent
    h = hashlib.sha256(__version__.encode())
    for name in _CODE:
        p = here / name
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()


def cache_key(plan: Plan, pc: PlannedComponent, code_hash: str, skip_helm: bool = False) -> str:
    prof = plan.profile
    gen = pc.component.generate_py
    material = {
        "code": code_hash,
        "component": pc.component.raw,
        # Every enabled component's values, its own included: generate.py may read others' (the
        # device plugin reads gpu-sharing's) and ask ctx.enabled().
        "plan_values": {n: p.values for n, p in plan.components.items()},
        "sources": [(s.id, s.sha256) for s in selected_sources(pc)],
        "generate": hashlib.sha256(gen.read_bytes()).hexdigest() if gen else None,
        "profile": prof.model_dump(mode="json", exclude={"components", "files", "name", "description",
                                                         "mirror"}),
        "helm": [(s.id, s.version, s.sha256, skip_helm) for s in selected_sources(pc) if s.kind == "helm"],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def _entry_name(key: str, pc: PlannedComponent, store: Any) -> str:
    """The cache entry of a component for this install: components that use per-install secrets
    get one entry per set of values, so two installs of one profile on a machine (or parallel
    test workers) do not evict each other. Written after rendering, read before: the secrets a
    first render made are in the store by then."""
    specs = pc.component.secrets
    if not specs or store is None:
        return key
    from kubeforge.secrets import digest

    mine = [n for n in store.names() if any(sp.matches(n) for sp in specs.values())]
    return f"{key}-{(digest(store, mine) or '')[:16]}"


def render_key(plan: Plan, skip_helm: bool = False) -> str:
    """One key for the whole render of a plan: the components' cache keys in plan order (what is
    derived from a render, such as its validation report, is cached under it)."""
    code_hash = _code_hash()
    keys = [cache_key(plan, pc, code_hash, skip_helm) for pc in plan.components.values()]
    return hashlib.sha256(" ".join(keys).encode()).hexdigest()


def _build_key(s: Source) -> str:
    from kubeforge.kustomize import kustomize_bin

    exe = kustomize_bin()
    material = f"{s.sha256} {s.path} {exe.stat().st_size} {exe.stat().st_mtime_ns}"
    return hashlib.sha256(material.encode()).hexdigest()


def _cache_dir() -> Path:
    from kubeforge.sources import cache_root

    return cache_root() / "rendered"


def _render_component(plan: Plan, pc: PlannedComponent, upstream: list[dict[str, Any]],
                      store: Any = None, files: dict[str, Path] | None = None) -> tuple[list[dict], list[str]]:
    """(the component's objects in apply order, the names of the secrets they were made with)"""
    from kubeforge import transforms

    comp = pc.component
    prof = plan.profile
    # Namespaces belong to the component that declares them; upstream trees often carry a copy
    # (Katib and the training operator both ship `kubeflow`), which would collide.
    objs = [o for o in upstream
            if not (o.get("kind") == "Namespace" and o["metadata"]["name"] not in comp.namespaces)]
    ctx = Context(profile=prof, plan=plan, component=pc, values=pc.values, store=store, files=files or {})
    module = _load_generate(pc)
    if module is not None and hasattr(module, "generate"):
        objs += module.generate(ctx)
    if module is not None and hasattr(module, "transform"):
        objs = module.transform(objs, ctx)
    cfile = f"components/{comp.name}/component.yaml"
    objs = transforms.ensure_namespaces(objs, comp.namespaces, file=cfile)
    if comp.gpu:
        objs = transforms.gpu_scheduling(objs, prof.gpu.tolerations, prof.gpu.nodeSelector,
                                         file=prof.source_file)
    if prof.registry:
        objs = transforms.rewrite_registry(objs, prof.registry, file=prof.source_file)
    objs = transforms.common_labels(objs, pc.name, pc.version, file=cfile)
    return apply_order(objs), sorted(ctx.used)


def render(plan: Plan, mirror: str | None = None, use_cache: bool = True,
           stats: dict[str, Any] | None = None, skip_helm: bool = False, secrets: Any = None) -> Rendered:
    """Render every planned component. `stats` (if given) receives cache hits and misses.

    secrets: the install's kubeforge.secrets.Store; default: the profile's secrets file (made on
    first use). A cached component counts as a hit only if the secrets it was made with are
    unchanged.

    skip_helm: leave Helm-chart sources out (their component keeps its generated objects). The
    Pulumi stack installs charts itself (helm.v4.Chart), and verify/teardown find chart objects
    on the cluster, so neither needs a local `helm`.
    """
    from kubeforge import transforms

    prof = plan.profile
    if prof.registry:
        transforms.validate_registry(prof.registry, file=prof.source_file)
    for pc in plan.components.values():
        for s in selected_sources(pc):
            if s.kind == "helm" and not skip_helm:
                _require_helm(pc, s)
    mirror = mirror or prof.mirror or os.environ.get("KUBEFORGE_MIRROR")
    if secrets is None:
        from kubeforge.secrets import store_for

        secrets = store_for(prof)
    code_hash = _code_hash()
    cdir = _cache_dir()
    results: dict[str, tuple[list[dict], list[str]]] = {}
    misses: list[PlannedComponent] = []
    keys = {}
    for pc in plan.components.values():
        keys[pc.name] = cache_key(plan, pc, code_hash, skip_helm)
        cached = _read_cached(cdir / f"{_entry_name(keys[pc.name], pc, secrets)}.pickle", secrets) \
            if use_cache else None
        if cached is not None:
            results[pc.name] = cached
            continue
        misses.append(pc)
    if stats is not None:
        stats.update(hits=len(plan.components) - len(misses), misses=[m.name for m in misses])

    if misses:
        from kubeforge import kustomize, sources

        wanted = [s for pc in misses for s in selected_sources(pc) if s.kind != "helm"]
        paths = sources.sync(wanted, mirror=mirror)
        # Kustomize output depends only on the pinned tree and the build path: cache it apart from
        # the rendered component, so another profile or changed values reuse it.
        built: dict[str, list[dict]] = {}
        to_build = []
        for s in wanted:
            if s.kind != "kustomize" or not s.build:
                continue
            bpath = cdir / "kustomize" / f"{_build_key(s)}.pickle"
            if use_cache and bpath.exists():
                try:
                    built[s.id] = pickle.loads(bpath.read_bytes())
                    continue
                except Exception:
                    pass
            to_build.append((s, bpath))
        if to_build:
            # Biggest trees first, so KServe's long build does not start last.
            outputs = kustomize.build_many([paths[s.id] for s, _ in to_build],
                                           costs=[sources.tree_bytes(s) for s, _ in to_build])
            for (s, bpath), objs in zip(to_build, outputs, strict=True):
                built[s.id] = objs
                if use_cache:
                    _write_atomic(bpath, pickle.dumps(objs, protocol=5))
        for pc in misses:
            upstream: list[dict] = []
            files: dict[str, Path] = {}
            for s in selected_sources(pc):
                if s.kind == "kustomize" and s.build:
                    upstream += built[s.id]  # fresh objects: each source belongs to one component
                elif s.kind == "manifest" and s.raw:
                    files[s.id] = paths[s.id]
                elif s.kind == "manifest":
                    upstream += kustomize.parse(paths[s.id].read_bytes())  # dates stay strings, as in builds
                elif s.kind == "helm" and not skip_helm:
                    upstream += _helm_template(plan, pc, s)
            objs, used = _render_component(plan, pc, upstream, secrets, files)
            results[pc.name] = objs, used
            if use_cache:
                from kubeforge.secrets import digest

                entry = {"objects": objs, "secrets": used, "digest": digest(secrets, used) if used else None}
                # An entry made with secrets holds their values: private to the user.
                _write_atomic(cdir / f"{_entry_name(keys[pc.name], pc, secrets)}.pickle", pickle.dumps(entry, protocol=5),
                              private=bool(used))

    _check_duplicates(plan, {n: r[0] for n, r in results.items()})
    comps = {n: RenderedComponent(name=n, version=pc.version, wave=pc.wave, objects=results[n][0],
                                  secrets=results[n][1])
             for n, pc in plan.components.items()}
    unrendered = [n for n, pc in plan.components.items()
                  if skip_helm and any(s.kind == "helm" for s in selected_sources(pc))]
    return Rendered(plan=plan, components=comps, unrendered=unrendered)


def _require_helm(pc: PlannedComponent, s: Source) -> None:
    import shutil

    if shutil.which("helm") is None:
        raise KubeforgeError(
            f"{pc.name} is a Helm chart ({s.chart} {s.version}); rendering it outside Pulumi needs "
            "the `helm` executable, which is not on PATH",
            file=f"components/{pc.name}/component.yaml", field=f"sources[{s.id}]",
            fix="install it with `kubeforge up` (Pulumi renders the chart itself), or put `helm` "
                "on PATH to render to a directory")


def _helm_template(plan: Plan, pc: PlannedComponent, s: Source) -> list[dict[str, Any]]:
    """`helm template` of a pinned chart with the values the component's generate.py gives
    (chart_values(ctx)); the same values the Pulumi stack passes to helm.v4.Chart."""
    import subprocess
    import tempfile

    from kubeforge.kustomize import parse

    module = _load_generate(pc)
    ctx = Context(profile=plan.profile, plan=plan, component=pc, values=pc.values)
    values = module.chart_values(ctx) if module is not None and hasattr(module, "chart_values") else {}
    namespace = next(iter(pc.component.namespaces), "default")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as vf:
        json.dump(values, vf)
        vf.flush()
        cmd = ["helm", "template", pc.name, s.chart, "--repo", s.repo_url, "--version", s.version,
               "--namespace", namespace, "--include-crds", "-f", vf.name]
        proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KubeforgeError(f"helm template of {s.chart} {s.version} failed: {proc.stderr.strip()[-800:]}",
                             file=f"components/{pc.name}/component.yaml", field=f"sources[{s.id}]",
                             fix="check the chart repository is reachable (or mirrored) and the values")
    return [o for o in parse(proc.stdout) if isinstance(o, dict)]


def _read_cached(path: Path, store: Any) -> tuple[list[dict], list[str]] | None:
    """A cached component's (objects, secret names), or None (a miss): absent, torn, or made with
    other secrets than the install has now."""
    if not path.exists():
        return None
    try:
        entry = pickle.loads(path.read_bytes())
        objs, used, made_with = entry["objects"], entry["secrets"], entry["digest"]
    except Exception:  # a torn or stale cache entry is only a miss
        return None
    if used:
        from kubeforge.secrets import digest

        if digest(store, used) != made_with:
            return None
    return objs, used


def _write_atomic(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _ident(o: dict[str, Any]) -> tuple[str, str, str, str]:
    md = o.get("metadata", {})
    group = o.get("apiVersion", "").rpartition("/")[0]
    return group, o.get("kind", ""), md.get("namespace", ""), md.get("name", "")


def _check_duplicates(plan: Plan, results: dict[str, list[dict]]) -> None:
    seen: dict[tuple, str] = {}
    for name in plan.components:
        for o in results[name]:
            key = _ident(o)
            if key in seen:
                other = seen[key]
                raise KubeforgeError(
                    f"{key[1]} {key[2] + '/' if key[2] else ''}{key[3]} is rendered by both {other} and {name}",
                    file=f"components/{name}/component.yaml", field="sources",
                    fix="one object has one owner: drop it from one component (a patch in generate.py)"
                        if other != name else "the upstream tree defines it twice; patch one copy out")
            seen[key] = name


# ---- output ---------------------------------------------------------------------------------

def dump_yaml(objs: list[dict[str, Any]]) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump_all(objs, Dumper=dumper, sort_keys=True, default_flow_style=False,
                         width=1 << 16, explicit_start=True)


def component_yaml(objs: list[dict[str, Any]], use_cache: bool = True, private: bool = False) -> str:
    """dump_yaml(objs), read from the cache when these very objects were serialised before.

    PyYAML's representer is most of a warm render's time, so the text is cached too. Its key is
    the pickle of the objects (their types, values, key order and shared references: everything
    the YAML depends on), so an object edited after render() is a miss, never stale text; and the
    serialiser (this code, PyYAML and libyaml versions). private: the objects carry secret values,
    so the cached text is the user's only (0600), like the render cache entry they came from."""
    if not use_cache:
        return dump_yaml(objs)
    key = hashlib.sha256(_serializer_id().encode() + pickle.dumps(objs, protocol=5)).hexdigest()
    path = _cache_dir() / "yaml" / f"{key}.yaml"
    try:
        return path.read_bytes().decode("utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    text = dump_yaml(objs)
    _write_atomic(path, text.encode("utf-8"), private=private)
    return text


@functools.cache
def _serializer_id() -> str:
    import yaml

    libyaml = getattr(getattr(yaml, "_yaml", None), "get_version_string", lambda: "none")()
    return f"{_code_hash()} pyyaml {yaml.__version__} libyaml {libyaml} {hasattr(yaml, 'CSafeDumper')}\n"


def check_out_dir(out: Path) -> None:
    """The output directory is one, or can be made (nothing in the way); KubeforgeError (exit 2)
    otherwise. Touches nothing, so it can run before any work."""
    if out.exists() and not out.is_dir():
        raise KubeforgeError("is a file, not a directory", file=str(out), field="--out",
                             fix="pass a directory (it is created if missing), or remove the file")
    above = out.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise KubeforgeError(f"cannot create the output directory: {above} is a file", file=str(out),
                             field="--out", fix="pass a directory you can write to")


def prepare_out_dir(out: Path) -> None:
    """The output directory exists (made if missing) and is one; KubeforgeError (exit 2) otherwise."""
    check_out_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KubeforgeError(f"cannot create the output directory: {exc.strerror}", file=str(out),
                             field="--out", fix="pass a directory you can write to") from None


def write_dir(rendered: Rendered, out: Path, use_cache: bool = True) -> list[Path]:
    """One numbered file per component in apply order; index.json lists every object."""
    prepare_out_dir(out)
    for old in out.glob("[0-9][0-9]-*.yaml"):
        old.unlink()
    written = []
    index = []
    i = 0
    for wave_no, wave in enumerate(rendered.plan.waves):
        for name in wave:
            i += 1
            rc = rendered.components[name]
            path = out / f"{i:02d}-{name}.yaml"
            private = bool(rc.secrets)   # it carries the install's secret values
            _write_atomic(path, component_yaml(rc.objects, use_cache, private).encode("utf-8"), private=private)
            written.append(path)
            for o in rc.objects:
                md = o.get("metadata", {})
                index.append({"file": path.name, "wave": wave_no, "component": name,
                              "apiVersion": o.get("apiVersion"), "kind": o.get("kind"),
                              "namespace": md.get("namespace"), "name": md.get("name")})
    (out / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    return written
