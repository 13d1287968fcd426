"""What every benchmark's last line says about where it ran, and how it prints that line."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from pathlib import Path
from typing import Any

import orjson


def machine(load_label: str = "load_avg") -> dict[str, Any]:
    """``cpu_count``, the CPU model, platform, Python, and the load average now (under
    ``load_label``: a bench that reads it before its load says so)."""
    model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu_count": os.cpu_count(), "cpu_model": model, "platform": platform.platform(),
            "python": platform.python_version(),
            load_label: [round(x, 2) for x in load] if load else None}


def print_result(result: dict[str, Any]) -> int:
    """The benchmark's last line: ``result`` with :func:`machine`, as one JSON object."""
    sys.stdout.write(orjson.dumps({**result, **machine()}).decode() + "\n")
    return 0
