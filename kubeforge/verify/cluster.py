"""The one place kubeforge talks to a live cluster: a thin layer over the `kubernetes` client.

verify, teardown and upgrade all connect through `connect()`, so a missing kubeconfig or an
unreachable API server is one clear error (exit 2) everywhere, raised before anything is touched.
Objects go in and come out as plain dicts, the same shape `render()` produces.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from kubeforge.errors import KubeforgeError

DEFAULT_KUBECONFIG = "~/.kube/config"
FIELD_MANAGER = "kubeforge"   # the one field manager of everything kubeforge applies


class ApiRejected(Exception):
    """The API server refused one request: its status code, reason and message, as it said them."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message

    @classmethod
    def of(cls, exc: Any) -> ApiRejected:
        import json

        message = str(getattr(exc, "body", "") or exc)
        try:
            message = json.loads(message).get("message") or message
        except (ValueError, AttributeError):
            pass
        return cls(int(getattr(exc, "status", 0) or 0), str(getattr(exc, "reason", "") or ""), message)


def kubeconfig_path(explicit: str | None = None) -> Path:
    """--kubeconfig, else the first file in $KUBECONFIG, else ~/.kube/config; must exist."""
    if explicit:
        where = "--kubeconfig"
        path = Path(explicit).expanduser()
    elif os.environ.get("KUBECONFIG"):
        where = "KUBECONFIG"
        path = Path(os.environ["KUBECONFIG"].split(os.pathsep)[0]).expanduser()
    else:
        where = "kubeconfig"
        path = Path(DEFAULT_KUBECONFIG).expanduser()
    if not path.is_file():
        raise KubeforgeError(
            "no kubeconfig file here, so there is no cluster to talk to", file=str(path), field=where,
            fix="pass --kubeconfig PATH or set KUBECONFIG to the admin kubeconfig of the cluster "
                "(the cluster stack's kubeconfig output)")
    return path


def live_cluster_reason(kubeconfig: str | None = None) -> str | None:
    """None when a cluster answers; otherwise why not (tests print it when they skip)."""
    if not (kubeconfig or os.environ.get("KUBECONFIG")):
        return "KUBECONFIG is not set: no live cluster to run against"
    try:
        connect(kubeconfig)
    except KubeforgeError as exc:
        return exc.render().replace("\n", " ")
    return None


class ProxyResponse:
    """What a Service answered through the API server's proxy."""

    def __init__(self, status: int, headers: dict[str, str], text: str | bytes):
        self.status = status
        self.headers = headers
        self.text = text.decode(errors="replace") if isinstance(text, bytes) else text


