"""Replicas needed for a load (issue 16 §4, from the requirements):
ceil(rps * request_seconds / target_utilization / max_concurrent_requests_per_replica).

rps * request_seconds is the number of requests in flight (Little's law); a replica holds
max_concurrent of them, and the autoscaler keeps replicas busy at target_utilization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from layerkit.spec.serve import ServeSettings


def replicas_needed(rps: float, request_seconds: float, target_utilization: int, max_concurrent: int) -> int:
    """Exact arithmetic: 7 rps x 10 s at 70% is 100 replicas, not float's 100.00000000000001 -> 101."""
    in_flight = Fraction(str(rps)) * Fraction(str(request_seconds))
    return math.ceil(in_flight / Fraction(target_utilization, 100) / max_concurrent)


@dataclass(frozen=True)
class Capacity:
    rps: float
    request_seconds: float
    target_utilization: int
    max_concurrent_requests_per_replica: int
    replicas: int
    autoscale_enabled: bool
    available: int  # autoscale_max_replicas, or num_replicas when autoscale is off

    @property
    def enough(self) -> bool:
        return self.replicas <= self.available


def plan(s: ServeSettings, rps: float, request_seconds: float) -> Capacity:
    needed = replicas_needed(rps, request_seconds, s.autoscale_target_utilization,
                             s.max_concurrent_requests_per_replica)  # fmt: skip
    available = s.autoscale_max_replicas if s.autoscale_enabled else (s.num_replicas or 0)
    return Capacity(rps, request_seconds, s.autoscale_target_utilization, s.max_concurrent_requests_per_replica,
                    needed, s.autoscale_enabled, available)  # fmt: skip
