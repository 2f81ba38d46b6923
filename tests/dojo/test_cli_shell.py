"""The interactive ``dojo`` shell, typed into through prompt_toolkit's pipe input.

Most tests talk to the contract platform behind ``httpx.MockTransport`` (real sr25519
signatures, a real session cache on disk), which can be made to forget sessions;
``test_whole_flow_against_the_real_platform`` runs the shell against the real platform
under uvicorn on loopback, with the miner registered on a LocalChain.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import stat
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, get_common_complete_suffix
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from commons.dojo_api import DojoAPI, KeyKind
from commons.dojo_wire import SessionOut
from dojo.cli.platform_account import MinerSessionFiles, hotkey_names, wallet_names
from dojo.cli.shell import CommandCompleter, run_shell
from tests.commons.contract_platform import ContractPlatform

ENTER = "\r"
TAB = "\t"


def _wait_for(condition, what, timeout: float = 10.0) -> None:
    """Wait for ``condition``; ``what`` (text, or a function giving it) says what never came."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"the shell never got to: {what() if callable(what) else what}")
        time.sleep(0.005)


def drive_shell(keys: str, **options) -> tuple[int, str]:
    """Run the shell on typed keys; returns its exit code and everything it printed.

    At the prompts with a completion menu (wallet names, key selection) prompt_toolkit
    computes completions in background tasks, so a TAB typed before the completions of the
    word exist would do nothing, and a key typed right after it would race the insertion.
    The typist therefore watches the prompt's buffer, as a person watches the screen: it
    presses TAB once the menu is up, and goes on once the completion is in. The command
    prompt completes readline-style, inside the TAB key press, so there it only waits for
    the word to be typed.
    """
    printed = io.StringIO()
    console = Console(file=printed, width=400, color_system=None, highlight=False)
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()) as app_session:

        def buffer():
            app = app_session.app
            return app.current_buffer if app is not None else None

        def type_keys() -> None:
            parts = keys.split(TAB)
            for part in parts[:-1]:
                pipe.send_text(part)
                word = part.split(ENTER)[-1]

                def ready(word=word) -> bool:
                    b = buffer()
                    if b is None or not b.text.endswith(word):
                        return False
                    return b.complete_state is not None or not b.complete_while_typing()

                _wait_for(ready, lambda word=word: f"completions for {word!r}; the line is {buffer().text!r}")
                b = buffer()
                before, menu = b.text, b.complete_while_typing()
                pipe.send_text(TAB)
                if menu:
                    _wait_for(lambda before=before: buffer().text != before, f"completing {word!r}")
            pipe.send_text(parts[-1])
            pipe.close()  # end of input after the typed keys: a shell waiting for more gets EOF

        failures: list[BaseException] = []

        def typist_main() -> None:
            try:
                type_keys()
            except BaseException as exc:  # reported by the test thread
                failures.append(exc)
                pipe.close()

        typist = threading.Thread(target=typist_main, daemon=True)
        typist.start()
        code = run_shell(console=console, **options)
        typist.join(timeout=10)
    if failures:
        raise failures[0]
    return code, printed.getvalue()


def lines(*typed: str) -> str:
    return "".join(t + ENTER for t in typed)


def shown(out: str, title: str) -> list[tuple[str, int, str]]:
    """The keys of the last list titled ``title`` ("All API keys", "Remaining subscription
    keys"): (prefix, id, state) per key, as the shell shows them."""
    block = out.rsplit(f"✅ {title} (", 1)[1].split("\n")[1:]
    keys = []
    for line in block:
        found = re.fullmatch(
            r"  (\S+)  id (\S+)  (.+?)  created \d{4}-\d\d-\d\d \d\d:\d\d UTC  last used (.+)", line
        )
        if not found:
            break
        keys.append((found[1], int(found[2]), found[3]))
    return keys


@pytest.fixture
def platform() -> ContractPlatform:
    return ContractPlatform()


@pytest.fixture
def miner(make_wallet, platform):
    wallet = make_wallet("miner", hotkey="hot1")
    platform.registered.add(wallet.hotkey.ss58_address)
    return wallet


