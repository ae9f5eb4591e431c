"""The pytest face of the suite: one test per check, reported in dependency order.

The checks themselves run in the scheduler (parallel where independent); each test waits for its
check's result, so pytest's reporting (JUnit XML, -k, -x) works on them as on any test.
"""
import pytest


def test_check(check_name, kubeforge_scheduler, record_property):
    result = kubeforge_scheduler.result(check_name)
    record_property("component", result.component)
    record_property("kind", result.kind)
    if result.kept_namespaces:
        record_property("kept_namespaces", ",".join(result.kept_namespaces))
    if result.status == "skipped":
        pytest.skip(result.message)
    if result.status != "passed":
        pytest.fail(result.message, pytrace=False)
