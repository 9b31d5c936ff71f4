"""`python -m tests.loop.killpoint ROUND STEP ARGS...`: `seedloop ARGS`, SIGKILLed at a fixed point of one step.

The point is the end of STEP in round ROUND: the step has done all its work (artifacts written, tasks
pushed, annotations made) and the manifest does not record it yet, the widest window a crash can hit.
Nothing else changes: the process runs the real CLI and dies by the same signal as `kill -9`.
"""

from __future__ import annotations

import os
import signal
import sys

from seedloop.loop.manifest import Manifest


def main() -> None:
    round_no, step, *args = sys.argv[1:]
    finish = Manifest.finish

    def finish_or_die(self, name, *rest, **info):
        if name == step and self.data.get("round") == int(round_no):
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return finish(self, name, *rest, **info)

    Manifest.finish = finish_or_die
    sys.argv = ["seedloop", *args]
    from seedloop.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
