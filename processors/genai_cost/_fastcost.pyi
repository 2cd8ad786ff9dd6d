from typing import Any

class CostTable:
    def __init__(
        self,
        scan_keys: tuple[str, ...],
        double_prefixes: tuple[bytes, bytes, bytes, bytes, bytes],
        unpriced_attribute: bytes,
        max_entries: int,
        /,
    ) -> None: ...
    def add_sheet(
        self,
        pricing_attribute: bytes,
        scale: int,
        per_request: int,
        tier_starts: tuple[int, ...],
        rates: tuple[int, ...],
        /,
    ) -> int: ...
    def add_entry(
        self, key: bytes, kind: int, starts: tuple[int, ...], sheets: tuple[int, ...], /
    ) -> int | bool: ...
    def price(self, request: bytes, tenant: bytes, fallback_ns: int, /) -> tuple[int, Any]: ...
    def clear(self) -> None: ...
