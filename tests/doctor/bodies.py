"""Check bodies for tests/doctor: each runs in the doctor's child process, so it imports nothing heavy."""

from __future__ import annotations

import os
import resource
import signal
import time


def die_by_sigill() -> str:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # no core file in the working folder
    os.kill(os.getpid(), signal.SIGILL)
    time.sleep(10)   # the signal is delivered before this ends
    return "still alive"


def raise_an_error() -> str:
    raise ValueError("no model\nat /nowhere")


def sleep_long() -> str:
    time.sleep(60)
    return "woke up"
