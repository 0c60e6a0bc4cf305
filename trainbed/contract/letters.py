"""Factor letters (contract): how a campaign's generators, defining relations and alias chains
name its factors.

The factors of ``spec.factors`` are A, B, C... in the order they are written, skipping ``I``,
which is the identity in every defining relation (``I = ABCD``): a factor called I would make
``I = ABI`` unreadable. FrF2 and most textbooks do the same, so 25 letters name at most 25
factors and the ninth factor is J. The plan (``trainbed.orchestrator.plan.aliasing``) and the
synthetic results the analysis tests write both spell factors with these letters.
"""

from __future__ import annotations

#: A..Z without I; the i-th factor (0-based) is FACTOR_LETTERS[i].
FACTOR_LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"
IDENTITY = "I"
