"""Pulumi resources of the platform stack: one component per kubeforge component, one resource
per rendered object.

`KubernetesObject` registers an object under the same type token and wire-format inputs as the
typed pulumi-kubernetes classes (kubernetes:apps/v1:Deployment, kubernetes:cert-manager.io/v1:
Certificate, ...), straight from the rendered dict: no camel/snake round trip and one class for
built-in and custom kinds alike.
"""
from __future__ import annotations

from typing import Any

import pulumi

from kubeforge.pulumi.graph import component_type, resource_name, type_token

SECRET_FIELDS = ("data", "stringData")
IDENTITY_FIELDS = ("apiVersion", "kind", "metadata")


class KubernetesObject(pulumi.CustomResource):
    def __init__(self, obj: dict[str, Any], opts: pulumi.ResourceOptions, *, outputs: tuple[str, ...] = (),
                 secret: bool = False):
        """secret: the object carries a per-install secret outside a Secret's payload (a config a
        generator wrote it into): every field but its identity is a Pulumi secret."""
        props: dict[str, Any] = dict(obj)
        secret_outputs: list[str] = []
        fields = [f for f in props if f not in IDENTITY_FIELDS] if secret else \
            list(SECRET_FIELDS) if obj.get("kind") == "Secret" else []
        # Secret payloads never reach the state or the console in plain text.
        for f in fields:
            if props.get(f) is not None:
                props[f] = pulumi.Output.secret(props[f])
        secret_outputs = fields
        for name in outputs:
            props.setdefault(name, None)
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=secret_outputs or None))
        super().__init__(type_token(obj), resource_name(obj), props, opts)


class PlatformComponent(pulumi.ComponentResource):
    """kubeforge:component:<Name>: the rendered objects (and Helm charts) of one component."""

    def __init__(self, name: str, version: str, wave: int, opts: pulumi.ResourceOptions):
        super().__init__(component_type(name), name, {"version": version, "wave": wave}, opts)
        self.component = name
        self.version = version
