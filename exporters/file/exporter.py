"""The file exporter: requests as OTLP/JSON lines, as the Collector's file exporter writes them.

Every request becomes one line (or, with ``format: proto``, one length-prefixed
protobuf record), written whole under a lock so concurrent queue consumers never
interleave. Encoding and disk writes run in a worker thread to keep the receiver's
event loop serving requests while a large batch is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from exporters.file.config import FileExporterConfig, RotationConfig
from otel_receiver import otlp_json
from otel_receiver.component import Batch, ComponentSettings, Exporter, RequestContext, Signal

_LENGTH = struct.Struct(">I")
_MEGABYTE = 1024 * 1024


def _encode(batch: Batch, file_format: str) -> bytes:
    if file_format == "json":
        return otlp_json.encode(batch) + b"\n"
    body = batch.SerializeToString()
    return _LENGTH.pack(len(body)) + body


def read_records(path: str | os.PathLike[str], file_format: str = "json") -> list[bytes]:
    """The encoded requests of a file this exporter wrote (each line, or each protobuf record)."""
    data = Path(path).read_bytes()
    if file_format == "json":
        return [line for line in data.split(b"\n") if line]
    records: list[bytes] = []
    offset = 0
    while offset < len(data):
        (size,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        records.append(data[offset : offset + size])
        offset += size
    return records


class FileExporter(Exporter):
    signals = frozenset(Signal)

    def __init__(self, config: FileExporterConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.config: FileExporterConfig = config
        # Relative to the working directory, as in the Collector.
        self.path = Path(config.path).expanduser().absolute()
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._size = 0
        self._dirty = False
        self._flusher: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return f"{self.settings.component_id}: OTLP {self.config.format} to {self.path}"

    async def start(self) -> None:
        await asyncio.to_thread(self._open, self.config.append)
        if self.config.flush_interval > 0:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_periodically())

    def _open(self, append: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("ab") if append else self.path.open("wb")
        self._file = file
        self._size = file.seek(0, os.SEEK_END)

    async def export(self, batch: Batch, context: RequestContext) -> None:
        await asyncio.to_thread(self._write, batch)

    def _write(self, batch: Batch) -> None:
        record = _encode(batch, self.config.format)
        with self._lock:
            file = self._file
            if file is None:
                raise RuntimeError(f"{self.settings.component_id} is not started or already shut down")
            rotation = self.config.rotation
            # Rotate before a write that would overflow, so a file stays under the limit
            # unless one request alone is larger.
            if (
                rotation is not None
                and self._size > 0
                and self._size + len(record) > rotation.max_megabytes * _MEGABYTE
            ):
                file = self._rotate(file, rotation)
            file.write(record)
            self._size += len(record)
            if self.config.flush_interval == 0:
                file.flush()
            else:
                self._dirty = True

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval)
            await asyncio.to_thread(self._flush)

    def _flush(self) -> None:
        with self._lock:
            if self._file is not None and self._dirty:
                self._file.flush()
                self._dirty = False

    def _rotated_name(self, rotation: RotationConfig) -> Path:
        moment = datetime.now().astimezone() if rotation.localtime else datetime.now(UTC)
        stamp = moment.strftime("%Y-%m-%dT%H-%M-%S.") + f"{moment.microsecond // 1000:03d}"
        candidate = self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}")
        counter = 1
        while candidate.exists():
            candidate = self.path.with_name(f"{self.path.stem}-{stamp}-{counter}{self.path.suffix}")
            counter += 1
        return candidate

    def _rotate(self, file: BinaryIO, rotation: RotationConfig) -> BinaryIO:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        self.path.rename(self._rotated_name(rotation))
        self._open(append=False)
        self._dirty = False
        self._prune(rotation)
        assert self._file is not None
        return self._file

    def _prune(self, rotation: RotationConfig) -> None:
        pattern = f"{self.path.stem}-????-??-??T??-??-??.???*{self.path.suffix}"
        backups = sorted(self.path.parent.glob(pattern), key=lambda p: (p.stat().st_mtime_ns, p.name))
        doomed: list[Path] = []
        if rotation.max_backups > 0 and len(backups) > rotation.max_backups:
            doomed.extend(backups[: len(backups) - rotation.max_backups])
        if rotation.max_days is not None:
            horizon = time.time() - rotation.max_days * 86400
            doomed.extend(p for p in backups if p.stat().st_mtime < horizon and p not in doomed)
        for backup in doomed:
            with contextlib.suppress(FileNotFoundError):
                backup.unlink()

    async def shutdown(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            file, self._file = self._file, None
            if file is not None:
                file.flush()
                os.fsync(file.fileno())
                file.close()


def create(config: FileExporterConfig, settings: ComponentSettings) -> FileExporter:
    return FileExporter(config, settings)
