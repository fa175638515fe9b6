"""``python -m dlt_source`` is ``octopush-load``."""

from dlt_source.cli import main

raise SystemExit(main())
