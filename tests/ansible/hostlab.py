"""Real test hosts for the Ansible roles: booted-systemd containers on a private bridge.

Each host is `systemd-nspawn --boot` over an overlayfs on one cached mmdebstrap image, so real
systemd runs as PID 1 (package postinst scripts start services, handlers really restart them,
sysctls apply in the host's own network namespace). The hosts reach only the bridge address,
where `AptProxy` forwards to the Debian mirror this machine's apt already uses and serves the
local signed apt repository with the stand-in vendor packages. No NAT, no forwarding.

Used by tests/ansible/conftest.py and benchmarks/nodes.py. Needs root and systemd-nspawn.
"""
from __future__ import annotations

import hashlib
import http.server
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kubeforge" / "hosts"
SUITE = "bookworm"
# What a minimal Debian server has before Ansible touches it (python3-apt: the apt module's need).
BASE_PACKAGES = ("python3", "python3-apt", "openssh-server", "sudo", "systemd", "systemd-sysv", "dbus",
                 "iproute2", "kmod", "procps", "gnupg", "ca-certificates")
DEFAULT_SUBNET = "198.51.100.0/24"
PROXY_PORT = 3142
SSH_OPTS = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5")


class LabError(RuntimeError):
    pass


def missing_requirements() -> str | None:
    """Why this machine cannot build hosts, or None."""
    if os.geteuid() != 0:
        return "test hosts need root (systemd-nspawn, bridges, overlay mounts)"
    for tool in ("systemd-nspawn", "mmdebstrap", "ssh", "ssh-keygen", "ip", "zstd", "gpg", "dpkg-deb",
                 "dpkg-scanpackages"):
        if not shutil.which(tool):
            return f"{tool} is missing: run scripts/ci-hosts-deps.sh"
    if not Path("/sys/fs/cgroup/systemd").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "no usable cgroup hierarchy for systemd-nspawn"
    return None


def debian_mirror() -> str:
    """The Debian mirror this machine's apt is configured with (the only upstream the proxy reaches)."""
    candidates: list[str] = []
    for f in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        uris = suites = ""
        for line in f.read_text().splitlines() + [""]:
            if line.startswith("URIs:"):
                uris = line.split(":", 1)[1].strip()
            elif line.startswith("Suites:"):
                suites = line.split(":", 1)[1].strip()
            elif not line.strip():
                if uris and SUITE in suites.split():
                    candidates += uris.split()
                uris = suites = ""
    sl = Path("/etc/apt/sources.list")
    if sl.exists():
        for line in sl.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and not parts[1].startswith("["):
                if parts[2] == SUITE:
                    candidates.append(parts[1])
    for uri in candidates:
        if uri.startswith("http://") and uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return "http://deb.debian.org/debian"


def ensure_base_image(mirror: str | None = None) -> Path:
    """The golden root filesystem tarball, built once into the cache (about 80 s cold)."""
    mirror = mirror or debian_mirror()
    key = hashlib.sha256(f"{SUITE}|minbase|lists|{','.join(BASE_PACKAGES)}|{mirror}".encode()).hexdigest()[:12]
    image = CACHE / f"{SUITE}-{key}.tar.zst"
    if image.exists():
        return image
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = image.with_suffix(f".{os.getpid()}.tmp.tar.zst")
    # Keep the package lists, as on any installed server (apt's cache_valid_time then decides).
    subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "--skip=cleanup/apt/lists",
                    f"--include={','.join(BASE_PACKAGES)}",
                    SUITE, str(tmp), mirror], check=True)
    tmp.rename(image)
    return image


def subnet_in_use(subnet: ipaddress.IPv4Network) -> str | None:
    """The `ip` line that overlaps `subnet` (an address or a route of this machine), or None."""
    for cmd in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show", "table", "all"]):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            for word in line.split():
                try:
                    net = ipaddress.ip_network(word, strict=False)
                except ValueError:
                    continue
                if isinstance(net, ipaddress.IPv4Network) and net.prefixlen > 0 and net.overlaps(subnet):
                    return line.strip()
    return None


