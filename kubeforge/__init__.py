"""kubeforge: a GPU-ready ML platform on Kubernetes, installed by Pulumi and proven by tests."""

__version__ = "0.1.0"
