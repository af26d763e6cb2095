"""Whether a view's or ephemeral's SQL depends on the run (SPEC §4), and why.

Input: the model's source file, the environment it renders in, its relation, the text rendered
at load (at ``context.LOAD_TIME``, ``LOAD_INVOCATION_ID``) and the first per-run value that
render read -> output: why its SQL depends on the run ("run_started_at", "modules.datetime",
... or ``RENDERS_DIFFERENTLY``), or "". A value read is enough (through any macro or var); else
the text is rendered again at another fixed run (every field of time, tick and invocation id
different) and compared, so whatever makes two runs differ is found. Used by ``parser``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from cadence.errors import CadenceError
from cadence.load.context import RenderState
from cadence.load.relations import Relation

if TYPE_CHECKING:
    from cadence.load.loader import SourceFile
    from cadence.load.rendering import ModelEnvironment

RENDERS_DIFFERENTLY = "renders differently at two run times"
# the run a second render of a view or ephemeral sees: every field of the time (year to
# microsecond, weekday, offset) and the invocation id differ from load time's (context.LOAD_*)
_PROBE_ZONE = dt.timezone(dt.timedelta(hours=5))
PROBE_TIME = dt.datetime(2013, 11, 27, 17, 38, 49, 123457, tzinfo=_PROBE_ZONE)
PROBE_TICK = dt.datetime(2013, 11, 27, 17, 30, tzinfo=_PROBE_ZONE)
PROBE_INVOCATION_ID = "probe-run-13112717-3849"


def depends_on_run(
    env: ModelEnvironment,
    source_file: SourceFile,
    this: Relation,
    rendered: str,
    read: str | None,
) -> str:
    """Why a view's or ephemeral's text depends on the run, or "": the per-run value its render
    read, else whether a render at another fixed run (time, tick, invocation id) differs from
    the load-time one (or fails: the run decides that too)."""
    if read is not None:
        return read
    probe = RenderState(
        file=source_file.path,
        this=this,
        run_started_at=PROBE_TIME,
        tick=PROBE_TICK,
        invocation_id=PROBE_INVOCATION_ID,
    )
    try:
        again = env.render(source_file.text, probe)
    except CadenceError:
        return RENDERS_DIFFERENTLY
    if probe.run_value is not None:
        return probe.run_value
    return "" if again == rendered else RENDERS_DIFFERENTLY
