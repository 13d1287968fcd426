"""What every benchmark's last line says about where it ran, and how it prints that line."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import orjson


def machine() -> dict[str, Any]:
    """``cpu_count``, ``machine`` (architecture and Python) and the load average at the end."""
    return {"cpu_count": os.cpu_count(),
            "machine": f"{platform.machine()} {platform.python_implementation()} "
                       f"{platform.python_version()}",
            "load_avg": [round(x, 2) for x in os.getloadavg()]}


def print_result(result: dict[str, Any]) -> int:
    """The benchmark's last line: ``result`` with :func:`machine`, as one JSON object."""
    sys.stdout.write(orjson.dumps({**result, **machine()}).decode() + "\n")
    return 0
