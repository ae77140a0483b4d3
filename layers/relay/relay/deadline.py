"""How long a turn may take: the relay answers before API Gateway or Lambda cuts the call."""

from __future__ import annotations

import time
from collections.abc import Callable


class Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    @classmethod
    def for_invocation(cls, context, *, gateway_timeout_ms: int, margin_ms: int) -> Deadline:
        """min(Lambda's remaining time, the gateway's integration timeout) less a margin to answer in."""
        lambda_ms = context.get_remaining_time_in_millis() if context is not None else gateway_timeout_ms
        return cls(max(0, min(lambda_ms, gateway_timeout_ms) - margin_ms) / 1000)

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0
