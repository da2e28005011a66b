"""``python -m jupyter_actors.cli``: the same as the ``jupyter-actors`` command."""

import sys

from . import main

sys.exit(main())
