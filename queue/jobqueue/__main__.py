"""``python -m jobqueue``: run one worker (see jobqueue.cli)."""

from __future__ import annotations

import sys

from jobqueue.cli import main

sys.exit(main())
