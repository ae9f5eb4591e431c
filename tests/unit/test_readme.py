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
