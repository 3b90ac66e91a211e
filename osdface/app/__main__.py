"""``python -m osdface.app``: the demo, as ``python app.py``."""

import sys

from . import main

sys.exit(main())
