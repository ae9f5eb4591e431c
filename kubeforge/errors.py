"""Errors that the CLI turns into one clear message and an exit code, never a traceback.

Exit codes follow the DeepOps validators: 0 ok, 1 a check failed, 2 bad input or environment.
"""
from __future__ import annotations


class KubeforgeError(Exception):
    """Bad input or environment: exit 2. Names the file, the field and the fix."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None,
                 fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.field = field
        self.fix = fix

    def render(self) -> str:
        where = ""
        if self.file and self.field:
            where = f"{self.file}: {self.field}: "
        elif self.file:
            where = f"{self.file}: "
        elif self.field:
            where = f"{self.field}: "
        text = f"error: {where}{self.message}"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class CheckFailed(KubeforgeError):
    """A check ran and failed (validation errors, a failed conformance check): exit 1."""

    exit_code = 1
