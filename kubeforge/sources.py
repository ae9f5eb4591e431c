"""Sources: pinned upstream files -> verified content-addressed cache -> a build tree for kustomize.

Layout below `cache_root()`:

  blobs/sha256/<aa>/<sha256>   every fetched file, named by its content hash (read-only)
  tree/github/<owner>/<repo>/<ref>/<path>
                               the build area: hard links to blobs (copies across file systems);
                               kustomization files whose remote references were rewritten to
                               relative paths into this same tree are the only files that differ
  stamps/<digest>              empty files; one says "this sync set was verified and materialized,
                               and its tree files then had exactly these (inode, size, mtime)"

Trust model. A blob's name is only trusted right after `BlobStore.put` verified it. Whenever the
slow path needs a blob it re-hashes it (`BlobStore.valid`, lazy re-verification): re-hashing the
whole default set costs tens of milliseconds, and it is what turns a corrupted cache file into a
refetch instead of a wrong render. The warm path hashes nothing: it stats every materialized file
and looks for the stamp named by a digest over the sync set and those stats. Blobs and tree files
share inodes, so writing into either (a corrupted blob, an edited tree file) changes the stat
signature, the stamp is not found and the slow path re-verifies and repairs. What the warm path
cannot see is a change that keeps size and mtime (deliberate `touch -r`, silent disk bit rot);
`sync(verify=True)` re-hashes everything for that.

Remote kustomize references (`https://github.com/<owner>/<repo>/<path>?ref=<ref>`,
`github.com/<owner>/<repo>//<path>?ref=<ref>`, `git::`/`ssh://` forms) are rewritten to
`tree/github/<owner>/<repo>/<ref>/<path>` as a relative path, so kustomize never goes to the
network. The rewrite depends only on the URL, so a tree file's content is the same in every sync
set; whether the target is present is checked per sync set, for the references reachable from a
source's build directory (an unused overlay elsewhere in a fetched tree may point anywhere).
Relative directory references outside a kustomization's root are allowed by kustomize's default
load restrictor, so builds never need `--load-restrictor LoadRestrictionsNone`.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from kubeforge.errors import KubeforgeError
from kubeforge.lockfile import tree_hash
from kubeforge.model import Repo, Source

__all__ = ["BlobStore", "cache_root", "mirror_spec", "sync", "tree_bytes", "tree_hash", "tree_root"]

ENV_CACHE = "KUBEFORGE_CACHE"
ENV_MIRROR = "KUBEFORGE_MIRROR"
# Bump when the tree layout or the rewrite changes: old stamps then no longer match.
_FORMAT = "kubeforge-sources/1"
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_CHUNK = 1 << 20
_HEXDIGITS = frozenset("0123456789abcdef")
LOCK_FIX = "run `python -m kubeforge.lockfile --mirror MIRROR` and review the diff"


def cache_root() -> Path:
    """$KUBEFORGE_CACHE, else $XDG_CACHE_HOME/kubeforge, else ~/.cache/kubeforge: a directory this
    process can write (checked once per path); KubeforgeError (exit 2) naming the variable otherwise."""
    env = os.environ.get(ENV_CACHE)
    if env:
        root, where = Path(env).expanduser(), ENV_CACHE
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "kubeforge"
        where = "XDG_CACHE_HOME" if xdg else "cache"
    if root not in _USABLE_ROOTS:
        _check_cache_root(root, where)
        _USABLE_ROOTS.add(root)
    return root


_USABLE_ROOTS: set[Path] = set()


def _check_cache_root(root: Path, where: str) -> None:
    import tempfile

    fix = (f"point {ENV_CACHE} at a directory you can write (it is created if missing), or unset it "
           "to use ~/.cache/kubeforge")
    if root.exists() and not root.is_dir():
        raise KubeforgeError("the cache location is a file, not a directory", file=str(root), field=where, fix=fix)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise KubeforgeError(f"the cache directory cannot be written ({exc.strerror})", file=str(root),
                             field=where, fix=fix) from None


def tree_root() -> Path:
    return cache_root() / "tree"


def mirror_spec(mirror: str | os.PathLike | None = None) -> str | None:
    """The mirror in force: the explicit argument, then $KUBEFORGE_MIRROR, else None (upstream)."""
    if mirror is not None and str(mirror) != "":
        return str(mirror)
    return os.environ.get(ENV_MIRROR) or None


# --------------------------------------------------------------------------- blob store


class HashMismatch(Exception):
    def __init__(self, actual: str):
        super().__init__(actual)
        self.actual = actual


class BlobStore:
    """Content-addressed files: blobs/sha256/<aa>/<sha256>.

    `put` streams into a temp file in the blob's own directory, hashes while writing, fsyncs,
    and renames onto the final name only if the hash matches, so no interrupted or wrong write
    ever sits under a valid name (a crash leaves at most a `.<sha>.*.tmp` that nothing reads).
    """

    def __init__(self, root: Path | None = None):
        self.root = root if root is not None else cache_root() / "blobs" / "sha256"

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    def valid(self, sha: str) -> bool:
        """True if the blob exists and hashes to its name; a corrupted blob is removed."""
        p = self.path(sha)
        try:
            fh = open(p, "rb")
        except FileNotFoundError:
            return False
        with fh:
            h = hashlib.sha256()
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        if h.hexdigest() == sha:
            return True
        p.unlink(missing_ok=True)
        return False

    def get(self, sha: str) -> Path | None:
        """The blob's path if it is present and verifies now (lazy re-verification), else None."""
        return self.path(sha) if self.valid(sha) else None

    def put(self, sha: str, chunks: Iterable[bytes]) -> Path:
        """Store the stream under `sha`; raises HashMismatch (nothing stored) if it hashes otherwise."""
        final = self.path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(final.parent, sha)
        tmp = final.parent / f".{sha}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            h = hashlib.sha256()
            with open(tmp, "wb") as fh:
                for chunk in chunks:
                    h.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            actual = h.hexdigest()
            if actual != sha:
                raise HashMismatch(actual)
            os.chmod(tmp, 0o444)    # discourage editing the cache through a hard link
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        # No fsync of the directory: a rename lost in a crash only loses the blob (refetched later);
        # the file fsync above is what guarantees a name never points at unwritten data.
        return final


