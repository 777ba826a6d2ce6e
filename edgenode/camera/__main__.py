"""``python -m edgenode.camera``."""

import sys

from edgenode.camera.cli import main

sys.exit(main())
