"""kubeforge GKE cluster stack: everything lives in kubeforge.pulumi.gke (tested under mocks)."""
from kubeforge.pulumi.gke import main

main()
