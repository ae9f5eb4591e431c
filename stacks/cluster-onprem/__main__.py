"""kubeforge on-prem cluster stack: everything lives in kubeforge.pulumi.onprem (tested under mocks)."""
from kubeforge.pulumi.onprem import main

main()
