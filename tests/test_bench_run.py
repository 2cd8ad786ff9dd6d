"""The benchmark runner's pure parts: the configs it generates are valid receiver configs,
and it rewrites only its own section of bench/README.md. (The benchmark itself is run by
``make bench``, never as a timed test.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import run
from otel_receiver.config import parse_config


@pytest.mark.parametrize(
    "scenario",
    [
        run.Scenario("raw", []),
        run.Scenario("pipeline", ["batch"]),
        run.Scenario("pipeline+file", ["batch"], {"file": {"path": "/tmp/x.jsonl"}}),
    ],
)
def test_generated_config_is_valid(scenario: run.Scenario) -> None:
    text = run.receiver_yaml(scenario, 14317, 14318, 19464)
    config = parse_config(text, "<bench>", ".")
    traces = config.pipelines["traces"]
    assert list(traces.processors) == scenario.processors
    assert list(traces.exporters) == ["debug", *scenario.extra_exporters]
    assert getattr(config.exporters["debug"].config, "verbosity", None) == "basic"


def test_update_readme_replaces_only_its_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n## other\n\nkeep me\n")
    monkeypatch.setattr(run, "README", readme)
    run.update_readme(f"## {run.SECTION_TITLE}\n\nfirst\n")
    run.update_readme(f"## {run.SECTION_TITLE}\n\nsecond\n")
    text = readme.read_text()
    assert text.count(run.SECTION_TITLE) == 1
    assert "second" in text and "first" not in text
    assert "## other\n\nkeep me" in text
    readme.write_text(text + "\n## later\n\nalso kept\n")
    run.update_readme(f"## {run.SECTION_TITLE}\n\nthird\n")
    text = readme.read_text()
    assert "third" in text and "also kept" in text and "keep me" in text


def test_report_rows_and_ratios() -> None:
    counted = run.SpanCounters(received=50_000.0, refused={"throttled": 3.0})
    raw = run.Run("raw", "HTTP", "wrk, 1 body", 500, 3, 5.0, 1.0, 9.0, 0.1, 0.9, counted, 100)
    pipe = run.Run("pipeline", "HTTP", "wrk, 1 body", 100, 0, 5.0, 5.0, 20.0, 0.02, 0.95, None, 100)
    assert raw.spans_per_s == 10_000 and raw.cross_check == "1.00"
    assert raw.failures == "3 (receiver: throttled 3)"
    assert "| raw | HTTP | wrk, 1 body | 10,000 | 100.0 |" in run.table([raw, pipe])
    assert run.ratios([raw, pipe]) == ["- pipeline / raw, HTTP: 0.20"]
    assert run.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_ratios_over_rounds_pair_each_run_with_the_raw_run_of_its_round() -> None:
    def run_at(scenario: str, requests: int, n: int) -> run.Run:
        return run.Run(scenario, "HTTP", "wrk", requests, 0, 1.0, 1.0, 1.0, 0.1, 0.9, None, 1, round=n)

    # The machine got twice as fast in round 2: both sides of that round's ratio see it.
    runs = [
        run_at("raw", 1000, 1),
        run_at("pipeline", 900, 1),
        run_at("raw", 2000, 2),
        run_at("pipeline", 1600, 2),
        run_at("raw", 1000, 3),
        run_at("pipeline", 850, 3),
    ]
    assert run.ratios(runs) == ["- pipeline / raw, HTTP: median 0.85 over 3 rounds (0.90, 0.80, 0.85)"]
    assert "| pipeline (2) | HTTP |" in run.table(runs)
    # A round whose raw run failed gives no ratio rather than one against another round's raw.
    assert run.ratios(runs[1:2] + runs[2:4]) == ["- pipeline / raw, HTTP: 0.80"]


def test_ratios_from_the_event_loop_threads_cpu_per_span() -> None:
    def run_at(scenario: str, requests: int, loop_cpu: float | None) -> run.Run:
        return run.Run(
            scenario, "HTTP", "wrk", requests, 0, 1.0, 1.0, 1.0, 0.1, 0.9, None, 100, loop_cpu=loop_cpu
        )

    raw, pipe = run_at("raw", 1000, 0.4), run_at("pipeline", 400, 0.32)  # 4 and 8 us per span
    assert raw.loop_us_per_span == pytest.approx(4.0) and pipe.loop_us_per_span == pytest.approx(8.0)
    assert run.ratios([raw, pipe]) == [
        "- pipeline / raw, HTTP: 0.40",
        "- pipeline / raw by event-loop thread CPU per span, HTTP: 0.50",
    ]
    assert "| 4.00 |" in run.table([raw, pipe]) and "| n/a |" in run.table([run_at("raw", 1, None)])
    assert run.ratios([raw, run_at("pipeline", 400, None)]) == ["- pipeline / raw, HTTP: 0.40"]


def test_rounds_must_be_positive() -> None:
    with pytest.raises(SystemExit):
        run.main(["--rounds", "0"])
