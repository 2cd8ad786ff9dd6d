"""SQL text helpers shared by the views, the client and the audit trail."""

from __future__ import annotations


def sql_literal(value: str | int) -> str:
    """A ClickHouse literal: integers as they are, strings quoted with backslash escapes."""
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