@pytest.fixture
def cache(tmp_path: Path) -> MinerSessionFiles:
    return MinerSessionFiles(tmp_path / "sessions")


@pytest.fixture
def options(platform, cache):
    return {"session_cache": cache, "transport": httpx.MockTransport(platform.handler)}


def _session_posts(platform: ContractPlatform) -> int:
    return sum(r.url.path == "/api/v1/miner/session" for r in platform.requests)


def test_whole_flow_with_tab_completion(miner, wallet_path, platform, cache, options):
    keys = (
        lines("n", str(wallet_path))
        + "mi"
        + TAB
        + ENTER  # coldkey name completed from the wallet directory
        + "ho"
        + TAB
        + ENTER  # hotkey name completed from the wallet's hotkeys
        + lines(platform.base_url)
        + "authen"
        + TAB
        + ENTER  # commands complete too
        + lines(
            "api_key list",
            "api_key generate",
            "api_key generate",
            "subscription_key generate",
            "subscription_key list",
            "help",
            "bogus",
            "exit",
        )
    )
    code, out = drive_shell(keys, **options)
    assert code == 0
    assert "✅ Wallet coldkey name and hotkey name set successfully." in out
    address = miner.hotkey.ss58_address
    assert f"✅ Authenticated as {address} on {platform.base_url}" in out
    assert "⚠️  No API keys found, please generate one." in out
    api_keys = platform.keys[address]["api-keys"]
    assert len(api_keys) == 2
    # The full key once, when generated; lists show prefixes.
    assert f"✅ New API key: {api_keys[0].secret}" in out
    assert shown(out, "All API keys") == [(k.prefix, k.id, "active") for k in api_keys]
    [sub] = platform.keys[address]["subscription-keys"]
    assert shown(out, "All subscription keys") == [(sub.prefix, sub.id, "active")]
    assert "api_key generate|list|delete" in out  # help
    assert "⚠️  Unknown command 'bogus': the commands are authenticate, api_key, subscription_key" in out
    assert _session_posts(platform) == 1

    session_file = cache.path_for(platform.base_url, address)
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(session_file.parent.stat().st_mode) == 0o700
    cached = json.loads(session_file.read_text())
    assert cached["token"] in platform.sessions and cached["hotkey"] == address

    # A second run: the cached session is used (no new login); delete a key chosen at the
    # selection prompt by its prefix.
    victim = api_keys[0]
    code, out = drive_shell(
        lines("n", str(wallet_path), "miner", "hot1", "")  # "" takes the default platform URL
        + lines("api_key delete", victim.prefix, "api_key list", "exit"),
        default_platform=platform.base_url,
        **options,
    )
    assert code == 0
    assert _session_posts(platform) == 1
    assert victim.disabled and not api_keys[1].disabled
    assert f"✅ Disabled API key {victim.prefix}." in out
    assert shown(out, "Remaining API keys") == [(api_keys[1].prefix, api_keys[1].id, "active")]
    assert shown(out, "All API keys") == [(api_keys[1].prefix, api_keys[1].id, "active")]


def test_default_wallet_path_and_retries_on_bad_answers(
    monkeypatch, tmp_path, make_wallet, platform, options
):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    from template.wallets import create_wallet

    wallet = create_wallet("cold", "hot", str(home / ".bittensor" / "wallets"))
    platform.registered.add(wallet.hotkey.ss58_address)
    code, out = drive_shell(
        lines("maybe", "n", str(tmp_path / "nowhere"), "y")
        + lines("nope", "cold", "missing", "hot")
        + lines("ftp://x", platform.base_url, "subscription_key list", "exit"),
        default_wallet_path="~/.bittensor/wallets",
        **options,
    )
    assert code == 0
    assert "Please answer y or n." in out
    assert f"❌ Invalid wallet path {tmp_path / 'nowhere'}, please try again." in out
    assert "❌ Coldkey path is invalid" in out and "known wallets: ['cold']" in out
    assert "❌ Hotkey path is invalid" in out and "known hotkeys: ['hot']" in out
    assert "not a platform URL: 'ftp://x'" in out
    # A command without a session logs in first, with the hotkey.
    assert "ℹ️  no valid session; logging in with the hotkey" in out
    assert "⚠️  No subscription keys found, please generate one." in out


