"""Run a real stack program under Pulumi's mock runtime and record every registration.

The Pulumi engine and its provider plugins cannot run here, so the engine is replaced at its
gRPC boundary: `RecordingMonitor` answers the program's RegisterResource / ReadResource / Invoke
calls in-process and records what the program asked for (type, name, parent, provider, inputs,
dependencies, secret inputs). Any provider invoke the test did not mock raises `UnmockedInvoke`
and fails the run: a program that secretly calls out to a cluster cannot pass.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.rpc import _special_sig_key as SIG_KEY
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

# The wire form of a secret: {SIG_KEY: SECRET_SIG, "value": ...}.
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class UnmockedInvoke(AssertionError):
    pass


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    provider: str
    providers: dict[str, str]        # remote components (Helm charts) get their provider here
    custom: bool
    remote: bool
    inputs: dict[str, Any]
    secret_paths: list[str]          # top-level input keys sent as secrets
    dependencies: list[str]
    additional_secret_outputs: list[str]
    id: str = ""
    ignore_changes: list[str] = field(default_factory=list)
    protect: bool = False
    delete_before_replace: bool = False


@dataclass
class RunResult:
    registrations: dict[str, Registration]       # urn -> registration, in registration order
    outputs: dict[str, Any]                      # stack outputs (resolved)
    secret_outputs: set[str] = field(default_factory=set)
    invokes: list[str] = field(default_factory=list)
    urns: list[str] = field(default_factory=list)
    invoke_args: list[Any] = field(default_factory=list)   # MockCallArgs: token, args, provider

    def of_type(self, prefix: str) -> list[Registration]:
        return [r for r in self.registrations.values() if r.type.startswith(prefix)]

    def ancestors(self, urn: str) -> set[str]:
        """Everything `urn` waits for, transitively: what `destroy` removes only after it."""
        regs, seen, todo = self.registrations, set(), list(self.registrations[urn].dependencies)
        while todo:
            d = todo.pop()
            if d not in seen and d in regs:
                seen.add(d)
                todo += regs[d].dependencies
        return seen


class _Mocks(mocks.Mocks):
    def __init__(self, stack_outputs: dict[str, dict[str, Any]], invokes: dict[str, Callable],
                 resources: Callable[[mocks.MockResourceArgs], tuple[str, dict] | None] | None = None):
        self.stack_outputs = stack_outputs
        self.invokes = invokes
        self.resources = resources      # per-type provider stand-ins (tests/pulumi/cloudmocks.py)
        self.called: list[str] = []
        self.call_args: list[mocks.MockCallArgs] = []

    def new_resource(self, args: mocks.MockResourceArgs):
        if self.resources is not None:
            got = self.resources(args)
            if got is not None:
                return got
        if args.typ == "pulumi:pulumi:StackReference":
            name = args.inputs.get("name") or args.name
            if name not in self.stack_outputs:
                raise UnmockedInvoke(f"stack reference {name!r} has no mocked outputs")
            return name, {"name": name, "outputs": self.stack_outputs[name], "secretOutputNames": []}
        if args.typ == "pulumi:index:Stash":
            return f"{args.name}-id", {"input": args.inputs.get("input"), "output": args.inputs.get("input")}
        # Kubernetes objects report no outputs: the program reads none but an ingress Service's
        # status (unknown before a real apply), and echoing every CRD back would only cost time.
        if args.typ.startswith("kubernetes:"):
            return f"{args.name}-id", {}
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: mocks.MockCallArgs):
        self.called.append(args.token)
        self.call_args.append(args)
        fn = self.invokes.get(args.token)
        if fn is None:
            raise UnmockedInvoke(f"unmocked provider invoke {args.token} (provider {args.provider!r})")
        return fn(args.args)


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self, m: _Mocks):
        super().__init__(m)
        self.records: dict[str, Registration] = {}
        self.urns: list[str] = []        # every registration's URN, duplicates included
        self.errors: list[BaseException] = []

    def _record(self, request, urn: str, inputs: dict[str, Any], *, custom: bool, remote: bool,
                deps: list[str], id_: str = "") -> None:
        struct = request.object if hasattr(request, "object") else request.properties
        secret_paths = [k for k, v in struct.fields.items()
                        if v.WhichOneof("kind") == "struct_value"
                        and v.struct_value.fields.get(SIG_KEY) is not None
                        and v.struct_value.fields[SIG_KEY].string_value == SECRET_SIG]
        # Secrets arrive wrapped ({SIG_KEY: SECRET_SIG, "value": v}); record the value, and where.
        inputs = {k: v["value"] if k in secret_paths and isinstance(v, dict) else v for k, v in inputs.items()}
        self.urns.append(urn)
        self.records[urn] = Registration(
            urn=urn, type=request.type, name=request.name, parent=request.parent,
            provider=request.provider, providers=dict(getattr(request, "providers", {}) or {}), custom=custom,
            remote=remote, inputs=inputs, secret_paths=secret_paths, dependencies=list(deps),
            additional_secret_outputs=list(getattr(request, "additionalSecretOutputs", []) or []), id=id_,
            ignore_changes=list(getattr(request, "ignoreChanges", []) or []),
            protect=bool(getattr(request, "protect", False)),
            delete_before_replace=bool(getattr(request, "deleteBeforeReplace", False)))

    def RegisterResource(self, request):
        # MockMonitor.RegisterResource, with the inputs deserialized once and kept for the record.
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        args = mocks.MockResourceArgs(typ=request.type, name=request.name, inputs=inputs, provider=request.provider,
                                      resource_id=request.importId, custom=request.custom or False)
        try:
            id_, state = self.mocks.new_resource(args)
        except UnmockedInvoke as exc:      # an unmocked resource type: fail the run, loudly
            self.errors.append(exc)
            raise
        obj = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        self._record(request, urn, inputs, custom=request.custom, remote=request.remote,
                     deps=list(request.dependencies), id_=id_)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj)

    def ReadResource(self, request):
        resp = super().ReadResource(request)
        self._record(request, resp.urn, rpc.deserialize_properties(request.properties), custom=True, remote=False,
                     deps=list(request.dependencies), id_=request.id)
        return resp

    def Invoke(self, request):
        try:
            return super().Invoke(request)
        except UnmockedInvoke as exc:
            self.errors.append(exc)
            raise


def _plain(value: Any) -> Any:
    """Unwrap deserialized secrets/unknowns into plain JSON-able data for assertions."""
    return json.loads(json.dumps(value, default=str))


def run(program: Callable[[], Any], *, config: dict[str, Any] | None = None,
        secret_keys: tuple[str, ...] = (), project: str = "kubeforge-platform", stack: str = "test",
        stack_outputs: dict[str, dict[str, Any]] | None = None,
        invokes: dict[str, Callable] | None = None,
        resources: Callable[[mocks.MockResourceArgs], tuple[str, dict] | None] | None = None) -> RunResult:
    """Run `program` as the stack program of project/stack with the given config."""
    cfg = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (config or {}).items()}
    pulumi.runtime.set_all_config(cfg, list(secret_keys))
    m = _Mocks(stack_outputs or {}, invokes or {}, resources)
    monitor = RecordingMonitor(m)
    settings.set_root_resource(None)     # a fresh root stack per run, so exports do not leak
    mocks.set_mocks(m, project=project, stack=stack, preview=False, monitor=monitor)
    root = settings.get_root_resource()
    settings.SETTINGS.rpc_manager.clear()
    settings.SETTINGS.outputs.clear()
    try:
        _sync_await(run_pulumi_func(program))
    finally:
        pulumi.runtime.set_all_config({}, [])
    if monitor.errors:
        raise monitor.errors[0]
    outputs: dict[str, Any] = {}
    secret: set[str] = set()
    for name, value in getattr(root, "outputs", {}).items():
        out = pulumi.Output.from_input(value)
        outputs[name] = _plain(_sync_await(out.future()))
        if _sync_await(out.is_secret()):
            secret.add(name)
    return RunResult(registrations=dict(monitor.records), outputs=outputs, secret_outputs=secret,
                     invokes=list(m.called), urns=list(monitor.urns), invoke_args=list(m.call_args))


def policy_violations(res: RunResult, level: str = "mandatory") -> list[str]:
    """The policy pack's policies of `level` over every recorded registration, as the engine would
    run them in `pulumi preview --policy-pack stacks/policy`."""
    import types

    from kubeforge.pulumi import policies

    out: list[str] = []
    for r in res.registrations.values():
        args = types.SimpleNamespace(resource_type=r.type, props=r.inputs, name=r.name)
        for name, _, fn, lvl in policies.POLICIES:
            if lvl == level:
                fn(args, lambda msg, urn=None, name=name: out.append(f"{name}: {msg}"))
    return out
