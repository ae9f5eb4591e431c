"""kubeforge.verify.httpflow and kubeforge.verify.gateway: the browser's cookie and redirect rules,
the login flow's failures on misconfigurations a real install has had, and how verify finds the
ingress gateway pod, against the real renders and the loopback STAND-IN of login_standin.py."""
from __future__ import annotations

import copy
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from kubeforge.verify import gateway, httpflow
from kubeforge.verify.context import CheckError
from kubeforge.verify.httpflow import Browser, CookieJar, FlowError, Page

pytest_plugins = ("login_fixtures",)   # the stand-in fixtures (no conftest: the folder is shared)


# -- cookies ------------------------------------------------------------------------------------
def test_cookie_jar_scopes_paths_and_deletes():
    jar = CookieJar()
    jar.store("oauth2_proxy_kubeflow=abc|def; Path=/; HttpOnly; SameSite=Lax", "/oauth2/callback")
    jar.store("oauth2_proxy_kubeflow_csrf=x; Path=/oauth2; Max-Age=900", "/oauth2/start")
    assert jar.header("/", secure_ok=False) == "oauth2_proxy_kubeflow=abc|def"
    assert jar.header("/oauth2/callback", secure_ok=False) == "oauth2_proxy_kubeflow_csrf=x; oauth2_proxy_kubeflow=abc|def"
    assert jar.header("/oauth2x", secure_ok=False) == "oauth2_proxy_kubeflow=abc|def"
    jar.store("oauth2_proxy_kubeflow_csrf=; Path=/oauth2; Max-Age=-1", "/oauth2/callback")
    assert jar.names() == ["oauth2_proxy_kubeflow"]
    jar.store("s=1; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT", "/")
    assert jar.get("s") is None


def test_secure_cookies_go_only_over_https_loopback_or_a_tunnel():
    jar = CookieJar()
    jar.store("sid=1; Path=/; Secure", "/")
    assert jar.header("/", secure_ok=False) is None
    assert jar.header("/", secure_ok=True) == "sid=1"
    assert not Browser("http://kubeflow.example.com")._secure_ok
    assert Browser("http://127.0.0.1:8080")._secure_ok
    assert Browser("http://kubeflow.gateway", dial=lambda: None)._secure_ok
    assert Browser("https://kubeflow.example.com")._secure_ok


# -- a tiny server for redirect rules ------------------------------------------------------------
@pytest.fixture
def redirector():
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/loop"):
                n = int(self.path[5:] or 0)
                self.send_response(302)
                self.send_header("Location", f"/loop{n + 1}")
            elif self.path == "/away":
                self.send_response(302)
                self.send_header("Location", "http://dex.auth.svc.cluster.local:5556/dex/auth?client_id=x")
            else:
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_redirects_are_bounded(redirector):
    b = Browser(redirector, max_redirects=4)
    with pytest.raises(FlowError) as err:
        b.follow("GET", "/loop0", step="gateway")
    assert str(err.value).startswith("gateway: more than 4 redirects: ")
    assert len(b.history) == 5          # the first request and the 4 redirects it may follow


def test_a_redirect_off_the_gateway_is_named(redirector):
    with pytest.raises(FlowError) as err:
        Browser(redirector).follow("GET", "/away", step="oauth2-proxy start")
    assert "http://dex.auth.svc.cluster.local:5556/dex/auth?client_id=x leaves the gateway" in str(err.value)


def test_an_unanswered_request_names_the_step():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(FlowError) as err:
        Browser(f"http://127.0.0.1:{port}", timeout=2).request("GET", "/", step="gateway")
    assert str(err.value).startswith("gateway: GET / at http://127.0.0.1:") and "no HTTP answer" in str(err.value)


def test_page_reads_forms_with_escaped_actions():
    page = Page('<title>dex</title><form method="post" action="/dex/auth/local/login?back=&amp;state=abc">'
                '<input name="login" type="text"/><input name="password" type="password"/>'
                '<button type="submit">Login</button></form>')
    form = page.form_with("login", "password")
    assert form.action == "/dex/auth/local/login?back=&state=abc" and form.method == "POST"
    assert page.title == "dex"


# -- the login flow on misconfigured stand-ins ---------------------------------------------------
def _password(kubeflow):
    from kubeforge.secrets import store_for

    user = kubeflow.plan.profile.kubeflow.auth.staticUsers[0].email
    return user, store_for(kubeflow.plan.profile).peek(f"dex-password-{user}")


