"""Pure rules of the uplink: when to send a batch, how long to wait before a
reconnect, and how late the oldest un-uploaded read is against the transfer policy.

No I/O here, so every rule is tested without a broker or a clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Literal

Severity = Literal["ok", "warning", "critical"]
DAY_S = 86_400.0


def backoff_delay(attempt: int, base_s: float, cap_s: float,
                  rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before reconnect number ``attempt`` (0 = first retry).

    Exponential with "equal jitter": half of the capped exponential step is
    fixed, the other half random, so a fleet of cars that lost the same broker
    does not come back in lock-step, yet nobody retries faster than ``base_s/2``.
    """
    step = min(cap_s, base_s * 2.0 ** min(attempt, 60))
    return step / 2 + rand() * step / 2


def resend_delay(attempt: int, timeout_s: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait for a batch's receipt before sending it again (``attempt`` 0 = the first send).

    Never less than ``timeout_s``; doubling with each unanswered send up to 16
    times that, jittered like :func:`backoff_delay`, so units waiting for the
    same absent receiver neither flood the broker nor re-send in lock-step.
    """
    return backoff_delay(attempt, 2 * timeout_s, 32 * timeout_s, rand)


def batch_wait(pending: int, oldest_age_s: float | None, batch_size: int, max_age_s: float) -> float:
    """Seconds until the next batch is due: 0 = send now, ``inf`` = nothing to send.

    A batch goes out when it is full, or when its oldest read has waited
    ``max_age_s``, so a quiet road still uploads within the age limit.
    """
    if pending <= 0:
        return math.inf
    if pending >= batch_size or oldest_age_s is None:
        return 0.0
    return max(0.0, max_age_s - oldest_age_s)


def backlog_severity(oldest_age_s: float | None, warn_days: float, critical_days: float) -> Severity:
    """How the oldest read still waiting for upload stands against the transfer window."""
    if oldest_age_s is None or oldest_age_s < warn_days * DAY_S:
        return "ok"
    return "warning" if oldest_age_s < critical_days * DAY_S else "critical"
