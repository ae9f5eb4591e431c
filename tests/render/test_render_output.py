"""What `kubeforge render -o DIR` writes: byte for byte PyYAML's output of today's serialiser on
every shipped profile, whether the text is serialised or read from the cache; and a bad --out."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from kubeforge import api, render
from kubeforge.cli import main
from kubeforge.lifecycle.rendered import render_available

PROFILES = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "profiles").glob("*.yaml"))


def pyyaml(objs) -> bytes:
    """The serialiser `kubeforge render` has always used (the reference, spelled out here)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump_all(objs, Dumper=dumper, sort_keys=True, default_flow_style=False, width=1 << 16,
                         explicit_start=True).encode()


def _files(rendered, out: Path) -> dict[str, Path]:
    names = [n for wave in rendered.plan.waves for n in wave]
    return {n: out / f"{i:02d}-{n}.yaml" for i, n in enumerate(names, 1)}


@pytest.mark.parametrize("profile", PROFILES)
def test_written_yaml_is_pyyaml_byte_for_byte_cold_and_cached(profile, mirror_dir, tmp_path, monkeypatch):
    rendered, _helm = render_available(api.plan(api.load_profile(profile)), mirror=str(mirror_dir))
    monkeypatch.setenv("KUBEFORGE_CACHE", str(tmp_path / "cache"))   # the YAML text cache starts empty
    render.write_dir(rendered, tmp_path / "cold")
    cached = list((tmp_path / "cache" / "rendered" / "yaml").glob("*.yaml"))
    assert len(cached) == len({id(rc) for rc in rendered.components.values()})

    def no_serialising(objs):
        raise AssertionError("a warm write must not serialise again")
    monkeypatch.setattr(render, "dump_yaml", no_serialising)
    render.write_dir(rendered, tmp_path / "warm")
    for name, path in _files(rendered, tmp_path / "cold").items():
        want = pyyaml(rendered.components[name].objects)
        assert path.read_bytes() == want, name
        assert (tmp_path / "warm" / path.name).read_bytes() == want, name


def test_an_object_edited_after_render_is_serialised_again(mirror_dir, tmp_path, monkeypatch):
    rendered = api.render(api.plan(api.load_profile("training")), mirror=str(mirror_dir))
    monkeypatch.setenv("KUBEFORGE_CACHE", str(tmp_path / "cache"))
    render.write_dir(rendered, tmp_path / "a")
    edited = copy.deepcopy(rendered)
    cm = next(o for o in edited.components["katib"].objects if o["kind"] == "ConfigMap")
    cm.setdefault("data", {})["added-after-render"] = "yes"
    render.write_dir(edited, tmp_path / "b")
    path = _files(edited, tmp_path / "b")["katib"]
    assert path.read_bytes() == pyyaml(edited.components["katib"].objects)
    assert b"added-after-render: 'yes'" in path.read_bytes()


def test_no_cache_serialises_and_stores_nothing(mirror_dir, tmp_path, monkeypatch):
    rendered = api.render(api.plan(api.load_profile("base")), mirror=str(mirror_dir))
    monkeypatch.setenv("KUBEFORGE_CACHE", str(tmp_path / "cache"))
    render.write_dir(rendered, tmp_path / "out", use_cache=False)
    assert not (tmp_path / "cache" / "rendered" / "yaml").exists()
    assert _files(rendered, tmp_path / "out")["storage"].read_bytes() == \
        pyyaml(rendered.components["storage"].objects)


def test_render_out_an_existing_file_exits_2_naming_it(mirror_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KUBEFORGE_MIRROR", str(mirror_dir))
    target = tmp_path / "out.yaml"
    target.write_text("keep me\n")
    rc = main(["render", "-p", "base", "-o", str(target)])
    err = capsys.readouterr().err
    assert rc == 2 and f"error: {target}: --out: is a file, not a directory" in err
    assert "Traceback" not in err and target.read_text() == "keep me\n"
    below = target / "sub"      # a file in the way higher up
    rc = main(["render", "-p", "base", "-o", str(below)])
    err = capsys.readouterr().err
    assert rc == 2 and f"error: {below}: --out: cannot create the output directory" in err


def test_cached_text_of_objects_with_secret_values_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBEFORGE_CACHE", str(tmp_path / "cache"))
    secret = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
               "stringData": {"password": "made-for-this-install"}}]
    assert render.component_yaml(secret, private=True).encode() == pyyaml(secret)
    plain = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}}]
    render.component_yaml(plain)
    modes = {p.read_text().split("kind: ")[1].split()[0]: p.stat().st_mode & 0o777
             for p in (tmp_path / "cache" / "rendered" / "yaml").glob("*.yaml")}
    umask = os.umask(0)
    os.umask(umask)
    assert modes == {"Secret": 0o600, "ConfigMap": 0o644 & ~umask}
