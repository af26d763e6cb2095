"""Activation: delivering segments to channels (SPEC §7), a wing of its own.

Entered from one place, the ``Project`` facade: ``Project.run``/``Project.export`` ask
``timing`` (before a plain run builds: which channels it owes a delivery; after the builds:
which channels deliver now, at their own ticks, by ``plan.deliveries``, from what
``ticks`` reads of ``_cadence.channel_ticks``), which hands the decisions to
``deliver.deliver``, which computes each channel's audience (``audience``),
freezes its pending changes with sequence numbers (``outbox``) and has ``attempt`` hand each
range to a destination (``files``, ``webhook``; the webhook's signing, retries and connections
are ``cadence.outbound``'s); ``export --dry-run`` asks ``preview.preview``, which moves nothing;
each publish keeps a members snapshot (``roster``, the facade's publish hook); the read-only
commands (``members``, ``status``) ask ``queries``. Membership changes themselves are recorded
by the runner, below this wing (``record.membership``). Other packages use only pieces that
send nothing: the CLI renders returned values (``render``); lint and serve reuse ``audience``
(holdout, channel checks, a segment's audience SQL). Nothing here prints; results are returned
as values.
"""
