"""The conformance suite behind `kubeforge verify`.

Components declare functional checks in `components/<name>/checks.py` with `@check` (below);
readiness checks are derived from the rendered objects; `session.verify()` runs them under pytest.
"""
from kubeforge.verify.checks import check

__all__ = ["check"]