def test_login_picks_the_password_connector_when_dex_lists_several(standin, kubeflow):
    """With an external OIDC connector beside the password DB, Dex (handlers.go handleAuthorization)
    shows its login page with one link per connector instead of redirecting."""
    _, cluster, gw = standin()
    gw.dex.extra_connectors = [("corp", "Corporate SSO")]
    user, password = _password(kubeflow)
    got = httpflow.login(Browser("http://kubeflow.gateway", dial=cluster.server.dial), user, password,
                         cookie_name=gw.proxy.cookie)
    assert got.landing.status == 200
    assert any("/dex/auth?" in h and "-> 200" in h for h in got.hops)   # the connector list was shown


def test_login_url_pointing_into_the_cluster_is_named(standin, kubeflow):
    """Without login_url, oauth2-proxy sends browsers to Dex's in-cluster issuer URL, which no
    browser reaches (upstream's oauth2_proxy.cfg explains why it sets login_url)."""
    _, cluster, gw = standin()
    gw.proxy.cfg["login_url"] = "http://dex.auth.svc.cluster.local:5556/dex/auth"
    user, password = _password(kubeflow)
    with pytest.raises(FlowError) as err:
        httpflow.login(Browser("http://kubeflow.gateway", dial=cluster.server.dial), user, password)
    assert err.value.step == "oauth2-proxy start"
    assert "sends the browser to http://dex.auth.svc.cluster.local:5556/dex/auth, off the gateway" in str(err.value)


def test_an_unregistered_redirect_uri_is_named(standin, kubeflow):
    _, cluster, gw = standin()
    gw.proxy.cfg["redirect_url"] = "/oauth2/elsewhere"
    user, password = _password(kubeflow)
    with pytest.raises(FlowError) as err:
        httpflow.login(Browser("http://kubeflow.gateway", dial=cluster.server.dial), user, password)
    assert err.value.step == "dex authorize" and "-> 400" in str(err.value)
    assert "Unregistered redirect_uri" in str(err.value)


def test_the_gateway_url_env_skips_the_port_forward(standin, monkeypatch, kubeflow):
    _, cluster, gw = standin()
    monkeypatch.setenv(gateway.GATEWAY_URL_ENV, f"http://127.0.0.1:{cluster.server.port}/")
    ctx = type("Ctx", (), {"objects": kubeflow.components["kubeflow-auth"].objects, "cluster": cluster})()
    b = gateway.browsers(ctx)()
    assert b.origin == f"http://127.0.0.1:{cluster.server.port}" and b.dial is None
    assert b.request("GET", "/", step="gateway").status == 403   # oauth2-proxy's sign-in page
    assert cluster.dialed == []


