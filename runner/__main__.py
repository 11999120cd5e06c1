"""``python -m runner``: the command-line interface (``runner/cli.py``)."""

from runner.cli import main

raise SystemExit(main())
