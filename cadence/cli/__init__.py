"""The command line: ``cadence <command>``, each command one library call (STYLE.md).

``main`` is the click group (the ``cadence`` entry point and ``python -m cadence``); ``common``
holds what every command shares (the clock, options, error -> exit code); ``signals`` SIGINT
and SIGTERM from the first line on (exit 130, never a traceback); ``pipeline`` the
commands of the pipeline (init, run, seed, plan, status, explain, ls, compile, test); ``wings``
those of activation, serve and review (members, export, serve, lint, diff, advise,
docs).
"""

from __future__ import annotations

from cadence.cli import signals

signals.take_over_at_start()  # first: a signal during the imports below exits 130, one line

import click  # noqa: E402

from cadence import __version__  # noqa: E402
from cadence.cli import pipeline, wings  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="cadence")
def main() -> None:
    """cadence: refresh customer segments at the speed each channel needs."""
    import os

    os.umask(os.umask(0o077) | 0o077)  # whatever cadence (and DuckDB) creates is owner-only


for _command in (
    pipeline.init,
    pipeline.run,
    pipeline.seed,
    pipeline.plan,
    pipeline.status,
    pipeline.explain,
    pipeline.ls_,
    pipeline.compile_,
    pipeline.test,
    wings.members,
    wings.export,
    wings.serve,
    wings.lint,
    wings.diff,
    wings.advise,
    wings.docs,
):
    main.add_command(_command)
