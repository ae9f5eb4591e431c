"""kube-prometheus conformance, through the API server's service proxy (kubeforge.verify.monitoring):
the operator reconciled Prometheus and Alertmanager and rejected nothing, every target is up and
the core jobs cover every node, every rule evaluates, nothing critical fires once settled while
Watchdog does, and Grafana is healthy with its datasource and dashboards."""
from kubeforge.verify import check
from kubeforge.verify import monitoring as m

MON = "monitoring.coreos.com/v1"


@check("operator-reconciled", timeout=600)
def operator_reconciled(ctx):
    """Prometheus and Alertmanager are Available and Reconciled; the operator rejected no resource;
    both loaded their last configuration."""
    crs = [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in ctx.objects
           if o["kind"] in ("Prometheus", "Alertmanager")]

    def problems():
        out = [p for kind, ns, name in crs for p in m.resource_problems(kind, ctx.get(MON, kind, name, ns))]
        return out or m.operator_problems(m.query(ctx, "prometheus_operator_rejected_resources"),
                                          m.query(ctx, "prometheus_config_last_reload_successful"),
                                          m.query(ctx, "alertmanager_config_last_reload_successful"))
    ctx.wait_clean("the operator to reconcile Prometheus and Alertmanager", problems)
    return f"{len(crs)} resource(s) reconciled, nothing rejected, configs loaded"


@check("targets-up", timeout=600)
def targets_up(ctx):
    """Every monitor kube-prometheus rendered has an active target, all up; node-exporter and the
    kubelet on every node, kube-state-metrics and the operator up."""
    note = m.own_targets_up(ctx)
    nodes = [n["metadata"]["name"] for n in ctx.cluster.list("v1", "Node")]
    ctx.wait_clean("the core jobs on every node", lambda: m.core_job_problems(m.prometheus(ctx, "/api/v1/targets"), nodes))
    return f"{note}; core jobs on {len(nodes)} node(s)"


@check("rules-healthy", timeout=600)
def rules_healthy(ctx):
    """Every rule group Prometheus loaded (kubeforge's included) was evaluated and every rule is ok."""
    m.own_rules_loaded(ctx)
    ctx.wait_clean("every rule group evaluated and healthy",
                   lambda: m.rule_problems(m.prometheus(ctx, "/api/v1/rules"), set()))
    return "every rule group evaluated, every rule ok"


@check("alerts-settled", timeout=900)
def alerts_settled(ctx):
    """After a settle window, no severity=critical alert fires and Watchdog does."""
    ctx.sleep(m.SETTLE_S)
    ctx.wait_clean("no critical alert and Watchdog firing", lambda: m.alert_problems(m.alertmanager_alerts(ctx)))
    return "no critical alert; Watchdog firing"


@check("grafana", timeout=300)
def grafana(ctx):
    """Grafana is healthy, its Prometheus datasource answers, its dashboards are listed (logged in
    with the generated admin password, not admin/admin)."""
    g = m.Grafana(ctx)
    titles = m.dashboard_titles(ctx.objects)

    def problems():
        health = g.get("/api/health")
        g.login()
        return m.grafana_problems(health, g.get("/api/datasources/uid/prometheus/health"),
                                  g.get("/api/search", type="dash-db"), titles)
    ctx.wait_clean("Grafana healthy with its datasource and dashboards", problems)
    return f"healthy, datasource ok, {len(titles)} dashboards listed"
