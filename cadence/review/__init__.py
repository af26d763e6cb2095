"""The review wing: what a change costs and reaches, before it merges (SPEC §10).

Input: a loaded ``Project`` (and its ``StateSnapshot``, read-only) -> output: plain frozen values
the CLI renders. Nothing here builds, writes state or opens the warehouse for writing.

- ``cost``: builds per day each model really gets (own ticks plus pulled-in refreshes), per
  model, per channel and in total; shared by ``plan``, ``diff`` and ``docs``.
- ``lint``: the warnings of ``cadence lint``.
- ``diff``: the project at a git ref against the working tree.
- ``site``: the static docs site, drawn from ``lineage`` (the graph, channels as nodes, laid out
  by ``layout``), ``timeline`` (the week's receives and rebuilds per channel) and ``pages`` (a
  page per model).

The CLI enters the wing through these modules; each is imported lazily by the command using it.
"""
