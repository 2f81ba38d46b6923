"""Settings resolution: flags over environment over .env over defaults; bad values exit 2."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dojo.miner.config import MinerConfig
from dojo.validator.config import ValidatorConfig
from template.config import ConfigError, describe, resolve

ROOT = Path(__file__).resolve().parents[2]

# The original Dojo testnet command, unchanged.
PM2_MINER_ARGS = [
    "--netuid",
    "98",
    "--wallet.name",
    "coldkey",
    "--wallet.hotkey",
    "hotkey",
    "--logging.debug",
    "--axon.port",
    "9602",
    "--neuron.type",
    "miner",
    "--scoring_method",
    "dojo",
    "--subtensor.network",
    "test",
]


def test_original_pm2_flags_resolve():
    config = resolve(MinerConfig, PM2_MINER_ARGS, environ={}, env_file=None)
    assert config.netuid == 98
    assert config.wallet.name == "coldkey" and config.wallet.hotkey == "hotkey"
    assert config.logging.debug is True
    assert config.axon.port == 9602
    assert config.subtensor.network == "test"
    assert config.scoring_method == "dojo"


def test_validator_flags_and_defaults():
    config = resolve(
        ValidatorConfig,
        [
            "--neuron.sample_size",
            "16",
            "--neuron.moving_average_alpha",
            "0.05",
            "--neuron.epoch_length",
            "360",
        ],
        environ={},
        env_file=None,
    )
    assert config.neuron.type == "validator" and config.axon.port == 9603
    assert config.neuron.sample_size == 16
    assert config.neuron.moving_average_alpha == 0.05
    assert config.neuron.epoch_length == 360


def test_precedence_flag_over_env_over_dotenv(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text('NETUID=7\nAXON_PORT=1111\nDOJO_API_KEY="sk-from-file"\nWALLET_NAME=filewallet\n')
    config = resolve(
        MinerConfig, ["--axon.port", "3333"], environ={"NETUID": "8", "AXON_PORT": "2222"}, env_file=env_file
    )
    assert config.axon.port == 3333  # flag
    assert config.netuid == 8  # environment beats .env
    assert config.wallet.name == "filewallet"  # .env beats default
    assert config.dojo_api_key.get_secret_value() == "sk-from-file"


def test_local_chain_directory_is_a_network(tmp_path):
    (tmp_path / "chain.sqlite").write_bytes(b"")
    config = resolve(MinerConfig, ["--subtensor.network", str(tmp_path)], environ={}, env_file=None)
    assert config.subtensor.network == str(tmp_path.resolve())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--axon.port", "70000"],
            "--axon.port (env AXON_PORT): Input should be less than or equal to 65535",
        ),
        (["--axon.port", "http"], "--axon.port (env AXON_PORT): Input should be a valid integer"),
        (["--netuid", "-1"], "--netuid (env NETUID): Input should be greater than or equal to 0"),
        (
            ["--neuron.type", "worker"],
            "--neuron.type (env NEURON_TYPE): Input should be 'miner' or 'validator'",
        ),
        (["--scoring_method", "other"], "--scoring_method (env SCORING_METHOD): Input should be 'dojo'"),
        (
            ["--subtensor.network", "nowhere"],
            "--subtensor.network (env SUBTENSOR_NETWORK): accepts finney, test, local",
        ),
        (["--subtensor.chain_endpoint", "http://x"], "accepts a ws:// or wss:// URL"),
        (["--logging.debug", "perhaps"], "--logging.debug (env LOGGING_DEBUG): accepts true or false"),
        (["--neuron.moving_average_alpha", "0"], "--neuron.moving_average_alpha"),
        (["--unknown.flag", "1"], "unrecognized arguments: --unknown.flag"),
        (["--wallet.nam", "x"], "unrecognized arguments: --wallet.nam"),  # no abbreviations
    ],
)
def test_bad_values_name_the_flag(argv, expected):
    with pytest.raises(ConfigError) as info:
        resolve(ValidatorConfig, argv, environ={}, env_file=None)
    assert expected in str(info.value)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match=r"--axon.port \(env AXON_PORT\)"):
        resolve(MinerConfig, [], environ={"AXON_PORT": "nope"}, env_file=None)


def test_describe_masks_secrets():
    config = resolve(MinerConfig, [], environ={"DOJO_API_KEY": "sk-secret-value"}, env_file=None)
    text = describe(config)
    assert "sk-secret-value" not in text
    assert "--dojo_api_key = ********" in text
    assert "--netuid = 52" in text


@pytest.mark.parametrize("script", ["main_miner.py", "main_validator.py"])
def test_entry_point_exits_2_on_bad_value(script, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / script), "--axon.port", "99999"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--axon.port" in result.stderr and "65535" in result.stderr


def test_entry_point_exits_2_on_unknown_flag(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "main_miner.py"), "--axon.prot", "9602"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unrecognized arguments: --axon.prot" in result.stderr


@pytest.mark.parametrize(
    ("key", "what"),
    [
        ("dojo_api_clé-secrète", "the character U+00E9 at position 12"),
        ("dojo_api_abc def", "a space at position 13"),
    ],
)
def test_an_api_key_that_cannot_travel_in_a_header_is_refused_without_showing_it(key, what):
    with pytest.raises(ConfigError) as info:
        resolve(MinerConfig, [], environ={"DOJO_API_KEY": key}, env_file=None)
    message = str(info.value)
    assert "--dojo_api_key (env DOJO_API_KEY): accepts printable ASCII without spaces" in message
    assert what in message and key not in message and "secr" not in message


def test_the_miner_exits_2_on_a_non_ascii_api_key(tmp_path):
    (tmp_path / ".env").write_text('DOJO_API_KEY="dojo_api_ключ"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(ROOT / "main_miner.py")], capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "main_miner.py: error:" in result.stderr and "--dojo_api_key (env DOJO_API_KEY)" in result.stderr
    assert "ключ" not in result.stderr + result.stdout


def test_database_urls_come_from_each_neurons_own_variable_and_their_password_is_masked():
    environ = {
        "DATABASE_URL": "postgresql://dojo:hunter2@db/validator",
        "MINER_DATABASE_URL": "sqlite:///m.sqlite",
    }
    validator = resolve(ValidatorConfig, [], environ=environ, env_file=None)
    miner = resolve(MinerConfig, [], environ=environ, env_file=None)
    # A miner beside its worker platform never takes the platform's DATABASE_URL.
    assert miner.neuron.database_url == "sqlite:///m.sqlite"
    assert validator.neuron.database_url == "postgresql://dojo:hunter2@db/validator"
    text = describe(validator)
    assert "hunter2" not in text and "--neuron.database_url = postgresql://dojo:********@db/validator" in text


def test_the_lifecycle_settings_have_the_original_defaults():
    config = resolve(ValidatorConfig, [], environ={}, env_file=None)
    assert (config.neuron.task_interval, config.neuron.task_deadline, config.neuron.collection_grace) == (
        300.0,
        14400.0,
        3600.0,
    )
    assert config.wandb.off is False
    assert resolve(ValidatorConfig, ["--wandb.off"], environ={}, env_file=None).wandb.off is True
    with pytest.raises(ConfigError, match="--neuron.task_deadline"):
        resolve(ValidatorConfig, ["--neuron.task_deadline", str(6 * 86400)], environ={}, env_file=None)


def test_the_version_key_is_the_version_as_one_integer():
    from template import __version__, spec_version

    assert spec_version("1.2.3") == 1_002_003
    assert spec_version() == spec_version(__version__) > 0


def test_a_subcommand_resolves_its_flags_as_the_neurons_do(tmp_path):
    import argparse

    from template.config import add_options, resolve_args

    parser = argparse.ArgumentParser(prog="dojo")
    command = parser.add_subparsers(dest="command").add_parser("status")
    add_options(command, MinerConfig, {"axon.port": "--port", "subtensor.network": "--subtensor.network"})
    (tmp_path / ".env").write_text("SUBTENSOR_NETWORK=test\nAXON_PORT=1111\n")

    args = parser.parse_args(["status", "--port", "4444"])
    assert (args.port, args.network) == (4444, "finney")  # typed; a default until resolved
    config = resolve_args(MinerConfig, args, environ={"AXON_PORT": "2222"}, env_file=tmp_path / ".env")
    assert (config.axon.port, config.subtensor.network) == (4444, "test")
    # Settings without a flag here are not read from the environment.
    assert resolve_args(MinerConfig, args, environ={"NETUID": "9"}, env_file=None).netuid == 52
    with pytest.raises(ConfigError, match=r"--port \(env AXON_PORT\): Input should be a valid integer"):
        resolve_args(MinerConfig, parser.parse_args(["status", "--port", "http"]), environ={}, env_file=None)
    with pytest.raises(ConfigError, match=r"--subtensor.network \(env SUBTENSOR_NETWORK\): accepts finney"):
        resolve_args(
            MinerConfig, parser.parse_args(["status"]), environ={"SUBTENSOR_NETWORK": "x"}, env_file=None
        )


def test_the_worker_platform_and_its_label_studio_settings_resolve_like_every_other_setting():
    env = {
        "WORKER_PLATFORM": "label-studio",
        "LABEL_STUDIO_URL": "http://127.0.0.1:8081",
        "LABEL_STUDIO_API_KEY": "t0k",
    }
    config = resolve(MinerConfig, ["--label_studio.poll_interval", "5"], environ=env, env_file=None)
    assert config.worker_platform == "label-studio" and config.label_studio.url == "http://127.0.0.1:8081"
    assert config.label_studio.api_key.get_secret_value() == "t0k" and config.label_studio.poll_interval == 5
    assert "--label_studio.api_key = ********" in describe(config)
    assert resolve(MinerConfig, [], environ={}, env_file=None).worker_platform == "dojo"
    with pytest.raises(ConfigError, match=r"--worker_platform \(env WORKER_PLATFORM\)"):
        resolve(MinerConfig, ["--worker_platform", "scale"], environ={}, env_file=None)
    with pytest.raises(ConfigError, match="webhook_port needs --label_studio.webhook_secret"):
        resolve(MinerConfig, ["--label_studio.webhook_port", "9700"], environ={}, env_file=None)


def _flags(table: str) -> dict[str, tuple[str, object]]:
    """Each line of ``table``: a flag, its environment variable and its default (a Python literal)."""
    rows = (line.split(maxsplit=2) for line in table.strip().splitlines())
    return {flag: (env, ast.literal_eval(default)) for flag, env, default in rows}


# Every flag of the two entry points, with its environment variable and default, as they were
# when the validator's own neuron settings moved out of template.config beside the validator:
# a pm2 command or a .env written for either neuron keeps meaning what it meant.
COMMON_FLAGS = _flags(
    """
