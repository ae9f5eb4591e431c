"""README stays true: its component table agrees with the catalog, its commands exist."""
from __future__ import annotations

import re

from kubeforge.catalog import load_catalog
from kubeforge.profile import list_profiles


def test_component_table_matches_catalog(repo_root):
    text = (repo_root / "README.md").read_text()
    rows = dict(re.findall(r"^\| ([a-z0-9-]+) \| ([0-9][^ |]*) \|", text, re.M))
    catalog = {n: c.version for n, c in load_catalog().items()}
    assert rows == catalog


def test_profile_table_lists_every_profile(repo_root):
    text = (repo_root / "README.md").read_text()
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", text, re.M))
    assert listed == set(list_profiles())


def test_ci_runs_the_readme_test_command(repo_root):
    assert "make test " in (repo_root / "README.md").read_text()
    assert re.search(r"^make test$", (repo_root / ".ci" / "run").read_text(), re.M)


def _doc_command_lines(repo_root) -> list[tuple[str, str]]:
    """(file, text) of every `kubeforge ...` command README.md and docs/*.md show: code lines and
    inline code spans."""
    out = []
    for path in [repo_root / "README.md", *sorted((repo_root / "docs").glob("*.md"))]:
        text = path.read_text()
        fenced = "\n".join(text.split("```")[1::2])
        indented = "\n".join(line for line in text.splitlines() if line.startswith("    "))
        spans = re.findall(r"`(kubeforge [^`]+)`", text.replace("```", ""))
        lines = [m.group(1) for m in re.finditer(r"^\s*(?:\$ )?(kubeforge [a-z].*)$", fenced + "\n" + indented, re.M)]
        out += [(path.name, s) for s in spans + lines]
    return out


def test_every_command_and_option_the_docs_show_exists(repo_root):
    """README and docs name only commands and options the CLI has (e.g. no `verify --json PATH`
    after --json became a flag, no `render --validate`)."""
    import typer.main

    from kubeforge import cli

    cli._register()
    root = typer.main.get_command(cli.app)
    checked = 0
    for where, line in _doc_command_lines(repo_root):
        words = re.split(r"\s+(?:#|\||&&|;).*$", line.strip())[0].split()[1:]
        cmds = [root]
        i = 0
        global_opts = {o: p for p in root.params for o in p.opts}
        while i < len(words) and words[i] in global_opts:     # kubeforge --secrets FILE render ...
            i += 1 if getattr(global_opts[words[i]], "is_flag", False) else 2
        while i < len(words) and all(hasattr(c, "commands") for c in cmds):   # groups (typer vendors click)
            names = words[i].split("|")
            if not all(n in cmds[0].commands for n in names):
                break
            cmds = [c.commands[n] for c in cmds for n in names]
            i += 1
        assert cmds != [root], f"{where}: `{line}` names no kubeforge command"
        rest = words[i:]
        for j, w in enumerate(rest):
            opt = w.strip("[](),.:").split("=")[0]
            if re.fullmatch(r"--?[a-z][a-z0-9-]*", opt):
                for c in cmds:
                    params = {o: p for p in c.params for o in p.opts + p.secondary_opts}
                    assert opt in params or opt == "--help", f"{where}: `{line}`: kubeforge {c.name} has no {opt}"
                    nxt = rest[j + 1] if j + 1 < len(rest) else ""
                    if opt in params and getattr(params[opt], "is_flag", False) and w == opt:
                        assert not nxt or nxt.startswith(("-", "[")), \
                            f"{where}: `{line}`: {opt} is a flag, yet the docs give it {nxt!r}"
                    checked += 1
    assert checked > 40, checked
