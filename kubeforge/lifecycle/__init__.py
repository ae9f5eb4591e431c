"""Day-2 workflows: teardown (reverse plan, finalizer-aware) and upgrade (version and CRD diff,
compatibility gates, ordered apply). Pure planning here; the cluster only at execution."""