--netuid                            NETUID                            52
--wallet.name                       WALLET_NAME                       'default'
--wallet.hotkey                     WALLET_HOTKEY                     'default'
--wallet.path                       WALLET_PATH                       '~/.bittensor/wallets'
--subtensor.network                 SUBTENSOR_NETWORK                 'finney'
--subtensor.chain_endpoint          SUBTENSOR_CHAIN_ENDPOINT          None
--axon.ip                           AXON_IP                           '0.0.0.0'
--axon.external_ip                  AXON_EXTERNAL_IP                  None
--axon.external_port                AXON_EXTERNAL_PORT                None
--axon.max_body_bytes               AXON_MAX_BODY_BYTES               1048576
--logging.debug                     LOGGING_DEBUG                     False
--logging.trace                     LOGGING_TRACE                     False
--blacklist.force_validator_permit  BLACKLIST_FORCE_VALIDATOR_PERMIT  True
--blacklist.minimum_stake           BLACKLIST_MINIMUM_STAKE           0.0
--neuron.epoch_length               NEURON_EPOCH_LENGTH               100
--neuron.sample_size                NEURON_SAMPLE_SIZE                8
--neuron.moving_average_alpha       NEURON_MOVING_AVERAGE_ALPHA       0.1
--neuron.heartbeat_interval         NEURON_HEARTBEAT_INTERVAL         30.0
--neuron.timeout                    NEURON_TIMEOUT                    12.0
--neuron.data_dir                   NEURON_DATA_DIR                   '~/.dojo'
--neuron.task_interval              NEURON_TASK_INTERVAL              300.0
--neuron.task_deadline              NEURON_TASK_DEADLINE              14400.0
--neuron.collection_grace           NEURON_COLLECTION_GRACE           3600.0
--neuron.collect_at_results         NEURON_COLLECT_AT_RESULTS         0
--neuron.scoring_interval           NEURON_SCORING_INTERVAL           60.0
--neuron.vpermit_tao_limit          NEURON_VPERMIT_TAO_LIMIT          4096.0
--scoring_method                    SCORING_METHOD                    'dojo'
"""
)
MINER_OWN_FLAGS = _flags(
    """
