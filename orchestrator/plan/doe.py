"""pydoe's design builders, loaded without pydoe's package ``__init__``.

``import pydoe`` imports every module pydoe has (scipy.stats among them): about 1.5 s of
start-up on a 2-core machine, for a ``trainbed plan`` that needs only the factorial builders.
Those live in ``pydoe/factorial/factorial.py`` (numpy only) and
``pydoe/factorial/plackett_burman.py`` (numpy and scipy.linalg). This module loads each of those
files on its own, from the installed pydoe, so the functions are pydoe's own code. When pydoe was
already imported in full, its loaded modules are used.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any


@cache
def _pydoe_module(name: str) -> ModuleType:
    """``pydoe.factorial.<name>``, executed from its file without pydoe's package __init__."""
    full = f"pydoe.factorial.{name}"
    if full in sys.modules:
        return sys.modules[full]
    package = importlib.util.find_spec("pydoe")  # locates the package, runs none of it
    if package is None or package.origin is None:
        raise ImportError("pydoe is not installed (pip install pydoe)")
    path = Path(package.origin).parent / "factorial" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"trainbed._pydoe_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fullfact(levels: list[int]) -> Any:
    """pydoe.fullfact: every combination of level indices 0..L-1."""
    return _pydoe_module("factorial").fullfact(levels)


def fracfact(generator: str) -> Any:
    """pydoe.fracfact: a two-level fraction from a generator string ("a b c abc")."""
    return _pydoe_module("factorial").fracfact(generator)


def pbdesign(factors: int) -> Any:
    """pydoe.pbdesign: a Plackett-Burman design for ``factors`` two-level factors."""
    return _pydoe_module("plackett_burman").pbdesign(factors)
