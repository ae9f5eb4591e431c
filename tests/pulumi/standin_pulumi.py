"""STAND-IN for the `pulumi` executable (the real CLI cannot be downloaded here).

It records every invocation (argv, working directory, backend URL, whether a passphrase was set)
as one JSON line in $STANDIN_PULUMI_LOG, keeps stack existence as files under the file backend
like the real CLI does (<backend>/.pulumi/stacks/<project>/<stack>.json; `destroy` leaves the
stack with 0 resources, as the real CLI does), keeps `config set` values in a JSON file beside it
(the real CLI writes Pulumi.<stack>.yaml, secrets encrypted; the stand-in must not touch the
checkout, and encrypts nothing), and for
up/preview/destroy streams the engine events listed in $STANDIN_PULUMI_EVENTS (JSON) to the
Automation API's event server, then a summary event. It deploys nothing.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

VERSION = "v3.272.0"


def _project() -> str:
    import yaml

    return yaml.safe_load(Path("Pulumi.yaml").read_text())["name"]


def _stack_file(stack: str) -> Path:
    url = os.environ.get("PULUMI_BACKEND_URL", "")
    if not url.startswith("file://"):
        sys.exit(f"stand-in only supports file:// backends, got {url!r}")
    return Path(urlparse(url).path) / ".pulumi" / "stacks" / _project() / f"{stack}.json"


def _opt(args: list[str], name: str) -> str | None:
    if name in args:
        i = args.index(name)
        return args[i + 1] if i + 1 < len(args) else None
    return None


def _stream(addr: str, events: list[dict]) -> None:
    import grpc
    from pulumi.runtime.proto import events_pb2, events_pb2_grpc

    with grpc.insecure_channel(addr.removeprefix("tcp://")) as ch:
        stub = events_pb2_grpc.EventsStub(ch)
        stub.StreamEvents(iter([events_pb2.EventRequest(event=json.dumps(e)) for e in events]))


def _config(args: list[str], stack: str) -> int:
    path = _stack_file(stack).with_suffix(".config.json")
    config = json.loads(path.read_text()) if path.exists() else {}
    if args[:1] == ["set"]:
        key, value = args[1], args[args.index("--") + 1]
        config[key] = {"value": value, "secret": "--secret" in args}
        path.write_text(json.dumps(config))
        return 0
    if "--json" in args and "--show-secrets" in args:
        print(json.dumps(config))
        return 0
    print(f"stand-in pulumi: config {args} not modelled", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    log = os.environ.get("STANDIN_PULUMI_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"argv": argv, "cwd": os.getcwd(),
                                "backend": os.environ.get("PULUMI_BACKEND_URL"),
                                "passphrase_set": "PULUMI_CONFIG_PASSPHRASE" in os.environ}) + "\n")
    # Global flags the Automation API puts first.
    while argv and argv[0] in ("--non-interactive",):
        argv = argv[1:]
    if argv[:1] == ["version"]:
        print(VERSION)
        return 0
    stack = _opt(argv, "--stack")
    if argv[:2] == ["stack", "select"]:
        if not _stack_file(stack).exists():
            print(f"error: no stack named '{stack}' found", file=sys.stderr)
            return 255
        return 0
    if argv[:2] == ["stack", "init"]:
        f = _stack_file(argv[2])
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}")
        return 0
    if argv[:1] == ["config"]:
        return _config(argv[1:], _opt(argv, "--stack"))
    if argv[:2] == ["stack", "ls"]:
        root = _stack_file("x").parent
        print(json.dumps([{"name": p.stem, "current": False, "updateInProgress": False,
                           "lastUpdate": "2026-11-26T12:00:00.000Z",
                           "resourceCount": json.loads(p.read_text() or "{}").get("resourceCount", 3)}
                          for p in sorted(root.glob("*.json")) if not p.name.endswith(".config.json")]
                         if root.is_dir() else []))
        return 0
    if argv[:2] == ["stack", "output"]:
        print(json.dumps({"profile": "dev", "kubeconfig": "stand-in"}))
        return 0
    if argv[:2] == ["stack", "history"]:
        print(json.dumps([{"kind": argv[0], "startTime": "2026-11-26T12:00:00.000Z", "message": "",
                           "environment": {}, "config": {}, "result": "succeeded",
                           "endTime": "2026-11-26T12:00:01.000Z", "resourceChanges": {"create": 3}}]))
        return 0
    if argv[:1] and argv[0] in ("up", "preview", "destroy"):
        events = json.loads(Path(os.environ["STANDIN_PULUMI_EVENTS"]).read_text()) \
            if os.environ.get("STANDIN_PULUMI_EVENTS") else []
        events = events + [{"sequence": len(events) + 1, "timestamp": 0, "summaryEvent": {
            "maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {"create": 3},
            "PolicyPacks": {}}}]
        addr = _opt(argv, "--event-log")
        if addr:
            _stream(addr, events)
        if argv[0] == "destroy" and stack and _stack_file(stack).exists():
            _stack_file(stack).write_text(json.dumps({"resourceCount": 0}))   # the stack stays, empty
        print(f"stand-in pulumi {argv[0]}: nothing deployed")
        return int(os.environ.get("STANDIN_PULUMI_EXIT", "0"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