def _remove_orphans(directory: Path, sha: str) -> None:
    """Delete temp files of `sha` whose writer process is gone (a killed fetch); never a live one."""
    for tmp in directory.glob(f".{sha}.*.tmp"):
        try:
            pid = int(tmp.name.split(".")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, IndexError, PermissionError):
            pass


# --------------------------------------------------------------------------- where files come from


class _Missing(Exception):
    pass


class _Origin:
    """The mirror directory, the mirror URL, or upstream raw.githubusercontent.com."""

    def __init__(self, spec: str | None):
        self.spec = spec
        self.http = spec is None or spec.startswith(("http://", "https://"))
        self.dir: Path | None = None
        if spec is not None and not self.http:
            self.dir = Path(spec.removeprefix("file://")).expanduser().resolve()

    def check(self) -> None:
        if self.dir is not None and not (self.dir / "github").is_dir():
            raise KubeforgeError(
                f"the sources mirror {self.dir} is not a directory laid out as github/<owner>/<repo>/<ref>/<path>",
                field="mirror",
                fix=f"pass --mirror with the mirror's root directory or URL, or unset {ENV_MIRROR} to fetch upstream")

    def where(self, repo: Repo, path: str) -> str:
        from urllib.parse import quote

        if self.spec is None:
            return repo.raw_url(quote(path))
        if self.http:
            return f"{self.spec.rstrip('/')}/{quote(repo.mirror_path(path))}"
        return str(self.dir / repo.mirror_path(path))

    def chunks(self, repo: Repo, path: str) -> Iterator[bytes]:
        where = self.where(repo, path)
        if not self.http:
            try:
                fh = open(where, "rb")
            except (FileNotFoundError, NotADirectoryError):
                raise _Missing(where) from None
            with fh:
                while chunk := fh.read(_CHUNK):
                    yield chunk
            return
        import http.client
        import urllib.error
        import urllib.request

        req = urllib.request.Request(where, headers={"User-Agent": "kubeforge"})
        try:
            resp = urllib.request.urlopen(req, timeout=60)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise _Missing(where) from None
            raise KubeforgeError(f"fetching {where} failed: HTTP {e.code} {e.reason}", field="mirror",
                                 fix="check that the mirror serves this path") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise KubeforgeError(f"cannot reach {where}: {reason}", field="mirror",
                                 fix=f"check the network, or pass --mirror / set {ENV_MIRROR} to a mirror "
                                     "directory or URL") from None
        with resp:
            try:
                while chunk := resp.read1(_CHUNK):     # as it arrives, not when 1 MiB is in
                    yield chunk
                if resp.length:                         # read1 ends quietly on a short body
                    raise http.client.IncompleteRead(b"", resp.length)
            except (http.client.HTTPException, OSError) as e:
                raise KubeforgeError(f"the transfer of {where} broke off: {e!r}", field="mirror",
                                     fix="run the sync again; nothing partial was kept") from None


