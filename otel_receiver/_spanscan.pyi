from typing import Any

def spans(
    request: bytes, keys: tuple[str, ...], /
) -> list[tuple[str, int, int, int, int, bytes, bytes, tuple[Any, ...]]]: ...
