"""Per-install secrets: made once per install, read back afterwards, never a shared default.

A component declares the secrets its generate.py uses in component.yaml:

    secrets:
      oauth2-proxy-cookie-secret: {generate: base64, bytes: 32, description: ...}
      "dex-password-*": {generate: alnum, length: 20}            # one per static user
      "dex-password-hash-*": {generate: bcrypt, of: "dex-password-*"}

and reads them with `ctx.secret(name)`. A name ending in `*` declares a family (per user, per
tenant). Several components may declare one name (a client secret both ends share) if they
declare it alike. `bcrypt` values are derived from another secret of the same family suffix and
stored too, so renders stay byte-identical (bcrypt salts are random).

Where the values live (a `Store`):
- directory renders, `kubeforge apply`, verify, teardown: a YAML file outside the repository,
  mode 0600: `--secrets FILE` / $KUBEFORGE_SECRETS, else `<secrets dir>/<profile>.yaml` with the
  secrets dir $KUBEFORGE_SECRETS_DIR, else $XDG_CONFIG_HOME/kubeforge/secrets (~/.config/...);
- the Pulumi stack: the `kubeforge:secrets` config value, a Pulumi secret on the stack path,
  which `kubeforge up` fills before the program runs (the program only reads it).
Values are never printed unless asked (`kubeforge secrets get`).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets as _random
import stat
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError

GENERATORS = ("alnum", "hex", "base64", "bcrypt", "user")
_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*(\*)?")
_ALNUM = string.ascii_letters + string.digits
ENV_FILE = "KUBEFORGE_SECRETS"
ENV_DIR = "KUBEFORGE_SECRETS_DIR"
BCRYPT_ROUNDS = 12   # Dex's default cost for static passwords


@dataclass(frozen=True)
class Spec:
    """How one secret (or a family, `name` ending in `*`) is made."""

    name: str
    generate: str
    length: int = 0          # alnum: characters
    bytes: int = 0           # hex/base64: random bytes
    of: str = ""             # bcrypt: the secret (family) it hashes
    description: str = ""

    def matches(self, name: str) -> bool:
        if self.name.endswith("*"):
            return name.startswith(self.name[:-1]) and len(name) > len(self.name) - 1
        return name == self.name

    def source_of(self, name: str) -> str:
        """bcrypt: the secret this one hashes (same family suffix)."""
        if self.of.endswith("*"):
            return self.of[:-1] + name[len(self.name) - 1:]
        return self.of


def parse_specs(raw: Any, *, file: str) -> dict[str, Spec]:
    """component.yaml `secrets:` -> {name: Spec}; every mistake names the field and the fix."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise KubeforgeError("secrets must be a mapping of name -> {generate: ...}", file=file,
                             field="secrets", fix="e.g. secrets: {my-token: {generate: alnum, length: 32}}")
    out: dict[str, Spec] = {}
    for name, body in raw.items():
        where = f"secrets.{name}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise KubeforgeError(f"bad secret name {name!r}", file=file, field=where,
                                 fix="lower-case letters, digits, '.' and '-', optionally ending in '*'")
        body = body or {}
        unknown = set(body) - {"generate", "length", "bytes", "of", "description"}
        if unknown:
            raise KubeforgeError(f"unknown key(s) {sorted(unknown)}", file=file, field=where,
                                 fix="use generate, length, bytes, of, description")
        gen = body.get("generate")
        if gen not in GENERATORS:
            raise KubeforgeError(f"generate must be one of {', '.join(GENERATORS)}, got {gen!r}", file=file,
                                 field=f"{where}.generate", fix="e.g. generate: alnum")
        spec = Spec(name=name, generate=gen, length=int(body.get("length") or 0),
                    bytes=int(body.get("bytes") or 0), of=str(body.get("of") or ""),
                    description=str(body.get("description") or ""))
        need = {"alnum": ("length", spec.length >= 16), "hex": ("bytes", spec.bytes >= 16),
                "base64": ("bytes", spec.bytes >= 16), "bcrypt": ("of", bool(spec.of)),
                "user": ("generate", True)}[gen]
        if not need[1]:
            raise KubeforgeError(f"a {gen} secret needs `{need[0]}`" + (" of at least 16" if gen != "bcrypt" else ""),
                                 file=file, field=f"{where}.{need[0]}",
                                 fix="short secrets are guessable: use 16 or more" if gen != "bcrypt"
                                 else "name the secret it hashes, e.g. of: \"dex-password-*\"")
        if gen == "bcrypt" and spec.of.endswith("*") != name.endswith("*"):
            raise KubeforgeError("a bcrypt family hashes a family (both names end in '*') or one secret "
                                 "hashes one secret", file=file, field=f"{where}.of",
                                 fix="make both names families or neither")
        out[name] = spec
    for spec in out.values():
        if spec.generate == "bcrypt" and spec.of not in out:
            raise KubeforgeError(f"{spec.name} hashes {spec.of}, which this component does not declare",
                                 file=file, field=f"secrets.{spec.name}.of", fix=f"declare {spec.of} too")
    return out


