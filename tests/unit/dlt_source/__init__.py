"""Unit tests of ``octopush_dlt`` (the ``dlt_source`` folder), one file per module."""
