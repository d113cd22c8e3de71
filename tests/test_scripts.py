"""Shared script machinery: keepalived word splitting, security checks, running scripts."""

from __future__ import annotations

import os
import pwd
import signal
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvrrpd.script_exec import run_script
from pyvrrpd.scripts import (
    ScriptUser,
    check_script,
    default_script_user,
    kill_process_group,
    resolve_script_user,
    script_security_problems,
    shell_command,
    split_script,
)
from tests.script_helpers import (
    kill_quietly,
    pid_alive,
    public_dir,
    wait_dead,
    wait_file,
    write_script,
)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (file ownership, setuid)")


# --- split_script ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "argv"),
    [
        ("/bin/true", ["/bin/true"]),
        ("  /x   a\tb  ", ["/x", "a", "b"]),
        ("/x 'a b' \"c d\"", ["/x", "a b", "c d"]),
        ("/x a'b c'd", ["/x", "ab cd"]),
        ("/x 'it\"s'", ["/x", 'it"s']),
        ("/x ''", ["/x", ""]),
        (r"/x a\ b", ["/x", "a b"]),
        (r"/x \n\t\x41\101\cA\q", ["/x", "\n\tAA\x01q"]),
        (r"/x 'a\'b'", ["/x", "a'b"]),  # escapes work inside quotes too (unlike sh)
    ],
)
def test_split_script(text: str, argv: list[str]) -> None:
    assert split_script(text) == argv


@pytest.mark.parametrize("text", ["", "   ", "/x 'open", '/x "open', "/x trailing\\"])
def test_split_script_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        split_script(text)


_WORD = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"),
    max_size=8,
)


