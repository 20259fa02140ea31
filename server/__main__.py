"""`python -m server` = `orchestrator serve`."""

import sys

from server.cli import main

main(["serve", *sys.argv[1:]])
