"""`python -m worker`: the same command line as `promptspool`."""

from worker.cli import main

raise SystemExit(main())
