"""Platform monitors conformance: every monitor rendered for an enabled component scrapes targets
that are all up, platform.rules is healthy, the Istio and Knative dashboards are in Grafana."""
from kubeforge.verify import check
from kubeforge.verify import monitoring as m


@check("targets-up", timeout=600)
def targets_up(ctx):
    """Every platform monitor has an active target and all its targets are up."""
    return m.own_targets_up(ctx)


@check("rules-loaded", timeout=600)
def rules_loaded(ctx):
    """platform.rules is loaded, evaluated and healthy."""
    return m.own_rules_loaded(ctx)


@check("dashboards-listed", timeout=300)
def dashboards_listed(ctx):
    """Grafana lists the platform dashboards (Istio, Knative)."""
    return m.own_dashboards_listed(ctx)
