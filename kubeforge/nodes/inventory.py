"""Read and check a node inventory before anything connects.

The checks name the file and the key to fix: missing groups, hosts without pins, GPU hosts without
a driver branch, variables the roles do not know (with a did-you-mean) and values the roles' own
meta/argument_specs.yml reject (type, choices). The roles' argument specs are the one place the
variables are described; this module reads them rather than repeating them.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from kubeforge.errors import KubeforgeError

REQUIRED_GROUPS = ("kube_control_plane", "kube_node", "k8s_cluster", "gpu_nodes")
ROLE_PREFIXES = ("node_prep", "containerd", "nvidia_driver", "nvidia_container_toolkit", "kubernetes",
                 "gpu_node_validate")
# Pins each kind of host must carry, per playbook (what the roles mark required, plus the version
# of everything the node layer installs).
CLUSTER_PINS = ("kubernetes_version",)
GPU_PINS = ("nvidia_driver_branch", "nvidia_driver_version", "nvidia_container_toolkit_version",
            "gpu_node_validate_expect_gpu_count")
PINS_BY_PLAYBOOK = {
    "site": (CLUSTER_PINS, GPU_PINS),
    "validate": ((), ("nvidia_driver_version", "gpu_node_validate_expect_gpu_count")),
    "upgrade-driver": ((), GPU_PINS),
    "reset": ((), ()),
}
_BOOL_STRINGS = {"true", "false", "yes", "no", "on", "off", "1", "0"}


@dataclass
class Group:
    name: str
    hosts: set[str] = field(default_factory=set)
    children: set[str] = field(default_factory=set)


@dataclass
class Var:
    value: object
    file: Path


@dataclass
class NodeInventory:
    hosts_file: Path
    groups: dict[str, Group]
    # variables by scope: ("group", name) or ("host", name) -> {var: Var}
    scoped: dict[tuple[str, str], dict[str, Var]]

    @property
    def root(self) -> Path:
        return self.hosts_file.parent

    def hosts_of(self, group: str, _seen: frozenset = frozenset()) -> set[str]:
        g = self.groups.get(group)
        if g is None or group in _seen:
            return set()
        out = set(g.hosts)
        for child in g.children:
            out |= self.hosts_of(child, _seen | {group})
        return out

    @property
    def all_hosts(self) -> set[str]:
        out: set[str] = set()
        for g in self.groups.values():
            out |= g.hosts
        return out

    def _depth(self, group: str) -> int:
        if group == "all":
            return 0
        parents = [g.name for g in self.groups.values() if group in g.children and g.name != "all"]
        return 1 + max((self._depth(p) for p in parents), default=0)

    def host_vars(self, host: str) -> dict[str, Var]:
        """Variables as Ansible resolves them: all < parent groups < child groups < the host."""
        groups = [g for g in self.groups if g != "all" and host in self.hosts_of(g)]
        merged: dict[str, Var] = dict(self.scoped.get(("group", "all"), {}))
        for g in sorted(groups, key=lambda n: (self._depth(n), n)):
            merged.update(self.scoped.get(("group", g), {}))
        merged.update(self.scoped.get(("host", host), {}))
        return merged


def _yaml_load(path: Path):
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # Ansible Vault values are opaque here: keep them as a marker, never decrypt.
    Loader.add_constructor("!vault", lambda loader, node: "<vault>")
    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    try:
        return yaml.load(path.read_text(), Loader=Loader)  # noqa: S506 (SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise KubeforgeError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", file=str(path),
                             fix="fix the YAML syntax") from None


def find_hosts_file(path: Path) -> Path:
    path = Path(path).absolute()   # ansible-runner runs elsewhere: relative paths would match no host
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("hosts.yml", "hosts.yaml"):
            if (path / name).is_file():
                return path / name
        raise KubeforgeError("no hosts.yml in the inventory folder", file=str(path),
                             fix="write hosts.yml there (see inventory/onprem/hosts.yml)")
    raise KubeforgeError("inventory not found", file=str(path), fix="pass -i with an inventory folder or hosts.yml")


def load_inventory(path: Path) -> NodeInventory:
    hosts_file = find_hosts_file(path)
    doc = _yaml_load(hosts_file)
    if not isinstance(doc, dict) or not isinstance(doc.get("all"), dict):
        raise KubeforgeError("a YAML inventory must start with an `all:` mapping", file=str(hosts_file),
                             field="all", fix="see inventory/onprem/hosts.yml")
    groups: dict[str, Group] = {}
    scoped: dict[tuple[str, str], dict[str, Var]] = {}

    def walk(name: str, body: object, where: str) -> None:
        g = groups.setdefault(name, Group(name))
        if body is None:
            return
        if not isinstance(body, dict):
            raise KubeforgeError(f"group {name!r} must be a mapping", file=str(hosts_file), field=where,
                                 fix="use hosts:, children: and vars: keys")
        unknown = set(body) - {"hosts", "children", "vars"}
        if unknown:
            raise KubeforgeError(f"unknown key(s) {sorted(unknown)} in group {name!r}", file=str(hosts_file),
                                 field=where, fix="a group has only hosts:, children: and vars:")
        for host, hv in (body.get("hosts") or {}).items():
            host = str(host)
            if "/" in host:
                raise KubeforgeError(f"host name {host!r} contains '/'", file=str(hosts_file),
                                     field=f"{where}.hosts.{host}",
                                     fix="use a short alias and put the address in ansible_host")
            g.hosts.add(host)
            if hv is not None and not isinstance(hv, dict):
                raise KubeforgeError(f"host {host!r} must map to variables or nothing", file=str(hosts_file),
                                     field=f"{where}.hosts.{host}", fix="write `host: {ansible_host: ADDRESS}`")
            for k, v in (hv or {}).items():
                scoped.setdefault(("host", host), {})[str(k)] = Var(v, hosts_file)
        for k, v in (body.get("vars") or {}).items():
            scoped.setdefault(("group", name), {})[str(k)] = Var(v, hosts_file)
        for child, cbody in (body.get("children") or {}).items():
            g.children.add(str(child))
            walk(str(child), cbody, f"{where}.children.{child}")

    walk("all", doc["all"], "all")
    root = hosts_file.parent
    for kind, folder in (("group", "group_vars"), ("host", "host_vars")):
        d = root / folder
        if not d.is_dir():
            continue
        for entry in sorted(d.iterdir()):
            files = sorted(entry.glob("*.y*ml")) if entry.is_dir() else [entry]
            name = entry.name if entry.is_dir() else entry.stem
            for f in files:
                if f.suffix not in (".yml", ".yaml"):
                    continue
                data = _yaml_load(f)
                if data is None:
                    continue
                if not isinstance(data, dict):
                    raise KubeforgeError("variables file must be a mapping", file=str(f),
                                         fix="write `name: value` lines")
                for k, v in data.items():
                    scoped.setdefault((kind, name), {})[str(k)] = Var(v, f)
    return NodeInventory(hosts_file, groups, scoped)


def role_specs(roles_dir: Path) -> dict[str, dict]:
    """Every option of every role's `main` entry point: {variable: spec}."""
    import yaml

    out: dict[str, dict] = {}
    for f in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
        doc = yaml.safe_load(f.read_text()) or {}
        out.update(((doc.get("argument_specs") or {}).get("main") or {}).get("options") or {})
    return out


