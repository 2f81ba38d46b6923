"""The autoupdater (run.sh), run with real bash, real git and ssh-keygen against a local bare remote.

Each test builds a tiny project (a copy of run.sh, ``template/__init__.py`` with a version,
``requirements.txt``, ``allowed_signers`` with the maintainer's SSH key), publishes it to a
bare repository through a maintainer's clone, clones it again as the deployment and pins the
signers there with ``run.sh --pin-signers``. A release is a version bump tagged ``v<version>``
and signed with the maintainer's key (``git tag -s``); the tests also publish unsigned,
lightweight, stranger-signed and renamed tags. Restarts and health checks are small shell
scripts that record each call in a file (with the version on disk at that moment) and fail on
demand; pip is a fake python that records its arguments and, as pip does, runs the setup.py
of the checkout (which a malicious release uses to leave a marker file).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._pm2 import NEEDS_PM2, own_pm2

RUN_SH = Path(__file__).resolve().parents[1] / "run.sh"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ run\.sh: \S")
PIP = "pip -m pip install -r requirements.txt -e ."

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="the autoupdater tests need git")

VERSION_OF = "sed -n 's/^__version__ = \"\\(.*\\)\"/\\1/p' template/__init__.py"


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SSH signing keys: the maintainer's (in allowed_signers) and a stranger's."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("signing releases needs ssh-keygen (OpenSSH)")
    directory = tmp_path_factory.mktemp("keys")
    made = {}
    for who in ("maintainer", "stranger"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", str(directory / who)],
            check=True,
            timeout=30,
        )
        made[who] = directory / who
    return made


def signers_line(key: Path, principal: str = "maintainer@example.org") -> str:
    return f'{principal} namespaces="git" {key.with_suffix(".pub").read_text().strip()}\n'


class Project:
    """The remote, the maintainer's clone that publishes releases, and the deployment."""

    def __init__(self, root: Path, keys: dict[str, Path]):
        self.root = root
        self.keys = keys
        self.marker = root / "setup-py-ran"
        self.calls = root / "calls"
        self.bad = root / "bad-versions"
        self.bin = root / "bin"
        self.bin.mkdir()
        self.calls.touch()
        self.bad.touch()
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AUTOUPDATE_", "HEALTH_", "GIT_"))
            and key not in ("RESTART_CMD", "UPDATE_INTERVAL")
        }
        self.env.update(
            HOME=str(root),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="Maintainer",
            GIT_AUTHOR_EMAIL="maintainer@example.org",
            GIT_COMMITTER_NAME="Maintainer",
            GIT_COMMITTER_EMAIL="maintainer@example.org",
            CALLS=str(self.calls),
            BAD=str(self.bad),
            MARKER=str(self.marker),
        )
        # pip runs the setup.py of what it installs: so does this one, after recording the call.
        python = _script(
            self.bin / "python",
            'echo "pip $*" >> "$CALLS"\n'
            f"if [ -f setup.py ]; then {sys.executable} setup.py >/dev/null 2>&1; fi\n",
        )
        restart = _script(
            self.bin / "restart",
            f'echo "restart $AUTOUPDATE_PROCESSES $AUTOUPDATE_VERSION $({VERSION_OF})" >> "$CALLS"\n',
        )
        health = _script(
            self.bin / "health",
            f'v=$({VERSION_OF})\necho "health $v" >> "$CALLS"\n'
            'if grep -qx "$v" "$BAD"; then echo "version $v crashed on start"; exit 1; fi\n',
        )
        self.run_env = {
            "AUTOUPDATE_PYTHON": str(python),
            "RESTART_CMD": f"bash {restart}",
            "HEALTH_CMD": f"bash {health}",
            "HEALTH_TIMEOUT": "0",
        }

        self.upstream = root / "upstream"
        (self.upstream / "template").mkdir(parents=True)
        shutil.copy(RUN_SH, self.upstream / "run.sh")
        (self.upstream / "template" / "__init__.py").write_text('"""Fixture."""\n\n__version__ = "1.0.0"\n')
        (self.upstream / "requirements.txt").write_text("# nothing to install\n")
        (self.upstream / "allowed_signers").write_text(
            "# release signers\n" + signers_line(keys["maintainer"])
        )
        self.git(self.upstream, "init", "--quiet", "--initial-branch=main")
        self.git(self.upstream, "add", "-A")
        self.git(self.upstream, "commit", "--quiet", "-m", "1.0.0")
        self.origin = root / "origin.git"
        self.git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(self.origin))
        self.git(self.upstream, "remote", "add", "origin", str(self.origin))
        self.git(self.upstream, "push", "--quiet", "origin", "main")
        self.deploy = root / "deploy"
        self.git(root, "clone", "--quiet", str(self.origin), str(self.deploy))
        self.pin_log = self.pin()

    def pin(self, *args: str, expect: int = 0) -> str:
        """``bash run.sh --pin-signers`` in the deployment, as an operator does at install."""
        done = subprocess.run(
            ["bash", "run.sh", "--pin-signers", *args],
            cwd=self.deploy,
            # With the recording commands and one check only: a run.sh that does not know
            # --pin-signers takes it for a neuron flag, and must start nothing for real.
            env={**self.env, **self.run_env, "AUTOUPDATE_ONCE": "1"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == expect, done.stdout + done.stderr
        return done.stdout

    def git(self, cwd: Path, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=30, check=True
        )
        return done.stdout.strip()

    def release(
        self,
        version: str | None,
        *,
        requirements: str | None = None,
        setup_py: str | None = None,
        branch: str = "main",
        extra: dict[str, str] | None = None,
        tag: str | None = "maintainer",
    ) -> str:
        """Commit a change on the maintainer's clone (a version bump or not) and push it.

        A version bump is tagged ``v<version>`` and the tag pushed: ``tag`` is who signs it
        (``maintainer`` or ``stranger``), ``unsigned`` (annotated, no signature),
        ``lightweight``, or None for no tag.
        """
        if version is not None:
            (self.upstream / "template" / "__init__.py").write_text(
                f'"""Fixture."""\n\n__version__ = "{version}"\n'
            )
        if requirements is not None:
            (self.upstream / "requirements.txt").write_text(requirements)
        if setup_py is not None:
            (self.upstream / "setup.py").write_text(setup_py)
        for name, text in (extra or {}).items():
            (self.upstream / name).write_text(text)
        (self.upstream / "CHANGES").write_text(f"{time.time_ns()}\n")
        self.git(self.upstream, "add", "-A")
        self.git(self.upstream, "commit", "--quiet", "-m", f"release {version}")
        self.git(self.upstream, "push", "--quiet", "origin", f"HEAD:{branch}")
        if version is not None and tag is not None:
            self.tag(f"v{version}", tag)
        return self.git(self.upstream, "rev-parse", "HEAD")

    def tag(self, name: str, how: str = "maintainer", commit: str = "HEAD") -> None:
        """Tag ``commit`` as ``name`` on the maintainer's clone and push the tag."""
        if how == "lightweight":
            self.git(self.upstream, "tag", name, commit)
        elif how == "unsigned":
            self.git(self.upstream, "tag", "-a", "-m", name, name, commit)
        else:
            self.git(
                self.upstream,
                "-c", "gpg.format=ssh", "-c", f"user.signingkey={self.keys[how]}",
                "tag", "-s", "-m", name, name, commit,
            )  # fmt: skip
        self.git(self.upstream, "push", "--quiet", "origin", f"refs/tags/{name}")

    def run(self, *args: str, expect: int = 0, **env: str) -> str:
        """``bash run.sh --once`` in the deployment; returns its log, each line checked."""
        done = subprocess.run(
            ["bash", "run.sh", "--once", *args],
            cwd=self.deploy,
            env={**self.env, **self.run_env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == expect, done.stdout + done.stderr
        assert done.stderr == ""
        lines = done.stdout.splitlines()
        assert lines, "run.sh logged nothing"
        for line in lines:
            assert LOG_LINE.match(line), line
        return done.stdout

    @property
    def head(self) -> str:
        return self.git(self.deploy, "rev-parse", "HEAD")

    @property
    def version(self) -> str:
        text = (self.deploy / "template" / "__init__.py").read_text()
        return re.search(r'__version__ = "(.*)"', text).group(1)

    def recorded(self) -> list[str]:
        return self.calls.read_text().splitlines()

    @property
    def skip_file(self) -> Path:
        return self.deploy / ".git" / "dojo-autoupdate-skip"


@pytest.fixture
def project(tmp_path: Path, keys: dict[str, Path]) -> Project:
    return Project(tmp_path, keys)


def test_a_newer_version_is_fast_forwarded_restarted_and_checked_without_reinstalling(
    project: Project,
) -> None:
    target = project.release("1.1.0")
    log = project.run()
    assert project.head == target
    assert project.version == "1.1.0"
    assert project.recorded() == ["restart dojo-validator 1.1.0 1.1.0", "health 1.1.0"]
    assert "requirements unchanged; not reinstalling" in log
    assert "updated to 1.1.0" in log


@pytest.mark.parametrize("change", ["requirements", "setup_py"])
def test_a_newer_version_with_changed_requirements_reinstalls_them_before_restarting(
    project: Project, change: str
) -> None:
    text = "# still nothing to install\n" if change == "requirements" else "# a fake setup.py\n"
    target = project.release("1.1.0", **{change: text})
    project.run()
    assert project.head == target
    assert project.recorded() == [PIP, "restart dojo-validator 1.1.0 1.1.0", "health 1.1.0"]


@pytest.mark.parametrize("version", [None, "0.9.0", "1.0"])
def test_a_moved_branch_without_a_newer_version_changes_nothing(
    project: Project, version: str | None
) -> None:
    before = project.head
    project.release(version)
    log = project.run()
    assert project.head == before
    assert project.recorded() == []
    assert "no release newer than the running 1.0.0 on origin/main" in log


def test_up_to_date_says_so(project: Project) -> None:
    assert "up to date with origin/main" in project.run()
    assert project.recorded() == []


def test_versions_compare_as_dotted_integers(project: Project) -> None:
    project.release("1.9.0")
    project.run()
    target = project.release("1.10.0")
    project.run()
    assert project.head == target
    assert project.version == "1.10.0"


@pytest.mark.parametrize("staged", [False, True], ids=["modified", "staged"])
def test_local_changes_to_tracked_files_refuse_the_update(project: Project, staged: bool) -> None:
    before = project.head
    project.release("1.1.0")
    (project.deploy / "requirements.txt").write_text("# edited on the server\n")
    if staged:
        project.git(project.deploy, "add", "requirements.txt")
    log = project.run(expect=1)
    assert project.head == before
    assert project.recorded() == []
    assert "refusing to update to 1.1.0: tracked files have local changes (requirements.txt)" in log
    assert (project.deploy / "requirements.txt").read_text() == "# edited on the server\n"


def test_untracked_files_do_not_block_an_update(project: Project) -> None:
    (project.deploy / ".venv").mkdir()
    (project.deploy / ".venv" / "marker").write_text("x")
    (project.deploy / "validator.log").write_text("x")
    target = project.release("1.1.0")
    project.run()
    assert project.head == target
    assert (project.deploy / "validator.log").exists()


def test_the_ecosystem_file_and_the_autoupdater_work_together(project: Project) -> None:
    """An operator's pm2 settings live in the untracked ecosystem.local.js: updates go on."""
    for name in ("ecosystem.config.js", "ecosystem.local.example.js", ".gitignore"):
        shutil.copy(RUN_SH.parent / name, project.upstream / name)
    project.release("1.1.0")
    project.run()
    example = (project.deploy / "ecosystem.local.example.js").read_text()
    (project.deploy / "ecosystem.local.js").write_text(example.replace('ROLE: "validator"', 'ROLE: "miner"'))
    target = project.release("1.2.0")
    log = project.run()
    assert project.head == target and "refusing" not in log
    assert project.git(project.deploy, "status", "--porcelain") == ""
    if shutil.which("node"):
        script = "console.log(require('./ecosystem.config.js').apps.map((a) => a.name).join(' '))"
        done = subprocess.run(
            ["node", "-e", script], cwd=project.deploy, capture_output=True, text=True, timeout=30, check=True
        )
        assert done.stdout.split() == ["dojo-miner", "dojo-platform"]


def test_an_edited_ecosystem_file_is_refused_with_where_its_settings_go(project: Project) -> None:
    shutil.copy(RUN_SH.parent / "ecosystem.config.js", project.upstream / "ecosystem.config.js")
    project.release("1.1.0")
    project.run()
    edited = project.deploy / "ecosystem.config.js"
    text = edited.read_text()
    assert "const S = settings();" in text
    edited.write_text(text.replace("const S = settings();", 'const S = { ...settings(), ROLE: "miner" };'))
    project.release("1.2.0")
    log = project.run(expect=1)
    assert "tracked files have local changes (ecosystem.config.js)" in log
    assert "belong in ecosystem.local.js" in log


def test_diverged_history_refuses_the_update(project: Project) -> None:
    (project.deploy / "LOCAL").write_text("a commit made on the server\n")
    project.git(project.deploy, "add", "LOCAL")
    project.git(project.deploy, "commit", "--quiet", "-m", "local")
    before = project.head
    project.release("1.1.0")
    log = project.run(expect=1)
    assert project.head == before
    assert project.recorded() == []
    assert "refusing to update to 1.1.0: history diverged" in log
    assert "not a fast-forward" in log


def test_an_unhealthy_version_is_rolled_back_skipped_and_a_fixed_one_taken(project: Project) -> None:
    previous = project.head
    project.bad.write_text("1.1.0\n")
    bad = project.release("1.1.0", requirements="# the bad release changed this\n")

    log = project.run(expect=1)
    assert project.head == previous
    assert project.version == "1.0.0"
    assert (project.deploy / "requirements.txt").read_text() == "# nothing to install\n"
    assert project.recorded() == [
        PIP,
        "restart dojo-validator 1.1.0 1.1.0",
        "health 1.1.0",
        PIP,  # the previous requirements back
        "restart dojo-validator 1.0.0 1.0.0",
        "health 1.0.0",
    ]
    assert "health: version 1.1.0 crashed on start" in log
    assert "rolled back to 1.0.0" in log and "healthy" in log
    assert project.skip_file.read_text().split() == ["1.1.0", bad]

    log = project.run()
    assert project.head == previous
    assert len(project.recorded()) == 6, "the bad version was tried again"
    assert "version 1.1.0 failed its health check before" in log

    fixed = project.release("1.1.1")
    log = project.run()
    assert project.head == fixed
    assert project.version == "1.1.1"
    assert project.recorded()[6:] == [PIP, "restart dojo-validator 1.1.1 1.1.1", "health 1.1.1"]
    assert not project.skip_file.exists()


def test_still_unhealthy_after_the_rollback_is_reported(project: Project) -> None:
    project.bad.write_text("1.0.0\n1.1.0\n")
    project.release("1.1.0")
    log = project.run(expect=1)
    assert project.version == "1.0.0"
    assert "still unhealthy; the deployment needs an operator" in log


def test_a_failed_restart_counts_as_unhealthy(project: Project) -> None:
    previous = project.head
    project.release("1.1.0")
    log = project.run(expect=1, RESTART_CMD='test "$AUTOUPDATE_VERSION" != 1.1.0')
    assert project.head == previous
    assert "version 1.1.0 is unhealthy" in log
    assert "rolled back to 1.0.0" in log


def test_a_failed_install_is_undone_before_any_restart_and_retried_later(project: Project) -> None:
    python = _script(
        project.bin / "python-offline",
        'echo "pip $*" >> "$CALLS"\n! grep -q unavailable requirements.txt || { echo "no network"; exit 1; }\n',
    )
    previous = project.head
    project.release("1.1.0", requirements="# unavailable\n")
    log = project.run(expect=1, AUTOUPDATE_PYTHON=str(python))
    assert project.head == previous
    assert (project.deploy / "requirements.txt").read_text() == "# nothing to install\n"
    assert project.recorded() == [PIP, PIP]
    assert "pip: no network" in log
    assert not project.skip_file.exists()
    project.run(expect=1, AUTOUPDATE_PYTHON=str(python))
    assert len(project.recorded()) == 4, "not retried on the next check"


def test_the_health_check_is_retried_until_the_timeout(project: Project) -> None:
    counter = project.root / "attempts"
    health = _script(
        project.bin / "slow-health",
        f'echo x >> {counter}\n[ "$(wc -l < {counter})" -ge 3 ]\n',
    )
    target = project.release("1.1.0")
    log = project.run(HEALTH_CMD=f"bash {health}", HEALTH_TIMEOUT="20", HEALTH_INTERVAL="0.1")
    assert project.head == target
    assert counter.read_text().count("x") == 3
    assert "health check passed for 1.1.0 (attempt 3)" in log


def test_the_configured_branch_and_processes_are_used(project: Project) -> None:
    target = project.release("1.1.0", branch="release")
    project.run(AUTOUPDATE_BRANCH="release", AUTOUPDATE_PROCESSES="dojo-validator,dojo-synthetic")
    assert project.head == target
    assert project.recorded()[0] == "restart dojo-validator dojo-synthetic 1.1.0 1.1.0"


def test_a_failed_fetch_is_logged_and_changes_nothing(project: Project) -> None:
    before = project.head
    log = project.run(expect=1, AUTOUPDATE_REMOTE=str(project.root / "missing.git"))
    assert project.head == before
    assert "fetch of" in log and "failed; will retry" in log


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"UPDATE_INTERVAL": "20m"}, "UPDATE_INTERVAL must be whole seconds, got '20m'"),
        ({"AUTOUPDATE_VERIFY": "maybe"}, "AUTOUPDATE_VERIFY must be tag (follow signed release tags) or off"),
    ],
)
def test_a_bad_setting_stops_with_a_message(project: Project, setting: dict[str, str], message: str) -> None:
    log = project.run(expect=2, **setting)
    assert message in log


