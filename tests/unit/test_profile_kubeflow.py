"""The profile's `kubeflow:` section (who logs in, which teams exist): shape and errors."""
from __future__ import annotations

import pytest

from kubeforge.errors import KubeforgeError
from kubeforge.profile import load_profile


def _write(tmp_path, body: str):
    p = tmp_path / "p.yaml"
    p.write_text("extends: dev\n" + body)
    return p


def test_tenants_and_users_are_read_and_emails_normalised(tmp_path):
    prof = load_profile(str(_write(tmp_path, """
kubeflow:
  auth: {staticUsers: [{email: Alice@Example.com}]}
  tenants:
    - {name: team-a, owner: Alice@Example.com, contributors: [bob@example.com]}
    - {name: team-b, owner: bob@example.com}
""")))
    assert [t.name for t in prof.kubeflow.tenants] == ["team-a", "team-b"]
    assert prof.kubeflow.users() == ["alice@example.com", "bob@example.com"]
    assert prof.kubeflow.auth.staticUsers[0].email == "alice@example.com"


@pytest.mark.parametrize("body,field,needle", [
    ("kubeflow: {tenants: [{name: Team_A, owner: a@example.com}]}", "kubeflow.tenants[0].name", "DNS-1123"),
    ("kubeflow: {tenants: [{name: t, owner: alice}]}", "kubeflow.tenants[0].owner", "e-mail"),
    ("kubeflow: {tenants: [{name: t, owner: a@example.com}, {name: t, owner: b@example.com}]}",
     "kubeflow.tenants", "declared twice"),
    ("kubeflow: {auth: {staticUsers: [{email: a@example.com, password: x}]}}",
     "kubeflow.auth.staticUsers[0].password", "unknown field"),
])
def test_bad_kubeflow_section_names_file_and_field(tmp_path, body, field, needle):
    path = _write(tmp_path, body + "\n")
    with pytest.raises(KubeforgeError) as exc:
        load_profile(str(path))
    assert exc.value.field == field
    assert needle in str(exc.value)
    assert str(path.name) in str(exc.value.file)
