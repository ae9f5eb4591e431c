"""Per-install secrets on the Pulumi path: `kubeforge up` makes them once per environment and
stores them as one Pulumi secret in the stack config (`kubeforge:secrets`); the program only reads
them, and every object that carries one is registered with its payload secret.

The program runs under the mock runtime (mockrun.py) and `kubeforge up` against the STAND-IN
`pulumi` executable (standin_pulumi.py): neither the engine nor the CLI can run here.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from graph_summary import KUBECONFIG

from kubeforge.cli import main as cli
from kubeforge.paths import home

PLATFORM = Path(__file__).resolve().parents[2] / "stacks" / "platform"
VALUES = {"demo-client-secret": "c" * 32, "demo-cookie": "k" * 44, "demo-key": "a1" * 16,
          "demo-password-alice@example.com": "p" * 20, "demo-password-bob@example.com": "q" * 20}


def _with_hashes(values: dict[str, str]) -> dict[str, str]:
    import bcrypt

    out = dict(values)
    for user in ("alice@example.com", "bob@example.com"):
        out[f"demo-hash-{user}"] = bcrypt.hashpw(values[f"demo-password-{user}"].encode(),
                                                 bcrypt.gensalt(4)).decode()
    return out


def _run(secrets: dict[str, str] | None):
    from graph_summary import mockrun

    from kubeforge.pulumi import platform

    config = {"kubeforge:profile": "demo", "kubeforge:kubeconfig": KUBECONFIG}
    if secrets is not None:
        config["kubeforge:secrets"] = secrets
    return mockrun.run(platform.main, config=config, secret_keys=("kubeforge:kubeconfig", "kubeforge:secrets"),
                       stack="dev")


def _by_name(res, kind: str, name: str):
    return next(r for r in res.registrations.values()
                if r.inputs.get("kind") == kind and r.inputs.get("metadata", {}).get("name") == name)


def test_the_program_uses_the_stack_secrets_and_keeps_them_secret(demo_home):
    values = _with_hashes(VALUES)
    res = _run(values)
    secret = _by_name(res, "Secret", "demo")
    assert secret.inputs["stringData"]["client"] == values["demo-client-secret"]
    assert "stringData" in secret.secret_paths
    users = _by_name(res, "ConfigMap", "demo-users")       # a ConfigMap holding generated hashes
    assert users.inputs["data"]["alice@example.com"] == values["demo-hash-alice@example.com"]
    assert "data" in users.secret_paths and "data" in users.additional_secret_outputs
    plain = _by_name(res, "ConfigMap", "plain")            # nothing secret in it: stays readable in previews
    assert plain.secret_paths == [] and plain.inputs["data"] == {"x": "y"}
    # The program never writes a secrets file of its own.
    from kubeforge.secrets import secrets_dir

    assert not (secrets_dir() / "demo.yaml").exists()


def test_the_program_refuses_to_invent_a_missing_secret(demo_home):
    with pytest.raises(Exception) as e:
        _run({k: v for k, v in _with_hashes(VALUES).items() if k != "demo-cookie"})
    assert "demo-cookie" in str(e.value) and "kubeforge up" in str(e.value)


@pytest.fixture
def demo_stack(demo_home):
    """demo_home with a stacks/platform whose environments `a` and `b` install the demo profile."""
    shutil.copytree(PLATFORM, demo_home / "stacks" / "platform", ignore=shutil.ignore_patterns("__pycache__"))
    for env in ("a", "b"):
        (demo_home / "stacks" / "platform" / f"Pulumi.{env}.yaml").write_text(
            "config:\n  kubeforge:profile: demo\n")
    home.cache_clear()
    return demo_home


def _stack_config(standin, env: str) -> dict:
    files = list((standin.backend / ".pulumi" / "stacks").rglob(f"{env}.config.json"))
    return json.loads(files[0].read_text()) if files else {}


def test_up_makes_the_secrets_once_per_environment_and_reads_them_back(
        standin_pulumi, demo_stack, kubeconfig_file, capsys):
    assert cli(["up", "-e", "a", "--kubeconfig", str(kubeconfig_file)]) == 0
    first = _stack_config(standin_pulumi, "a")["kubeforge:secrets"]
    assert first["secret"] is True
    values = json.loads(first["value"])
    assert set(values) == set(_with_hashes(VALUES))
    out = capsys.readouterr()
    assert "made 7 per-install secret(s)" in out.out
    assert not any(v in out.out + out.err for v in values.values())          # never printed
    sets = [a for a in standin_pulumi.argvs() if a[:2] == ["config", "set"] and "kubeforge:secrets" in a]
    assert len(sets) == 1 and "--secret" in sets[0]
    # Second up of the same environment: read back, nothing made, nothing set again.
    assert cli(["up", "-e", "a", "--kubeconfig", str(kubeconfig_file)]) == 0
    assert json.loads(_stack_config(standin_pulumi, "a")["kubeforge:secrets"]["value"]) == values
    assert len([a for a in standin_pulumi.argvs() if a[:2] == ["config", "set"] and "kubeforge:secrets" in a]) == 1
    # Another environment never shares a value.
    assert cli(["up", "-e", "b", "--kubeconfig", str(kubeconfig_file)]) == 0
    other = json.loads(_stack_config(standin_pulumi, "b")["kubeforge:secrets"]["value"])
    assert not set(other.values()) & set(values.values())
    # The stack file in the checkout is untouched (the stand-in keeps config beside its state).
    assert yaml.safe_load((demo_stack / "stacks/platform/Pulumi.a.yaml").read_text()) == {
        "config": {"kubeforge:profile": "demo"}}
