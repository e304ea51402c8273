"""`python -m maillab`: the same as the `maillab` command."""

import sys

from .cli import main

sys.exit(main())