def check_shared(components: dict[str, Any]) -> None:
    """A name declared by several components must be declared alike (one secret, one recipe)."""
    seen: dict[str, tuple[str, Spec]] = {}
    for comp in components.values():
        for name, spec in comp.secrets.items():
            if name in seen and _recipe(seen[name][1]) != _recipe(spec):
                raise KubeforgeError(
                    f"secret {name} is declared differently by {seen[name][0]} and {comp.name}",
                    file=f"components/{comp.name}/component.yaml", field=f"secrets.{name}",
                    fix=f"declare it exactly as components/{seen[name][0]}/component.yaml does")
            seen.setdefault(name, (comp.name, spec))


def _recipe(s: Spec) -> tuple:
    return (s.generate, s.length, s.bytes, s.of)


def make(spec: Spec, source: str | None = None) -> str:
    """A fresh random value for `spec` (bcrypt: the hash of `source`)."""
    if spec.generate == "alnum":
        return "".join(_random.choice(_ALNUM) for _ in range(spec.length))
    if spec.generate == "hex":
        return _random.token_hex(spec.bytes)
    if spec.generate == "base64":
        return base64.urlsafe_b64encode(_random.token_bytes(spec.bytes)).decode()
    import bcrypt

    return bcrypt.hashpw(source.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


def _bcrypt_matches(value: str, source: str) -> bool:
    import bcrypt

    try:
        return bcrypt.checkpw(source.encode(), value.encode())
    except ValueError:
        return False


# ---- stores -----------------------------------------------------------------------------------

class Store:
    """Name -> value. `writable` stores make what is missing; read-only ones report it.
    stand_in: throw-away values (counting a stack's resources): a secret the user sets
    (`generate: user`) that is not set yet reads as a placeholder instead of an error."""

    writable = True
    where = "secrets"

    def __init__(self, values: dict[str, str] | None = None, *, stand_in: bool = False):
        self._values: dict[str, str] = dict(values or {})
        self.added: list[str] = []
        self.stand_in = stand_in

    def peek(self, name: str) -> str | None:
        return self._load().get(name)

    def names(self) -> list[str]:
        return sorted(self._load())

    def values(self) -> dict[str, str]:
        return dict(self._load())

    def put(self, name: str, value: str) -> str:
        """Store a new value (only a writable store; the file is written at once)."""
        if not self.writable:
            raise KubeforgeError(f"the install has no secret {name!r} yet", field=f"secrets.{name}",
                                 fix=self.missing_fix())
        self._load()[name] = value
        self.added.append(name)
        self._save()
        return value

    def missing_fix(self) -> str:
        return "render it once with a writable store"

    def set_fix(self, name: str) -> str:
        """How the user sets a `generate: user` secret in this store."""
        return (f"add {name} to the stack's kubeforge:secrets JSON object (`pulumi config get kubeforge:secrets`, "
                f"then `pulumi config set --secret kubeforge:secrets '<the object with {name}>'`)")

    def _load(self) -> dict[str, str]:
        return self._values

    def _save(self) -> None:
        pass


class FileStore(Store):
    """A YAML file of name: value, mode 0600 in a 0700 directory, outside any git checkout."""

    def __init__(self, path: Path, *, writable: bool = True):
        super().__init__()
        self.path = Path(path).expanduser()
        self.where = str(self.path)
        self.writable = writable
        self._cache: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._cache is not None:
            return self._cache
        self._cache = {}
        if not self.path.exists():
            return self._cache
        if self.path.is_dir():
            raise KubeforgeError(f"secrets file {self.path} is a directory", field=ENV_FILE,
                                 fix="name a file (it is created with mode 0600)")
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            raise KubeforgeError(f"secrets file {self.path} is readable by others (mode {mode:04o})",
                                 field=ENV_FILE, fix=f"chmod 600 {self.path}")
        import yaml

        try:
            data = yaml.safe_load(self.path.read_text()) or {}
        except yaml.YAMLError:
            data = None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise KubeforgeError(f"secrets file {self.path} is not a mapping of name: value", field=ENV_FILE,
                                 fix="restore it from your backup (deleting it makes new secrets: every "
                                     "password and key of the install changes on the next apply)")
        self._cache = data
        return self._cache

    def _save(self) -> None:
        import yaml

        _refuse_checkout(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("# kubeforge per-install secrets: keep private, back up, never commit.\n")
                yaml.safe_dump(dict(sorted(self._cache.items())), f, default_flow_style=False)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise KubeforgeError(f"cannot write the secrets file {self.path}: {exc.strerror}", field=ENV_FILE,
                                 fix=f"make {self.path.parent} writable or name another file with --secrets") from None

    def put(self, name: str, value: str) -> str:
        """Add a new secret under an exclusive lock, reading the file afresh first: two processes
        rendering one install at once (parallel tests, a render beside an apply) keep the value
        the first of them made instead of overwriting each other's."""
        import fcntl

        if not self.writable or name in self._load():
            return super().put(name, value)     # a replacement (a re-derived hash) is ours to write
        _refuse_checkout(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._cache = None
            theirs = self._load().get(name)
            if theirs is not None:
                return theirs
            return super().put(name, value)
        finally:
            os.close(fd)

    def missing_fix(self) -> str:
        return f"render or apply once to create it in {self.path}"

    def set_fix(self, name: str) -> str:
        return (f"run `kubeforge secrets set -p PROFILE {name}` (it reads the value from stdin and keeps it "
                f"in {self.path})")


class ConfigStore(Store):
    """The Pulumi stack's `kubeforge:secrets` (a JSON object): read-only inside the program."""

    writable = False
    where = "config kubeforge:secrets"

    def missing_fix(self) -> str:
        return ("run `kubeforge up -e ENV` (it makes missing secrets and stores them as Pulumi secrets in "
                "the stack's config), or `kubeforge secrets init -e ENV`")


def _refuse_checkout(path: Path) -> None:
    for parent in Path(os.path.abspath(path)).parents:
        if (parent / ".git").exists():
            raise KubeforgeError(f"secrets file {path} is inside the git checkout {parent}", field=ENV_FILE,
                                 fix="keep per-install secrets outside any repository (the default is "
                                     "~/.config/kubeforge/secrets/<profile>.yaml)")


def secrets_dir() -> Path:
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "kubeforge" / "secrets"


def default_path(profile_name: str) -> Path:
    if os.environ.get(ENV_FILE):
        return Path(os.environ[ENV_FILE]).expanduser()
    return secrets_dir() / f"{profile_name or 'default'}.yaml"


def store_for(profile: Any, path: str | os.PathLike | None = None) -> FileStore:
    """The install's file store: `path`, else $KUBEFORGE_SECRETS, else per profile name."""
    return FileStore(Path(path) if path else default_path(profile.name))


# ---- what render uses ---------------------------------------------------------------------------

def lookup(specs: dict[str, Spec], name: str, component: str) -> Spec:
    """The spec of `name`: its own, else the most specific family (dex-password-hash-* before
    dex-password-*, whose prefix it also has)."""
    found = [spec for spec in specs.values() if spec.matches(name)]
    if found:
        return max(found, key=lambda s: (not s.name.endswith("*"), len(s.name)))
    raise KubeforgeError(f"generate.py asks for secret {name!r}, which the component does not declare",
                         file=f"components/{component}/component.yaml", field="secrets",
                         fix=f"declare it (or a family such as {name.rsplit('-', 1)[0]}-*) under secrets:")


def resolve(store: Store, specs: dict[str, Spec], name: str, component: str,
            touched: set[str] | None = None) -> str:
    """The value of `name`; a bcrypt value is re-derived when its source changed. `touched`
    collects every secret the value depends on (a hash depends on its password too)."""
    spec = lookup(specs, name, component)
    if touched is not None:
        touched.add(name)
    current = store.peek(name)
    if spec.generate == "user":
        if current is not None:
            return current
        if getattr(store, "stand_in", False):
            return f"stand-in-for-{name}"
        raise KubeforgeError(f"{name} is a secret you set ({spec.description or 'kubeforge cannot make it'}), "
                             f"and {store.where} has none", file=f"components/{component}/component.yaml",
                             field=f"secrets.{name}", fix=store.set_fix(name))
    if spec.generate != "bcrypt":
        return current if current is not None else store.put(name, make(spec))
    source = resolve(store, specs, spec.source_of(name), component, touched)
    if current is not None and _bcrypt_matches(current, source):
        return current
    return store.put(name, make(spec, source))


def digest(store: Store, names: list[str]) -> str | None:
    """A fingerprint of the values of `names` (None if one is missing): the render cache's check
    that a cached component was made with the secrets the install has now. Never the values."""
    h = hashlib.sha256()
    for name in sorted(names):
        v = store.peek(name)
        if v is None:
            return None
        h.update(json.dumps([name, v]).encode())
    return h.hexdigest()