def test_refusals_are_shown_and_the_shell_goes_on(make_wallet, wallet_path, platform, options):
    make_wallet("stranger", hotkey="h")  # not registered on the subnet
    code, out = drive_shell(
        lines(
            "n", str(wallet_path), "stranger", "h", platform.base_url, "authenticate", "api_key list", "exit"
        ),
        **options,
    )
    assert code == 0
    assert out.count("❌") == 2
    assert "403 hotkey" in out and "is not registered on the subnet" in out


def test_expired_or_forgotten_sessions_log_in_again(miner, wallet_path, platform, cache, options):
    address = miner.hotkey.ss58_address
    # An expired session on disk is not used.
    cache.save(
        platform.base_url,
        address,
        SessionOut(token="old", expires_at=datetime.now(timezone.utc) - timedelta(1)),
    )
    typed = lines("n", str(wallet_path), "miner", "hot1", platform.base_url, "api_key list", "exit")
    code, out = drive_shell(typed, **options)
    assert code == 0 and _session_posts(platform) == 1
    assert "no valid session" in out

    # A fresh-looking session the platform has forgotten (restarted): one new login, then the command.
    platform.sessions.clear()
    code, out = drive_shell(typed, **options)
    assert code == 0 and _session_posts(platform) == 2
    assert "the platform refused the cached session; logging in again" in out
    assert "⚠️  No API keys found" in out
    assert cache.load(platform.base_url, address).token in platform.sessions

    # logout ends the session on the platform and forgets it here.
    token = cache.load(platform.base_url, address).token
    code, out = drive_shell(typed.replace("api_key list", "logout\rlogout"), **options)
    assert "✅ Session cleared." in out and "ℹ️  No cached session." in out
    assert cache.load(platform.base_url, address) is None
    assert token not in platform.sessions


def test_end_of_input_leaves_cleanly(wallet_path):
    code, out = drive_shell(lines("n"))
    assert code == 0


def test_wallet_and_hotkey_names_for_completion(make_wallet, wallet_path):
    make_wallet("alice", hotkey="h1")
    make_wallet("alice", hotkey="h2")
    make_wallet("bob", hotkey="default")
    (wallet_path / "not-a-wallet").mkdir()
    assert wallet_names(wallet_path) == ["alice", "bob"]
    assert hotkey_names(wallet_path, "alice") == ["h1", "h2"]  # h1pub.txt etc. are not hotkeys
    assert hotkey_names(wallet_path, "nobody") == []


@pytest.mark.parametrize(
    ("typed", "completion", "start", "line"),
    [
        ("api_key gen", "generate ", -3, "api_key generate "),
        ("api_key   GEN", "generate ", -3, "api_key   generate "),  # the word typed is replaced, case and all
        ("api", "api_key ", -3, "api_key "),  # the space: the next word typed does not glue on
        ("api_key", "api_key ", -7, "api_key "),
        ("subscription_key d", "delete ", -1, "subscription_key delete "),
        ("authen", "authenticate ", -6, "authenticate "),
    ],
)
def test_a_command_word_completes_in_place(typed, completion, start, line):
    document = Document(typed)
    [found] = CommandCompleter().get_completions(document, CompleteEvent(completion_requested=True))
    assert (found.text, found.start_position) == (completion, start)
    buffer = Buffer(document=document)
    buffer.apply_completion(found)
    assert buffer.text == line and buffer.cursor_position == len(line)


def test_several_command_words_are_listed_not_guessed():
    event = CompleteEvent(completion_requested=True)
    for typed, words in [("api_key ", ["generate", "list", "delete"]), ("a", ["authenticate", "api_key"])]:
        document = Document(typed)
        found = list(CommandCompleter().get_completions(document, event))
        assert [c.display_text for c in found] == words  # shown as words, without the space
        # Nothing in common to insert: readline-style TAB lists them and leaves the line alone.
        assert get_common_complete_suffix(document, found) == ""
    assert list(CommandCompleter().get_completions(Document("bogus "), event)) == []


