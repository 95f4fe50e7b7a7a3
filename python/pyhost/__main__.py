"""`python -m pyhost`: the pyhost command."""

import sys

from pyhost.cli import main

sys.exit(main())
