"""Stage 4, record: the ``_cadence`` schema, and the files that mirror it.

``state`` writes and reads runs, model builds and model state (the values it fills are
``plan.history``'s); ``membership`` records who entered and exited a segment, and
``segmentkeys`` which models were last published as segments, with which key; ``snapshot`` keeps
``target/state_snapshot.json`` so read-only commands answer while a run holds the warehouse;
``reports`` answers ``status`` and ``explain`` from a snapshot; ``unrecorded`` keeps the failures
a full disk kept out of the warehouse until the next invocation that can write records them.

Below ``build`` in the import order: a build's record is written inside its publish transaction
(SPEC §6), so the runner calls these writers; nothing here builds or delivers.
"""
