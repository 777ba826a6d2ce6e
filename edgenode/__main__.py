"""``python -m edgenode``."""

import sys

from edgenode.entry import main

sys.exit(main())
