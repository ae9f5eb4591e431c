"""An empty profile file (or one with neither `extends` nor `components`) is refused, naming the
file: it would otherwise be a valid profile of defaults only, which is almost always a mistake."""
from __future__ import annotations

import pytest

from kubeforge.cli import main


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "description: nothing else\n"])
def test_empty_profile_exits_2_naming_the_file(tmp_path, capsys, text):
    prof = tmp_path / "mine.yaml"
    prof.write_text(text)
    rc = main(["plan", "-p", str(prof)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"mine.yaml: extends: the profile {'is empty' if 'description' not in text else 'has neither'}" in err
    assert "fix: start it with `extends: base`" in err


def test_an_empty_layer_is_named_even_when_extended(tmp_path, capsys):
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "top.yaml").write_text("extends: empty.yaml\n")
    rc = main(["plan", "-p", str(tmp_path / "top.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and "empty.yaml: extends: the profile is empty" in err


def test_extends_alone_or_components_alone_is_a_profile(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("extends: training\n")
    (tmp_path / "b.yaml").write_text("components:\n  storage: {enabled: true}\n")
    for name in ("a", "b"):
        assert main(["plan", "-p", str(tmp_path / f"{name}.yaml"), "-f", "json"]) == 0
    capsys.readouterr()