def test_tab_completes_commands_in_place_and_a_group_alone_lists_its_actions(
    miner, wallet_path, platform, options
):
    code, out = drive_shell(
        lines("n", str(wallet_path), "miner", "hot1", platform.base_url)
        + f"api_key gen{TAB}{ENTER}"
        + f"api_key {TAB}li{TAB}{ENTER}"  # TAB on no letters lists the actions and inserts none
        + f"subs{TAB}gen{TAB}{ENTER}"  # the space after subscription_key came with the TAB
        + lines("api_key", "subscription_key", "exit"),
        **options,
    )
    assert code == 0
    address = miner.hotkey.ss58_address
    [api_key] = platform.keys[address]["api-keys"]
    [sub] = platform.keys[address]["subscription-keys"]
    assert f"✅ New API key: {api_key.secret}" in out
    assert out.count("✅ All API keys (1):") == 2  # after generate, and listed
    assert shown(out, "All API keys") == [(api_key.prefix, api_key.id, "active")]
    assert f"✅ New subscription key: {sub.secret}" in out
    assert "ℹ️  api_key takes an action: generate | list | delete (e.g. `api_key list`)." in out
    assert "ℹ️  subscription_key takes an action: generate | list | delete" in out
    assert "Unknown" not in out


@pytest.fixture(scope="module")
def real_platform(tmp_path_factory):
    from tests.dojo.live_platform import live_platform

    with live_platform(tmp_path_factory.mktemp("platform")) as live:
        yield live


def test_whole_flow_against_the_real_platform(real_platform, make_wallet, wallet_path, cache, monkeypatch):
    miner = make_wallet("miner", hotkey="hot1")
    real_platform.register(miner)
    monkeypatch.setenv("DOJO_API_BASE_URL", real_platform.url)  # the default the prompt offers

    async def keys():
        async with DojoAPI(real_platform.url) as api:
            await api.login(miner.hotkey)
            return await api.list_keys(KeyKind.API), await api.list_keys(KeyKind.SUBSCRIPTION)

    async def earlier_key():
        """A key whose prefix is in mixed case, to be typed as it is shown: a key whose seven
        random characters hold no capital (one in some forty) is disabled and another made."""
        async with DojoAPI(real_platform.url) as api:
            await api.login(miner.hotkey)
            while True:
                key = await api.generate_api_key()
                if key.prefix != key.prefix.lower():
                    return key
                await api.disable_key(KeyKind.API, key.id)

    old_key = asyncio.run(earlier_key())
    code, out = drive_shell(
        lines("n", str(wallet_path), "miner", "hot1", "")
        + lines("authenticate", f"API_KEY DELETE {old_key.prefix}")
        + lines("api_key generate", "subscription_key generate", "subscription_key generate")
        + lines("subscription_key delete")
        + "dojo_sub_"
        + TAB
        + ENTER  # the selection prompt completes the key prefixes
        + lines("api_key list", "exit"),
        session_cache=cache,
    )
    assert code == 0

    [*put_aside, disabled, api_key], subs = asyncio.run(keys())
    assert all(k.disabled for k in put_aside)
    assert disabled.id == old_key.id and disabled.disabled
    assert f"✅ Disabled API key {old_key.prefix}." in out
    assert f"✅ Authenticated as {miner.hotkey.ss58_address} on {real_platform.url}" in out
    assert "✅ New API key: dojo_api_" in out
    assert shown(out, "All API keys") == [(api_key.prefix, api_key.id, "active")]
    # "dojo_sub_" TAB completes to the first listed prefix: that subscription key is disabled.
    assert [s.disabled for s in subs] == [True, False]
    assert f"✅ Disabled subscription key {subs[0].prefix}." in out
    assert shown(out, "Remaining subscription keys") == [(subs[1].prefix, subs[1].id, "active")]
    assert "❌" not in out


