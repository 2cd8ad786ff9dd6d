"""The cached fast path agrees with genai-prices' own ``calc_price`` to the last digit.

The hand-computed cases (test_genai_cost.py) check that prices are right; this checks
that resolving price periods once per model and splitting token classes ourselves
changes nothing against the library, on every model of the main providers, at random
span times and random usages (tiers, cache, audio and reasoning included)."""

from __future__ import annotations

import random
import warnings
from datetime import UTC, datetime

from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot

from processors.genai_cost.pricing import TokenUsage, model_prices_from, price_usage

PROVIDERS = ("openai", "anthropic", "google", "mistral", "aws", "azure", "deepseek", "x-ai", "groq")


def test_fast_path_matches_calc_price_on_every_main_model() -> None:
    rng = random.Random(20261121)
    compared = 0
    for provider in get_snapshot().providers:
        if provider.id not in PROVIDERS:
            continue
        for model in provider.models:
            prices = model_prices_from(model, "test")
            for _ in range(4):
                day = (2024 + rng.randint(0, 2), rng.randint(1, 12), rng.randint(1, 28))
                ts = datetime(*day, rng.randint(0, 23), rng.randint(0, 59), tzinfo=UTC)
                inp = rng.randint(0, 400_000)
                cache_read = rng.randint(0, inp // 2)
                cache_write = rng.randint(0, (inp - cache_read) // 2)
                audio_in = rng.randint(0, (inp - cache_read - cache_write) // 2)
                out = rng.randint(0, 8_000)
                reasoning = rng.randint(0, out)
                audio_out = rng.randint(0, out - reasoning)
                usage = Usage(
                    input_tokens=inp,
                    cache_read_tokens=cache_read,
                    cache_write_tokens=cache_write,
                    input_audio_tokens=audio_in,
                    output_tokens=out,
                    output_reasoning_tokens=reasoning,
                    output_audio_tokens=audio_out,
                )
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        expected = model.calc_price(usage, provider, genai_request_timestamp=ts).total_price
                    except ValueError:
                        continue  # the library refuses this model's price data (join rules)
                sheet = prices.at(int(ts.timestamp()) * 1_000_000_000)
                assert sheet is not None
                ours = price_usage(
                    TokenUsage(inp, out, cache_read, cache_write, reasoning, audio_in, audio_out, 0), sheet
                )
                assert ours.total == expected, (provider.id, model.id, ts, usage)
                compared += 1
    assert compared > 1500


def test_service_tier_variants_match_calc_price() -> None:
    rng = random.Random(7)
    compared = 0
    (openai,) = [p for p in get_snapshot().providers if p.id == "openai"]
    for model in openai.models:
        if not model.price_variants:
            continue
        for tier in ("flex", "priority"):
            prices = model_prices_from(model, "test", {"service_tier": tier})
            for year, month in ((2025, 3), (2026, 10), (2026, 11)):
                ts = datetime(year, month, rng.randint(1, 28), rng.randint(0, 23), tzinfo=UTC)
                inp = rng.randint(0, 300_000)
                cache_read = rng.randint(0, inp)
                out = rng.randint(0, 9_000)
                usage = Usage(input_tokens=inp, cache_read_tokens=cache_read, output_tokens=out)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        expected = model.calc_price(
                            usage, openai, genai_request_timestamp=ts, price_context={"service_tier": tier}
                        ).total_price
                    except ValueError:
                        continue
                sheet = prices.at(int(ts.timestamp()) * 1_000_000_000)
                assert sheet is not None
                assert price_usage(TokenUsage(inp, out, cache_read), sheet).total == expected, (
                    model.id,
                    tier,
                    ts,
                )
                compared += 1
    assert compared > 100
