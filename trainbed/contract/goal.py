"""``spec.goal`` (contract): what the campaign is for, so the analysis can recommend a setting.

A goal minimises or maximises one response subject to constraints on others, or maximises a
Derringer-Suich desirability over several. It is written as a mapping in the campaign file or as
one line, which ``trainbed analyze --goal`` and ``trainbed confirm --goal`` also take::

    goal: "min time s.t. accuracy >= 0.9"
    goal: {minimize: time, subject_to: ["accuracy >= 0.9", "cost <= 0.02"]}
    goal: "desirability max accuracy 0.9..0.99, min time 5..20 s.t. cost <= 0.02"

In a desirability, ``max accuracy 0.9..0.99`` scores accuracy 0 at or below 0.9 and 1 at or
above 0.99, linearly between; ``min`` the other way round. The overall desirability is the
weighted geometric mean of the scores (``weight`` in the mapping form; 1 in the line form).
Every name is a response of :mod:`trainbed.contract.responses`. Pure.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainbed.contract.responses import Response

Operator = Literal[">=", "<=", ">", "<"]
_CONSTRAINT = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")
_TERM = re.compile(r"^\s*(max|min)\s+([a-z_]+)\s+([-+0-9.eE]+)\s*\.\.\s*([-+0-9.eE]+)\s*$")
_HEAD = re.compile(r"^\s*(min|minimize|minimise|max|maximize|maximise)\s+([a-z_]+)\s*$")
#: What a goal line looks like, for error messages.
GOAL_SYNTAX = (
    '"min RESPONSE [s.t. RESPONSE >= VALUE [and ...]]" or '
    '"desirability max RESPONSE LOW..HIGH, min RESPONSE LOW..HIGH [s.t. ...]"'
)


class Constraint(BaseModel):
    """``response op bound``, e.g. ``accuracy >= 0.9``; also written as that one string."""

    model_config = ConfigDict(extra="forbid")

    response: Response
    op: Operator
    bound: float

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _CONSTRAINT.match(value)
        if not match:
            raise ValueError(f"{value!r}: write a constraint as RESPONSE >= VALUE (or <=, >, <)")
        return {"response": match[1], "op": match[2], "bound": match[3]}

    def holds(self, value: float) -> bool:
        return {
            ">=": value >= self.bound,
            "<=": value <= self.bound,
            ">": value > self.bound,
            "<": value < self.bound,
        }[self.op]

    def text(self) -> str:
        return f"{self.response} {self.op} {self.bound:g}"


class Desire(BaseModel):
    """One response's part of a desirability: 0 at the bad end, 1 at the good end."""

    model_config = ConfigDict(extra="forbid")

    response: Response
    direction: Literal["max", "min"] = Field(description="max: higher is better; min: lower.")
    low: float = Field(description="Below it (max) or at it (min) the score is 0 (max) or 1.")
    high: float = Field(description="Above it the score is 1 (max) or 0 (min).")
    weight: float = Field(1.0, gt=0, description="Exponent weight in the geometric mean.")

    @model_validator(mode="after")
    def _ordered(self) -> Desire:
        if not self.low < self.high:
            raise ValueError(f"{self.response}: low ({self.low:g}) must be below high")
        return self

    def score(self, value: float) -> float:
        """The desirability of ``value`` in [0, 1], linear between ``low`` and ``high``."""
        share = min(max((value - self.low) / (self.high - self.low), 0.0), 1.0)
        return share if self.direction == "max" else 1.0 - share

    def text(self) -> str:
        return f"{self.direction} {self.response} {self.low:g}..{self.high:g}"


class GoalSpec(BaseModel):
    """Minimise or maximise one response, or maximise a desirability; subject to constraints."""

    model_config = ConfigDict(extra="forbid")

    minimize: Response | None = Field(None, description="The response to make as small as can be.")
    maximize: Response | None = Field(None, description="The response to make as large as can be.")
    desirability: list[Desire] | None = Field(
        None, description="Or: responses whose desirabilities' geometric mean is maximised."
    )
    subject_to: list[Constraint] = Field(
        default_factory=list, description='Constraints, e.g. "accuracy >= 0.9".'
    )

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return _parse_line(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_objective(self) -> GoalSpec:
        given = [x for x in (self.minimize, self.maximize, self.desirability) if x]
        if len(given) != 1:
            raise ValueError("give exactly one of minimize, maximize or desirability")
        return self

    @property
    def responses(self) -> list[str]:
        """Every response the goal names, the objective's first."""
        names = [d.response for d in self.desirability or []] or [
            str(self.minimize or self.maximize)
        ]
        return list(dict.fromkeys([*names, *(c.response for c in self.subject_to)]))

    def text(self) -> str:
        if self.desirability:
            head = "desirability " + ", ".join(d.text() for d in self.desirability)
        else:
            head = f"min {self.minimize}" if self.minimize else f"max {self.maximize}"
        if self.subject_to:
            head += " s.t. " + " and ".join(c.text() for c in self.subject_to)
        return head


def _parse_line(text: str) -> dict[str, Any]:
    """A goal line as the mapping form; ValueError names the syntax."""
    parts = re.split(r"\s+(?:s\.t\.|subject to)\s+", text.strip(), maxsplit=1)
    objective, rest = parts[0], parts[1] if len(parts) > 1 else ""
    constraints = [c for c in re.split(r"\s+and\s+|\s*,\s*", rest) if c.strip()] if rest else []
    if objective.startswith("desirability"):
        terms = []
        for part in objective.removeprefix("desirability").split(","):
            match = _TERM.match(part)
            if not match:
                raise ValueError(
                    f"{part.strip()!r}: a desirability term is max|min RESPONSE LOW..HIGH"
                )
            terms.append(
                {"direction": match[1], "response": match[2], "low": match[3], "high": match[4]}
            )
        return {"desirability": terms, "subject_to": constraints}
    match = _HEAD.match(objective)
    if not match:
        raise ValueError(f"{text!r}: write a goal as {GOAL_SYNTAX}")
    key = "minimize" if match[1].startswith("min") else "maximize"
    return {key: match[2], "subject_to": constraints}


def parse_goal(text: str) -> GoalSpec:
    """A goal line (``--goal``) as a :class:`GoalSpec`; ValueError with one line when it is not."""
    try:
        return GoalSpec.model_validate(text)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ValueError(f"{where}: {message}" if where else message) from None
