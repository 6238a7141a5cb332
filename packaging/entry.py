"""Entry point of the frozen app: the same command line as `promptspool` (no args: the window)."""

import multiprocessing
import sys

from desktop.launch import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
