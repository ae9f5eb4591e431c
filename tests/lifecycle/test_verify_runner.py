"""The scheduler and the pytest face of the suite, with real check functions that need no cluster.

Ordering and parallelism are asserted by behaviour (who waited for whom), never by timings.
"""
from __future__ import annotations

import threading
import xml.etree.ElementTree as ET

import pytest

from kubeforge import api
from kubeforge.verify.checks import FUNCTION, READINESS, Check
from kubeforge.verify.context import CheckContext
from kubeforge.verify.runner import FAILED, PASSED, SKIPPED, Scheduler, summary


@pytest.fixture(scope="module")
def plan():
    return api.plan(api.load_profile("base"))


def _make_ctx(plan):
    def make(check, cancel):
        return CheckContext(cluster=None, plan=plan, component=check.component, objects=[],
                            timeout=check.timeout, cancel=cancel)
    return make


def _c(name, fn, **kw):
    return Check(name=name, component=name.split("/")[0], kind=kw.pop("kind", FUNCTION), fn=fn, **kw)


def test_independent_checks_run_in_parallel_and_dependents_wait(plan):
    log: list[str] = []
    a_started, b_started = threading.Event(), threading.Event()

    def a(ctx):
        a_started.set()
        # Only passes if b runs at the same time (parallel where independent).
        assert b_started.wait(10), "b never started while a was running"
        log.append("a")

    def b(ctx):
        b_started.set()
        assert a_started.wait(10)
        log.append("b")

    def c(ctx):
        log.append("c")
        return "c saw " + ",".join(sorted(log[:-1]))

    checks = [_c("x/a", a, kind=READINESS), _c("y/b", b, kind=READINESS),
              _c("z/c", c, needs=["x/a"], after=["y/b"])]
    results = Scheduler(checks, _make_ctx(plan), workers=4).run_all()
    assert [r.status for r in results] == [PASSED, PASSED, PASSED]
    assert log[-1] == "c" and results[2].message == "c saw a,b"


def test_failed_prerequisite_skips_dependents_and_reports_why(plan):
    def broken(ctx):
        ctx.fail("webhook has no caBundle")

    ran = []
    checks = [_c("katib/webhooks-ready", broken, kind=READINESS),
              _c("katib/random-experiment", lambda ctx: ran.append(1), needs=["katib/webhooks-ready"]),
              _c("storage/pvc", lambda ctx: "bound")]
    results = {r.name: r for r in Scheduler(checks, _make_ctx(plan), workers=1).run_all()}
    assert results["katib/webhooks-ready"].status == FAILED
    assert results["katib/webhooks-ready"].message == "webhook has no caBundle"
    assert results["katib/random-experiment"].status == SKIPPED and not ran
    assert results["katib/random-experiment"].message == "needs katib/webhooks-ready, which failed"
    assert results["storage/pvc"].status == PASSED


def test_each_check_has_its_own_timeout(plan):
    checks = [_c("slow/never-ready", lambda ctx: ctx.wait("a condition that never comes", lambda: False,
                                                          interval=0.2), timeout=1.0),
              _c("fast/ok", lambda ctx: "ok", timeout=1.0)]
    results = Scheduler(checks, _make_ctx(plan), workers=2).run_all()
    assert results[0].status == FAILED
    assert results[0].message.startswith("timed out waiting for a condition that never comes")
    assert results[1].status == PASSED


def test_profile_skips_and_unexpected_errors_are_reported(plan):
    def boom(ctx):
        raise KeyError("status")

    checks = [_c("gpu/allocatable", lambda ctx: None, skip_reason="the profile has no GPUs"),
              _c("x/boom", boom)]
    results = Scheduler(checks, _make_ctx(plan)).run_all()
    assert (results[0].status, results[0].message) == (SKIPPED, "the profile has no GPUs")
    assert results[1].status == FAILED and results[1].message.startswith("KeyError at test_verify_runner.py:")
    out = summary(results)
    assert out["ok"] is False and out["failures"] == ["x/boom"]
    assert out["counts"] == {"passed": 0, "failed": 1, "skipped": 1}
    assert {r["name"] for r in out["results"]} == {"gpu/allocatable", "x/boom"}


def test_the_pytest_suite_reports_checks_as_tests_with_junit(plan, tmp_path):
    import pytest as _pytest

    from kubeforge.verify.plugin import VerifyPlugin
    from kubeforge.verify.session import pytest_args

    def fails(ctx):
        ctx.fail("Certificate probe not Ready")

    checks = [_c("cert-manager/crds-established", lambda ctx: "6 CRDs", kind=READINESS),
              _c("cert-manager/issues-certificate", fails, needs=["cert-manager/crds-established"]),
              _c("nvidia-device-plugin/gpu-allocatable", lambda ctx: None, skip_reason="no GPUs")]
    scheduler = Scheduler(checks, _make_ctx(plan))
    junit = tmp_path / "junit.xml"
    rc = _pytest.main(pytest_args(str(junit)), plugins=[VerifyPlugin(scheduler)])
    assert rc == 1  # a check failed
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    cases = {tc.get("name"): tc for tc in suite.iter("testcase")}
    failed = cases["test_check[cert-manager/issues-certificate]"]
    assert "Certificate probe not Ready" in failed.find("failure").get("message")
    props = {p.get("name"): p.get("value") for p in failed.iter("property")}
    assert props == {"component": "cert-manager", "kind": "function"}
