#!/usr/bin/env python3
"""Write what is generated from the config schema: profiles/default.yaml and the key tables.

The schema is the fields of anonymizer/config.py (profile), anonymizer/settings/daemon.py (daemon),
anonymizer/settings/scaleout.py (worker) and anonymizer/settings/api.py (the daemon's api: section).
After editing a key's default, bounds or doc there, run

    .venv/bin/python scripts/gen_config_docs.py          # rewrite what is stale
    .venv/bin/python scripts/gen_config_docs.py --check  # exit 1 naming what is stale

and commit the result. The tables sit between <!-- schema:NAME --> markers in
docs/configuration.md (profile keys), docs/daemon.md, docs/scale-out.md and docs/api.md
(anonymizer/config_docs.py); README.md holds none and links to them. tests/unit/test_schema.py
fails while any of them is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from anonymizer import config_docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is stale")
    args = parser.parse_args()
    if args.check:
        stale = config_docs.stale()
        for path in stale:
            print(f"{path.relative_to(config_docs.ROOT)}: stale; run scripts/gen_config_docs.py", file=sys.stderr)
        return 1 if stale else 0
    for path in config_docs.write():
        print(f"wrote {path.relative_to(config_docs.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