class AptProxy(http.server.ThreadingHTTPServer):
    """Caching forward proxy to one Debian mirror, plus a static server for the local repository.

    Absolute-URI requests to the mirror's host are forwarded (packages and by-hash indexes cached
    for good, other indexes for a few hours); requests for this server's own address or plain
    paths are served from `repo_dir`; anything else is refused, so the hosts reach nothing else.
    """

    daemon_threads = True
    INDEX_TTL = 6 * 3600

    def __init__(self, address: str, port: int, mirror: str, repo_dir: Path, cache_dir: Path):
        self.mirror = mirror
        self.mirror_host = mirror.split("/")[2]
        self.repo_dir = repo_dir
        self.cache_dir = cache_dir
        self.local = {f"{address}:{port}", address}
        self.refused: list[str] = []
        super().__init__((address, port), _ProxyHandler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def start(self) -> AptProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: AptProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet: the tests read results, not access logs
        pass

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        path = self.path
        if path.startswith("http://"):
            host, _, rest = path[len("http://"):].partition("/")
            if host in self.server.local:
                return self._local("/" + rest, head)
            if host != self.server.mirror_host:
                self.server.refused.append(path)
                return self._send(403, b"only the Debian mirror is reachable\n", head)
            return self._forward(path, rest, head)
        return self._local(path, head)

    def _send(self, code: int, body: bytes, head: bool, ctype: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _local(self, path: str, head: bool) -> None:
        rel = Path(urllib.request.url2pathname(path.split("?")[0])).relative_to("/")
        target = (self.server.repo_dir / rel).resolve()
        if not target.is_relative_to(self.server.repo_dir.resolve()) or not target.is_file():
            return self._send(404, b"not found\n", head)
        self._send(200, target.read_bytes(), head, "application/octet-stream")

    def _forward(self, url: str, rest: str, head: bool) -> None:
        immutable = rest.endswith((".deb", ".udeb")) or "/by-hash/" in rest
        cached = self.server.cache_dir / hashlib.sha256(url.encode()).hexdigest()
        fresh = cached.exists() and (immutable or time.time() - cached.stat().st_mtime < AptProxy.INDEX_TTL)
        if not fresh:
            try:
                with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (the mirror only)
                    body = resp.read()
            except urllib.error.HTTPError as exc:
                return self._send(exc.code, b"", head)
            except OSError:
                return self._send(502, b"mirror unreachable\n", head)
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{threading.get_ident()}")
            tmp.write_bytes(body)
            tmp.replace(cached)
        self._send(200, cached.read_bytes(), head, "application/octet-stream")


@dataclass
class Host:
    name: str        # the inventory alias
    ip: str
    machine: str     # the nspawn machine name (unique per run)
    root: Path
    upper: Path
    work: Path
    proc: subprocess.Popen | None = None
    cgroups: list[Path] = field(default_factory=list)


class Lab:
    """Boots `names` as hosts on a fresh bridge; `stop()` removes everything, also after a failure."""

    def __init__(self, names: list[str], subnet: str = DEFAULT_SUBNET, repo_dir: Path | None = None):
        self.names = names
        self.subnet = ipaddress.ip_network(subnet)
        self.run_id = uuid.uuid4().hex[:6]
        self.bridge = f"kfbr{self.run_id}"
        self.gateway = str(self.subnet.network_address + 1)
        self.workdir = Path(tempfile.mkdtemp(prefix="kubeforge-hosts-"))
        self.repo_dir = repo_dir or self.workdir / "repo"
        self.key = self.workdir / "id_ed25519"
        self.hosts: list[Host] = []
        self.proxy: AptProxy | None = None
        self._bridge_made = False
        self._lower: Path | None = None
        self._pending: Host | None = None

    @property
    def proxy_url(self) -> str:
        return f"http://{self.gateway}:{PROXY_PORT}"

    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- start ---------------------------------------------------------------------------------
    def start(self) -> None:
        why = missing_requirements()
        if why:
            raise LabError(why)
        used = subnet_in_use(self.subnet)
        if used:
            raise LabError(f"refusing to build test hosts: {self.subnet} is already in use here ({used}); "
                           "set KUBEFORGE_TEST_SUBNET to a free /24")
        image = ensure_base_image()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        self._lower = self.workdir / "lower"
        self._lower.mkdir()
        subprocess.run(["tar", "-I", "zstd", "-xpf", str(image), "-C", str(self._lower)], check=True)
        self._make_bridge()
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        self.proxy = AptProxy(self.gateway, PROXY_PORT, debian_mirror(), self.repo_dir,
                              CACHE / "apt-proxy").start()
        for i, name in enumerate(self.names):
            self.hosts.append(self._boot(name, str(self.subnet.network_address + 11 + i), i))
        for host in self.hosts:
            self._wait_ssh(host)

    def _make_bridge(self) -> None:
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        self._bridge_made = True
        subprocess.run(["ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge],
                       check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)

    def _boot(self, name: str, ip: str, index: int) -> Host:
        base = self.workdir / name
        host = Host(name=name, ip=ip, machine=f"kf{self.run_id}{index}", root=base / "root",
                    upper=base / "upper", work=base / "work")
        for d in (host.root, host.upper, host.work):
            d.mkdir(parents=True)
        self._seed(host)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={self._lower},upperdir={host.upper},workdir={host.work}", str(host.root)],
                       check=True)
        self._pending = host  # so stop() unmounts a host whose launch failed
        # Each host gets its own cgroups, else the containers' units collide and hosts end degraded.
        script = []
        for hierarchy in ("systemd", "unified"):
            cg = Path("/sys/fs/cgroup") / hierarchy / f"kubeforge-{host.machine}"
            if cg.parent.is_dir():
                cg.mkdir(exist_ok=True)
                host.cgroups.append(cg)
                script.append(f"echo $$ > {cg}/cgroup.procs")
        script.append(f"exec systemd-nspawn -q -D {host.root} -M {host.machine} --register=no --keep-unit "
                      f"--boot --network-bridge={self.bridge} --console=passive")
        log = open(base / "console.log", "wb")  # noqa: SIM115 (lives as long as the host)
        host.proc = subprocess.Popen(["sh", "-c", " && ".join(script)], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        return host

    def _seed(self, host: Host) -> None:
        up = host.upper
        ssh = up / "root/.ssh"
        ssh.mkdir(parents=True, mode=0o700)
        (ssh / "authorized_keys").write_text(Path(f"{self.key}.pub").read_text())
        (ssh / "authorized_keys").chmod(0o600)
        (up / "etc").mkdir(exist_ok=True)
        (up / "etc/hostname").write_text(f"{host.name}\n")
        (up / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {host.name}\n")
        net = up / "etc/systemd/network"
        net.mkdir(parents=True)
        (net / "10-host0.network").write_text(
            f"[Match]\nName=host0\n\n[Network]\nAddress={host.ip}/{self.subnet.prefixlen}\n"
            "LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
        wants = up / "etc/systemd/system"
        for target, unit in (("multi-user.target.wants", "systemd-networkd.service"),
                             ("sockets.target.wants", "systemd-networkd.socket")):
            (wants / target).mkdir(parents=True, exist_ok=True)
            (wants / target / unit).symlink_to(f"/lib/systemd/system/{unit}")
        apt = up / "etc/apt/apt.conf.d"
        apt.mkdir(parents=True)
        (apt / "01kubeforge-test-proxy").write_text(
            f'Acquire::http::Proxy "{self.proxy_url}";\nAcquire::Languages "none";\n')

    def _wait_ssh(self, host: Host, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if host.proc and host.proc.poll() is not None:
                raise LabError(f"{host.name}: systemd-nspawn exited ({host.proc.returncode}); see "
                               f"{self.workdir / host.name / 'console.log'}")
            try:
                with socket.create_connection((host.ip, 22), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise LabError(f"{host.name}: no ssh on {host.ip}:22 after {timeout:.0f} s")

    # -- use -----------------------------------------------------------------------------------
    def ssh(self, host: Host | str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        h = self.host(host) if isinstance(host, str) else host
        return subprocess.run(["ssh", *SSH_OPTS, "-i", str(self.key), f"root@{h.ip}", command],
                              capture_output=True, text=True, check=check)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    # -- stop ----------------------------------------------------------------------------------
    def stop(self) -> None:
        pending = self._pending
        hosts = self.hosts + ([pending] if pending and pending not in self.hosts else [])
        for host in hosts:
            if host.proc and host.proc.poll() is None:
                host.proc.send_signal(signal.SIGTERM)  # nspawn halts the booted system cleanly
        for host in hosts:
            if host.proc:
                try:
                    host.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(host.proc.pid, signal.SIGKILL)
                    host.proc.wait()
            if os.path.ismount(host.root):
                subprocess.run(["umount", "-l", str(host.root)], check=False)
            for cg in host.cgroups:
                _remove_cgroup(cg)
        if self.proxy:
            self.proxy.stop()
            self.proxy = None
        if self._bridge_made:
            subprocess.run(["ip", "link", "del", self.bridge], check=False)
            self._bridge_made = False
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.hosts = []


def _remove_cgroup(cg: Path) -> None:
    if not cg.is_dir():
        return
    for child in sorted((p for p in cg.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            child.rmdir()
        except OSError:
            pass
    try:
        cg.rmdir()
    except OSError:
        pass
