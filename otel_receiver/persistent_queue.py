"""On-disk log behind an exporter queue, so a restart or ``kill -9`` loses nothing acknowledged.

Written by hand because no maintained Python library offers an append-only,
crash-safe, ack-tracking queue of protobuf payloads without a server (the Collector
uses its own file_storage extension for the same reason).

Layout of the directory:
- ``seg-NNNNNNNN.log``: records ``crc32 | seq | signal | ctx length | body length | ctx json | body``.
- ``groups.log``: ``first, last, state`` records; state 0 = claimed (a consumer formed this
  group and is exporting it), 1 = acknowledged (exported or dropped for good). A claimed,
  unacknowledged group is replayed with the same bounds, hence the same dedup token.
- ``meta.json``: the queue's run id (random, per directory lifetime) so dedup tokens of a
  new directory never collide with an old one.

Records are written with ``os.write`` on every put: that survives a process crash
(the data is in the OS page cache). ``fsync: true`` also survives a machine crash, at
a cost per request.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from otel_receiver.component import RequestContext, Signal

_SIGNAL_CODE = {Signal.TRACES: 1, Signal.METRICS: 2, Signal.LOGS: 3}
_CODE_SIGNAL = {v: k for k, v in _SIGNAL_CODE.items()}
_HEADER = struct.Struct("<IQBII")  # crc32, seq, signal, ctx length, body length
_GROUP = struct.Struct("<QQB")
SEGMENT_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class StoredItem:
    seq: int
    signal: Signal
    body: bytes
    context: RequestContext


def _ctx_to_json(ctx: RequestContext) -> bytes:
    return json.dumps(
        {
            "t": ctx.transport,
            "tenant": ctx.tenant,
            "actor": ctx.actor,
            "roles": list(ctx.roles),
            "recv": ctx.received_at_ns,
            "addr": ctx.client_address,
        },
        separators=(",", ":"),
    ).encode()


def _ctx_from_json(raw: bytes) -> RequestContext:
    d = json.loads(raw)
    return RequestContext(
        transport=d["t"],
        client_address=d.get("addr"),
        tenant=d.get("tenant"),
        actor=d.get("actor"),
        roles=tuple(d.get("roles", ())),
        received_at_ns=d["recv"],
    )


class PersistentLog:
    def __init__(self, directory: str | os.PathLike[str], fsync: bool = False) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        meta = self.dir / "meta.json"
        if meta.exists():
            self.run_id = json.loads(meta.read_text())["run_id"]
        else:
            self.run_id = secrets.token_hex(8)
            tmp = meta.with_suffix(".tmp")
            tmp.write_text(json.dumps({"run_id": self.run_id}))
            os.replace(tmp, meta)
        self._segments: list[tuple[int, Path]] = []  # (first seq, path)
        self._active_fd: int | None = None
        self._active_bytes = 0
        self._groups_fd = -1
        self.next_seq = 1
        self._segment_last_seq: dict[Path, int] = {}

    # --- recovery --------------------------------------------------------------------
    def recover(self) -> tuple[list[StoredItem], list[tuple[int, int]]]:
        """Unacknowledged items in order, and the claimed-but-unacknowledged groups."""
        claimed: dict[int, int] = {}
        acked: list[tuple[int, int]] = []
        groups_path = self.dir / "groups.log"
        if groups_path.exists():
            raw = groups_path.read_bytes()
            usable = len(raw) - len(raw) % _GROUP.size  # a torn last record is ignored
            for off in range(0, usable, _GROUP.size):
                first, last, state = _GROUP.unpack_from(raw, off)
                if state == 0:
                    claimed[first] = last
                else:
                    acked.append((first, last))
        acked.sort()

        def is_acked(seq: int) -> bool:
            # binary search over disjoint acknowledged ranges
            lo, hi = 0, len(acked)
            while lo < hi:
                mid = (lo + hi) // 2
                if acked[mid][1] < seq:
                    lo = mid + 1
                else:
                    hi = mid
            return lo < len(acked) and acked[lo][0] <= seq <= acked[lo][1]

        items: list[StoredItem] = []
        max_seq = 0
        for path in sorted(self.dir.glob("seg-*.log")):
            data = path.read_bytes()
            off = 0
            seg_items: list[StoredItem] = []
            last_seq = 0
            while off + _HEADER.size <= len(data):
                crc, seq, code, clen, blen = _HEADER.unpack_from(data, off)
                end = off + _HEADER.size + clen + blen
                if end > len(data):
                    break  # torn write at the tail: never acknowledged to a client
                payload = data[off + _HEADER.size : end]
                if zlib.crc32(payload) != crc or code not in _CODE_SIGNAL:
                    break
                ctx = _ctx_from_json(payload[:clen])
                seg_items.append(StoredItem(seq, _CODE_SIGNAL[code], payload[clen:], ctx))
                last_seq = max(last_seq, seq)
                off = end
            max_seq = max(max_seq, last_seq)
            pending = [it for it in seg_items if not is_acked(it.seq)]
            if not pending:
                path.unlink()
                continue
            items.extend(pending)
            self._segments.append((seg_items[0].seq, path))
            self._segment_last_seq[path] = last_seq
        self.next_seq = max_seq + 1
        pending_seqs = {it.seq for it in items}
        open_groups = sorted((first, last) for first, last in claimed.items() if first in pending_seqs)
        # Rewrite the group log with only what still matters, so it does not grow forever.
        tmp = self.dir / "groups.tmp"
        with open(tmp, "wb") as f:
            for first, last in open_groups:
                f.write(_GROUP.pack(first, last, 0))
            for first, last in acked:
                if any(first <= s <= last for s in pending_seqs):
                    f.write(_GROUP.pack(first, last, 1))
        os.replace(tmp, groups_path)
        self._groups_fd = os.open(groups_path, os.O_WRONLY | os.O_APPEND)
        return items, open_groups

    # --- writing ---------------------------------------------------------------------
    def append(self, signal: Signal, body: bytes, context: RequestContext) -> int:
        seq = self.next_seq
        self.next_seq += 1
        if self._active_fd is None or self._active_bytes >= SEGMENT_BYTES:
            self._roll(seq)
        assert self._active_fd is not None
        ctx = _ctx_to_json(context)
        payload = ctx + body
        record = _HEADER.pack(zlib.crc32(payload), seq, _SIGNAL_CODE[signal], len(ctx), len(body)) + payload
        os.write(self._active_fd, record)
        if self._fsync:
            os.fsync(self._active_fd)
        self._active_bytes += len(record)
        self._segment_last_seq[self._segments[-1][1]] = seq
        return seq

    def _roll(self, first_seq: int) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
        path = self.dir / f"seg-{first_seq:016d}.log"
        self._active_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._active_bytes = 0
        self._segments.append((first_seq, path))

    def claim(self, first: int, last: int) -> None:
        os.write(self._groups_fd, _GROUP.pack(first, last, 0))

    def ack(self, first: int, last: int, oldest_pending: int | None) -> None:
        """Mark a group done; delete closed segments older than the oldest pending item."""
        os.write(self._groups_fd, _GROUP.pack(first, last, 1))
        if self._fsync:
            os.fsync(self._groups_fd)
        while len(self._segments) > 1:
            _, path = self._segments[0]
            seg_last = self._segment_last_seq.get(path, 0)
            if oldest_pending is not None and oldest_pending <= seg_last:
                break
            path.unlink(missing_ok=True)
            self._segment_last_seq.pop(path, None)
            self._segments.pop(0)

    def close(self) -> None:
        for fd in (self._active_fd, self._groups_fd):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._active_fd = None
        self._groups_fd = -1
