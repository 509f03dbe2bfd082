"""``python -m verifier`` is the same as the ``xchat-verify`` command."""

import sys

from .cli import main

sys.exit(main())
