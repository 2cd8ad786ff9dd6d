from typing import Any

def aggregate(
    request: bytes,
    keys: tuple[str, ...],
    agent_operations: tuple[str, ...],
    token_bounds: tuple[float, ...],
    duration_bounds: tuple[float, ...],
    default_tenant: str,
    read_tenant: bool,
    internal_agent_usage: bool,
    /,
) -> tuple[
    dict[tuple[str, ...], list[Any]],
    dict[tuple[str, ...], list[Any]],
    dict[tuple[str, ...], int],
    dict[tuple[str, ...], int],
    list[tuple[str, ...]],
    list[tuple[int, Any, Any, Any, Any]],
]: ...