# --- signed releases ----------------------------------------------------------------------

# What a malicious release's setup.py does when anything runs it (pip does, on install).
MARKING_SETUP_PY = 'import os, pathlib\npathlib.Path(os.environ["MARKER"]).write_text("setup.py ran")\n'


def _tree_is_clean(project: Project) -> bool:
    return project.git(project.deploy, "status", "--porcelain", "--untracked-files=no") == ""


def test_a_signed_release_is_verified_then_installed(project: Project) -> None:
    target = project.release("1.1.0", setup_py=MARKING_SETUP_PY)
    log = project.run()
    assert project.head == target
    assert project.recorded() == [PIP, "restart dojo-validator 1.1.0 1.1.0", "health 1.1.0"]
    assert project.marker.exists()  # the fake pip does run setup.py: the refusals below mean something
    assert 'verify: Good "git" signature for maintainer@example.org with ED25519 key' in log
    assert "release v1.1.0 (" in log and "is signed by an allowed signer" in log


@pytest.mark.parametrize(
    "tag, reason",
    [
        (
            "unsigned",
            "refusing v1.1.0: its signature is missing or not made by a key in the pinned allowed signers",
        ),
        (
            "stranger",
            "refusing v1.1.0: its signature is missing or not made by a key in the pinned allowed signers",
        ),
        ("lightweight", "refusing v1.1.0: it is a lightweight tag, which carries no signature"),
        (None, "refusing to update: origin/main (%s) says version 1.1.0 but no release tag v1.1.0 is on it"),
    ],
)
def test_an_unsigned_or_wrongly_signed_release_is_refused_with_nothing_run(
    project: Project, tag: str | None, reason: str
) -> None:
    before = project.head
    # The release lists its own signer in its allowed_signers too: the pinned copy decides.
    stranger = signers_line(project.keys["maintainer"]) + signers_line(
        project.keys["stranger"], "stranger@example.org"
    )
    target = project.release(
        "1.1.0",
        setup_py=MARKING_SETUP_PY,
        requirements="# changed, so that an update would run pip\n",
        extra={"allowed_signers": stranger, "run.sh": 'touch "$MARKER"\n'},
        tag=tag,
    )
    log = project.run(expect=1)
    assert (reason % target[:12] if "%s" in reason else reason) in log
    assert project.head == before and project.version == "1.0.0" and _tree_is_clean(project)
    assert not (project.deploy / "setup.py").exists()
    assert not project.marker.exists(), "something of the refused release ran"
    assert project.recorded() == []  # no pip, no restart, no health check


