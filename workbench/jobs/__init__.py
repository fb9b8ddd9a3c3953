"""Supervised feature jobs: one quixstreams application per promoted feature-set version.

``promote`` writes a job's spec (:mod:`workbench.jobs.spec`) and calls
:func:`start`; a background supervisor (:mod:`workbench.jobs.supervisor`)
runs the replicas (:mod:`workbench.jobs.worker`), which write to the Feast
online store through :mod:`workbench.jobs.sink`.
"""

from workbench.jobs.control import JobStatus, UnknownJob, list_jobs, logs, start, status, stop

__all__ = ["JobStatus", "UnknownJob", "list_jobs", "logs", "start", "status", "stop"]
