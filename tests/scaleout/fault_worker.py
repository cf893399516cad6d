"""``anonymizer worker`` with two faults injected, for the poison-file and damaged-output tests.

Runs the real worker (``anonymizer.cli.main(["worker", ...])``); the only changes:

- the engine process kills itself with SIGKILL when it is handed a source whose name contains
  ``poison``, the way a decoder crash or an OOM kill takes a worker down on a hostile file;
- for a source whose name contains ``damaged``, the engine's verified output loses its tail
  after the engine returns, the way a share that fails under the worker damages a finished file.

Every other file is processed normally. The worker is handed the source under an id-named link
(no name travels through the broker), so the name is looked up by inode in the input folder.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def original_name(src: Path) -> str:
    """The name of the input file ``src`` (an id-named hard link in ``.anonymizer-stage``) links to."""
    if src.parent.name != ".anonymizer-stage":
        return src.name
    st = os.stat(src)
    for root, dirs, files in os.walk(src.parent.parent):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            other = os.stat(os.path.join(root, name))
            if (other.st_ino, other.st_dev) == (st.st_ino, st.st_dev):
                return name
    return src.name


def main() -> int:
    from anonymizer import pipeline

    real = pipeline.Engine.process

    def process(self, src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = original_name(Path(src))
        if "poison" in name:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(self, src, dst, *args, **kwargs)
        if "damaged" in name:
            with open(result.output_path, "r+b") as fh:
                fh.truncate(os.path.getsize(result.output_path) // 2)
        return result

    pipeline.Engine.process = process  # type: ignore[method-assign]
    from anonymizer.cli import main as cli_main

    return cli_main(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