# --------------------------------------------------------------------------- the sync set


@dataclass
class _Entry:
    """One manifest/kustomize source, checked."""

    source: Source
    key: tuple[str, str, str]           # (owner, repo, ref), owner and repo lower-cased
    files: list[tuple[str, str]]        # (path in the repository, sha256)
    build: str                          # manifest: the file; kustomize: the build dir (repo paths)


def _tree_rel(key: tuple[str, str, str], path: str) -> str:
    owner, name, ref = key
    return f"github/{owner}/{name}/{ref}/{path}" if path not in ("", ".") else f"github/{owner}/{name}/{ref}"


def _is_sha256(x: object) -> bool:
    return isinstance(x, str) and len(x) == 64 and _HEXDIGITS.issuperset(x)


def _safe_rel(path: str) -> bool:
    return bool(path) and not path.startswith("/") and "\\" not in path and \
        ".." not in path.split("/") and "\0" not in path


def _repo_join(root: str, rel: str) -> str:
    return posixpath.normpath(posixpath.join(root or ".", rel or "."))


_checked_files: dict[tuple, list[tuple[str, str]]] = {}


def _check(sources: list[Source]) -> list[_Entry]:
    """Everything that can be checked without touching a file, before anything is fetched."""
    entries: list[_Entry] = []
    seen: dict[str, Source] = {}
    for s in sources:
        where = f"sources[{s.id}]"
        if s.kind == "helm":
            continue                    # charts are rendered by Pulumi/helm, not fetched here
        if s.kind not in ("manifest", "kustomize"):
            raise KubeforgeError(f"source {s.id!r} has unknown kind {s.kind!r}", field=f"{where}.kind",
                                 fix="use one of: manifest, kustomize, helm")
        if s.id in seen and seen[s.id] != s:
            raise KubeforgeError(f"two different sources share the id {s.id!r}", field=f"{where}.id",
                                 fix="give every source a unique id")
        seen[s.id] = s
        if s.repo is None:
            raise KubeforgeError(f"source {s.id!r} names no repository", field=f"{where}.repo",
                                 fix="set repo: (a key of components/_repos.yaml or an inline owner/name/ref)")
        if not _is_sha256(s.sha256):
            raise KubeforgeError(f"source {s.id!r} has no valid sha256 pin ({s.sha256!r})", field=f"{where}.sha256",
                                 fix=LOCK_FIX)
        key = (s.repo.owner.lower(), s.repo.name.lower(), s.repo.ref)
        if s.kind == "manifest":
            if not _safe_rel(s.path):
                raise KubeforgeError(f"source {s.id!r} has an unsafe or empty path {s.path!r}",
                                     field=f"{where}.path", fix="use a relative path inside the repository")
            entries.append(_Entry(s, key, [(posixpath.normpath(s.path), s.sha256)], posixpath.normpath(s.path)))
            continue
        if not s.files:
            raise KubeforgeError(f"kustomize source {s.id!r} has no file list", field=f"{where}.files", fix=LOCK_FIX)
        for rel in (s.root or ".", s.path or "."):
            if rel != "." and not _safe_rel(rel):
                raise KubeforgeError(f"source {s.id!r} has an unsafe root/path {rel!r}", field=where,
                                     fix="use relative paths inside the repository")
        files = _checked_files.get((s.sha256, s.root, s.files))
        if files is None:           # once per process per lock: this is most of the warm path otherwise
            actual = tree_hash(s.files)
            if actual != s.sha256:
                raise KubeforgeError(
                    f"the file list of source {s.id!r} in sources.lock has tree hash {actual}, "
                    f"the pin says {s.sha256}", field=f"{where}.sha256", fix=LOCK_FIX)
            files = []
            for rel, sha in s.files:
                if not _safe_rel(rel) or not _is_sha256(sha):
                    raise KubeforgeError(f"source {s.id!r}: bad entry in sources.lock: {rel!r} {sha!r}",
                                         field=f"{where}.files", fix=LOCK_FIX)
                files.append((_repo_join(s.root, rel), sha))
            _checked_files[(s.sha256, s.root, s.files)] = files
        build = _repo_join(s.root, s.path)
        names = {p for p, _ in files}
        if not any(_repo_join(build, n) in names for n in KUSTOMIZATION_NAMES):
            raise KubeforgeError(f"source {s.id!r}: no kustomization file in its build directory {build!r}",
                                 field=f"{where}.path", fix="point path at a directory that holds a kustomization.yaml")
        entries.append(_Entry(s, key, files, build))
    return entries


