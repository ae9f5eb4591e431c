"""kubeforge EKS cluster stack: everything lives in kubeforge.pulumi.eks (tested under mocks)."""
from kubeforge.pulumi.eks import main

main()
