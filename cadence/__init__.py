"""cadence: refresh customer segments at the speed each channel needs.

Library entry point: ``Project.load(path)``, then ``plan(now=...)`` and ``run(now=...)``.
Importing the package imports nothing else: the ``cadence`` command takes over SIGINT and
SIGTERM (``cadence.cli.signals``) before anything slow is imported.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

    from cadence.errors import CadenceError, ProjectErrors
    from cadence.project import Project, Selection

__all__ = ["CadenceError", "Project", "ProjectErrors", "Selection"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # lazy: `cadence run --due` with nothing due imports little, and `import cadence` nothing
    if name in ("CadenceError", "ProjectErrors"):
        from cadence import errors

        return getattr(errors, name)
    if name in ("Project", "Selection"):
        from cadence import project

        return getattr(project, name)
    raise AttributeError(name)
