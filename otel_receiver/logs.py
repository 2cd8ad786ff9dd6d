"""Process logging: console or JSON lines, level from config or OTEL_RECEIVER_LOG_LEVEL."""

from __future__ import annotations

import json
import logging
import os
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "info", encoding: str = "console") -> None:
    level = os.environ.get("OTEL_RECEIVER_LOG_LEVEL", level).upper()
    handler = logging.StreamHandler(sys.stderr)
    if encoding == "json" or os.environ.get("OTEL_RECEIVER_LOG_FORMAT") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # grpc/aiohttp are chatty at debug and never need to log request contents.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
