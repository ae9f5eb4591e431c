"""Bare-metal GPU nodes: inventory checks and the ansible-runner driver behind `kubeforge nodes`."""
from kubeforge.nodes.inventory import check_inventory, load_inventory
from kubeforge.nodes.runner import HostResult, RunResult, run_playbook

__all__ = ["HostResult", "RunResult", "check_inventory", "load_inventory", "run_playbook"]