def test_a_signed_tag_published_under_a_newer_name_is_refused(project: Project) -> None:
    before = project.head
    project.release("0.9.0")  # an old release, properly signed
    old_tag = project.git(project.upstream, "rev-parse", "v0.9.0")
    project.git(project.upstream, "update-ref", "refs/tags/v2.0.0", old_tag)
    project.git(project.upstream, "push", "--quiet", "origin", "refs/tags/v2.0.0")
    log = project.run(expect=1)
    assert "refusing v2.0.0: the tag object was made as 'v0.9.0', not v2.0.0" in log
    assert project.head == before and project.recorded() == []


def test_a_release_cannot_bring_the_keys_that_verify_it(project: Project) -> None:
    both = signers_line(project.keys["maintainer"]) + signers_line(
        project.keys["stranger"], "stranger@example.org"
    )
    project.release("1.1.0", extra={"allowed_signers": both})  # signed by the maintainer: taken
    project.run()
    assert project.version == "1.1.0"
    assert (project.deploy / "allowed_signers").read_text() == both
    project.release("1.2.0", tag="stranger")
    log = project.run(expect=1)
    assert project.version == "1.1.0"
    assert (
        "refusing v1.2.0: its signature is missing or not made by a key in the pinned allowed signers" in log
    )
    assert project.recorded().count("health 1.2.0") == 0