def _type_problem(value: object, spec: dict) -> str | None:
    if isinstance(value, str) and ("{{" in value or value == "<vault>"):
        return None  # templated or vaulted: Ansible checks it at run time
    kind = spec.get("type", "str")
    ok = {
        "str": isinstance(value, str | int | float) and not isinstance(value, bool),
        "path": isinstance(value, str),
        "bool": isinstance(value, bool) or (isinstance(value, str) and value.lower() in _BOOL_STRINGS),
        "int": (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, str) and value.strip().lstrip("-").isdigit()),
        "list": isinstance(value, list),
        "dict": isinstance(value, dict),
    }.get(kind, True)
    if not ok:
        return f"must be a {kind}, not {type(value).__name__} {value!r}"
    choices = spec.get("choices")
    if choices and str(value) not in [str(c) for c in choices]:
        return f"must be one of {', '.join(map(str, choices))}, not {value!r}"
    return None


def check_inventory(path: Path, playbook: str, roles_dir: Path, extravars: dict | None = None) -> NodeInventory:
    """Load and check; raise KubeforgeError naming the first problem's file and key (all problems listed).

    `extravars` (-e on the command line) override every host's variables, as in Ansible.
    """
    inv = load_inventory(path)
    for host in inv.all_hosts:
        for k, v in (extravars or {}).items():
            inv.scoped.setdefault(("host", host), {})[k] = Var(v, Path("-e"))
    problems: list[KubeforgeError] = []
    hf = str(inv.hosts_file)
    for g in REQUIRED_GROUPS:
        if g not in inv.groups:
            problems.append(KubeforgeError(f"the inventory has no group {g!r}", file=hf, field=g,
                                           fix=f"add `{g}:` under all.children (see inventory/onprem/hosts.yml)"))
    if problems:
        raise _combine(problems)
    if not inv.hosts_of("kube_control_plane"):
        problems.append(KubeforgeError("no host in kube_control_plane", file=hf, field="kube_control_plane",
                                       fix="put the first control-plane node there"))
    cluster = inv.hosts_of("k8s_cluster")
    for g in ("kube_control_plane", "kube_node", "gpu_nodes"):
        outside = sorted(inv.hosts_of(g) - cluster)
        if outside:
            problems.append(KubeforgeError(f"{', '.join(outside)} in {g} but not in k8s_cluster", file=hf,
                                           field=f"{g}", fix="make k8s_cluster's children kube_control_plane "
                                           "and kube_node, and list GPU nodes in kube_node too"))
    cluster_pins, gpu_pins = PINS_BY_PLAYBOOK.get(playbook, PINS_BY_PLAYBOOK["site"])
    gpu_hosts = inv.hosts_of("gpu_nodes")
    specs = role_specs(roles_dir)
    gv = inv.root / "group_vars"
    for host in sorted(cluster):
        hv = inv.host_vars(host)
        needed = [(p, "all") for p in cluster_pins] + [(p, "gpu_nodes") for p in (gpu_pins if host in gpu_hosts else ())]
        for pin, where in needed:
            if pin not in hv or hv[pin].value in (None, ""):
                what = "is a GPU node but has no" if where == "gpu_nodes" else "has no"
                problems.append(KubeforgeError(f"host {host} {what} {pin}", file=str(gv / f"{where}.yml"),
                                               field=pin, fix=f"set {pin} in group_vars/{where}.yml "
                                               "(every pin lives in group_vars)"))
        for name, var in sorted(hv.items()):
            if not name.startswith(tuple(p + "_" for p in ROLE_PREFIXES)):
                continue
            if name not in specs:
                near = difflib.get_close_matches(name, specs, n=1)
                hint = f"did you mean {near[0]}?" if near else "see the role's meta/argument_specs.yml"
                problems.append(KubeforgeError(f"unknown variable {name} (host {host})", file=str(var.file),
                                               field=name, fix=hint))
                continue
            why = _type_problem(var.value, specs[name])
            if why:
                problems.append(KubeforgeError(f"{name} {why} (host {host})", file=str(var.file), field=name,
                                               fix=specs[name].get("description") or "see the role's argument spec"))
        branch, version = hv.get("nvidia_driver_branch"), hv.get("nvidia_driver_version")
        if host in gpu_hosts and branch and version and "{{" not in str(version):
            if str(version.value).split(".")[0] != str(branch.value):
                problems.append(KubeforgeError(
                    f"nvidia_driver_version {version.value} is not on branch {branch.value} (host {host})",
                    file=str(version.file), field="nvidia_driver_version",
                    fix=f"pick a {branch.value}.x version or change nvidia_driver_branch"))
    if problems:
        raise _combine(problems)
    return inv


def _combine(problems: list[KubeforgeError]) -> KubeforgeError:
    # The same missing pin on many hosts is one problem to fix.
    seen: dict[tuple, KubeforgeError] = {}
    for p in problems:
        seen.setdefault((p.file, p.field, p.fix), p)
    uniq = list(seen.values())
    first = uniq[0]
    if len(uniq) == 1:
        return first
    more = "\n".join(f"  also: {p.file}: {p.field}: {p.message}" for p in uniq[1:])
    return KubeforgeError(f"{first.message}\n{more}", file=first.file, field=first.field, fix=first.fix)
