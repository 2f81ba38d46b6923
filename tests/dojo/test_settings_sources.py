"""Settings a command reads besides its flags come through template.config, so a value kept
in ``.env`` counts as one in the environment, and the environment beats ``.env``."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dojo.cli.platform_account import configured_api_key, default_platform_url, default_session_dir
from dojo.workers._cli import TeamSettings, _parser
from template.config import resolve_args


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A directory of one's own to run in (its .env is the one read), none of the variables set."""
    monkeypatch.chdir(tmp_path)
    for name in ("DOJO_API_BASE_URL", "DOJO_SESSION_DIR", "DOJO_API_KEY", "DOJO_SUBSCRIPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_account_commands_read_dotenv_under_the_environment(workdir, monkeypatch):
    (workdir / ".env").write_text(
        'DOJO_API_BASE_URL="http://platform.example:8080"\nDOJO_SESSION_DIR="/tmp/sessions-from-dotenv"\n'
        'DOJO_API_KEY="dojo_api_from_dotenv"\n'
    )
    assert default_platform_url() == "http://platform.example:8080"
    assert str(default_session_dir()) == "/tmp/sessions-from-dotenv"
    assert configured_api_key() == "dojo_api_from_dotenv"
    monkeypatch.setenv("DOJO_API_BASE_URL", "http://from-environment:8080")
    assert default_platform_url() == "http://from-environment:8080"


def test_the_workers_take_the_subscription_key_from_dotenv_and_the_flag_over_it(workdir):
    (workdir / ".env").write_text('DOJO_SUBSCRIPTION_KEY="dojo_sub_from_dotenv"\n')
    args = _parser().parse_args(["--platform", "http://127.0.0.1:8080"])
    key = resolve_args(TeamSettings, args).subscription_key
    assert key is not None and key.get_secret_value() == "dojo_sub_from_dotenv"
    args = _parser().parse_args(
        ["--platform", "http://127.0.0.1:8080", "--subscription-key", "dojo_sub_flag"]
    )
    key = resolve_args(TeamSettings, args).subscription_key
    assert key is not None and key.get_secret_value() == "dojo_sub_flag"
    assert "DOJO_SUBSCRIPTION_KEY" not in os.environ


# Where the code touches the environment without resolving a setting, and why.
NOT_SETTINGS = {
    "template/config.py": "the one place settings are resolved (flag > environment > .env)",
    "template/failpoints.py": "DOJO_FAILPOINT: a crash point the crash tests arm, not a setting",
    "dojo/localnet/net.py": "hands its own environment on to the processes it starts",
    "dojo/cli/platform.py": "hands the resolved settings to uvicorn's worker processes",
}


def test_no_module_reads_the_environment_for_a_setting_on_its_own():
    root = Path(__file__).resolve().parents[2]
    readers = sorted(
        str(path.relative_to(root))
        for package in ("template", "commons", "dojo")
        for path in (root / package).rglob("*.py")
        if re.search(r"os\.environ|os\.getenv|getenv\(", path.read_text())
    )
    assert set(readers) <= set(NOT_SETTINGS), readers


def test_the_organic_key_comes_from_dotenv(workdir, monkeypatch):
    from dojo.cli.organic import _configured_key

    monkeypatch.delenv("DOJO_ORGANIC_KEY", raising=False)
    (workdir / ".env").write_text('DOJO_ORGANIC_KEY="dojo_org_from_dotenv"\n')
    assert _configured_key() == "dojo_org_from_dotenv"
