"""cadence: refresh customer segments at the speed each channel needs.

Library entry point: ``Project.load(path)``, then ``plan(now=...)`` and ``run(now=...)``.
"""

from cadence.errors import CadenceError, ProjectErrors

__all__ = ["CadenceError", "Project", "ProjectErrors"]
__version__ = "0.1.0"


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name == "Project":  # lazy: `cadence run --due` with nothing due imports little
        from cadence.project import Project

        return Project
    raise AttributeError(name)
