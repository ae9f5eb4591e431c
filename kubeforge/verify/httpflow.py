"""A small browser for the Kubeflow login flow: cookies, bounded redirects, HTML forms.

It logs in the way a person does, through the real endpoints, with nothing from the cluster's
secrets but the user's own password:

    GET /                    the gateway; oauth2-proxy (Istio's ext_authz) answers with its
                             sign-in page (403, a form GET /oauth2/start) or a 302 to it
    GET /oauth2/start?rd=/   oauth2-proxy sets its CSRF cookie, 302 to Dex (login_url /dex/auth)
    GET /dex/auth?...        Dex: one connector -> 302 /dex/auth/local -> 302 .../login?state=..
                             (several connectors: its login page links each; we take `local`)
    POST .../login           Dex's password form (fields `login` and `password`, web/templates/
                             password.html); wrong credentials give the form again with
                             `login-error`, right ones a 303 to /oauth2/callback?code=..&state=..
    GET /oauth2/callback     oauth2-proxy redeems the code, sets its session cookie, 302 to rd
    GET /                    with the cookie: the central dashboard (200)

Every failure is a FlowError that names the step, what was asked and what came back. Nothing
secret is ever part of a message: no password, no cookie value, no code or state.

The transport is plain http.client, one connection per request (Connection: close), so a
`dial` callable can hand it a socket that is a Kubernetes port-forward to the ingress gateway.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from kubeforge.verify.context import CheckError

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 10


class FlowError(CheckError):
    """One step of an HTTP flow went wrong: `step` names it (shown first in the message)."""

    def __init__(self, step: str, message: str):
        super().__init__(f"{step}: {message}")
        self.step = step
        self.detail = message


def _path(url: str) -> str:
    """The path of a URL without its query (queries carry codes and states: never shown)."""
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?…" if parts.query else "")


# -- responses and cookies --------------------------------------------------------------------
@dataclass
class Response:
    method: str
    url: str                       # absolute
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def location(self) -> str | None:
        loc = self.header("Location")
        return urllib.parse.urljoin(self.url, loc) if loc else None

    def json(self) -> Any:
        import json

        return json.loads(self.body)

    def brief(self) -> str:
        """`GET /path -> 302 /next` for messages."""
        out = f"{self.method} {_path(self.url)} -> {self.status}"
        if self.status in REDIRECTS and self.location:
            out += f" {_path(self.location)}"
        return out


@dataclass
class Cookie:
    name: str
    value: str
    path: str = "/"
    secure: bool = False


class CookieJar:
    """Cookies of one origin, the way a browser keeps them for it (path-scoped; Max-Age<=0 or an
    empty value deletes). Secure cookies are sent over https, and over http only to loopback or a
    tunnel (browsers treat localhost as a secure context; a port-forward is a tunnel)."""

    def __init__(self) -> None:
        self._cookies: dict[tuple[str, str], Cookie] = {}

    def names(self) -> list[str]:
        return sorted({c.name for c in self._cookies.values()})

    def get(self, name: str) -> Cookie | None:
        for c in self._cookies.values():
            if c.name == name:
                return c
        return None

    def store(self, set_cookie: str, request_path: str) -> str:
        """Take one Set-Cookie header; returns the cookie's name."""
        first, *attrs = [p.strip() for p in set_cookie.split(";")]
        name, _, value = first.partition("=")
        name, value = name.strip(), value.strip().strip('"')
        default_path = request_path.rsplit("/", 1)[0] or "/"
        path, secure, expired = default_path, False, False
        for a in attrs:
            key, _, val = a.partition("=")
            key = key.strip().lower()
            if key == "path" and val.startswith("/"):
                path = val
            elif key == "secure":
                secure = True
            elif key == "max-age":
                try:
                    expired = int(val) <= 0
                except ValueError:
                    pass
            elif key == "expires":
                from email.utils import parsedate_to_datetime

                try:
                    import datetime as dt

                    expired = parsedate_to_datetime(val) < dt.datetime.now(dt.UTC)
                except (TypeError, ValueError):
                    pass
        key = (name, path)
        if expired or not value:
            self._cookies.pop(key, None)
        else:
            self._cookies[key] = Cookie(name, value, path, secure)
        return name

    def header(self, path: str, secure_ok: bool) -> str | None:
        sent = [c for c in self._cookies.values()
                if (path == c.path or path.startswith(c.path.rstrip("/") + "/")) and (secure_ok or not c.secure)]
        sent.sort(key=lambda c: -len(c.path))
        return "; ".join(f"{c.name}={c.value}" for c in sent) or None