# -- finding the gateway pod ------------------------------------------------------------------------
def test_ingress_target_follows_the_rendered_gateway_and_service(kubeflow):
    gw = gateway.kubeflow_gateway(kubeflow.components["kubeflow-auth"].objects)
    istio = kubeflow.components["istio"].objects
    dep = next(o for o in istio if o["kind"] == "Deployment" and o["metadata"]["name"] == "istio-ingressgateway")
    services = [o for o in istio if o["kind"] == "Service"]
    pod = {"metadata": {"name": "istio-ingressgateway-1", "namespace": "istio-system",
                        "labels": dep["spec"]["template"]["metadata"]["labels"]},
           "spec": dep["spec"]["template"]["spec"],
           "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    # Service port 80 (the Gateway's HTTP server) -> targetPort 8080 in Istio's render.
    assert gateway.ingress_target(gw, [pod], services) == ("istio-system", "istio-ingressgateway-1", 8080)
    starting = copy.deepcopy(pod)
    starting["status"] = {"phase": "Pending"}
    with pytest.raises(CheckError) as err:
        gateway.ingress_target(gw, [starting], services)
    assert "1 pod(s) match, none Running and Ready" in str(err.value)
    named = copy.deepcopy(services)
    for s in named:
        for p in s["spec"]["ports"]:
            if p["port"] == 80:
                p["targetPort"] = "http2"
    pod["spec"] = copy.deepcopy(pod["spec"])
    pod["spec"]["containers"][0]["ports"].append({"name": "http2", "containerPort": 8081})
    assert gateway.ingress_target(gw, [pod], named)[2] == 8081


# -- the web apps' routes are upstream's ---------------------------------------------------------
def test_web_app_prefixes_are_the_upstream_virtual_services(mirror_dir):
    from kubeforge.verify.kubeflow import WEB_APPS

    apps = "github/kubeflow/manifests/26.03/applications"
    files = {"central-dashboard": "centraldashboard/upstream/overlays/istio/virtual-service.yaml",
             "notebooks": "jupyter/jupyter-web-app/upstream/overlays/istio/virtual-service.yaml",
             "volumes": "volumes-web-app/upstream/overlays/istio/virtual-service.yaml",
             "tensorboards": "tensorboard/tensorboards-web-app/upstream/overlays/istio/virtual-service.yaml",
             "pipelines": "pipeline/upstream/base/installs/multi-user/virtual-service.yaml"}
    for app in WEB_APPS:
        docs = [d for d in yaml.safe_load_all((mirror_dir / apps / files[app.component]).read_text()) if d]
        prefixes = {m["uri"]["prefix"] for d in docs if d.get("kind") == "VirtualService"
                    for h in d["spec"]["http"] for m in h.get("match") or [] if "prefix" in m.get("uri", {})}
        assert app.prefix in prefixes or app.prefix.rstrip("/") in prefixes, (app.component, prefixes)


def test_verify_gateway_url_option(kubeforge_cli, monkeypatch, tmp_path):
    import os

    rc, _, err = kubeforge_cli("verify", "-p", "kubeflow", "--gateway-url", "kubeflow.example.com")
    assert rc == 2 and "--gateway-url: 'kubeflow.example.com' is not an http(s) URL" in err
    monkeypatch.delenv(gateway.GATEWAY_URL_ENV, raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    rc, _, err = kubeforge_cli("verify", "-p", "kubeflow", "--gateway-url", "https://kubeflow.example.com")
    assert rc == 2 and "no kubeconfig file here" in err
    assert gateway.GATEWAY_URL_ENV not in os.environ      # for that invocation only


def test_login_passes_dexs_approval_screen_when_it_is_on(standin, kubeflow):
    """skipApprovalScreen: false (Kubeflow sets true): Dex sends the browser to /dex/approval,
    whose form the user grants (server/handlers.go handleApproval)."""
    _, cluster, gw = standin()
    gw.dex.config["oauth2"]["skipApprovalScreen"] = False
    user, password = _password(kubeflow)
    got = httpflow.login(Browser("http://kubeflow.gateway", dial=cluster.server.dial), user, password,
                         cookie_name=gw.proxy.cookie)
    assert any(h.startswith("POST /dex/approval") for h in got.hops), got.hops
    assert got.landing.status == 200


def test_login_when_oauth2_proxy_skips_its_sign_in_page(standin, kubeflow):
    """skip_provider_button = true: the gateway's first answer is oauth2-proxy's 302 to Dex, with
    the CSRF cookie on it (oauthproxy.go Proxy -> doOAuthStart)."""
    _, cluster, gw = standin()
    gw.proxy.cfg["skip_provider_button"] = True
    user, password = _password(kubeflow)
    got = httpflow.login(Browser("http://kubeflow.gateway", dial=cluster.server.dial), user, password,
                         cookie_name=gw.proxy.cookie)
    assert got.hops[0].startswith("GET / -> 302 /dex/auth") and got.landing.status == 200
    assert not any("/oauth2/start" in h for h in got.hops)


# -- the two live calls the checks add to kubeforge.verify.cluster ---------------------------------
def test_cluster_token_request_and_port_forward_calls(monkeypatch):
    """What Cluster sends the kubernetes client: a TokenRequest for the named ServiceAccount, and a
    port-forward to the named pod and port, one per dial (no live API server here)."""
    import types

    from kubernetes import client, stream

    from kubeforge.verify.cluster import Cluster

    seen = {}

    def create_token(self, name, namespace, body):
        seen["token"] = (name, namespace, body)
        return types.SimpleNamespace(status=types.SimpleNamespace(token="eyJ.tok.en"))

    class PF:
        def __init__(self, port):
            self.port = port

        def socket(self, port):
            assert port == self.port
            return f"socket-{port}"

    def portforward(method, pod, namespace, ports):
        seen.setdefault("pf", []).append((method.__name__, pod, namespace, ports))
        return PF(int(ports))

    monkeypatch.setattr(client.CoreV1Api, "create_namespaced_service_account_token", create_token)
    monkeypatch.setattr(stream, "portforward", portforward)
    c = Cluster.__new__(Cluster)
    c.api = client.ApiClient()
    assert c.service_account_token("team-a", "default-editor") == "eyJ.tok.en"
    name, ns, body = seen["token"]
    assert (name, ns) == ("default-editor", "team-a")
    assert body == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 600}}
    dial = c.pod_dialer("istio-system", "istio-ingressgateway-1", 8080)
    assert "pf" not in seen                                  # nothing opened until a connection is made
    assert dial() == "socket-8080" and dial() == "socket-8080"
    assert seen["pf"] == [("connect_get_namespaced_pod_portforward", "istio-ingressgateway-1", "istio-system", "8080")] * 2
