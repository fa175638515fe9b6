"""Outside Airflow, keep dlt from importing Airflow to look for its secrets.

With Airflow installed, dlt looks for its settings in Airflow Variables too
(``providers.enable_airflow_secrets``, on by default). To do so it imports Airflow with stdout and
stderr redirected to a throwaway buffer, and importing Airflow configures logging: the root
logger's handlers are replaced by Airflow's, bound to that buffer. In a plain script every log
line after that, ours and the user's, warnings included, is lost; the import also costs seconds.

Inside Airflow (a task, the DAG processor, ``airflow dags test``) Airflow is imported before us
and has set up its logging, so dlt's probe changes nothing there and its Variables stay on.
"""

from __future__ import annotations

import os
import sys

ENABLE_AIRFLOW_SECRETS = "PROVIDERS__ENABLE_AIRFLOW_SECRETS"


def skip_airflow_secrets_outside_airflow() -> None:
    """Default dlt's Airflow secrets provider to off unless Airflow runs this process.

    A setting the user made (``PROVIDERS__ENABLE_AIRFLOW_SECRETS=true``) is kept.
    """
    if "airflow" not in sys.modules:
        os.environ.setdefault(ENABLE_AIRFLOW_SECRETS, "false")
