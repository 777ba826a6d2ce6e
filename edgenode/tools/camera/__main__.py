"""``python -m edgenode.camera``."""

import sys

from edgenode.tools.camera.cli import main

sys.exit(main())
