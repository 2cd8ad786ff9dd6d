"""Third-party components plug in through the ``otel_receiver.processors`` and
``otel_receiver.exporters`` entry points.

``tests/plugin_pkg`` is a separate distribution (its own pyproject.toml) that the
receiver knows nothing about. It is built and installed with pip into a scratch
directory, which is then put on ``PYTHONPATH`` of a real ``otel-receiver`` process:
``validate`` accepts a config using the plugin's types, and a running receiver applies
its processor to spans sent over OTLP/HTTP and hands them to its exporter. Without the
directory on the path, the same config is refused with a message naming the unknown
type and the file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_receiver import otlp_json
from otel_receiver.attributes import get_str

PLUGIN_SOURCE = Path(__file__).parent / "plugin_pkg"
# The receiver runs from the repository root, where ``python -m otel_receiver.cli`` resolves.
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed by pip into a directory of its own (not the venv)."""
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path_factory.mktemp("plugin-src") / "pkg"
    shutil.copytree(
        PLUGIN_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    site = tmp_path_factory.mktemp("plugin-site")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"pip install of the plugin failed:\n{result.stdout}\n{result.stderr}"
    assert list(site.glob("otel_tag_plugin-*.dist-info/entry_points.txt")), "no entry points installed"
    return site


def _env(plugin_site: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if plugin_site is not None:
        env["PYTHONPATH"] = str(plugin_site)
    return env


def _config(tmp_path: Path, out: Path) -> Path:
    path = tmp_path / "plugin.yaml"
    path.write_text(
        f"""
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  tag_everything:
    key: plugin.tagged.by
    value: otel-tag-plugin
exporters:
  file:
    path: {out}
  name_list:
    path: {out.with_suffix(".names")}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tag_everything]
      exporters: [file, name_list]
"""
    )
    return path


def _cli(*args: str, plugin_site: Path | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_receiver.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(plugin_site),
        cwd=REPO_ROOT,
    )


def test_validate_accepts_the_plugin_type(plugin_site: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "out.jsonl")
    result = _cli("validate", "--config", str(config), plugin_site=plugin_site)
    assert result.returncode == 0, result.stderr
    assert str(config) in result.stdout and "valid" in result.stdout


def test_validate_names_the_unknown_type_without_the_plugin(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "out.jsonl")
    result = _cli("validate", "--config", str(config), plugin_site=None)
    assert result.returncode != 0
    assert "tag_everything" in result.stderr
    assert str(config) in result.stderr
    assert "processors.tag_everything" in result.stderr


def test_validate_names_the_unknown_exporter_type_without_the_plugin(tmp_path: Path) -> None:
    config = tmp_path / "exporter-only.yaml"
    text = _config(tmp_path, tmp_path / "out.jsonl").read_text()
    config.write_text(
        text.replace("processors: [tag_everything]", "processors: []").replace(
            "processors:\n  tag_everything:\n    key: plugin.tagged.by\n    value: otel-tag-plugin\n", ""
        )
    )
    result = _cli("validate", "--config", str(config), plugin_site=None)
    assert result.returncode != 0
    assert "exporters.name_list" in result.stderr and "unknown exporter type" in result.stderr
    assert str(config) in result.stderr


def test_plugin_config_is_validated_by_its_own_model(plugin_site: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        _config(tmp_path, tmp_path / "out.jsonl").read_text().replace("value: otel-tag-plugin", "colour: red")
    )
    result = _cli("validate", "--config", str(config), plugin_site=plugin_site)
    assert result.returncode != 0
    assert "processors.tag_everything.colour" in result.stderr
    assert str(config) in result.stderr


def test_running_receiver_applies_the_plugin(plugin_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    config = _config(tmp_path, out)
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "otel_receiver.cli", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=_env(plugin_site),
            cwd=REPO_ROOT,
        )
    try:
        lines: list[str] = []
        ready = threading.Event()

        def read_stdout() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if "stop with Ctrl-C" in line:
                    ready.set()
            ready.set()

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        assert ready.wait(60) and proc.poll() is None, "".join(lines) + stderr_path.read_text()
        banner = "".join(lines)
        assert "processors [tag_everything]" in banner
        assert "exporters [file, name_list]" in banner
        url = next(
            line.split("listening on ", 1)[1].split()[0] for line in lines if "OTLP/HTTP listening on" in line
        )

        request = ExportTraceServiceRequest()
        span = request.resource_spans.add().scope_spans.add().spans.add()
        span.trace_id = bytes.fromhex("5b8efff798038103d269b633813fc60c")
        span.span_id = bytes.fromhex("eee19b7ec3c1b174")
        span.name = "tag me"
        span.start_time_unix_nano = 1
        span.end_time_unix_nano = 2
        kv = span.attributes.add()
        kv.key = "existing"
        kv.value.string_value = "kept"
        post = urllib.request.Request(
            f"{url}/v1/traces",
            data=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
            method="POST",
        )
        with urllib.request.urlopen(post, timeout=10) as response:
            assert response.status == 200

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, stderr_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    spans = [
        s
        for line in out.read_bytes().splitlines()
        for rs in otlp_json.decode(ExportTraceServiceRequest, line).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert len(spans) == 1
    assert spans[0].name == "tag me"
    assert get_str(spans[0].attributes, "plugin.tagged.by") == "otel-tag-plugin"
    assert get_str(spans[0].attributes, "existing") == "kept"
    assert out.with_suffix(".names").read_text() == "tag me\n"


def test_plugin_is_not_visible_to_this_process() -> None:
    """The scratch install must not leak into the venv, or the negative test proves nothing."""
    from importlib.metadata import entry_points

    assert "tag_everything" not in {ep.name for ep in entry_points(group="otel_receiver.processors")}
    assert "name_list" not in {ep.name for ep in entry_points(group="otel_receiver.exporters")}
    with pytest.raises(ImportError):
        __import__("otel_tag_plugin")