def _index(entries: list[_Entry]) -> dict[tuple[str, str, str], dict[str, tuple[str, str]]]:
    """(owner, repo, ref) -> repository path -> (sha256, source id); one pin per path."""
    index: dict[tuple[str, str, str], dict[str, tuple[str, str]]] = {}
    for e in entries:
        files = index.setdefault(e.key, {})
        for path, sha in e.files:
            old = files.get(path)
            if old and old[0] != sha:
                raise KubeforgeError(
                    f"sources {old[1]!r} and {e.source.id!r} pin {'/'.join(e.key)}/{path} to different "
                    f"sha256 ({old[0]} vs {sha})", field=f"sources[{e.source.id}]", fix=LOCK_FIX)
            files.setdefault(path, (sha, e.source.id))
    return index


def _set_key(entries: list[_Entry]) -> bytes:
    h = hashlib.sha256(_FORMAT.encode())
    for e in sorted(entries, key=lambda e: e.source.id):
        s = e.source
        h.update(repr((s.id, s.kind, e.key, s.root, s.path, s.sha256)).encode())
    return h.digest()


def _stamp_name(set_key: bytes, tree: Path, rels: list[str]) -> str | None:
    """Digest over the set and the stat of every tree file; None when one is missing."""
    h = hashlib.sha256(set_key)
    base = f"{tree}/"            # plain strings: pathlib costs more than the stat itself here
    stat = os.stat
    parts = []
    for rel in rels:
        try:
            st = stat(base + rel)
        except OSError:
            return None
        parts.append(f"{rel}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\n")
    h.update("".join(parts).encode())
    return h.hexdigest()


def _result(entries: list[_Entry], tree: Path) -> dict[str, Path]:
    return {e.source.id: tree / _tree_rel(e.key, e.build) for e in entries}


def sync(sources: list[Source], mirror: str | os.PathLike | None = None, *, verify: bool = False,
         jobs: int | None = None) -> dict[str, Path]:
    """Fetch, verify and materialize every manifest/kustomize source; return id -> build path.

    The path is the file for a manifest source and the directory to run `kustomize build` in for
    a kustomize source. Helm sources are skipped (rendered elsewhere). `verify=True` ignores the
    warm-path stamp and re-hashes every cached file.
    """
    entries = _check(sources)
    index = _index(entries)
    root = cache_root()
    tree = root / "tree"
    rels = sorted({_tree_rel(k, p) for k, files in index.items() for p in files})
    set_key = _set_key(entries)
    stamps = root / "stamps"
    if not verify:
        name = _stamp_name(set_key, tree, rels)
        if name and (stamps / name).exists():
            return _result(entries, tree)

    store = BlobStore(root / "blobs" / "sha256")
    _fetch(entries, store, _Origin(mirror_spec(mirror)), jobs)
    rewrites = _rewrites(index, store)
    _check_references(entries, index, store)
    _materialize(index, store, tree, rewrites)
    name = _stamp_name(set_key, tree, rels)
    if name:
        stamps.mkdir(parents=True, exist_ok=True)
        (stamps / name).touch()
    return _result(entries, tree)


def tree_bytes(source: Source) -> int:
    """Bytes of a synced source's materialized files: a cheap estimate of its kustomize build time."""
    if source.repo is None:
        return 0
    base = f"{tree_root()}/"
    key = (source.repo.owner.lower(), source.repo.name.lower(), source.repo.ref)
    paths = [_repo_join(source.root, rel) for rel, _ in source.files] or [posixpath.normpath(source.path)]
    total = 0
    for p in paths:
        try:
            total += os.stat(base + _tree_rel(key, p)).st_size
        except OSError:
            pass
    return total


# --------------------------------------------------------------------------- fetch


def _pool(jobs: int):
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kubeforge-sync")


