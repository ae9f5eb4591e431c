"""A kubeconfig with insecure-skip-tls-verify: one warning line naming the kubeconfig, instead of
urllib3's InsecureRequestWarning on every request. verify and teardown run as the user runs them
(a new process, real stderr) against the HTTPS stand-in of an API server from
test_lifecycle_cli (the cluster boundary this machine cannot reach), with a self-signed
certificate the kubeconfig does not trust."""
from __future__ import annotations

import datetime
import os
import ssl
import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from test_lifecycle_cli import _EmptyApiServer, _kubeconfig

KUBEFORGE = str(Path(sys.executable).parent / "kubeforge")


class _ApiServer(_EmptyApiServer):
    """test_lifecycle_cli's stand-in, answering a GET of one named object with 404 (nothing is
    there) instead of an empty list: teardown's dry run reads single objects."""

    LISTS = {plural for _gv, res in _EmptyApiServer.RESOURCES.values() for plural, _k, _ns in res}

    def do_GET(self):  # noqa: N802 (http.server naming)
        parts = self.path.split("?")[0].rstrip("/").split("/")
        if len(parts) > 4 and parts[-1] not in self.LISTS and parts[-2] in self.LISTS:
            return self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "reason": "NotFound", "code": 404, "message": "not found"})
        return super().do_GET()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubeforge-test-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
    crt, pem = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


@pytest.fixture
def https_api(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiServer)
    server.installed, server.psa_rejects = True, True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*_self_signed(tmp_path))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}"
    yield _kubeconfig(tmp_path, url), url
    server.shutdown()


@pytest.mark.parametrize("argv", [
    ("teardown", "-p", "training", "--dry-run"),
    ("verify", "-p", "training", "--check", "kubeflow-namespace/pod-security"),
])
def test_insecure_skip_tls_verify_warns_once_naming_the_kubeconfig(https_api, mirror_dir, argv):
    kubeconfig, url = https_api
    env = dict(os.environ, KUBEFORGE_MIRROR=str(mirror_dir))
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run([KUBEFORGE, *argv, "--kubeconfig", str(kubeconfig)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert [ln for ln in lines if "insecure-skip-tls-verify" in ln] == [
        f"warning: {kubeconfig}: insecure-skip-tls-verify is set: the API server at {url} is used without "
        "checking its TLS certificate"]
    assert not [ln for ln in lines if "InsecureRequestWarning" in ln or "Unverified HTTPS request" in ln]
