"""kubeforge AKS cluster stack: everything lives in kubeforge.pulumi.aks (tested under mocks)."""
from kubeforge.pulumi.aks import main

main()
