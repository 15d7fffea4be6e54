"""Statistics for benchmark success rates (standard library only, no scipy).

A pick benchmark reports a proportion (successes / attempts) from a few hundred
attempts at most, often far fewer per object class. The Wilson score interval
is used rather than the normal ("Wald") interval because it stays inside
[0, 1] and keeps sensible coverage at small counts and at rates near 0 or 1,
which is exactly where per-class grasp results sit.
"""

from __future__ import annotations

import math
import numbers
from statistics import NormalDist


def _as_count(value: object, name: str) -> int:
    # bool is an int subclass; a True/False count is almost certainly a bug upstream.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a non-negative integer count, got {value!r} ({type(value).__name__})")
    count = int(value)
    if count < 0:
        raise ValueError(f"{name} must be a non-negative integer count, got {count}")
    return count


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Returns ``(low, high)`` with ``0 <= low <= successes/trials <= high <= 1``.
    ``(0.0, 1.0)`` when ``trials == 0`` (nothing is known). ``low`` is exactly
    0.0 when there are no successes and ``high`` exactly 1.0 when every trial
    succeeded.

    ``confidence`` is the two-sided coverage in (0, 1), e.g. 0.95; the critical
    value is the standard normal quantile ``z = Phi^-1(1 - (1 - confidence)/2)``.

    Raises ValueError for a non-integer or negative count, ``successes > trials``,
    or a confidence outside (0, 1).
    """
    s = _as_count(successes, "successes")
    n = _as_count(trials, "trials")
    if s > n:
        raise ValueError(f"successes ({s}) cannot exceed trials ({n})")
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")
    conf = float(confidence)
    if not (math.isfinite(conf) and 0.0 < conf < 1.0):
        raise ValueError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95), got {conf!r}")
    if n == 0:
        return (0.0, 1.0)

    z = NormalDist().inv_cdf(0.5 + conf / 2.0)
    z2 = z * z
    p = s / n
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    # At p = 0 or 1 the formula gives the bound exactly in real arithmetic;
    # pin it so rounding cannot report e.g. 1e-17 or 0.9999999999999999.
    low = 0.0 if s == 0 else max(0.0, centre - half)
    high = 1.0 if s == n else min(1.0, centre + half)
    return (low, high)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value for paired successes of two policies.

    ``a_only``: attempts (same scenes) that policy A picked and B did not;
    ``b_only``: the reverse. Attempts both or neither picked carry no
    information about which policy is better and are not arguments. Under
    the null hypothesis each discordant attempt is equally likely to favour
    A or B, so with ``n = a_only + b_only``::

        p = min(1, 2 * P[Binom(n, 1/2) <= min(a_only, b_only)])

    (the "exact" or binomial McNemar test; it agrees with
    ``scipy.stats.binomtest(a_only, n, 0.5).pvalue``). Returns 1.0 when
    ``n == 0``. Computed with integer arithmetic (``math.comb``), so it is
    exact for any count. Raises ValueError for a negative or non-integer count.
    """
    b = _as_count(a_only, "a_only")
    c = _as_count(b_only, "b_only")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # The lower tail as an exact integer, divided once: Python's int / int is
    # correctly rounded even for huge ints, so nothing overflows or underflows
    # early (2.0 ** -n alone would be 0.0 past n ~ 1074).
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, (2 * tail) / (1 << n))
