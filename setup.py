"""Ships project_template/ inside the wheel as cadence/project_template (what `cadence init` copies)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithTemplate(build_py):
    def run(self) -> None:
        super().run()
        source = Path(__file__).parent / "project_template"
        if source.is_dir():
            dest = Path(self.build_lib) / "cadence" / "project_template"
            shutil.copytree(source, dest, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithTemplate})
