"""``python -m edgenode.foxglove``: the same as ``edgenode-foxglove``."""

import sys

from edgenode.foxglove.cli import main

sys.exit(main())