class Cluster:
    """A connected cluster. Thread-safe for the calls below (the client pools connections)."""

    def __init__(self, api_client: Any, kubeconfig: Path, server: str):
        from kubernetes import dynamic

        self.api = api_client
        self.kubeconfig = kubeconfig
        self.server = server
        self._dyn = dynamic.DynamicClient(api_client)
        self._lock = threading.Lock()
        self._res: dict[tuple[str, str], Any] = {}

    # -- discovery -------------------------------------------------------------------------
    def resource(self, api_version: str, kind: str) -> Any:
        """The API resource for apiVersion/kind, or None when the server does not serve it."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        key = (api_version, kind)
        with self._lock:
            if key not in self._res:
                try:
                    self._res[key] = self._dyn.resources.get(api_version=api_version, kind=kind)
                except ResourceNotFoundError:
                    self._res[key] = None
            return self._res[key]

    def forget(self, api_version: str, kind: str) -> None:
        """Drop a cached lookup (a CRD was just created or deleted)."""
        with self._lock:
            self._res.pop((api_version, kind), None)
            self._dyn.resources.invalidate_cache()

    # -- objects ---------------------------------------------------------------------------
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        res = self.resource(api_version, kind)
        if res is None:
            return None
        try:
            return res.get(name=name, namespace=namespace if res.namespaced else None).to_dict()
        except NotFoundError:
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict]:
        res = self.resource(api_version, kind)
        if res is None:
            return []
        kw: dict[str, Any] = {}
        if label_selector:
            kw["label_selector"] = label_selector
        if res.namespaced and namespace:
            kw["namespace"] = namespace
        items = res.get(**kw).to_dict().get("items", [])
        for item in items:  # list responses leave kind/apiVersion off their items
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def create(self, obj: dict, namespace: str | None = None, dry_run: bool = False) -> dict:
        res = self._require(obj)
        ns = namespace or obj.get("metadata", {}).get("namespace")
        kw: dict[str, Any] = {"body": obj}
        if res.namespaced:
            kw["namespace"] = ns
        if dry_run:
            kw["query_params"] = [("dryRun", "All")]
        return res.create(**kw).to_dict()

    def apply(self, obj: dict, namespace: str | None = None, *, force: bool = False,
              dry_run: bool = False) -> dict:
        """Server-side apply as field manager `kubeforge`; the object as the server stored it (or,
        with dry_run, would store it: dryRun=All persists nothing). Conflicts with another field
        manager are refused unless force. ApiRejected when the server refuses it."""
        from kubernetes.client.exceptions import ApiException

        md = obj.get("metadata", {})
        res = self.resource(obj["apiVersion"], obj["kind"])
        if res is None:
            raise ApiRejected(404, "NotFound", f'no matches for kind "{obj["kind"]}" in version '
                              f'"{obj["apiVersion"]}" (the cluster does not serve it)')
        ns = namespace or md.get("namespace")
        kw: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force_conflicts": force}
        if dry_run:
            kw["dry_run"] = "All"
        try:
            return res.server_side_apply(body=obj, name=md["name"], namespace=ns if res.namespaced else None,
                                         **kw).to_dict()
        except ApiException as exc:
            raise ApiRejected.of(exc) from None

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None,
               propagation: str = "Background") -> bool:
        """Delete; False when it was already gone."""
        from kubernetes.dynamic.exceptions import NotFoundError

        res = self.resource(api_version, kind)
        if res is None:
            return False
        try:
            res.delete(name=name, namespace=namespace if res.namespaced else None,
                       body={"propagationPolicy": propagation})
        except NotFoundError:
            return False
        return True

    def patch(self, api_version: str, kind: str, name: str, namespace: str | None, body: dict) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        res = self.resource(api_version, kind)
        if res is None:
            return None
        try:
            return res.patch(body=body, name=name, namespace=namespace if res.namespaced else None,
                             content_type="application/merge-patch+json").to_dict()
        except NotFoundError:
            return None

    def finalize_namespace(self, name: str) -> None:
        """Empty a terminating namespace's spec.finalizers (the finalize subresource)."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "spec": {"finalizers": []}}
        self._dyn.request("put", f"/api/v1/namespaces/{name}/finalize", body=body)

    def pod_logs(self, name: str, namespace: str, container: str | None = None) -> str:
        from kubernetes import client

        kw = {"container": container} if container else {}
        return client.CoreV1Api(self.api).read_namespaced_pod_log(name, namespace, **kw)

    def proxy(self, namespace: str, service: str, port: int | str, path: str, *, method: str = "GET",
              body: Any = None, headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
              timeout: float = 20.0) -> ProxyResponse:
        """One HTTP request to a Service through the API server's service proxy
        (/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH): no port-forward, no pod of ours.
        Any status comes back (the caller judges it); only a transport failure raises."""
        from kubernetes.client.exceptions import ApiException

        resource = f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path.lstrip('/')}"
        hdrs = {"Accept": "application/json", **(headers or {})}
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        try:
            resp = self.api.call_api(resource, method, query_params=list((params or {}).items()),
                                     header_params=hdrs, body=body, auth_settings=["BearerToken"],
                                     _preload_content=False, _return_http_data_only=False,
                                     _request_timeout=timeout)
        except ApiException as exc:
            return ProxyResponse(exc.status or 0, dict(exc.headers or {}), exc.body or "")
        raw, status, got = resp
        data = raw.data.decode(errors="replace") if hasattr(raw, "data") else str(raw)
        return ProxyResponse(status, dict(got or {}), data)

    def service_account_token(self, namespace: str, name: str, seconds: int = 600,
                              audiences: list[str] | None = None) -> str:
        """A short-lived token of a ServiceAccount (the TokenRequest API, as `kubectl create token`);
        audiences default to the API server's own."""
        from kubernetes import client

        spec: dict[str, Any] = {"expirationSeconds": seconds}
        if audiences:
            spec["audiences"] = audiences
        got = client.CoreV1Api(self.api).create_namespaced_service_account_token(
            name, namespace, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return got.status.token

    def pod_dialer(self, namespace: str, pod: str, port: int) -> Any:
        """dial() -> a socket connected to the pod's port through the API server (a port-forward,
        one per call, like `kubectl port-forward`)."""
        from kubernetes import client
        from kubernetes.stream import portforward

        core = client.CoreV1Api(self.api)

        def dial() -> Any:
            pf = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
            return pf.socket(port)
        return dial

    def served_kinds(self) -> list[tuple[str, str, bool]]:
        """(apiVersion, kind, namespaced) of every listable resource the server serves."""
        out = []
        for res in self._dyn.resources.search():
            verbs = getattr(res, "verbs", None) or []
            if "list" in verbs and "/" not in res.name and res.kind and not res.kind.endswith("List"):
                out.append((res.group_version, res.kind, bool(res.namespaced)))
        return sorted(set(out))

    def _require(self, obj: dict) -> Any:
        res = self.resource(obj["apiVersion"], obj["kind"])
        if res is None:
            raise KubeforgeError(f"the cluster does not serve {obj['apiVersion']} {obj['kind']}",
                                 field="apiVersion",
                                 fix="install the component that provides this CRD first")
        return res


def connect(kubeconfig: str | None = None, timeout: float = 10.0) -> Cluster:
    """Load the kubeconfig and prove the API server answers; KubeforgeError (exit 2) otherwise."""
    from kubernetes import client, config

    path = kubeconfig_path(kubeconfig)
    try:
        api = config.new_client_from_config(config_file=str(path))
    except Exception as exc:  # ConfigException and yaml errors: the file is not a usable kubeconfig
        raise KubeforgeError(f"cannot load the kubeconfig: {exc}", file=str(path), field="kubeconfig",
                             fix="point --kubeconfig at a valid kubeconfig (kubectl config view works on it)"
                             ) from None
    api.configuration.retries = 0
    server = api.configuration.host
    if api.configuration.verify_ssl is False and server.startswith("https:"):
        _warn_insecure(path, server)
    try:
        client.VersionApi(api).get_code(_request_timeout=timeout)
    except client.exceptions.ApiException as exc:
        if exc.status in (401, 403):
            raise KubeforgeError(f"the cluster at {server} rejected the credentials ({exc.status} {exc.reason})",
                                 file=str(path), field="users",
                                 fix="refresh the kubeconfig's credentials (kubectl get ns must work)") from None
        raise KubeforgeError(f"the cluster at {server} answered {exc.status} {exc.reason} to /version",
                             file=str(path), field="server",
                             fix="point the kubeconfig at the Kubernetes API server") from None
    except Exception as exc:  # urllib3 connection errors, timeouts, TLS failures
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise KubeforgeError(
            f"the cluster at {server} is not reachable ({reason})", file=str(path), field="server",
            fix="check that the API server is up and reachable from here (kubectl version), "
                "or pass the right --kubeconfig") from None
    return Cluster(api, path, server)


_WARNED_INSECURE: set[str] = set()


def _warn_insecure(path: Path, server: str) -> None:
    """One line for a kubeconfig with insecure-skip-tls-verify, instead of urllib3's
    InsecureRequestWarning on every request (hundreds of lines in a verify or a teardown)."""
    import sys
    import warnings

    import urllib3

    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    if str(path) not in _WARNED_INSECURE:
        _WARNED_INSECURE.add(str(path))
        print(f"warning: {path}: insecure-skip-tls-verify is set: the API server at {server} is used "
              "without checking its TLS certificate", file=sys.stderr)


# Kinds that tell whether a component is on the cluster (cheap to list, always labelled by render).
_MARKER_KINDS = (("v1", "Namespace"), ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
                 ("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"))


def installed_components(cluster: Cluster) -> dict[str, str]:
    """component -> version, from the kubeforge labels of what is on the cluster (Pulumi or kubectl)."""
    from kubeforge.model import LABEL_COMPONENT, LABEL_PART_OF, LABEL_VERSION, PART_OF

    found: dict[str, str] = {}
    for api_version, kind in _MARKER_KINDS:
        for obj in cluster.list(api_version, kind, label_selector=f"{LABEL_PART_OF}={PART_OF}"):
            labels = obj.get("metadata", {}).get("labels") or {}
            if labels.get(LABEL_COMPONENT):
                found.setdefault(labels[LABEL_COMPONENT], labels.get(LABEL_VERSION, ""))
    return found


def require_installed(cluster: Cluster, plan: Any) -> dict[str, str]:
    """The installed components of the plan; KubeforgeError (exit 2) when none of them is there."""
    found = installed_components(cluster)
    if not any(name in found for name in plan.components):
        other = f" (installed here: {', '.join(sorted(found))})" if found else ""
        raise KubeforgeError(
            f"profile {plan.profile.name} is not installed on {cluster.server}: no object labelled "
            f"app.kubernetes.io/part-of=kubeforge belongs to its components{other}",
            file=getattr(plan.profile, "source_file", None), field="profile",
            fix="install it first (pulumi up in stacks/platform, or kubeforge render -o DIR and "
                "kubectl apply --server-side), or pass the profile that is installed")
    return found
