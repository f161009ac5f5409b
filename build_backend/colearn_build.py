"""The build backend: setuptools', run on a copy of the sources in a temporary directory, so
that building (``pip install .``, ``python -m build``) writes nothing into the checkout
(setuptools leaves ``build/`` and ``*.egg-info`` where it runs).

Editable installs (``pip install -e .``) build where they are: they must point at the
checkout itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (  # noqa: F401 - re-exported hooks, unchanged
    build_editable,
    get_requires_for_build_editable,
    prepare_metadata_for_build_editable,
)

#: What a build reads: the metadata and the two packages (this backend too, for the sdist).
_FILES = ("pyproject.toml", "README.md", "MANIFEST.in")
_TREES = ("agents", "colearn_core", "build_backend")
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


@contextlib.contextmanager
def _out_of_tree() -> Iterator[None]:
    """Runs the body in a temporary copy of the sources (the current directory)."""
    source = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="colearn-build-") as temp:
        copy = Path(temp) / "src"
        copy.mkdir()
        for name in _FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, copy / name)
        for name in _TREES:
            if (source / name).is_dir():
                shutil.copytree(source / name, copy / name, ignore=_JUNK)
        os.chdir(copy)
        try:
            yield
        finally:
            os.chdir(source)


def _absolute(directory: str) -> str:
    return str(Path(directory).resolve())


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    with _out_of_tree():
        return _setuptools.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    with _out_of_tree():
        return _setuptools.get_requires_for_build_sdist(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory: str,
                                     config_settings: dict[str, Any] | None = None) -> str:
    target = _absolute(metadata_directory)
    with _out_of_tree():
        return _setuptools.prepare_metadata_for_build_wheel(target, config_settings)


def build_wheel(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                metadata_directory: str | None = None) -> str:
    target = _absolute(wheel_directory)
    metadata = None if metadata_directory is None else _absolute(metadata_directory)
    with _out_of_tree():
        return _setuptools.build_wheel(target, config_settings, metadata)


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    target = _absolute(sdist_directory)
    with _out_of_tree():
        return _setuptools.build_sdist(target, config_settings)
