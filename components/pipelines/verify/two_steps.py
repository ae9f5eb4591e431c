"""The two-step pipeline `kubeforge verify` runs in each tenant namespace (pipelines/run-*
checks). Compiled with the kfp SDK that matches the backend (kfp==2.16.0) into
two-steps.yaml, which the checks ship and submit; regenerate after editing:

    pip install kfp==2.16.0 && python components/pipelines/verify/two_steps.py

Container components on busybox only: nothing is pip-installed at run time, so the run works on
an air-gapped cluster (the checks point the image at the profile's registry).
"""
from pathlib import Path

from kfp import compiler, dsl

IMAGE = "docker.io/library/busybox:1.37.0"


@dsl.container_component
def produce(message: str, out: dsl.Output[dsl.Artifact]):
    """Step 1: write the message into an artifact."""
    return dsl.ContainerSpec(image=IMAGE, command=["sh", "-c", 'mkdir -p "$(dirname "$1")" && printf "%s" "$0" > "$1"'],
                             args=[message, out.path])


@dsl.container_component
def shout(text: dsl.Input[dsl.Artifact], out: dsl.Output[dsl.Artifact]):
    """Step 2: read step 1's artifact and write it upper-cased: the run's output artifact."""
    return dsl.ContainerSpec(image=IMAGE, command=["sh", "-c", 'mkdir -p "$(dirname "$1")" && tr a-z A-Z < "$0" > "$1"'],
                             args=[text.path, out.path])


@dsl.pipeline(name="kubeforge-verify-two-steps", description="kubeforge verify: two steps, one artifact handed on")
def two_steps(message: str = "hello from kubeforge"):
    # No cache: each check run must execute both steps (its message carries a nonce anyway).
    first = produce(message=message).set_caching_options(False)
    shout(text=first.outputs["out"]).set_caching_options(False)


if __name__ == "__main__":
    compiler.Compiler().compile(two_steps, str(Path(__file__).with_name("two-steps.yaml")))
