"""`python -m worker`: the core's command line (the desktop adds `gui`: `python -m desktop`)."""

import sys

from worker.cli.commandclient import run_through_server

served = run_through_server(sys.argv[1:])
if served is None:
    from worker.cli.main import main

    served = main()
raise SystemExit(served)