def test_session_cache_skips_what_it_cannot_trust(tmp_path):
    cache = MinerSessionFiles(tmp_path / "s")
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    path = cache.save("http://127.0.0.1:8080/", "5Fhot", SessionOut(token="t1", expires_at=later))
    assert path == tmp_path / "s" / "127.0.0.1_8080" / "5Fhot.json"
    assert cache.load("http://127.0.0.1:8080", "5Fhot").token == "t1"
    assert cache.load("http://127.0.0.1:9090", "5Fhot") is None  # another platform
    # Inside the expiry margin: treated as expired, so no command starts with a dying token.
    cache.save(
        "http://127.0.0.1:8080", "5Fhot", SessionOut(token="t2", expires_at=datetime.now(timezone.utc))
    )
    assert cache.load("http://127.0.0.1:8080", "5Fhot") is None
    path.write_text("{not json")
    assert cache.load("http://127.0.0.1:8080", "5Fhot") is None
    # A file copied from another hotkey's place is not used for this one.
    other = cache.save("http://127.0.0.1:8080", "5Fother", SessionOut(token="t3", expires_at=later))
    path.write_text(other.read_text())
    assert cache.load("http://127.0.0.1:8080", "5Fhot") is None
    assert not list(path.parent.glob(".session-*"))  # no temporary files left behind


def test_dojo_without_arguments_opens_the_shell(miner, wallet_path, tmp_path, monkeypatch, capsys):
    from dojo.cli import main

    monkeypatch.setenv("DOJO_SESSION_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("DOJO_API_BASE_URL", "http://127.0.0.1:1")
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text(lines("n", str(wallet_path), "miner", "hot1", "", "help", "exit"))
        assert main([]) == 0
    out = capsys.readouterr().out
    assert "✅ Wallet coldkey name and hotkey name set successfully." in out
    assert "ℹ️  Platform: http://127.0.0.1:1." in out  # the default came from DOJO_API_BASE_URL
    assert "subscription_key generate|list|delete" in out


def test_an_unknown_action_names_the_valid_ones(miner, wallet_path, platform, options):
    code, out = drive_shell(
        lines("n", str(wallet_path), "miner", "hot1", platform.base_url)
        + lines("api_key remove", "subscription_key delete a b", "exit"),
        **options,
    )
    assert code == 0
    assert "⚠️  Unknown action 'remove' for api_key: the actions are generate, list, delete" in out
    assert "⚠️  subscription_key delete takes one key: its id or prefix" in out


def test_the_delete_picker_lists_its_choices_and_asks_before_disabling_the_miners_key(
    miner, wallet_path, platform, options
):
    address = miner.hotkey.ss58_address
    code, _ = drive_shell(
        lines(
            "n",
            str(wallet_path),
            "miner",
            "hot1",
            platform.base_url,
            "api_key generate",
            "api_key generate",
            "exit",
        ),
        **options,
    )
    assert code == 0
    spare, used = platform.keys[address]["api-keys"]
    start = lines("n", str(wallet_path), "miner", "hot1", platform.base_url)
    # The miner runs with `used` in its DOJO_API_KEY; picked by its id, it is kept when the answer is no.
    code, out = drive_shell(
        start + lines("api_key delete", str(used.id), "n", "exit"), miner_api_key=used.secret, **options
    )
    assert code == 0
    assert "ℹ️  Which API key to disable? Type its id or its prefix" in out
    assert shown(out, "Active API keys") == [
        (spare.prefix, spare.id, "active"),
        (used.prefix, used.id, "active, the miner's DOJO_API_KEY"),
    ]
    assert f"⚠️  {used.prefix} is the miner's DOJO_API_KEY: once it is disabled the miner refuses tasks" in out
    assert f"ℹ️  Kept {used.prefix}." in out and not used.disabled
    # Listed, it is marked too; confirmed, it is disabled.
    code, out = drive_shell(
        start + lines("api_key list", f"api_key delete {used.prefix}", "y", "exit"),
        miner_api_key=used.secret,
        **options,
    )
    assert code == 0
    assert (used.prefix, used.id, "active, the miner's DOJO_API_KEY") in shown(out, "All API keys")
    assert used.disabled and not spare.disabled
    assert shown(out, "Remaining API keys") == [(spare.prefix, spare.id, "active")]
    # Another key goes without a question.
    code, out = drive_shell(
        start + lines(f"api_key delete {spare.id}", "exit"), miner_api_key=used.secret, **options
    )
    assert spare.disabled and "anyway?" not in out and "✅ No API keys left." in out
