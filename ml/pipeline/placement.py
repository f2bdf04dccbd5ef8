"""Where the DAGs' GPU work runs: its Airflow pool and Celery queue, read when a DAG file is parsed.

Sequence-model training and synthesis (the embedded language model and its adaptation) are GPU work.
The pool (``orchestration.gpu_pool``) limits how many of them share a GPU; the queue
(``orchestration.gpu_queue``, environment ``RECO_ORCHESTRATION__GPU_QUEUE``) sends them to the Celery
worker started with ``airflow celery worker -q gpu`` on a GPU machine. On one machine the queue is
``default`` and the LocalExecutor ignores it. The dag-processor's environment decides, because the
queue is part of the parsed DAG.
"""

from __future__ import annotations

from ml.config import Settings, get_settings


def gpu_task(settings: Settings | None = None) -> dict[str, str]:
    """``@task`` keyword arguments of a GPU task: ``{"pool": ..., "queue": ...}``."""
    orchestration = (settings or get_settings()).orchestration
    return {"pool": orchestration.gpu_pool, "queue": orchestration.gpu_queue}
