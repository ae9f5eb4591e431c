"""Notebooks conformance: a Notebook in a tenant namespace becomes Ready, and a PodDefault it selects
is injected into its pod (kubeforge/verify/notebooks.py has the objects and the judgements)."""
import secrets

from kubeforge.verify import check
from kubeforge.verify import notebooks as nbk
from kubeforge.verify.context import NotYet


def _has_tenant(plan):
    if not nbk.tenant_namespace(plan.profile):
        return "the profile declares no kubeflow.tenants: there is no tenant namespace to spawn in"
    return True


@check("notebook-with-poddefault", timeout=900, when=_has_tenant)
def notebook_with_poddefault(ctx):
    """A Notebook (the spawner's default image) in the first tenant's namespace becomes Ready with a PodDefault's env and volume injected."""
    ns = nbk.tenant_namespace(ctx.profile)
    token = secrets.token_hex(3)
    name = f"kf-verify-nb-{token}"

    def namespace_ready():
        got = ctx.get("v1", "Namespace", ns)
        if got is None:
            raise NotYet(f"namespace {ns} not created yet (the profile controller makes it from Profile {ns})")
        sa = ctx.get("v1", "ServiceAccount", nbk.SERVICE_ACCOUNT, ns)
        if sa is None:
            raise NotYet(f"no ServiceAccount {nbk.SERVICE_ACCOUNT} in {ns} yet")
        return got
    ctx.wait(f"tenant namespace {ns}", namespace_ready, timeout=120)

    pd = nbk.poddefault(name, token)
    ctx.create(pd, ns)
    try:
        ctx.create(nbk.notebook(name, ctx.image(nbk.spawner_image(ctx.objects)), token), ns)
        ctx.wait_clean(f"Notebook {ns}/{name} ready",
                       lambda: nbk.notebook_problems(ctx.get(nbk.NOTEBOOK_API, "Notebook", name, ns), name))
        pods = ctx.cluster.list("v1", "Pod", ns, label_selector=f"notebook-name={name}")
        problems = nbk.injection_problems(pods[0] if pods else None, pd, name)
        if problems:
            ctx.fail("; ".join(problems))
    except BaseException:
        if ctx.keep_on_failure:        # the tenant's namespace stays; so do the probe's objects
            ctx.kept.append(ns)
            raise
        _cleanup(ctx, ns, name)
        raise
    _cleanup(ctx, ns, name)
    return f"Notebook {ns}/{name} ready, PodDefault env and volume injected"


def _cleanup(ctx, ns, name):
    ctx.cluster.delete(nbk.NOTEBOOK_API, "Notebook", name, ns)
    ctx.cluster.delete(nbk.PODDEFAULT_API, "PodDefault", name, ns)
