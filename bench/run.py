"""Entry point: `.venv/bin/python bench/run.py ...` or `.venv/bin/python -m bench.run ...`.

Everything lives in `bench.cli`; this file only makes the package importable when run as a
script (then Python puts bench/ itself, not the project root, on sys.path).
"""

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
