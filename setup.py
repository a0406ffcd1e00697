"""Build step of the wheel: map the top-level ``templates/``, ``static/`` and ``gunicorn.conf.py`` into ``app/``.

They stay at the top of the repository (where the demo, the tests and the
other engineers edit them); a built wheel carries them as package data of
``app`` (``app/templates``, ``app/static``, ``app/gunicorn.conf.py``), which
:func:`app.create_app` and ``imaging-app serve`` prefer when present.
Everything else is declared in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
RESOURCES = {"templates": "templates", "static": "static", "gunicorn.conf.py": "gunicorn.conf.py"}


class BuildPyWithResources(build_py):
    """``build_py`` that also copies :data:`RESOURCES` into ``<build_lib>/app/`` (not in editable installs)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the checkout's own folders are used
        for source, target_name in RESOURCES.items():
            source_path, target = ROOT / source, Path(self.build_lib) / "app" / target_name
            if target.is_dir():
                shutil.rmtree(target)
            if source_path.is_dir():
                shutil.copytree(source_path, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source_path, target)


setup(cmdclass={"build_py": BuildPyWithResources})
