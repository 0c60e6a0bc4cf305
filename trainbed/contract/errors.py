"""The error taxonomy: what the CLI turns into a short message and an exit code.

A user's input error (a bad campaign file, an impossible design) is a :class:`UserError` and
exits 2 with one clear line and no traceback. Broken internal invariants are ``assert``s. A
setting that is accepted but ignored is a warning, never silence.
"""

from __future__ import annotations

from pydantic import ValidationError


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
    """A Kubernetes API call failed; the message names the verb, the resource and its
    namespace/name. ``status`` is the HTTP status, None where no answer came (a timeout, a reset
    connection). This class is a temporary error: the caller may retry it."""

    permanent = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PermanentClusterError(ClusterError):
    """An API error that no retry will fix (401, 403, a missing CRD, 422 and the other 4xx
    answers that are not about timing): the controller and ``run --backend kubernetes`` stop on
    it, say which verb on which resource in which namespace, and exit 2."""

    permanent = True
    exit_code = 2


#: Answers that say "not now" rather than "no": retried with backoff by the API adapter.
RETRYABLE_STATUSES = frozenset({408, 425, 429})
#: 4xx answers that are about one object's state, which the caller decides on (absent, exists,
#: changed meanwhile), never a reason to stop.
OBJECT_STATUSES = frozenset({404, 409, 410})


def api_error_retryable(status: int | None) -> bool:
    """Worth sending again after a pause: no answer at all, 408, 425, 429 or any 5xx."""
    return status is None or status in RETRYABLE_STATUSES or status >= 500


def api_error_permanent(status: int | None, *, kind_missing: bool = False) -> bool:
    """kopf's split: a 4xx that no retry fixes (401, 403, 422, 400, ...), or a 404 for the
    resource type itself (``kind_missing``: the CRD is not installed). A 404, 409 or 410 about
    one object, the retryable statuses and every 5xx are not."""
    if status is None or not 400 <= status < 500:
        return False
    if status == 404:
        return kind_missing
    return status not in RETRYABLE_STATUSES and status not in OBJECT_STATUSES


def api_error(message: str, status: int | None, *, kind_missing: bool = False) -> ClusterError:
    """The error to raise for an API answer: permanent or temporary, as classified above."""
    if api_error_permanent(status, kind_missing=kind_missing):
        return PermanentClusterError(message, status=status)
    return ClusterError(message, status=status)


class ResultsError(UserError):
    """A results directory that cannot be read: not one at all, or a required file or column
    missing. The message names the path (and the column)."""


def record_problem(field: str, problem: str) -> str:
    """``field F: problem`` (or the problem alone, for the file as a whole): how a bad record's
    field is named, in :class:`RecordError` and wherever a reader lists one."""
    return f"field {field}: {problem}" if field else problem


class RecordError(ValueError):
    """A record file (``result.json``, ``trial.json``, ``campaign.yaml``) that exists but does
    not hold what the contract says: torn, empty, or a field of the wrong type. ``str()`` is one
    line naming the file, the field and what was wrong, so a reader can list it and go on.

    A ``ValueError``, so callers that treat an unreadable record as absent keep doing so."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path, self.field, self.problem = path, field, problem
        super().__init__(f"{path}: {record_problem(field, problem)}")

    @classmethod
    def from_validation(cls, path: str, error: ValidationError) -> RecordError:
        """The first thing pydantic found wrong, in one line: the field's dotted path, the
        message, and the value it got (cut short)."""
        first = error.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first.get("loc", ()))
        problem = str(first.get("msg", "invalid"))
        if first.get("type") == "json_invalid":
            ctx = str((first.get("ctx") or {}).get("error", ""))
            empty = "EOF while parsing a value at line 1 column 0" in ctx
            return cls(path, "", "empty file" if empty else f"not valid JSON ({ctx})")
        if "input" in first and field:
            shown = repr(first["input"])
            problem += f" (got {shown[:60] + '...' if len(shown) > 60 else shown})"
        return cls(path, field, problem)
