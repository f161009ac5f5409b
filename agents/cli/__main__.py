"""``python -m agents.cli``: the ``colearn`` command."""

import sys

from agents.cli.main import main

sys.exit(main())
