"""Stage 2, plan: ``ParsedProject`` -> the DAG, each model's ticks, and what is due now.

``dag`` (the only user of networkx) orders the models; ``schedule`` (the only user of croniter)
turns cadence strings into ticks; ``cadences`` resolves each model's ticks with provenance;
``history`` holds the values the planner knows of past runs (``StateSnapshot``); ``due`` decides,
as a pure function of the project, that history and ``now``, what a run builds and why;
``deliveries`` decides, as a pure function too, which channels deliver at ``now`` (their own
ticks) and why; ``selection`` reads dbt-style selectors; ``manifest`` caches the loaded and
resolved project.

Invariants: nothing here opens the warehouse or reads the clock. Hands a ``Plan`` on to ``build``.
"""
