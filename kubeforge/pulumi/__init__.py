"""Pulumi delivery: the platform and cluster-onprem stack programs and the Automation API layer.

Only `graph`, `settings`, `policies` and `progress` are importable without Pulumi; the
program modules (`platform`, `onprem`, `resources`) import it, and `automation` imports the
Automation API inside its functions, so the CLI stays fast to start.
"""
