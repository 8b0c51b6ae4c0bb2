"""`python -m dataset_registry.cli`: the `registry` command."""

import sys

from . import main

sys.exit(main())