def test_the_signed_release_is_taken_not_the_commits_after_it(project: Project) -> None:
    release = project.release("1.1.0")
    project.release(None)  # work after the release, on the branch
    project.run()
    assert project.head == release
    log = project.run()
    assert project.head == release
    assert "no release newer than the running 1.1.0 on origin/main" in log


def test_without_pinned_signers_every_release_is_refused(project: Project) -> None:
    (project.deploy / ".git" / "dojo-allowed-signers").unlink()
    before = project.head
    project.release("1.1.0", setup_py=MARKING_SETUP_PY)
    log = project.run(expect=1)
    assert "WARNING: no allowed signers are pinned at" in log
    assert "refusing v1.1.0: no allowed signers are pinned at" in log and "bash run.sh --pin-signers" in log
    assert project.head == before and not project.marker.exists() and project.recorded() == []


def test_signers_pinned_outside_the_repository(project: Project) -> None:
    (project.deploy / ".git" / "dojo-allowed-signers").unlink()
    pinned = project.root / "etc" / "dojo-allowed-signers"
    pinned.parent.mkdir()
    pinned.write_text(signers_line(project.keys["maintainer"]))
    target = project.release("1.1.0")
    project.run(AUTOUPDATE_ALLOWED_SIGNERS=str(pinned))
    assert project.head == target


