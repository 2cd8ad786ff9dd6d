from typing import Any

def spans(
    request: bytes, keys: tuple[str, ...], /
) -> list[tuple[str, int, int, int, int, bytes, bytes, tuple[Any, ...]]]: ...
def table(
    request: bytes, keys: tuple[str, ...], resource_keys: tuple[str, ...], /
) -> list[tuple[int, int, int, tuple[Any, ...], str, int, int, int, int, tuple[Any, ...]]]: ...
def positions(
    request: bytes, keys: tuple[str, ...], prefixes: tuple[str, ...], /
) -> list[tuple[int, int, int]]: ...
