"""Per-install secrets (kubeforge.secrets): made once, read back, private, never shared between
installs, and render stays byte-identical for one install.

The shipped catalog may not use every generator, so a small test component (`secret-demo`, see
tests/conftest.py) in a throw-away KUBEFORGE_HOME declares one of each and writes them into a
Secret and a ConfigMap.
"""
from __future__ import annotations

import os
import stat

import bcrypt
import pytest
import yaml

from kubeforge import secrets as ks
from kubeforge.errors import KubeforgeError


def _plan():
    from kubeforge import api

    return api.plan(api.load_profile("demo"))


def _render_text(store, stats=None) -> str:
    from kubeforge.render import dump_yaml, render

    rendered = render(_plan(), secrets=store, stats=stats)
    return dump_yaml(rendered.components["secret-demo"].objects)


def _objs(text: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in yaml.safe_load_all(text)}


def test_secrets_are_made_once_stored_privately_and_read_back(demo_home, tmp_path):
    path = tmp_path / "outside" / "install.yaml"
    first = _render_text(ks.FileStore(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = yaml.safe_load(path.read_text())
    secret = _objs(first)["demo"]["stringData"]
    assert secret["client"] == stored["demo-client-secret"] and len(secret["client"]) == 32
    assert len(bytes.fromhex(secret["key"])) == 16
    # A second render with a fresh handle on the same file: the same values, the same bytes.
    assert _render_text(ks.FileStore(path)) == first
    assert yaml.safe_load(path.read_text()) == stored


def test_two_installs_never_share_a_secret(demo_home, tmp_path):
    a = _objs(_render_text(ks.FileStore(tmp_path / "a.yaml")))
    b = _objs(_render_text(ks.FileStore(tmp_path / "b.yaml")))
    for field in ("client", "cookie", "key"):
        assert a["demo"]["stringData"][field] != b["demo"]["stringData"][field]
    assert a["demo-users"]["data"] != b["demo-users"]["data"]


def test_bcrypt_hashes_verify_stay_put_and_follow_a_changed_password(demo_home, tmp_path):
    path = tmp_path / "i.yaml"
    users = _objs(_render_text(ks.FileStore(path)))["demo-users"]["data"]
    stored = yaml.safe_load(path.read_text())
    for user, h in users.items():
        assert h.startswith("$2b$12$")
        assert bcrypt.checkpw(stored[f"demo-password-{user}"].encode(), h.encode())
    # The user rotates alice's password in the file: her hash is re-derived, bob's stays.
    stored["demo-password-alice@example.com"] = "a-new-password-of-twenty"
    path.write_text(yaml.safe_dump(stored))
    again = _objs(_render_text(ks.FileStore(path)))["demo-users"]["data"]
    assert bcrypt.checkpw(b"a-new-password-of-twenty", again["alice@example.com"].encode())
    assert again["bob@example.com"] == users["bob@example.com"]


def test_cached_render_is_reused_only_with_the_same_secrets(demo_home, tmp_path):
    path = tmp_path / "i.yaml"
    _render_text(ks.FileStore(path))
    stats: dict = {}
    _render_text(ks.FileStore(path), stats)
    assert stats["hits"] == len(_plan().components) and stats["misses"] == []
    stored = yaml.safe_load(path.read_text())
    stored["demo-client-secret"] = "x" * 32
    path.write_text(yaml.safe_dump(stored))
    stats = {}
    text = _render_text(ks.FileStore(path), stats)
    assert stats["misses"] == ["secret-demo"]
    assert _objs(text)["demo"]["stringData"]["client"] == "x" * 32
    # Cache entries that hold secret values are private to the user.
    from kubeforge.sources import cache_root

    private = [p for p in (cache_root() / "rendered").glob("*.pickle")
               if stat.S_IMODE(p.stat().st_mode) == 0o600]
    assert private


def test_render_to_a_directory_writes_secret_bearing_files_privately(demo_home, tmp_path):
    from kubeforge.render import render, write_dir

    files = write_dir(render(_plan(), secrets=ks.FileStore(tmp_path / "i.yaml")), tmp_path / "out")
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    demo = next(n for n in modes if n.endswith("-secret-demo.yaml"))
    assert modes[demo] == 0o600
    assert all(m & 0o044 for n, m in modes.items() if n != demo)


def test_default_store_is_per_profile_outside_the_checkout(demo_home, tmp_path, monkeypatch):
    monkeypatch.delenv(ks.ENV_FILE, raising=False)
    monkeypatch.setenv(ks.ENV_DIR, str(tmp_path / "sdir"))
    from kubeforge.render import render

    render(_plan())
    assert (tmp_path / "sdir" / "demo.yaml").is_file()
    monkeypatch.delenv(ks.ENV_DIR)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert ks.default_path("demo") == tmp_path / "xdg" / "kubeforge" / "secrets" / "demo.yaml"


def test_a_secrets_file_inside_a_git_checkout_is_refused(demo_home, tmp_path):
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    with pytest.raises(KubeforgeError) as e:
        _render_text(ks.FileStore(tmp_path / "repo" / "secrets.yaml"))
    assert "inside the git checkout" in e.value.message and "outside" in e.value.fix
    assert not (tmp_path / "repo" / "secrets.yaml").exists()


def test_a_secrets_file_others_can_read_is_refused(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("a: b\n")
    os.chmod(p, 0o644)
    with pytest.raises(KubeforgeError) as e:
        ks.FileStore(p).values()
    assert e.value.fix == f"chmod 600 {p}"


def test_a_malformed_secrets_file_is_named_not_regenerated(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("- just\n- a list\n")
    os.chmod(p, 0o600)
    with pytest.raises(KubeforgeError) as e:
        ks.FileStore(p).values()
    assert str(p) in e.value.message and "restore it" in e.value.fix
    assert p.read_text() == "- just\n- a list\n"


def test_an_undeclared_secret_names_the_component_file(demo_home, tmp_path, secret_demo_files):
    generate = secret_demo_files[1]

    gen = demo_home / "components" / "secret-demo" / "generate.py"
    gen.write_text(generate.replace('ctx.secret("demo-key")', 'ctx.secret("undeclared-key")'))
    with pytest.raises(KubeforgeError) as e:
        _render_text(ks.FileStore(tmp_path / "i.yaml"))
    assert e.value.file == "components/secret-demo/component.yaml" and e.value.field == "secrets"
    assert "undeclared-key" in e.value.message


def test_a_read_only_store_reports_a_missing_secret_with_the_fix():
    spec = {"x-token": ks.Spec("x-token", "alnum", length=20)}
    with pytest.raises(KubeforgeError) as e:
        ks.resolve(ks.ConfigStore({}), spec, "x-token", "demo")
    assert "kubeforge up" in e.value.fix
    assert ks.resolve(ks.ConfigStore({"x-token": "v" * 20}), spec, "x-token", "demo") == "v" * 20


@pytest.mark.parametrize("raw, field, words", [
    ({"a": {"generate": "rot13"}}, "secrets.a.generate", "one of"),
    ({"a": {"generate": "alnum", "length": 8}}, "secrets.a.length", "at least 16"),
    ({"a": {"generate": "hex"}}, "secrets.a.bytes", "at least 16"),
    ({"a": {"generate": "bcrypt"}}, "secrets.a.of", "needs `of`"),
    ({"a*": {"generate": "bcrypt", "of": "b"}, "b": {"generate": "alnum", "length": 16}}, "secrets.a*.of", "family"),
    ({"a": {"generate": "bcrypt", "of": "nope"}}, "secrets.a.of", "does not declare"),
    ({"a": {"generate": "alnum", "length": 16, "lenght": 2}}, "secrets.a", "unknown key"),
    ({"Bad_Name": {"generate": "alnum", "length": 16}}, "secrets.Bad_Name", "bad secret name"),
])
def test_bad_declarations_name_the_field(raw, field, words):
    with pytest.raises(KubeforgeError) as e:
        ks.parse_specs(raw, file="components/x/component.yaml")
    assert e.value.field == field and words in e.value.message
    assert e.value.file == "components/x/component.yaml"


def test_a_shared_secret_declared_differently_is_refused(demo_home, secret_demo_files):
    component = secret_demo_files[0]

    other = demo_home / "components" / "secret-demo-2"
    other.mkdir()
    (other / "component.yaml").write_text(
        component.replace("secret-demo", "secret-demo-2").replace("length: 32", "length: 40"))
    from kubeforge.catalog import load_catalog

    with pytest.raises(KubeforgeError) as e:
        load_catalog()
    assert "demo-client-secret" in e.value.message and e.value.file.endswith("secret-demo-2/component.yaml")
    # Declared alike, the two share one secret.
    (other / "component.yaml").write_text(component.replace("secret-demo", "secret-demo-2"))
    assert "secret-demo-2" in load_catalog()


def test_cli_prints_names_unasked_and_a_value_only_when_asked(demo_home, tmp_path, capsys, mirror_dir):
    from kubeforge.cli import main as cli

    f = tmp_path / "install.yaml"
    assert cli(["--secrets", str(f), "render", "-p", "demo", "-o", str(tmp_path / "out")]) == 0
    assert os.environ.get(ks.ENV_FILE) is None          # --secrets held for that invocation only
    values = yaml.safe_load(f.read_text())
    assert cli(["--secrets", str(f), "secrets", "list", "-p", "demo"]) == 0
    out = capsys.readouterr().out
    assert "demo-cookie\tsecret-demo" in out and str(f) in out
    assert not any(v in out for v in values.values())
    assert cli(["--secrets", str(f), "secrets", "get", "-p", "demo", "demo-cookie"]) == 0
    assert capsys.readouterr().out == values["demo-cookie"] + "\n"
    assert cli(["--secrets", str(f), "secrets", "get", "-p", "demo", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no secret 'nope'" in err and "demo-cookie" in err and values["demo-cookie"] not in err
