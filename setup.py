"""Packaging for Dojo: the subnet neurons, the worker platform and the `dojo` CLI."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="dojo-subnet",
    version="0.1.0",
    description="Dojo: a Bittensor subnet that crowdsources human preference data",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["template", "template.*", "commons", "commons.*", "dojo", "dojo.*"]),
    include_package_data=True,
    package_data={"dojo": ["**/*.html", "**/*.js", "**/*.css", "**/*.ini", "**/*.mako", "**/*.json"]},
    py_modules=["main_miner", "main_validator"],
    install_requires=_requirements(),
    entry_points={"console_scripts": ["dojo=dojo.cli:main"]},
    license="MIT",
)
