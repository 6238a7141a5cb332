"""`python -m desktop`: the same command line as `promptspool` (no command: the window)."""

from desktop.launch import main

raise SystemExit(main())
