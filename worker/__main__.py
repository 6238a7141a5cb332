"""`python -m worker`: the core's command line (the desktop adds `gui`: `python -m desktop`)."""

from worker.cli import main

raise SystemExit(main())
