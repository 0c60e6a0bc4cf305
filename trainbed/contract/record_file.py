"""Reading one record file through its model: the one place where "absent", "unreadable" and
"does not validate" are told apart, so every reader of the contract's JSON records treats them
alike (absent is ``None``; the other two a :class:`RecordError` naming the file and field)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from trainbed.contract.errors import RecordError

M = TypeVar("M", bound=BaseModel)


def read_model(path: Path, model: type[M], *, strict: bool = False) -> M | None:
    """``path`` validated as ``model``; ``None`` when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise RecordError(str(path), "", "not UTF-8 text") from None
    except OSError as err:
        raise RecordError(str(path), "", f"unreadable ({err.strerror or err})") from None
    try:
        return model.model_validate_json(text, strict=strict)
    except ValidationError as err:
        raise RecordError.from_validation(str(path), err) from None
