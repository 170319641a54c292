"""Tail probabilities of Student's t and Fisher's F without scipy (scipy is used when
installed): both through the regularized incomplete beta function (continued fraction,
Numerical Recipes' ``betacf``; relative error below 1e-12 for the degrees of freedom of
a sweep)."""

from __future__ import annotations

import math

__all__ = ["betainc", "f_sf", "t_two_sided"]


def _betacf(a: float, b: float, x: float) -> float:
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom (NaN if undefined)."""
    if not (df > 0 and math.isfinite(t)):
        return 0.0 if df > 0 and math.isinf(t) else math.nan
    try:
        from scipy.stats import t as student

        return float(2 * student.sf(abs(t), df))
    except ImportError:
        return betainc(df / 2, 0.5, df / (df + t * t))


def f_sf(f: float, df1: float, df2: float) -> float:
    """P(F >= f) for Fisher's F with (``df1``, ``df2``) degrees of freedom."""
    if not (df1 > 0 and df2 > 0) or math.isnan(f):
        return math.nan
    if f <= 0:
        return 1.0
    if math.isinf(f):
        return 0.0
    try:
        from scipy.stats import f as fisher

        return float(fisher.sf(f, df1, df2))
    except ImportError:
        return betainc(df2 / 2, df1 / 2, df2 / (df2 + df1 * f))