def test_pinning_shows_the_fingerprints_and_refuses_a_list_without_keys(project: Project) -> None:
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{project.keys['maintainer']}.pub"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()[1]  # fmt: skip
    assert f"signer maintainer@example.org: {fingerprint} (ssh-ed25519, 256 bits)" in project.pin_log
    assert "pinned 1 allowed signer key(s) from allowed_signers at HEAD" in project.pin_log
    pinned = project.deploy / ".git" / "dojo-allowed-signers"
    assert pinned.read_text() == (project.deploy / "allowed_signers").read_text()

    nobody = project.root / "nobody"
    nobody.write_text("# no keys yet\n")
    assert "lists no key; nothing pinned" in project.pin(str(nobody), expect=2)
    garbage = project.root / "garbage"
    garbage.write_text("maintainer@example.org not-a-key\n")
    assert "line 1 is not an allowed-signers entry" in project.pin(str(garbage), expect=2)
    assert pinned.read_text() == (project.deploy / "allowed_signers").read_text()
    # An install from a release tag's checkout (a detached HEAD) pins the same way.
    pinned.unlink()
    project.git(project.deploy, "checkout", "--quiet", "--detach")
    assert "pinned 1 allowed signer key(s)" in project.pin()
    assert pinned.read_text() == (project.deploy / "allowed_signers").read_text()


