"""`python -m kubeforge ...` is the `kubeforge` command."""
import sys

from kubeforge.cli import main

sys.exit(main())
