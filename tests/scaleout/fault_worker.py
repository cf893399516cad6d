"""``anonymizer worker`` with two faults injected, for the poison-file and damaged-output tests.

Runs the real worker (``anonymizer.cli.main(["worker", ...])``); the only changes:

- the engine process kills itself with SIGKILL when it is handed a source whose name contains
  ``poison``, the way a decoder crash or an OOM kill takes a worker down on a hostile file;
- for a source whose name contains ``damaged``, the engine's verified output loses its tail
  after the engine returns, the way a share that fails under the worker damages a finished file.

Every other file is processed normally.
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
        result = real(self, src, dst, *args, **kwargs)
        if "damaged" in Path(src).name:
            with open(result.output_path, "r+b") as fh:
                fh.truncate(os.path.getsize(result.output_path) // 2)
        return result

    pipeline.Engine.process = process  # type: ignore[method-assign]
    from anonymizer.cli import main as cli_main

    return cli_main(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
