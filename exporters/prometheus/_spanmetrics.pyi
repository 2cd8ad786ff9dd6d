from typing import Any

class Accumulator:
    def __init__(
        self,
        keys: tuple[str, ...],
        agent_operations: tuple[str, ...],
        token_bounds: tuple[float, ...],
        duration_bounds: tuple[float, ...],
        /,
    ) -> None: ...
    def add(
        self,
        requests: tuple[bytes, ...],
        default_tenant: str,
        read_tenant: bool,
        internal_agent_usage: bool,
        /,
    ) -> list[tuple[tuple[str, ...], Any, Any, Any, Any]]: ...
    def submit(
        self,
        token: int,
        requests: tuple[bytes, ...],
        default_tenant: str,
        read_tenant: bool,
        internal_agent_usage: bool,
        /,
    ) -> list[tuple[int, list[tuple[tuple[str, ...], Any, Any, Any, Any]] | None]]: ...
    def finish(self) -> list[tuple[int, list[tuple[tuple[str, ...], Any, Any, Any, Any]] | None]]: ...
    def pending(self) -> int: ...
    def drain(
        self,
    ) -> tuple[
        dict[tuple[str, ...], list[Any]],
        dict[tuple[str, ...], list[Any]],
        dict[tuple[str, ...], int],
        dict[tuple[str, ...], int],
    ]: ...
    def series_count(self) -> int: ...
    def clear(self) -> None: ...
