"""Interoperability with the OpenTelemetry JavaScript SDK (Node.js), a second independent
OTLP client: its OTLP/gRPC, OTLP/HTTP-protobuf and OTLP/HTTP-JSON trace exporters send
spans to our receiver, and every span must arrive with its ids, kind, attributes of
every type, events, links and status.

The SDK is installed from the npm registry into a temporary directory; without node,
npm or registry access the test is skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_receiver.attributes import any_value_to_python

NPM_PACKAGES = [
    "@opentelemetry/api@1.9.1",
    "@opentelemetry/sdk-trace-base@2.12.1",
    "@opentelemetry/resources@2.12.1",
    "@opentelemetry/exporter-trace-otlp-grpc@0.223.1",
    "@opentelemetry/exporter-trace-otlp-proto@0.223.1",
    "@opentelemetry/exporter-trace-otlp-http@0.223.1",
]
EXPORTERS = ("grpc", "proto", "json")

SCRIPT = r"""
const api = require('@opentelemetry/api');
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const modules = {
  grpc: require('@opentelemetry/exporter-trace-otlp-grpc'),
  proto: require('@opentelemetry/exporter-trace-otlp-proto'),
  json: require('@opentelemetry/exporter-trace-otlp-http'),
};
const [grpcUrl, httpUrl] = process.argv.slice(2);

async function run(kind) {
  const url = kind === 'grpc' ? grpcUrl : httpUrl + '/v1/traces';
  const exporter = new modules[kind].OTLPTraceExporter({ url });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'node-' + kind, 'service.version': '1.0.0' }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('node.interop', '0.3.0');
  const out = [];
  const record = (span, extra) => {
    const c = span.spanContext();
    out.push({ exporter: kind, traceId: c.traceId, spanId: c.spanId, ...extra });
  };
  const root = tracer.startSpan('invoke_agent NodeAgent', { kind: api.SpanKind.INTERNAL });
  root.setAttribute('gen_ai.operation.name', 'invoke_agent');
  const ctx = api.trace.setSpan(api.ROOT_CONTEXT, root);
  for (let i = 0; i < 3; i++) {
    const attributes = {
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.usage.input_tokens': 1500 + i,
      'gen_ai.request.temperature': 0.5,
      'gen_ai.stream': i % 2 === 1,
      'gen_ai.response.finish_reasons': ['end_turn'],
      'token.ids': [7, 8, 9],
      'text': 'grüße ✓ '.repeat(10),
    };
    const span = tracer.startSpan('chat claude-sonnet-4-20250514', {
      kind: api.SpanKind.CLIENT, attributes,
      links: [{ context: root.spanContext(), attributes: { 'link.index': i } }],
    }, ctx);
    span.addEvent('gen_ai.choice', { 'gen_ai.index': i });
    if (i === 2) span.setStatus({ code: api.SpanStatusCode.ERROR, message: 'overloaded' });
    span.end();
    record(span, { name: 'chat claude-sonnet-4-20250514', parent: root.spanContext().spanId, kind: 3,
                   attributes, events: [['gen_ai.choice', { 'gen_ai.index': i }]], links: 1,
                   status: i === 2 ? [2, 'overloaded'] : [0, ''] });
  }
  root.end();
  record(root, { name: 'invoke_agent NodeAgent', parent: '', kind: 1,
                 attributes: { 'gen_ai.operation.name': 'invoke_agent' },
                 events: [], links: 0, status: [0, ''] });
  await provider.forceFlush();
  await provider.shutdown();
  return out;
}

(async () => {
  const all = [];
  for (const kind of ['grpc', 'proto', 'json']) all.push(...await run(kind));
  process.stdout.write(JSON.stringify(all));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def npm_install(where: Path) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    (where / "package.json").write_text('{"name": "otel-receiver-interop", "private": true}')
    try:
        proc = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *NPM_PACKAGES],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=240,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("npm install timed out (registry unreachable or slow)")
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-500:]
        if any(s in tail for s in ("ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "network")):
            pytest.skip(f"npm registry unreachable: {tail.strip()}")
        raise AssertionError(f"npm install failed: {tail}")


def read_requests(path: Path) -> list[ExportTraceServiceRequest]:
    if not path.exists():
        return []
    data, out, i = path.read_bytes(), [], 0
    while i + 4 <= len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        if i + 4 + n > len(data):
            break
        out.append(ExportTraceServiceRequest.FromString(data[i + 4 : i + 4 + n]))
        i += 4 + n
    return out


def test_node_sdk_exporters_deliver_intact(receiver_factory: Callable[..., Any], tmp_path: Path) -> None:
    npm_install(tmp_path)
    out = tmp_path / "traces.pb"
    receiver = receiver_factory(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
      http: {{endpoint: "127.0.0.1:0"}}
exporters:
  file: {{path: "{out}", format: proto}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [file]}}
""")
    script = tmp_path / "send.js"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        ["node", str(script), f"http://{receiver.grpc_endpoint}", receiver.http_url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sent = json.loads(proc.stdout)
    assert len(sent) == 4 * len(EXPORTERS)

    deadline = time.monotonic() + 15
    received: dict[str, tuple[str, Any]] = {}
    while time.monotonic() < deadline and len(received) < len(sent):
        received = {}
        for req in read_requests(out):
            for rs in req.resource_spans:
                service = next(
                    kv.value.string_value for kv in rs.resource.attributes if kv.key == "service.name"
                )
                for ss in rs.scope_spans:
                    assert (ss.scope.name, ss.scope.version) == ("node.interop", "0.3.0")
                    for span in ss.spans:
                        received[span.span_id.hex()] = (service, span)
        time.sleep(0.05)

    assert len(received) == len(sent)
    for expected in sent:
        service, span = received[expected["spanId"]]
        assert service == f"node-{expected['exporter']}"
        assert span.trace_id.hex() == expected["traceId"]
        assert span.parent_span_id.hex() == expected["parent"]
        assert span.name == expected["name"]
        assert span.kind == expected["kind"]
        attrs = {kv.key: any_value_to_python(kv.value) for kv in span.attributes}
        assert attrs == expected["attributes"], expected["exporter"]
        assert isinstance(attrs.get("gen_ai.usage.input_tokens", 0), int)
        events = [
            (e.name, {kv.key: any_value_to_python(kv.value) for kv in e.attributes}) for e in span.events
        ]
        assert [[name, a] for name, a in events] == expected["events"]
        assert len(span.links) == expected["links"]
        for link in span.links:
            assert link.span_id.hex() == received[expected["parent"]][1].span_id.hex()
        assert [span.status.code, span.status.message] == expected["status"]
        assert span.end_time_unix_nano >= span.start_time_unix_nano > 0