def test_verification_off_follows_the_branch_unverified_and_says_so(project: Project) -> None:
    target = project.release("1.1.0", tag=None)
    log = project.run(AUTOUPDATE_VERIFY="off")
    assert project.head == target
    assert "WARNING: AUTOUPDATE_VERIFY=off: release signatures are NOT verified" in log
    assert "WARNING: taking version 1.1.0" in log and "unverified" in log


def _fake_pm2(project: Project, uptime: int = 60) -> None:
    """pm2 that records its arguments; `jlist` reports the process errored when the version
    on disk is listed as bad, else online for `uptime` seconds."""
    _script(
        project.bin / "pm2",
        'echo "pm2 $*" >> "$CALLS"\n'
        "case $1 in\n"
        "  describe) exit 1 ;;\n"
        f'  jlist) v=$({VERSION_OF}); status=online; grep -qx "$v" "$BAD" && status=errored\n'
        f'    printf \'[{{"name": "dojo-validator", "pm2_env": {{"status": "%s", '
        f'"pm_uptime": %s000}}}}]\' "$status" $(($(date +%s) - {uptime})) ;;\n'
        "esac\n",
    )


def _pm2_env(project: Project, **extra: str) -> dict[str, str]:
    return {
        "PATH": f"{project.bin}:{project.env['PATH']}",
        "AUTOUPDATE_PYTHON": sys.executable,
        "RESTART_CMD": "",
        "HEALTH_CMD": "",
        **extra,
    }


