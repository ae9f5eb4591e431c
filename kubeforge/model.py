"""Plain data that flows between the stages: catalog entries, plans and rendered objects.

Everything here is importable without Pulumi, Ansible or a cluster, so every stage is a plain
function over these types (see docs/internals.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Labels every rendered object carries; Pulumi, teardown and verify find objects by them.
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_COMPONENT = "kubeforge.io/component"
LABEL_VERSION = "kubeforge.io/component-version"
PART_OF = "kubeforge"


@dataclass(frozen=True)
class Repo:
    """An upstream repository at one pinned ref (components/_repos.yaml)."""

    key: str            # e.g. "kubeflow-manifests"
    owner: str          # e.g. "kubeflow"
    name: str           # e.g. "manifests"
    ref: str            # tag or branch, e.g. "26.03"
    commit: str         # the commit the ref pointed at when pinned

    def raw_url(self, path: str) -> str:
        return f"https://raw.githubusercontent.com/{self.owner}/{self.name}/{self.ref}/{path}"

    def mirror_path(self, path: str) -> str:
        """Path below a mirror root: github/<owner>/<repo>/<ref>/<path>."""
        return f"github/{self.owner}/{self.name}/{self.ref}/{path}"


@dataclass(frozen=True)
class Source:
    """One pinned upstream input of a component.

    kind=manifest: a single file at `path`, `sha256` is the file's hash.
    kind=kustomize: the directory tree `root` (every file listed in the component's
      sources.lock), built with `kustomize build root/path`; `sha256` is the tree hash
      (sha256 over the sorted lines "<sha256>  <relative path>\n").
    kind=helm: a chart `chart` at `version` from `repo_url`; rendered by the Pulumi provider
      (helm.v4.Chart) or by a local `helm` binary.
    """

    id: str
    kind: str                          # manifest | kustomize | helm
    repo: Repo | None = None
    path: str = ""                     # manifest: file path; kustomize: build dir below root
    root: str = ""                     # kustomize: subtree fetched
    sha256: str = ""
    files: tuple[tuple[str, str], ...] = ()   # kustomize: (relative path, sha256) from the lock
    chart: str = ""                    # helm
    version: str = ""                  # helm chart version
    repo_url: str = ""                 # helm repository URL
    when: dict[str, Any] = field(default_factory=dict)   # values that select this source
    raw: bool = False                  # manifest: not parsed; generate.py reads it (ctx.source_bytes)
    build: bool = True                 # kustomize: False = fetched only, for the remote references of
                                       # the component's other sources (Pipelines' Argo bases), never built


@dataclass
class Component:
    """Everything kubeforge knows about one upstream project (components/<name>/)."""

    name: str
    version: str
    description: str
    folder: Path
    namespaces: dict[str, str]          # namespace -> Pod Security level it needs
    requires: list[str]
    after: list[str]
    provides: list[str]
    conflicts: list[str]
    kubernetes_min: str
    kubernetes_max: str
    compat: dict[str, list[str]]        # other component -> versions tested together
    sources: list[Source]
    values_schema: dict[str, Any]
    defaults: dict[str, Any]
    requires_when: list[dict[str, Any]]  # [{"values": {k: v}, "requires": [...]}]
    gpu: bool                           # DaemonSets get GPU tolerations/node selectors
    health: dict[str, Any]
    raw: dict[str, Any]                 # the component.yaml as loaded
    secrets: dict[str, Any] = field(default_factory=dict)   # name -> kubeforge.secrets.Spec
    # Defaults that apply while another component is enabled (a multi-user overlay while
    # kubeflow-auth is): [{"enabled": name, "values": {k: v}}]; the profile's values still win.
    defaults_when: list[dict[str, Any]] = field(default_factory=list)

    @property
    def generate_py(self) -> Path | None:
        p = self.folder / "generate.py"
        return p if p.exists() else None

    @property
    def checks_py(self) -> Path | None:
        p = self.folder / "checks.py"
        return p if p.exists() else None


@dataclass
class PlannedComponent:
    name: str
    version: str
    wave: int
    values: dict[str, Any]               # defaults deep-merged with the profile's values
    depends_on: list[str]                # enabled components it must come after (requires+after)
    component: Component


@dataclass
class Plan:
    profile: Any                         # kubeforge.profile.Profile
    components: dict[str, PlannedComponent]   # in topological order
    waves: list[list[str]]
    warnings: list[str]
    release: str | None = None           # an earlier release (kubeforge/releases.py); None: today's

    @property
    def order(self) -> list[str]:
        return list(self.components)


@dataclass
class RenderedComponent:
    name: str
    version: str
    wave: int
    objects: list[dict[str, Any]]        # apply order within the component
    secrets: list[str] = field(default_factory=list)   # per-install secrets its objects carry


@dataclass
class Rendered:
    plan: Plan
    components: dict[str, RenderedComponent]   # plan order
    # Components rendered without their Helm charts (render(skip_helm=True)): only their generated
    # objects are here; verify falls back to component.yaml `health`, teardown finds the rest by label.
    unrendered: list[str] = field(default_factory=list)

    def objects(self) -> list[dict[str, Any]]:
        """All objects in apply order: wave by wave; per wave Namespaces and CRDs first."""
        from kubeforge.ordering import apply_order

        out: list[dict[str, Any]] = []
        for wave in self.plan.waves:
            batch = [o for name in wave for o in self.components[name].objects]
            out.extend(apply_order(batch))
        return out
