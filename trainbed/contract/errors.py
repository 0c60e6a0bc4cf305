"""The error taxonomy: what the CLI turns into a short message and an exit code.

A user's input error (a bad campaign file, an impossible design) is a :class:`UserError` and
exits 2 with one clear line and no traceback. Broken internal invariants are ``assert``s. A
setting that is accepted but ignored is a warning, never silence.
"""

from __future__ import annotations


class TrainbedError(Exception):
    """Base of every error trainbed raises on purpose."""

    exit_code = 1


class UserError(TrainbedError):
    """The user's input is wrong; the message names the field and the reason."""

    exit_code = 2


class SpecError(UserError):
    """A campaign file that does not validate."""

    def __init__(self, field: str, reason: str, source: str | None = None) -> None:
        self.field = field
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {reason}")


class DesignError(SpecError):
    """A design that cannot be built: aliased main effects, an unreachable resolution."""


class ClusterError(TrainbedError):
    """A Kubernetes API call failed; the message names the object's namespace/name."""


class ResultsError(UserError):
    """A results directory that cannot be read: not one at all, or a required file or column
    missing. The message names the path (and the column)."""
