"""``python -m octopush_dlt`` is ``octopush-load``."""

from octopush_dlt.cli import main

raise SystemExit(main())