def _fetch(entries: list[_Entry], store: BlobStore, origin: _Origin, jobs: int | None) -> None:
    """Make every pinned blob present and verified; errors name the first failing source/file."""
    wanted: dict[str, tuple[int, _Entry, str]] = {}
    for i, e in enumerate(entries):
        for path, sha in e.files:
            wanted.setdefault(sha, (i, e, path))
    jobs = jobs or 8            # I/O bound (network, fsync); hashing releases the GIL
    with _pool(jobs) as pool:
        present = dict(zip(wanted, pool.map(store.valid, wanted), strict=True))
        missing = [sha for sha, ok in present.items() if not ok]
        if not missing:
            return
        origin.check()

        def one(sha: str) -> BaseException | None:
            _, e, path = wanted[sha]
            try:
                store.put(sha, origin.chunks(e.source.repo, path))
            except (HashMismatch, _Missing, KubeforgeError) as exc:
                return exc
            return None

        failures = [(wanted[sha], exc) for sha, exc in zip(missing, pool.map(one, missing), strict=True) if exc]
    if not failures:
        return
    failures.sort(key=lambda f: (f[0][0], f[0][2]))
    (_, e, path), exc = failures[0]
    more = f" (and {len(failures) - 1} more files)" if len(failures) > 1 else ""
    s = e.source
    where = origin.where(s.repo, path)
    field = f"sources[{s.id}] {path}"
    if isinstance(exc, HashMismatch):
        expected = next(sha for p, sha in e.files if p == path)
        raise KubeforgeError(
            f"source {s.id!r}: {path} has sha256 {exc.actual}, but the pin says {expected}{more}",
            file=where, field=field,
            fix=f"if the mirror's copy is damaged, replace it with {s.repo.raw_url(path)}; if the pin is "
                f"outdated after a ref bump, {LOCK_FIX}")
    if isinstance(exc, _Missing):
        fix = (f"copy {s.repo.raw_url(path)} to {where}" if origin.dir is not None else
               "check the mirror (or the source's repo/ref/path)")
        raise KubeforgeError(f"source {s.id!r}: {path} is missing; tried {where}{more}", file=where, field=field,
                             fix=fix)
    raise exc


# --------------------------------------------------------------------------- remote references

@cache
def _rx() -> dict[str, re.Pattern]:
    """Compiled on first use: importing this module stays cheap for the CLI."""
    return {
        # kustomize's GitHub forms: [git::][https://|ssh://][git@]github.com[/:]owner/repo[.git][/ or //path][?ref=X]
        "github": re.compile(
            r"^(?:git::)?(?:(?:https?|ssh|git)://)?(?:git@)?github\.com[/:]"
            r"(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+?)(?:\.git)?(?://?(?P<path>[^?]*))?(?:\?(?P<query>.*))?$"),
        "remote": re.compile(
            r"^(?:[a-z][a-z0-9+.-]*::|[a-z][a-z0-9+.-]*://|git@|(?:github|gitlab|bitbucket)\.(?:com|org)/)", re.I),
        # one plain list item: "- value  # comment", value optionally quoted
        "item": re.compile(r"^(?P<lead>\s*-\s+)(?P<q>['\"]?)(?P<val>[^'\"#\s]+)(?P=q)(?P<tail>[ \t]*(?:#.*)?)$"),
    }


_FIELDS = ("resources", "components", "bases")


def is_remote(entry: str) -> bool:
    return bool(_rx()["remote"].match(entry))


def parse_github(url: str) -> tuple[tuple[str, str, str], str] | None:
    """((owner, repo, ref), path) of a pinned GitHub remote reference, else None."""
    from urllib.parse import parse_qs

    m = _rx()["github"].match(url)
    if not m or "/releases/download/" in url:
        return None
    q = parse_qs(m["query"] or "")
    ref = (q.get("ref") or q.get("version") or [None])[0]
    if not ref:
        return None
    path = posixpath.normpath(m["path"].strip("/")) if m["path"] and m["path"].strip("/") else "."
    if path.startswith(".."):
        return None
    return (m["owner"].lower(), m["repo"].lower(), ref), path


_yaml_cache: dict[str, dict | None] = {}


