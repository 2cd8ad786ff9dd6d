"""``otel-receiver``: run, validate, query, report (DESIGN.md, "CLI")."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from otel_receiver import __version__
from otel_receiver.config import Config, ConfigError, load_config
from otel_receiver.logs import setup_logging


def _load(path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    logs = config.service.telemetry.logs
    setup_logging(logs.level, logs.encoding)
    from otel_receiver.service import Service

    service = Service(config)

    def started(svc: Service) -> None:
        print(f"otel-receiver {__version__} running with {config.source}", flush=True)
        for line in svc.banner():
            print(f"  {line}", flush=True)
        for unused in config.unused:
            print(f"  note: {unused} is defined but used by no pipeline", flush=True)
        print("  stop with Ctrl-C (SIGINT) or SIGTERM: queues are drained before exit", flush=True)

    from otel_receiver.component import ComponentStartError

    try:
        asyncio.run(service.run_until_signalled(started))
    except (OSError, ComponentStartError) as e:
        print(f"cannot start: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load(args.config)
    print(f"{config.source}: valid ({len(config.pipelines)} pipelines)")
    for unused in config.unused:
        print(f"note: {unused} is defined but used by no pipeline")
    return 0


def _clickhouse_config(config: Config) -> Any:
    for entry in config.exporters.values():
        if entry.type_name == "clickhouse":
            return entry.config
    print(f"{config.source}: no clickhouse exporter configured; nothing to query", file=sys.stderr)
    raise SystemExit(2)


def _write_block(text: str) -> None:
    """Print a query result, ending in exactly one newline unless it is empty."""
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


def cmd_query(args: argparse.Namespace) -> int:
    config = _load(args.config)
    from exporters.clickhouse.query import QueryError, run_query

    try:
        out = run_query(_clickhouse_config(config), args.sql, args.format)
    except QueryError as e:
        print(f"query failed: {e}", file=sys.stderr)
        return 1
    _write_block(out)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    config = _load(args.config)
    from exporters.clickhouse.query import QueryError, run_report

    try:
        out = run_report(_clickhouse_config(config), args.since, args.by)
    except QueryError as e:
        print(f"report failed: {e}", file=sys.stderr)
        return 1
    _write_block(out)
    return 0


def _configured_anchor_files(config: Config) -> list[Path]:
    """The anchor files of the config's audit processors (in order, each once)."""
    paths: list[Path] = []
    for entry in config.processors.values():
        if entry.type_name == "audit":
            path = entry.config.trail.anchor_path(config.config_dir)  # type: ignore[attr-defined]
            if path is not None and path not in paths:
                paths.append(path)
    return paths


def _check_anchors(store: Any, path: Path, explicit: bool) -> list[str] | None:
    """Problems found against the anchors in ``path``; None when it could not be checked."""
    import orjson

    from exporters.clickhouse.query import QueryError, run_query
    from processors.audit.trail import AnchorFile, anchor_problems, anchored_records_sql

    if not path.exists():
        if explicit:
            print(f"anchor file {path} does not exist", file=sys.stderr)
            return None
        # configured but never written: no receiver has stored a record with it yet
        print(f"\nno anchors yet ({path} does not exist)")
        return []
    try:
        latest = AnchorFile(path).latest()
    except (OSError, ValueError) as e:
        print(f"cannot read the anchors: {e}", file=sys.stderr)
        return None
    if not latest:
        return []
    anchors = list(latest.values())
    stored = {}
    # a chain per process start adds up over the years: chunks keep each query well
    # under ClickHouse's max_query_size (256 KiB)
    for first in range(0, len(anchors), 500):
        try:
            out = run_query(store, anchored_records_sql(anchors[first : first + 500]), "json")
        except QueryError as e:
            print(f"checking the anchors failed to run: {e}", file=sys.stderr)
            return None
        for line in out.splitlines():
            row = orjson.loads(line)
            stored[row["ChainId"]] = (int(row["last_seq"]), row["anchored_hash"])
    print(f"\n{len(latest)} chains anchored in {path}")
    return anchor_problems(anchors, stored)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    config = _load(args.config)
    from exporters.clickhouse.query import QueryError, run_query
    from processors.audit.trail import CHAINS_SQL, VERIFY_SQL

    store = _clickhouse_config(config)
    try:
        chains = run_query(store, CHAINS_SQL, "table")
        problems = run_query(store, VERIFY_SQL, "table")
    except QueryError as e:
        print(f"verification failed to run: {e}", file=sys.stderr)
        return 1
    anchor_files = [Path(args.anchors)] if args.anchors else _configured_anchor_files(config)
    anchor_problems: list[str] = []
    if chains.strip():
        _write_block(chains)
    for path in anchor_files:
        found = _check_anchors(store, path, explicit=bool(args.anchors))
        if found is None:
            return 1
        anchor_problems += found
    if not chains.strip() and not anchor_problems:
        print("no audit records stored")
        return 0
    if problems.strip():
        print("\nTHE AUDIT TRAIL IS BROKEN at these records:")
        _write_block(problems)
    if anchor_problems:
        print("\nTHE AUDIT TRAIL DOES NOT REACH ITS ANCHORS:")
        for problem in anchor_problems:
            print(f"  {problem}")
    if problems.strip() or anchor_problems:
        return 1
    if anchor_files:
        print(
            "\nevery chain verifies: hashes match the stored columns, no record is missing or out of order, "
            "and every anchored chain is stored up to its last anchor with the same hash"
        )
    else:
        print(
            "\nevery chain verifies: hashes match the stored columns, no record is missing or out of order "
            "(a chain not closed belongs to a running receiver, or one that stopped without a clean "
            "shutdown; records removed from its end are found only against anchors: "
            "processors.audit.trail.anchor_file)"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-receiver",
        description="OTLP receiver with GenAI cost, PII redaction, audit and anomaly processors",
    )
    parser.add_argument("--version", action="version", version=f"otel-receiver {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the receiver (built-in default config without --config)")
    p.add_argument("--config", help="YAML config file")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="parse and validate a config file")
    p.add_argument("--config", required=True, help="YAML config file")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("query", help="run SQL against the ClickHouse store of the config")
    p.add_argument("--config", help="YAML config file (default: built-in, store in ./otel-data)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("sql")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("report", help="GenAI calls, tokens, cost, latency and anomalies")
    p.add_argument("--config", help="YAML config file (default: built-in, store in ./otel-data)")
    p.add_argument("--since", default="24h", help="time window, e.g. 30m, 24h, 7d")
    p.add_argument("--by", choices=["service", "model", "tenant"], default="model")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("audit-verify", help="check the hash chains of the audit_log table")
    p.add_argument("--config", help="YAML config file (default: built-in, store in ./otel-data)")
    p.add_argument(
        "--anchors",
        help="anchor file to check the chains against (default: the audit processors' trail.anchor_file)",
    )
    p.set_defaults(func=cmd_audit_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
