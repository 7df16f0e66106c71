"""The run lifecycle, one job per module.

- ``config``: :class:`RunConfig`, what defines a run, and its per-dataset and per-method defaults
- ``build``: what a config implies (device, data, method, kNN evaluator)
- ``monitors``: what watches a run as it trains (metrics, online kNN, previews)
- ``execute``: one run end to end, with periodic resumable checkpoints
- ``store``: the SQLite index and the run folders
- ``scheduler``: the queue (slots, fair order, caps, owners, cancel, resume)
- ``dispatcher``: the process that starts queued runs in workers
- ``saved``, ``evaluate``: a saved run's model and its scores
"""

from sslcore.runs.config import RunConfig
from sslcore.runs.store import ACTIVE, DONE, RESUMABLE, RunRecord, RunStore

__all__ = ["ACTIVE", "DONE", "RESUMABLE", "RunConfig", "RunRecord", "RunStore"]
