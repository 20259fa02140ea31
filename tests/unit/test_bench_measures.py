"""The benchmarks' measures of the service's footprint: the whole process tree, not the parent alone."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.common import process_tree, rss_mb, tree_open_files, tree_rss_mb

HOLD = ("import sys, time\n"
        "block = bytearray(96 * 1024 * 1024)\n"
        "for i in range(0, len(block), 4096): block[i] = 1  # touched: resident\n"
        "files = [open(sys.executable, 'rb') for _ in range(40)]\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n")


def test_rss_and_open_files_count_the_children_of_the_service():
    child = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        me = os.getpid()
        assert child.pid in process_tree(me)
        # The child holds 96 MiB and 40 files that the parent's own VmRSS and fd table do not show.
        assert tree_rss_mb(me) >= rss_mb(me) + 90
        assert tree_open_files(me) >= len(os.listdir(f"/proc/{me}/fd")) + 40
    finally:
        child.communicate("")
    assert child.pid not in process_tree(os.getpid())