@given(st.lists(_WORD, min_size=1, max_size=5))
def test_split_script_roundtrip(words: list[str]) -> None:
    """Double-quoting every word with \\ and " escaped splits back to the same words."""
    text = " ".join('"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in words)
    assert split_script(text) == words


def test_shell_command_quotes_all_but_redirection() -> None:
    assert shell_command(["/x", "a b", "it's"]) == "'/x' 'a b' 'it'\\''s'"
    assert shell_command(["</etc/hosts"]) == "</etc/hosts"


# --- users ----------------------------------------------------------------------------


def test_resolve_script_user() -> None:
    nobody = pwd.getpwnam("nobody")
    user = resolve_script_user("nobody")
    assert (user.uid, user.gid, user.groups) == (nobody.pw_uid, nobody.pw_gid, ())
    assert resolve_script_user("nobody", "root").gid == 0
    assert nobody.pw_gid in resolve_script_user("nobody", ":").groups
    with pytest.raises(ValueError, match="does not exist"):
        resolve_script_user("no-such-user-pyvrrpd")
    with pytest.raises(ValueError, match="group"):
        resolve_script_user("nobody", "no-such-group-pyvrrpd")


def test_default_script_user() -> None:
    assert default_script_user(("nobody", None), True).uid == pwd.getpwnam("nobody").pw_uid
    try:
        pwd.getpwnam("keepalived_script")
    except KeyError:
        assert default_script_user(None, False) == ScriptUser.current()
        with pytest.raises(ValueError, match="enable_script_security"):
            default_script_user(None, True)
    else:  # pragma: no cover - depends on the host
        assert default_script_user(None, True).name == "keepalived_script"


# --- security -------------------------------------------------------------------------


@needs_root
def test_security_refuses_script_in_world_writable_dir(tmp_path: Path) -> None:
    bad = tmp_path / "open"
    bad.mkdir()
    bad.chmod(0o777)
    script = write_script(bad / "notify.sh", "exit 0\n")
    problems = script_security_problems(str(script))
    assert problems == [f"{bad}: directory writable by non-root (mode drwxrwxrwx)"]

    check = check_script([str(script), "arg"], ScriptUser(0, 0), script_security=True)
    assert not check.ok
    assert "unsafe permissions" in check.problems[0] and str(bad) in check.problems[0]
    # Without enable_script_security it only warns.
    check = check_script([str(script)], ScriptUser(0, 0), script_security=False)
    assert check.ok and "unsafe permissions" in check.warnings[0]
    # Run as an unprivileged user, keepalived does not check.
    assert script_security_problems(str(script), resolve_script_user("nobody")) == []
    # The sticky bit makes a world-writable directory acceptable.
    bad.chmod(0o1777)
    assert script_security_problems(str(script)) == []


@needs_root
def test_security_file_itself_and_owner(tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.sh", "exit 0\n", mode=0o757)
    assert script_security_problems(str(script)) == [
        f"{script}: file writable by non-root (mode -rwxr-xrwx)"
    ]
    script.chmod(0o755)
    assert script_security_problems(str(script)) == []
    os.chown(script, 65534, -1)
    assert "owned by uid 65534" in script_security_problems(str(script))[0]


@needs_root
def test_security_follows_symlink_target(tmp_path: Path) -> None:
    bad = tmp_path / "open"
    bad.mkdir()
    bad.chmod(0o777)
    target = write_script(bad / "real.sh", "exit 0\n")
    link = tmp_path / "link.sh"
    link.symlink_to(target)
    assert any(str(bad) in p for p in script_security_problems(str(link)))


def test_check_script_not_found_and_not_executable(tmp_path: Path) -> None:
    check = check_script([str(tmp_path / "missing")], ScriptUser(0, 0), False)
    assert not check.ok and "cannot be accessed" in check.problems[0]
    plain = tmp_path / "plain"
    plain.write_text("x")
    plain.chmod(0o644)
    check = check_script([str(plain)], ScriptUser(0, 0), False)
    assert not check.ok and "not executable" in check.problems[0]
    check = check_script(["no-such-command-pyvrrpd"], ScriptUser(0, 0), False)
    assert not check.ok and "PATH" in check.problems[0]


def test_check_script_path_search_warns() -> None:
    check = check_script(["true", "x"], ScriptUser.current(), False)
    assert check.ok
    assert os.path.isabs(check.argv[0]) and check.argv[1:] == ("x",)
    assert "PATH search" in check.warnings[0]


# --- running --------------------------------------------------------------------------


async def test_run_script_exit_codes(tmp_path: Path) -> None:
    ok = await run_script([str(write_script(tmp_path / "ok", "exit 0\n"))])
    assert ok.ok and ok.returncode == 0
    bad = await run_script([str(write_script(tmp_path / "bad", "exit 3\n"))])
    assert not bad.ok and bad.describe() == "exited with status 3"
    missing = await run_script([str(tmp_path / "missing")])
    assert missing.returncode is None and "cannot execute" in missing.describe()


async def test_run_script_passes_argv_without_shell(tmp_path: Path) -> None:
    out = tmp_path / "args"
    script = write_script(tmp_path / "a", f'printf "%s\\n" "$@" > {out}\n')
    outcome = await run_script(split_script(f"{script} 'a b' '$HOME' '*'"))
    assert outcome.ok
    assert out.read_text().splitlines() == ["a b", "$HOME", "*"]


async def test_run_script_without_shebang_uses_shell(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = tmp_path / "noshebang"
    script.write_text(f"echo ran > {out}\n")
    script.chmod(0o755)
    assert (await run_script([str(script)])).ok
    assert out.read_text() == "ran\n"


async def test_run_script_redirection_test(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.write_text("")
    assert (await run_script([f"<{present}"])).ok
    assert not (await run_script([f"<{tmp_path / 'absent'}"])).ok


async def test_timeout_kills_whole_process_group(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "slow",
        f"sleep 30 &\necho $! > {tmp_path}/child\necho $$ > {tmp_path}/leader\nwait\n",
    )
    started = time.monotonic()
    outcome = await run_script([str(script)], timeout=0.5, kill_grace=1.0)
    elapsed = time.monotonic() - started
    leader = int(wait_file(tmp_path / "leader"))
    child = int(wait_file(tmp_path / "child"))
    try:
        assert outcome.timed_out and not outcome.ok
        assert outcome.pid == leader
        assert outcome.describe() == "timed out after 0.5s"
        assert elapsed < 1.4  # SIGTERM worked, no wait for the grace period
        assert not pid_alive(leader)
        assert wait_dead(child)  # SIGKILL of the group may take a moment to land
    finally:
        kill_quietly(child)


async def test_timeout_sigkills_group_ignoring_sigterm(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "stubborn",
        f"trap '' TERM\nsleep 30 &\necho $! > {tmp_path}/child\nwait\nwait\n",
    )
    outcome = await run_script([str(script)], timeout=0.3, kill_grace=0.3)
    child = int(wait_file(tmp_path / "child"))
    try:
        assert outcome.timed_out
        assert outcome.returncode == -signal.SIGKILL
        assert wait_dead(child)
    finally:
        kill_quietly(child)


@needs_root
async def test_run_as_nobody() -> None:
    nobody = resolve_script_user("nobody")
    with public_dir() as d:
        out = d / "id"
        out.write_text("")
        out.chmod(0o666)
        script = write_script(d / "id.sh", f"echo $(id -u) $(id -g) > {out}\n")
        outcome = await run_script([str(script)], user=nobody)
        assert outcome.ok, outcome.describe()
        assert out.read_text().split() == [str(nobody.uid), str(nobody.gid)]


def test_kill_process_group_refuses_small_pgids() -> None:
    with pytest.raises(ValueError):
        kill_process_group(1)
    assert kill_process_group(2**22 + 12345) is False  # no such group
