from typing import Any

class DetectorCore:
    n: int
    quiet: int
    evidence: float
    level: float
    anchor: float
    scale: float
    err_short: float
    err_mean: float
    err_var: float
    rare_short: float
    rare_mean: float
    rare_var: float
    lo: float
    hi: float
    total: float
    weight: float
    last_t: float
    last_z: float
    counts: list[float]
    @property
    def _p(self) -> Any: ...
    def __init__(self, params: Any) -> None: ...
    def update(self, timestamp_seconds: float, value: float, /) -> float: ...

class ErrorShareCore:
    n: int
    last_t: float
    recent_errors: float
    recent_total: float
    long_errors: float
    long_total: float
    last_z: float
    def __init__(
        self, window_s: float, min_errors: float, warmup: int, baseline_s: float, score_k: float
    ) -> None: ...
    def update(self, timestamp_seconds: float, failed: float, /) -> float: ...

def z_of_log_tail(log_p: float, /) -> float: ...
def log_poisson_tail(k: float, lam: float, /) -> float: ...
