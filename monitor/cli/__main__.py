"""`python -m monitor.cli`: the `tslcd` command."""

import sys

from monitor.cli import main

sys.exit(main())
