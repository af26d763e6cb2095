"""Activation: delivering segments to channels (SPEC §7), a wing of its own.

Entered from two places only: the runner records membership changes inside each segment's publish
transaction (``membership.record_changes``), and ``Project.run``/``Project.export`` hand a
finished run to ``deliver.deliver``, which computes each channel's audience (``audience``),
freezes its pending changes with sequence numbers (``outbox``) and hands them to a destination
(``files``, ``webhook``). The read-only commands (``members``, ``status``) ask ``queries``.
Nothing here prints; results are returned as values.
"""
