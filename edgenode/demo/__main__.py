"""``python -m edgenode.demo``."""

import sys

from edgenode.demo.cli import main

sys.exit(main())
