"""genai_normalize + genai_cost in a real receiver: an authenticated OTLP/HTTP request whose
tenant picks its override price, legacy names normalised first, the result exported."""

from __future__ import annotations

import hashlib
import http.client
import time
from urllib.parse import urlparse

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_receiver.attributes import any_value_to_python
from semconv import attributes as a
from tests.components import RecordingExporter
from tests.conftest import start_receiver
from tests.test_genai_cost import make_span, usd

API_KEY = "genai-cost-e2e-key-0123456789"

CONFIG = f"""
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:0"}}
    auth:
      api_keys:
        - key_sha256: {hashlib.sha256(API_KEY.encode()).hexdigest()}
          tenant: acme
processors:
  genai_normalize: {{}}
  genai_cost:
    overrides:
      - name: acme-contract
        tenant: acme
        provider: openai
        model: gpt-4o
        input_mtok: 1.5
        output_mtok: 6
exporters:
  recording: {{name: genai-cost-e2e}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [genai_normalize, genai_cost], exporters: [recording]}}
"""


def test_receiver_prices_spans_with_the_tenants_override() -> None:
    receiver = start_receiver(CONFIG)
    try:
        req = ExportTraceServiceRequest()
        ss = req.resource_spans.add().scope_spans.add()
        ss.spans.add().CopyFrom(
            make_span(
                {
                    a.GEN_AI_SYSTEM: "openai",  # deprecated names, normalised first
                    a.GEN_AI_REQUEST_MODEL: "gpt-4o",
                    a.GEN_AI_USAGE_PROMPT_TOKENS: 1000,
                    a.GEN_AI_USAGE_COMPLETION_TOKENS: 1000,
                }
            )
        )
        ss.spans.add().CopyFrom(
            make_span(
                {
                    a.GEN_AI_PROVIDER_NAME: "openai",
                    a.GEN_AI_REQUEST_MODEL: "no-such-model",
                    a.GEN_AI_USAGE_INPUT_TOKENS: 5,
                },
                kind=Span.SPAN_KIND_CLIENT,
            )
        )
        for i, span in enumerate(ss.spans):
            span.trace_id = bytes(range(1, 17))
            span.span_id = (i + 1).to_bytes(8, "big")
        u = urlparse(receiver.http_url)
        conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=30)
        conn.request(
            "POST",
            "/v1/traces",
            body=req.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {API_KEY}"},
        )
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        deadline = time.monotonic() + 20
        while RecordingExporter.items("genai-cost-e2e") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        _, raw, context = RecordingExporter.RECORDS["genai-cost-e2e"][0]
        assert context.tenant == "acme"
        out = ExportTraceServiceRequest()
        out.ParseFromString(raw)
        priced, unknown = (
            {kv.key: any_value_to_python(kv.value) for kv in s.attributes}
            for s in out.resource_spans[0].scope_spans[0].spans
        )
        assert priced[a.GEN_AI_PROVIDER_NAME] == "openai"
        assert a.GEN_AI_SYSTEM not in priced
        assert priced[a.GEN_AI_USAGE_COST] == float(usd((1000, "1.5"), (1000, "6")))
        assert priced[a.GEN_AI_COST_PRICING] == "override:acme-contract"
        assert unknown[a.GEN_AI_COST_UNPRICED] is True
        assert (
            receiver.telemetry.value("otel_receiver_genai_unpriced_spans_total", {"model": "no-such-model"})
            == 1
        )
    finally:
        receiver.stop()
