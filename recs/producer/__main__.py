"""``python -m recs.producer``: the same as ``recs produce``."""

import sys

from recs.producer.cli import main

raise SystemExit(main(sys.argv[1:]))
