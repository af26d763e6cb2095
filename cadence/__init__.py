"""cadence: refresh customer segments at the speed each channel needs.

Library entry point: ``Project.load(path)``, then ``plan(now=...)`` and ``run(now=...)``.
"""

from cadence.errors import CadenceError, ProjectErrors

__all__ = ["CadenceError", "Project", "ProjectErrors", "Selection"]
__version__ = "0.1.0"


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    # lazy: `cadence run --due` with nothing due imports little
    if name in ("Project", "Selection"):
        from cadence import project

        return getattr(project, name)
    raise AttributeError(name)
