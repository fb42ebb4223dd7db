"""The api's log output: one line per record, JSON (production) or text (development).

Fields a caller passes with ``extra=`` (a request's id, route and status; a relay
batch's count and lag) become keys of the JSON object, or ``key=value`` pairs in text.
Nothing here adds a body, a query string or a token: callers never pass them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["json", "text"]

# What every LogRecord carries; anything else on a record came in through ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if not extras:
            return line
        pairs = " ".join(f"{k}={v}" for k, v in extras.items())
        head, sep, tail = line.partition("\n")  # a traceback stays below the fields
        return f"{head} {pairs}{sep}{tail}"


class _HubHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure_logging`` installs, so a second call replaces its
    format instead of adding another handler. Writes to whatever ``sys.stderr`` is at
    the time (as logging's last-resort handler does), so a replaced stderr (a test
    runner's capture) never leaves it writing to a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(fmt: LogFormat) -> None:
    """Records of level INFO and above go to stderr in ``fmt``. uvicorn's own lines
    take the same format; its access log is silenced: the api writes its own request
    line (``api.observe``), which has the route template and the request id."""
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _HubHandler)), None)
    if handler is None:
        handler = _HubHandler()
        root.addHandler(handler)
    handler.setFormatter(formatter)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error"):
        for h in logging.getLogger(name).handlers:
            h.setFormatter(formatter)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
