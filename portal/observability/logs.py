"""The JSON log format (``PORTAL_LOG_FORMAT=json``): one object per line.

The standard fields (time, level, logger, message), the traceback when there is one, and the
fields a call passed with ``extra=`` (the request and task lines name theirs), so a log
collector can filter on ``view`` or ``outcome`` without parsing the message.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# What every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)
