"""The run engine: a frozen per-clip function over a whole collection, on local processes or Dask.

Generic over "an analyser" (:mod:`features.analysers`): it lists nothing,
computes nothing itself and knows no column. It batches clips, survives
killed workers, hangs and bad files (:mod:`~features.engine.runner`,
:mod:`~features.engine.executors`, :mod:`~features.engine.work`), keeps a
resumable checkpoint (:mod:`~features.engine.checkpoint`) and writes a run
as one locked, verified set of files (:mod:`~features.engine.outputs`).
"""