def test_the_default_commands_restart_under_pm2_and_read_pm2_jlist(project: Project) -> None:
    _fake_pm2(project)
    target = project.release("1.1.0")
    project.run(**_pm2_env(project))
    assert project.head == target
    assert project.recorded() == ["pm2 restart dojo-validator --update-env", "pm2 jlist"]


@pytest.mark.parametrize("uptime", [60, 2], ids=["errored", "not-up-long-enough"])
def test_the_default_health_check_rolls_back_a_process_that_is_not_online(
    project: Project, uptime: int
) -> None:
    _fake_pm2(project, uptime=uptime)
    if uptime == 60:
        project.bad.write_text("1.1.0\n")
    previous = project.head
    project.release("1.1.0")
    log = project.run(expect=1, **_pm2_env(project, HEALTH_STABLE="10"))
    assert project.head == previous
    expected = (
        r"health: dojo-validator: errored"
        if uptime == 60
        else r"health: dojo-validator: online for [2-4]s, not yet 10s"
    )
    assert re.search(expected, log), log
    assert project.recorded().count("pm2 restart dojo-validator --update-env") == 2


def test_the_loop_starts_the_neuron_updates_and_re_executes_a_changed_run_sh(project: Project) -> None:
    _fake_pm2(project)
    new_run_sh = RUN_SH.read_text() + "# changed in 1.1.0\n"
    target = project.release("1.1.0", extra={"run.sh": new_run_sh})
    out = project.root / "autoupdater.log"
    env = {**project.env, **_pm2_env(project, UPDATE_INTERVAL="1")}
    flags = ["--netuid", "98", "--neuron.type", "validator"]
    with out.open("w") as sink:
        process = subprocess.Popen(
            ["bash", "run.sh", *flags], cwd=project.deploy, env=env, stdout=sink, stderr=sink
        )
    try:
        deadline = time.monotonic() + 20
        while out.read_text().count("next check in") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.read_text().count("next check in") >= 2, out.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log = out.read_text()
    assert process.returncode == 0, log
    for line in log.splitlines():
        assert LOG_LINE.match(line), line
    assert project.head == target
    assert "run.sh changed; re-executing the new autoupdater" in log
    assert log.count("settings:") == 2
    assert log.rstrip().endswith("run.sh: stopping")
    python = sys.executable
    starts = [call for call in project.recorded() if call.startswith("pm2 start")]
    assert starts == [
        f"pm2 start main_validator.py --name dojo-validator --interpreter {python} --no-treekill -- {' '.join(flags)}"
    ]


