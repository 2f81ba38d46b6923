"""Packaging for Dojo: the subnet neurons, the worker platform and the `dojo` CLI."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _version() -> str:
    """``__version__`` from template/__init__.py, read as text: the one place the version is
    bumped (the autoupdater compares it too), without importing the package at build time."""
    text = (HERE / "template" / "__init__.py").read_text()
    found = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", text, re.MULTILINE)
    if found is None:
        raise RuntimeError('template/__init__.py has no __version__ = "X.Y.Z" line')
    return found.group(1)


def _requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="dojo-subnet",
    version=_version(),
    description="Dojo: a Bittensor subnet that crowdsources human preference data",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["template", "template.*", "commons", "commons.*", "dojo", "dojo.*"]),
    include_package_data=True,
    package_data={
        "dojo": ["**/*.html", "**/*.js", "**/*.css", "**/*.ini", "**/*.mako", "**/*.json"],
        "template": ["**/*.mako"],
    },
    py_modules=["main_miner", "main_validator"],
    install_requires=_requirements(),
    entry_points={"console_scripts": ["dojo=dojo.cli:main"]},
    license="MIT",
)
