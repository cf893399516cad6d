"""``anonymizer worker`` with one fault injected, for the poison-file test.

Runs the real worker (``anonymizer.cli.main(["worker", ...])``); the only change is that the
engine process kills itself with SIGKILL when it is handed a source whose name contains
``poison``, the way a decoder crash or an OOM kill takes a worker down on a hostile file. Every
other file is processed normally.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def main() -> int:
    from anonymizer import pipeline

    real = pipeline.Engine.process

    def process(self, src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if "poison" in Path(src).name:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, src, dst, *args, **kwargs)

    pipeline.Engine.process = process  # type: ignore[method-assign]
    from anonymizer.cli import main as cli_main

    return cli_main(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
