"""Student's t distribution in plain Python: its CDF and its quantile. Pure.

``trainbed predict`` needs only these two numbers, and importing scipy.special costs more than
the whole prediction (it pulls in the array-API layer), so they are computed here: the CDF from
the regularized incomplete beta function (the continued fraction of Numerical Recipes §6.4,
evaluated by the modified Lentz method), the quantile by bisection on the CDF.
``tests/analysis/test_decision.py`` checks both against scipy.stats to 1e-9.
"""

from __future__ import annotations

import math

_EPS = 1e-15
_TINY = 1e-300


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (0 < p < 1), by bisection to double precision."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"quantile: p must be in (0, 1), got {p}")
    if p < 0.5:
        return -quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while cdf(high, df) < p:
        low, high = high, high * 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low <= 1e-14 * max(1.0, high):
            break
    return (low + high) / 2.0
