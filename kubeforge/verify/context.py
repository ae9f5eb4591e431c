"""What a check gets: the cluster, the plan, its component's rendered objects, a deadline, and
helpers for throw-away namespaces, bounded waits, one-shot pods and in-cluster HTTP calls."""
from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubeforge.verify.images import check_image, with_registry

VERIFY_LABEL = "kubeforge.io/verify"   # on every throw-away namespace, so leftovers are findable


class CheckError(AssertionError):
    """A check failed; the message says what was expected and what was seen."""


class NotYet(Exception):
    """Raised by a wait probe: not there yet, and why (shown if time runs out)."""


class CheckContext:
    def __init__(self, *, cluster: Any, plan: Any, component: str, objects: list[dict],
                 timeout: float, keep_on_failure: bool = False, cancel: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] | None = None):
        self.cluster = cluster
        self.plan = plan
        self.profile = plan.profile
        self.component = component
        self.objects = objects
        planned = plan.components.get(component)
        self.values: dict[str, Any] = dict(planned.values) if planned else {}
        self.registry: str | None = getattr(plan.profile, "registry", None)
        self.keep_on_failure = keep_on_failure
        # clock/sleep: time.monotonic and the cancel event by default; an in-process stand-in
        # cluster passes its own, so its controllers advance while a wait sleeps.
        self.clock = clock
        self._sleep = sleep
        self.deadline = clock() + timeout
        self.cancel = cancel or threading.Event()
        self.kept: list[str] = []           # namespaces kept for inspection after a failure

    # -- time ------------------------------------------------------------------------------
    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def sleep(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(min(seconds, self.remaining()))
            cancelled = self.cancel.is_set()
        else:
            cancelled = self.cancel.wait(min(seconds, self.remaining()))
        if cancelled:
            raise CheckError("cancelled (the check ran out of time)")

    def fail(self, message: str) -> None:
        raise CheckError(message)

    def wait(self, what: str, probe: Callable[[], Any], timeout: float | None = None,
             interval: float = 3.0) -> Any:
        """Poll probe() until it returns something truthy; it may raise NotYet(detail)."""
        end = self.clock() + min(timeout if timeout is not None else 1e9, self.remaining())
        detail = ""
        while True:
            try:
                got = probe()
                if got:
                    return got
            except NotYet as exc:
                detail = str(exc)
            if self.clock() + interval > end:
                raise CheckError(f"timed out waiting for {what}" + (f": {detail}" if detail else ""))
            self.sleep(interval)

    def wait_clean(self, what: str, problems: Callable[[], list[str]], timeout: float | None = None,
                   interval: float = 3.0) -> None:
        """Wait until problems() is empty; fail with the last problems seen."""
        def probe() -> bool:
            found = problems()
            if found:
                raise NotYet("; ".join(found))
            return True
        self.wait(what, probe, timeout, interval)

    # -- images ----------------------------------------------------------------------------
    def image(self, key_or_ref: str) -> str:
        """A check image (key of images.CHECK_IMAGES, or a full reference) from the profile's registry."""
        if "/" in key_or_ref or ":" in key_or_ref:
            return with_registry(key_or_ref, self.registry)
        return check_image(key_or_ref, self.registry)

    # -- throw-away namespaces -------------------------------------------------------------
    @contextlib.contextmanager
    def namespace(self, prefix: str, labels: dict[str, str] | None = None) -> Iterator[str]:
        """A fresh namespace; deleted when the block succeeds, kept on failure if asked."""
        name = f"kf-verify-{prefix}-{secrets.token_hex(3)}"[:63]
        self.cluster.create({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": name, "labels": {VERIFY_LABEL: "true", **(labels or {})}}})
        try:
            yield name
        except BaseException:
            if self.keep_on_failure:
                self.kept.append(name)
            else:
                self.cluster.delete("v1", "Namespace", name)
            raise
        self.cluster.delete("v1", "Namespace", name)

    # -- objects ---------------------------------------------------------------------------
    def create(self, obj: dict, namespace: str | None = None) -> dict:
        return self.cluster.create(obj, namespace=namespace)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict | None:
        return self.cluster.get(api_version, kind, name, namespace)

    def wait_condition(self, api_version: str, kind: str, name: str, namespace: str | None,
                       condition: str = "Ready", timeout: float | None = None,
                       failed: tuple[str, ...] = ("Failed",)) -> dict:
        """Like `kubectl wait --for=condition=Ready`: the object with that condition True.
        Fails at once when one of the `failed` conditions turns True (no point waiting)."""
        def probe() -> dict:
            obj = self.get(api_version, kind, name, namespace)
            if obj is None:
                raise NotYet(f"{kind} {name} not found")
            conds = (obj.get("status") or {}).get("conditions") or []
            for c in conds:
                if c.get("type") in failed and c.get("status") == "True":
                    self.fail(f"{kind} {namespace}/{name} {c['type']}: {c.get('reason')}: {c.get('message')}")
            for c in conds:
                if c.get("type") == condition:
                    if c.get("status") == "True":
                        return obj
                    raise NotYet(f"{kind} {name} {condition}={c.get('status')} "
                                 f"({c.get('reason')}: {c.get('message')})")
            raise NotYet(f"{kind} {name} has no {condition} condition yet")
        return self.wait(f"{kind} {name} {condition}", probe, timeout)

    # -- pods ------------------------------------------------------------------------------
    def pod(self, name: str, image: str, command: list[str] | None = None, *, labels: dict | None = None,
            annotations: dict | None = None, resources: dict | None = None,
            restart: str = "Never", extra: dict | None = None, mounts: list | None = None) -> dict:
        """A Pod manifest. Sidecar injection is off unless the annotations turn it on."""
        container: dict[str, Any] = {"name": "main", "image": self.image(image)}
        if command:
            container["command"] = command
        if resources:
            container["resources"] = resources
        if mounts:
            container["volumeMounts"] = mounts
        spec = {"restartPolicy": restart, "containers": [container], **(extra or {})}
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": labels or {"app": name},
                             "annotations": {"sidecar.istio.io/inject": "false", **(annotations or {})}},
                "spec": spec}

    def wait_pod_done(self, namespace: str, name: str, timeout: float | None = None) -> tuple[str, str]:
        """(phase, logs of the main container) once the pod Succeeded or Failed."""
        def probe() -> str:
            p = self.get("v1", "Pod", name, namespace)
            if p is None:
                raise NotYet(f"pod {name} not found")
            phase = (p.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                return phase
            raise NotYet(f"pod {name} is {phase}: {_waiting_reason(p)}")
        phase = self.wait(f"pod {namespace}/{name} to finish", probe, timeout)
        return phase, self.cluster.pod_logs(name, namespace, container="main")

    def run_pod(self, namespace: str, name: str, image: str, command: list[str], **kw: Any) -> str:
        """Run a pod to completion; its logs on success, a CheckError with them otherwise."""
        self.create(self.pod(name, image, command, **kw), namespace)
        phase, logs = self.wait_pod_done(namespace, name)
        if phase != "Succeeded":
            self.fail(f"pod {namespace}/{name} failed: {logs[-2000:]}")
        return logs

    def wait_pod_ready(self, namespace: str, name: str) -> dict:
        return self.wait_condition("v1", "Pod", name, namespace, "Ready")

    def exec(self, namespace: str, pod: str, command: list[str], container: str = "main") -> tuple[int, str]:
        """Run a command in a running container: (exit code, stdout+stderr)."""
        from kubernetes import client
        from kubernetes.stream import stream

        core = client.CoreV1Api(self.cluster.api)
        resp = stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                      command=command, stderr=True, stdin=False, stdout=True, tty=False,
                      _preload_content=False)
        resp.run_forever(timeout=max(1, min(60, self.remaining())))
        out = resp.read_stdout() + resp.read_stderr()
        rc = resp.returncode
        resp.close()
        return (rc if rc is not None else -1), out

    def http(self, namespace: str, url: str, body: Any | None = None, name: str | None = None) -> str:
        """One in-cluster HTTP request from a throw-away curl pod; the response body (fails on non-2xx)."""
        name = name or f"curl-{secrets.token_hex(3)}"
        cmd = ["curl", "-sS", "--fail-with-body", "-m", "20", url]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        self.create(self.pod(name, "curl", cmd), namespace)
        phase, logs = self.wait_pod_done(namespace, name, timeout=120)
        self.cluster.delete("v1", "Pod", name, namespace)
        if phase != "Succeeded":
            raise NotYet(f"curl {url}: {logs.strip()[-500:]}")
        return logs


def _waiting_reason(pod: dict) -> str:
    for cs in ((pod.get("status") or {}).get("containerStatuses") or []) + \
            ((pod.get("status") or {}).get("initContainerStatuses") or []):
        w = (cs.get("state") or {}).get("waiting")
        if w:
            return f"{cs.get('name')}: {w.get('reason')} {w.get('message') or ''}".strip()
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("status") != "True" and c.get("message"):
            return c["message"]
    return "starting"
