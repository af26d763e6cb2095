"""Stage 3, build: a ``Plan`` -> built, tested and published relations, and a ``RunResult``.

``compiler`` swaps ref tokens for relations and renders per-run models again; ``runner`` runs
the plan's decisions in order: ``publish`` builds a model into a staging relation, runs its
blocking tests on it (``gate``, with ``datatests``; ``incremental`` for new rows only;
``snapshots`` for a snapshot's next version) and publishes it with its record (``record``) in
one transaction, ``seeds`` does the same for a CSV, and both share the run's ``context``;
``parallel`` runs independent builds on threads; ``lock`` keeps one run per project;
``testing`` is ``cadence test``: ``unittests`` in memory, then data tests on the live relations.

Invariants: a failed step leaves the live relation and state as they were; the runner never
prints (it reports events). Hands its result to the wings: ``activation`` delivers it, ``serve``
snapshots it.
"""
