"""kubeforge platform stack: everything lives in kubeforge.pulumi.platform (tested under mocks)."""
from kubeforge.pulumi.platform import main

main()
