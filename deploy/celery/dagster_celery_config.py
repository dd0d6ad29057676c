"""Celery settings of the quantbot workers (imported by `dagster_celery.app` when on PYTHONPATH).

The broker and result backend come from the environment, as in deploy/dagster.yaml.
A worker takes one run at a time and acknowledges it when it takes it: a
worker that dies does not hand its run to another worker half-way; Dagster
fails that run (run monitoring, stale_run_sensor) and launches it again
(run_retries), so a run is executed, and its run directory written, by one
process only.
"""

import os

broker_url = os.environ["QUANTBOT_CELERY_BROKER"]
result_backend = os.environ["QUANTBOT_CELERY_BACKEND"]
worker_prefetch_multiplier = 1
task_acks_late = False
task_track_started = True
broker_connection_retry_on_startup = True
worker_hijack_root_logger = False
