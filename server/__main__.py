"""`python -m server` = `orchestrator serve`."""

import sys

from server.cli import main

if __name__ == "__main__":  # guarded: spawned child processes re-import the main module
    main(["serve", *sys.argv[1:]])