# -- HTML -------------------------------------------------------------------------------------
@dataclass
class Form:
    action: str
    method: str
    inputs: dict[str, str] = field(default_factory=dict)    # name -> value (hidden fields and defaults)
    fields: list[str] = field(default_factory=list)         # every input name, in order


class Page(HTMLParser):
    """The parts of an HTML page a login flow reads: forms, links, element ids, the title."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.title = ""
        self._in_title = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "form":
            self.forms.append(Form(action=a.get("action", ""), method=(a.get("method") or "get").upper()))
        elif tag in ("input", "button", "select", "textarea") and self.forms and a.get("name"):
            form = self.forms[-1]
            form.fields.append(a["name"])
            if a.get("type", "text") not in ("submit", "checkbox", "radio") or tag != "input":
                form.inputs.setdefault(a["name"], a.get("value", ""))
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def form_with(self, *names: str) -> Form | None:
        for f in self.forms:
            if all(n in f.fields for n in names):
                return f
        return None


# -- the browser ------------------------------------------------------------------------------
class Browser:
    """HTTP to one origin (`base`, e.g. http://kubeflow.example.com) with a cookie jar.

    dial() -> a connected socket replaces the TCP connect (a port-forward to the gateway pod);
    the Host header stays the base's host. Redirects leaving the origin are refused: in a
    Kubeflow login every hop stays on the gateway, and one that does not (e.g. to Dex's in-cluster
    URL, http://dex.auth.svc.cluster.local:5556) is a misconfiguration the check must name."""

    def __init__(self, base: str, *, dial: Callable[[], socket.socket] | None = None, timeout: float = 20.0,
                 max_redirects: int = MAX_REDIRECTS, verify_tls: bool = True):
        parts = urllib.parse.urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) base URL: {base!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.dial = dial
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.verify_tls = verify_tls
        self.cookies = CookieJar()
        self.history: list[Response] = []

    @property
    def _secure_ok(self) -> bool:
        return self.scheme == "https" or self.dial is not None or self.host in ("127.0.0.1", "localhost", "::1")

    def url(self, path_or_url: str) -> str:
        return urllib.parse.urljoin(self.origin + "/", path_or_url)

    def _connection(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            tls = ssl.create_default_context()
            if not self.verify_tls:
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=tls)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        if self.dial is not None:
            sock = self.dial()
            sock.settimeout(self.timeout)
            if self.scheme == "https":
                sock = conn._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
            conn.sock = sock
        return conn

    def request(self, method: str, path_or_url: str, *, step: str = "request",
                headers: dict[str, str] | None = None, form: dict[str, str] | None = None,
                cookies: bool = True) -> Response:
        """One request, no redirect following. cookies=False sends none (an anonymous caller)."""
        url = self.url(path_or_url)
        parts = urllib.parse.urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            raise FlowError(step, f"{method} {url} leaves the gateway {self.origin}")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        hdrs = {"Host": parts.netloc, "Connection": "close", "Accept": "text/html,application/json;q=0.9,*/*;q=0.8",
                "User-Agent": "kubeforge-verify", **(headers or {})}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        jar = self.cookies.header(parts.path or "/", self._secure_ok) if cookies else None
        if jar:
            hdrs["Cookie"] = jar
        try:
            conn = self._connection()
            try:
                conn.request(method, target, body=body, headers=hdrs)
                raw = conn.getresponse()
                data = raw.read()
                resp = Response(method, url, raw.status, list(raw.getheaders()), data)
            finally:
                conn.close()
        except FlowError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise FlowError(step, f"{method} {_path(url)} at {self.origin}: no HTTP answer "
                                  f"({type(exc).__name__}: {exc})") from None
        if cookies:
            for sc in resp.header_all("Set-Cookie"):
                self.cookies.store(sc, parts.path or "/")
        self.history.append(resp)
        return resp

    def follow(self, method: str, path_or_url: str, *, step: str, stop: Callable[[Response], bool] | None = None,
               **kw: Any) -> Response:
        """Request and follow redirects (303 and 301/302 after a POST turn into GET, as browsers
        do) until a non-redirect, or until stop(response) is true; at most max_redirects hops."""
        resp = self.request(method, path_or_url, step=step, **kw)
        hops = [resp]
        while resp.status in REDIRECTS and not (stop and stop(resp)):
            if len(hops) > self.max_redirects:
                raise FlowError(step, f"more than {self.max_redirects} redirects: "
                                      + ", ".join(r.brief() for r in hops[-4:]))
            if not resp.location:
                raise FlowError(step, f"{resp.brief()} without a Location header")
            keep = resp.status in (307, 308)
            method = method if keep else "GET"
            kw = {k: v for k, v in kw.items() if keep or k != "form"}
            resp = self.request(method, resp.location, step=step, **kw)
            hops.append(resp)
        return resp


# -- the login flow ---------------------------------------------------------------------------
@dataclass
class Login:
    """What a successful login got: the session cookie's name, the page it landed on, the hops."""

    cookie: str
    landing: Response
    hops: list[str]


def _is_under(url: str, prefix: str) -> bool:
    return urllib.parse.urlsplit(url).path.startswith(prefix)


def login(browser: Browser, email: str, password: str, *, start: str = "/", dex_prefix: str = "/dex/",
          proxy_prefix: str = "/oauth2", cookie_name: str | None = None, connector: str = "local") -> Login:
    """Log in as a Dex static user through the gateway; returns once the session cookie is set and
    the start page answered 200 with it. FlowError(step, ...) otherwise."""
    mark = len(browser.history)
    before = set(browser.cookies.names())

    # 1. The gateway sends an anonymous browser to oauth2-proxy: its sign-in page, or (with
    #    skip_provider_button) straight on to Dex with the CSRF cookie already set.
    first = browser.request("GET", start, step="gateway")
    if first.status == 200:
        raise FlowError("gateway", f"GET {start} answered 200 without a session: the gateway does not send "
                                   "anonymous users to the login")
    if first.status in REDIRECTS and first.location:
        begin = first.location
    else:
        page = Page(first.text)
        form = next((f for f in page.forms if f.action.rstrip("/").endswith(f"{proxy_prefix}/start")), None)
        if form is None:
            raise FlowError("gateway", f"{first.brief()}: neither a redirect nor oauth2-proxy's sign-in page "
                                       f"(a form to {proxy_prefix}/start); page title {page.title.strip()!r}")
        begin = browser.url(form.action) + "?" + urllib.parse.urlencode(form.inputs)

    # 2. oauth2-proxy's start: it sets its CSRF cookie and redirects to Dex.
    if _is_under(begin, dex_prefix):
        to_dex = first
    else:
        to_dex = browser.follow("GET", begin, step="oauth2-proxy start",
                                stop=lambda r: bool(r.location) and _is_under(r.location, dex_prefix))
    if not (to_dex.status in REDIRECTS and to_dex.location and _is_under(to_dex.location, dex_prefix)):
        raise FlowError("oauth2-proxy start", f"{to_dex.brief()}: expected a redirect to Dex under {dex_prefix}")
    if not to_dex.location.startswith(browser.origin + "/"):
        raise FlowError("oauth2-proxy start", f"oauth2-proxy sends the browser to {to_dex.location.split('?')[0]}, "
                                              f"off the gateway {browser.origin}: no browser reaches it (its "
                                              f"login_url must be the gateway path {dex_prefix}auth)")
    csrf = [n for n in browser.cookies.names() if n not in before and n.endswith("_csrf")]
    if not csrf:
        raise FlowError("oauth2-proxy start", f"{to_dex.brief()} set no CSRF cookie (*_csrf): its callback "
                                              "will refuse the login")

    # 3. Dex: follow to the password form (choosing the connector if Dex lists several).
    page_resp = browser.follow("GET", to_dex.location, step="dex authorize")
    for _ in range(3):
        if page_resp.status != 200:
            raise FlowError("dex authorize", f"{page_resp.brief()}: Dex did not show a login page "
                                             f"({_snippet(page_resp)})")
        page = Page(page_resp.text)
        if page.form_with("login", "password"):
            break
        links = [h for h in page.links if f"/auth/{connector}" in urllib.parse.urlsplit(h).path]
        if not links:
            raise FlowError("dex authorize", f"{page_resp.brief()}: no password form and no link to the "
                                             f"{connector!r} connector (title {page.title.strip()!r})")
        page_resp = browser.follow("GET", urllib.parse.urljoin(page_resp.url, links[0]), step="dex authorize")
    else:
        raise FlowError("dex authorize", "Dex's connector pages never led to a password form")
    form = page.form_with("login", "password")
    assert form is not None

    # 4. The form post. Right credentials: a redirect towards the callback; wrong: the form again.
    fields = dict(form.inputs)
    fields.update({"login": email, "password": password})
    post_url = urllib.parse.urljoin(page_resp.url, form.action or page_resp.url)
    posted = browser.request(form.method, post_url, step="dex login", form=fields)
    if posted.status == 200:
        again = Page(posted.text)
        if "login-error" in again.ids or again.form_with("login", "password"):
            raise FlowError("dex login", f"Dex refused the credentials of {email} (its password form came "
                                         "back with an error): wrong password, or the user is not among "
                                         "Dex's staticPasswords")
        approve = next((f for f in again.forms if "approval" in f.fields or "req" in f.fields), None)
        if approve is None:
            raise FlowError("dex login", f"{posted.brief()}: neither a redirect nor Dex's approval page")
        values = {**approve.inputs, "approval": "approve"}
        posted = browser.request("POST", urllib.parse.urljoin(posted.url, approve.action or posted.url),
                                 step="dex approval", form=values)
    if posted.status not in REDIRECTS or not posted.location:
        raise FlowError("dex login", f"{posted.brief()}: expected a redirect after the form post ({_snippet(posted)})")
    callback = posted
    if _is_under(callback.location, dex_prefix):   # the approval screen, or another Dex hop
        callback = browser.follow("GET", callback.location, step="dex approval",
                                  stop=lambda r: bool(r.location) and not _is_under(r.location, dex_prefix))
        if callback.status == 200 and Page(callback.text).form_with("approval"):
            appr = Page(callback.text).form_with("approval")
            callback = browser.request("POST", urllib.parse.urljoin(callback.url, appr.action or callback.url),
                                       step="dex approval", form={**appr.inputs, "approval": "approve"})
    if not (callback.location and _is_under(callback.location, f"{proxy_prefix}/callback")):
        raise FlowError("dex login", f"{callback.brief()}: Dex did not send the browser back to "
                                     f"{proxy_prefix}/callback")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(callback.location).query)
    if "code" not in query:
        err = (query.get("error") or ["no code"])[0]
        raise FlowError("dex login", f"Dex's redirect to the callback carries no code ({err})")

    # 5. oauth2-proxy's callback: it redeems the code and sets the session cookie.
    before = set(browser.cookies.names())
    done = browser.request("GET", callback.location, step="oauth2-proxy callback")
    if done.status not in REDIRECTS:
        raise FlowError("oauth2-proxy callback", f"{done.brief()}: the code was not accepted ({_snippet(done)})")
    new = [n for n in browser.cookies.names() if n not in before or n == cookie_name]
    session = [n for n in new if not n.endswith("_csrf")]
    if cookie_name is not None and cookie_name not in session:
        raise FlowError("oauth2-proxy callback", f"{done.brief()} did not set the session cookie {cookie_name!r} "
                                                 f"(set: {', '.join(new) or 'none'})")
    if not session:
        raise FlowError("oauth2-proxy callback", f"{done.brief()} set no session cookie")

    # 6. Back where we started, now with the session.
    landing = browser.follow("GET", done.location or start, step="session")
    if landing.status != 200:
        raise FlowError("session", f"{landing.brief()} with the session cookie ({_snippet(landing)})")
    hops = [r.brief() for r in browser.history[mark:]]
    return Login(cookie=cookie_name or session[0], landing=landing, hops=hops)


def _snippet(resp: Response, n: int = 160) -> str:
    """The start of a response body, one line, for messages (bodies of these pages hold no secrets)."""
    text = " ".join(resp.text.split())
    return (text[:n] + "…") if len(text) > n else (text or "empty body")