--axon.port                    AXON_PORT                    9602
--neuron.type                  NEURON_TYPE                  'miner'
--neuron.database_url          MINER_DATABASE_URL           None
--worker_platform              WORKER_PLATFORM              'dojo'
--label_studio.url             LABEL_STUDIO_URL             'http://127.0.0.1:8081'
--label_studio.api_key         LABEL_STUDIO_API_KEY         None
--label_studio.project_prefix  LABEL_STUDIO_PROJECT_PREFIX  'Dojo'
--label_studio.poll_interval   LABEL_STUDIO_POLL_INTERVAL   15.0
--label_studio.webhook_port    LABEL_STUDIO_WEBHOOK_PORT    None
--label_studio.webhook_host    LABEL_STUDIO_WEBHOOK_HOST    '127.0.0.1'
--label_studio.webhook_url     LABEL_STUDIO_WEBHOOK_URL     None
--label_studio.webhook_secret  LABEL_STUDIO_WEBHOOK_SECRET  None
--dojo_api_base_url            DOJO_API_BASE_URL            'http://127.0.0.1:8080'
--dojo_api_key                 DOJO_API_KEY                 None
--task_max_results             TASK_MAX_RESULTS             3
"""
)
VALIDATOR_OWN_FLAGS = _flags(
    """
