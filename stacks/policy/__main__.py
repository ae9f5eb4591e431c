"""kubeforge policy pack: the policies live in kubeforge.pulumi.policies (plain, tested functions)."""
from kubeforge.pulumi.policies import policy_pack

policy_pack()
