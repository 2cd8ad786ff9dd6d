from collections.abc import Callable
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
    def update(self, timestamp_seconds: float, failed: float, scored: bool = True, /) -> float: ...

def z_of_log_tail(log_p: float, /) -> float: ...
def log_poisson_tail(k: float, lam: float, /) -> float: ...

class SeriesTable:
    def __init__(
        self,
        max_series: int,
        new_series: Callable[[tuple[Any, ...]], Any],
        new_detector: Callable[[int], Any],
        kind_names: tuple[str, ...],
        keys: tuple[str, ...],
        resource_keys: tuple[str, ...],
        genai_plan: tuple[tuple[int, int], ...],
        non_genai_plan: tuple[tuple[int, int], ...],
        value_slots: tuple[int, ...],
        kinds_on: tuple[bool, ...],
        threshold_z: float,
        error_threshold_z: float,
        score_k: float,
    ) -> None: ...
    def flag(
        self, request: bytes, clock_ns: int, /
    ) -> tuple[list[tuple[int, int, int, Any, list[str] | None, float, int]], int] | None: ...
    def touch(self, key: tuple[Any, ...], /) -> Any: ...
    def insert(self, key: tuple[Any, ...], series: Any, /) -> None: ...
    def pop_oldest(self) -> tuple[tuple[Any, ...], Any]: ...
    def keys(self) -> list[tuple[Any, ...]]: ...
    def values(self) -> list[Any]: ...
    def __len__(self) -> int: ...