def _kustomization(store: BlobStore, sha: str) -> dict | None:
    if sha not in _yaml_cache:
        import yaml

        try:
            doc = yaml.load(store.path(sha).read_bytes(), Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            doc = None          # kustomize will report it, with its own words, at build time
        _yaml_cache[sha] = doc if isinstance(doc, dict) else None
    return _yaml_cache[sha]


def _entries_of(doc: dict | None) -> list[str]:
    if not doc:
        return []
    return [x for f in _FIELDS if isinstance(doc.get(f), list) for x in doc[f] if isinstance(x, str)]


def _find_kustomization(files: dict, d: str) -> str | None:
    for n in KUSTOMIZATION_NAMES:
        p = _repo_join(d, n)
        if p in files:
            return p
    return None


def _rewrites(index: dict, store: BlobStore) -> dict[str, bytes]:
    """Tree path -> new content, for every kustomization with GitHub remote references."""
    out: dict[str, bytes] = {}
    for key, files in index.items():
        for path, (sha, _) in files.items():
            if posixpath.basename(path) not in KUSTOMIZATION_NAMES:
                continue
            raw = store.path(sha).read_bytes()
            if b"github.com" not in raw:
                continue
            here = _tree_rel(key, posixpath.dirname(path))
            mapping = {}
            for entry in _entries_of(_kustomization(store, sha)):
                target = parse_github(entry) if is_remote(entry) else None
                if target:
                    mapping[entry] = posixpath.relpath(_tree_rel(*target), here)
            if mapping:
                out[_tree_rel(key, path)] = _rewrite_text(raw, mapping, _kustomization(store, sha))
    return out


def _rewrite_text(raw: bytes, mapping: dict[str, str], doc: dict) -> bytes:
    """Replace list items in place (comments and layout survive); re-dump if one is not a plain item."""
    lines = raw.decode().splitlines(keepends=True)
    done = set()
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        m = _rx()["item"].match(body)
        if m and m["val"] in mapping:
            done.add(m["val"])
            lines[i] = f"{m['lead']}{m['q']}{mapping[m['val']]}{m['q']}{m['tail']}{line[len(body):]}"
    if done == set(mapping):
        return "".join(lines).encode()
    import yaml

    new = dict(doc)
    for f in _FIELDS:
        if isinstance(new.get(f), list):
            new[f] = [mapping.get(x, x) if isinstance(x, str) else x for x in new[f]]
    return yaml.safe_dump(new, sort_keys=False).encode()


def _check_references(entries: list[_Entry], index: dict, store: BlobStore) -> None:
    """Every base/component reachable from a kustomize source's build dir must be in this sync:
    remote ones (rewritten) and local ones (a root too narrow is caught here, by name, instead of
    as a kustomize error at render time)."""
    for e in entries:
        if e.source.kind != "kustomize":
            continue
        stack = [(e.key, e.build)]
        seen = set()
        while stack:
            key, d = stack.pop()
            if (key, d) in seen:
                continue
            seen.add((key, d))
            files = index.get(key, {})
            kpath = _find_kustomization(files, d)
            if kpath is None:
                continue        # not a kustomization we fetched: kustomize reports it at build time
            doc = _kustomization(store, files[kpath][0])
            for ref in _file_refs(doc):
                local = _repo_join(d, ref)
                if not (local.startswith("..") or local in files or _is_dir(files, local)):
                    raise _not_fetched(e, _tree_rel(key, kpath), ref, key, local)
            for entry in _entries_of(doc):
                if not is_remote(entry):
                    local = _repo_join(d, entry)
                    if local.startswith("..") or local in files:
                        continue    # outside the repository (kustomize reports it), or a fetched file
                    if _find_kustomization(files, local):
                        stack.append((key, local))
                    elif not _is_dir(files, local):
                        raise _not_fetched(e, _tree_rel(key, kpath), entry, key, local)
                    continue
                target = parse_github(entry)
                if target and _find_kustomization(index.get(target[0], {}), target[1]):
                    stack.append(target)
                    continue
                raise _unresolved(e.source, _tree_rel(key, kpath), entry, target)


def _is_dir(files: dict, path: str) -> bool:
    prefix = path + "/"
    return any(p.startswith(prefix) for p in files)


def _file_refs(doc: dict | None) -> list[str]:
    """Local files a kustomization reads besides resources/components: patches, generators' files,
    configurations, crds, replacements, openapi, and transformer/generator/validator configs."""
    if not doc:
        return []
    out: list[str] = []

    def add(x) -> None:
        if isinstance(x, str) and x and "\n" not in x:     # inline YAML patches/configs are not files
            out.append(x)

    for f in ("patchesStrategicMerge", "configurations", "crds", "transformers", "generators", "validators"):
        for x in _as_list(doc.get(f)):
            add(x)
    for f in ("patches", "patchesJson6902", "replacements"):
        for x in _as_list(doc.get(f)):
            if isinstance(x, dict):
                add(x.get("path"))
    for f in ("configMapGenerator", "secretGenerator"):
        for g in _as_list(doc.get(f)):
            if isinstance(g, dict):
                for x in _as_list(g.get("files")):
                    add(x.split("=", 1)[1] if isinstance(x, str) and "=" in x else x)
                for x in _as_list(g.get("envs")):
                    add(x)
                add(g.get("env"))
    if isinstance(doc.get("openapi"), dict):
        add(doc["openapi"].get("path"))
    return out


def _as_list(x) -> list:
    return x if isinstance(x, list) else []


def _not_fetched(e: _Entry, kfile: str, ref: str, key: tuple[str, str, str], local: str) -> KubeforgeError:
    sid = e.source.id
    root = _repo_join(e.source.root, ".")
    inside = key == e.key and (root == "." or local.startswith(root + "/"))
    if inside:
        fix = (f"it is inside the root of source {sid!r} but not in its lock: the mirror lacks the upstream "
               f"file {_tree_rel(key, local)}; add it to the mirror and relock, or build a path that does "
               "not need it")
    else:
        fix = (f"widen the root of source {sid!r} to cover it, or declare a source whose root covers it "
               "(then relock)")
    return KubeforgeError(f"{ref} (reached from source {sid!r}) is not among the fetched files: "
                          f"{_tree_rel(key, local)}", file=kfile, field="resources", fix=fix)


def _unresolved(source: Source, kfile: str, url: str, target) -> KubeforgeError:
    if target is not None:
        (owner, repo, ref), path = target
        why = f"points at {owner}/{repo} {path} at {ref}, which no source of this sync covers"
        fix = (f"declare a kustomize source for repo {owner}/{repo} at ref {ref} whose root covers {path} "
               f"(and lock it), in the same component or one it requires")
    elif "/releases/download/" in url:
        why = "is a GitHub release asset, not a repository file a mirror holds"
        fix = ("build from a kubeforge overlay that replaces it with a declared manifest source, "
               "or choose a build path that does not use it")
    elif _rx()["github"].match(url):
        why = "has no ?ref= pin"
        fix = "reference a pinned ref (?ref=<tag>) from a kubeforge overlay, with a declared source for it"
    else:
        why = "is not a GitHub repository reference (github.com/<owner>/<repo>/<path>?ref=<ref>)"
        fix = ("build from a kubeforge overlay that replaces it with a declared manifest/kustomize source, "
               "or choose a build path that does not use it")
    return KubeforgeError(f"remote reference {url} (reached from source {source.id!r}) {why}",
                          file=kfile, field="resources", fix=fix)


# --------------------------------------------------------------------------- materialize


def _materialize(index: dict, store: BlobStore, tree: Path, rewrites: dict[str, bytes]) -> None:
    made: set[Path] = set()
    suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
    for key, files in index.items():
        for path, (sha, _) in files.items():
            rel = _tree_rel(key, path)
            dest = tree / rel
            if dest.parent not in made:
                dest.parent.mkdir(parents=True, exist_ok=True)
                made.add(dest.parent)
            tmp = dest.parent / f".{dest.name}{suffix}"
            if rel in rewrites:
                data = rewrites[rel]
                try:
                    if dest.read_bytes() == data:
                        continue
                except OSError:
                    pass
                tmp.write_bytes(data)
            else:
                blob = store.path(sha)
                try:
                    if os.path.samefile(dest, blob):
                        continue
                except OSError:
                    pass
                tmp.unlink(missing_ok=True)     # left by a crashed run
                try:
                    os.link(blob, tmp)
                except OSError:         # another file system, or links not allowed: copy
                    import shutil

                    shutil.copyfile(blob, tmp)
            os.replace(tmp, dest)


if __name__ == "__main__":
    # Not a command: say where the commands are instead of doing nothing (exit 2, a usage error).
    import sys

    print("error: kubeforge.sources has no command line\n"
          "  fix: fetch and verify sources with `kubeforge sync -p PROFILE`; rewrite pins and "
          "sources.lock with `python -m kubeforge.lockfile --mirror MIRROR [COMPONENT]`", file=sys.stderr)
    sys.exit(2)