--axon.port                        AXON_PORT                        9603
--neuron.type                      NEURON_TYPE                      'validator'
--neuron.database_url              DATABASE_URL                     None
--synthetic_api_url                SYNTHETIC_API_URL                None
--synthetic_api_token              SYNTHETIC_API_TOKEN              None
--wandb_api_key                    WANDB_API_KEY                    None
--synthetic.mix                    SYNTHETIC_MIX                    None
--wandb.off                        WANDB_OFF                        False
--wandb.project                    WANDB_PROJECT                    'dojo'
--wandb.entity                     WANDB_ENTITY                     None
--export.interval                  EXPORT_INTERVAL                  0.0
--export.dir                       EXPORT_DIR                       None
--export.keep                      EXPORT_KEEP                      3
--organic.enabled                  ORGANIC_ENABLED                  False
--organic.host                     ORGANIC_HOST                     '127.0.0.1'
--organic.port                     ORGANIC_PORT                     9604
--organic.caller_netuids           ORGANIC_CALLER_NETUIDS           []
--organic.min_stake                ORGANIC_MIN_STAKE                1000.0
--organic.hotkey_rate              ORGANIC_HOTKEY_RATE              600
--organic.hotkey_daily_quota       ORGANIC_HOTKEY_DAILY_QUOTA       10000
--organic.min_miner_score          ORGANIC_MIN_MINER_SCORE          0.1
--organic.max_share                ORGANIC_MAX_SHARE                0.5
--organic.tasks_per_round          ORGANIC_TASKS_PER_ROUND          1
--organic.queue_timeout            ORGANIC_QUEUE_TIMEOUT            86400.0
--organic.allow_private_callbacks  ORGANIC_ALLOW_PRIVATE_CALLBACKS  False
--organic.max_body_bytes           ORGANIC_MAX_BODY_BYTES           1048576
--organic.webhook_retry_base       ORGANIC_WEBHOOK_RETRY_BASE       30.0
"""
)


def _defaults(model: type[MinerConfig] | type[ValidatorConfig], flags: list[str]) -> dict[str, object]:
    config = resolve(model, [], environ={}, env_file=None)
    values: dict[str, object] = {}
    for flag in flags:
        value: object = config
        for key in flag.removeprefix("--").split("."):
            value = getattr(value, key)
        values[flag] = value
    return values


@pytest.mark.parametrize(
    ("script", "model", "own"),
    [
        ("main_miner.py", MinerConfig, MINER_OWN_FLAGS),
        ("main_validator.py", ValidatorConfig, VALIDATOR_OWN_FLAGS),
    ],
)
def test_help_lists_the_same_flags_variables_and_defaults(script, model, own):
    result = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    options = result.stdout.split("\noptions:\n", 1)[1]
    flags = [f for f in re.findall(r"(?m)^  (--[\w.-]+)", options) if f != "--env-file"]
    envs = re.findall(r"\[env\s+(\w+)\]", options)
    expected = {**COMMON_FLAGS, **own}
    assert sorted(flags) == sorted(expected)
    assert dict(zip(flags, envs, strict=True)) == {flag: env for flag, (env, _) in expected.items()}
    assert _defaults(model, flags) == {flag: default for flag, (_, default) in expected.items()}
