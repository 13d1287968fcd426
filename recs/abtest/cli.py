"""``recs ab <subcommand>``: A/B experiment tools; each subcommand is a module with ``main``.

>>> main([])
usage: recs ab <subcommand> [options]
<BLANKLINE>
subcommands:
  report   per-variant CTR and conversion with CIs, lift vs control and p-values
0
"""

from __future__ import annotations

import importlib
import sys
from typing import Final

SUBCOMMANDS: Final = {
    "report": ("recs.abtest.report",
               "per-variant CTR and conversion with CIs, lift vs control and p-values"),
}


def _usage() -> str:
    lines = ["usage: recs ab <subcommand> [options]", "", "subcommands:"]
    lines += [f"  {name:<8} {desc}" for name, (_, desc) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"recs ab: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest))
