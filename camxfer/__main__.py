"""`python -m camxfer` runs the same command line as the `camxfer` script."""

from camxfer.cli import main

raise SystemExit(main())