def test_setup_py_takes_the_version_the_autoupdater_compares() -> None:
    root = RUN_SH.parent
    done = subprocess.run(
        [sys.executable, "setup.py", "--version"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    version = re.search(
        r'^__version__ = "(.*)"', (root / "template" / "__init__.py").read_text(), re.M
    ).group(1)
    assert done.stdout.split()[-1] == version


# --- under real pm2 -----------------------------------------------------------------------

# A neuron for pm2: it runs until stopped, except the versions listed in $BAD, which exit at once.
NEURON_PY = """\
import os, re, sys, time
version = re.search(r'__version__ = "(.*)"', open("template/__init__.py").read()).group(1)
print("start", version, flush=True)
if version in open(os.environ["BAD"]).read().split():
    sys.exit(1)
while True:
    time.sleep(1)
"""


def _ecosystem_validator() -> dict:
    """The dojo-validator app of the repository's ecosystem.config.js."""
    script = "console.log(JSON.stringify(require('./ecosystem.config.js').apps))"
    done = subprocess.run(
        ["node", "-e", script], cwd=RUN_SH.parent, capture_output=True, text=True, timeout=30, check=True
    )
    return {app["name"]: app for app in json.loads(done.stdout)}["dojo-validator"]


@NEEDS_PM2
def test_a_rollback_under_pm2_with_the_ecosystem_restart_delay_ends_healthy(project: Project) -> None:
    """With the ecosystem file's restart_delay, pm2 is bringing the crashed release back itself
    when the rollback asks for a restart, and refuses it ("Process with pid N already exists");
    the process it brings back runs the previous version, and the rollback must see that."""
    validator = _ecosystem_validator()
    assert validator["restart_delay"] >= 1000, "the ecosystem file has no restart delay to test against"
    (project.deploy / "neuron.py").write_text(NEURON_PY)
    app = {
        key: validator[key]
        for key in ("restart_delay", "kill_timeout", "autorestart", "treekill")
        if key in validator
    }
    app.update(name="dojo-validator", script="neuron.py", interpreter=sys.executable, cwd=str(project.deploy))
    (project.root / "pm2-apps.json").write_text(json.dumps({"apps": [app]}))
    env = {**project.env, "BAD": str(project.bad)}
    with own_pm2(project.root / "pm2-home", env) as pm2:
        pm2("start", str(project.root / "pm2-apps.json"))
        pm2.wait_for("dojo-validator online", lambda p: p["dojo-validator"]["status"] == "online", 30)
        previous = project.head
        project.bad.write_text("1.1.0\n")
        project.release("1.1.0")
        log = project.run(
            expect=1,
            PM2_HOME=str(pm2.home),
            AUTOUPDATE_PYTHON=sys.executable,
            RESTART_CMD="",
            HEALTH_CMD="",
            HEALTH_TIMEOUT="20",
            HEALTH_INTERVAL="0.5",
            HEALTH_STABLE="2",
        )
        assert project.head == previous
        assert "version 1.1.0 is unhealthy" in log
        assert "needs an operator" not in log, log
        assert re.search(r"rolled back to 1\.0\.0 \(\w+\); healthy", log), log
        assert pm2.processes()["dojo-validator"]["status"] == "online"
        assert pm2.log("dojo-validator").split("start")[-1].strip() == "1.0.0"
