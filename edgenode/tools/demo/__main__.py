"""``python -m edgenode.demo``."""

import sys

from edgenode.tools.demo.cli import main

sys.exit(main())
