"""Whole conversations under valgrind memcheck: no error, no leak, and every
thread joined (a thread left running shows up as a 'possibly lost' stack).

Slow, so only run by `make valgrind` (RUN_VALGRIND=1)."""

import os
import re
import shutil
import signal

import pytest

from conftest import CHAT, CHAT5, SERVER5, TIMEOUT, need_tool

# Deselected by `make check` (-m "not valgrind") and run by `make valgrind`.
pytestmark = pytest.mark.valgrind


@pytest.fixture(autouse=True)
def _valgrind_installed():
    need_tool("valgrind")

SLOW = max(TIMEOUT, 60)


def memcheck(tmp_path, name):
    return [
        "valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
        "--show-leak-kinds=definite,indirect,possible",
        "--errors-for-leak-kinds=definite,indirect,possible",
        "--log-file=%s" % (tmp_path / ("%s.vg" % name)),
    ]


def check_clean(tmp_path, name, proc):
    rc = proc.wait_exit(SLOW)
    log = (tmp_path / ("%s.vg" % name)).read_text()
    print("%s: exit %d, valgrind log %d bytes" % (name, rc, len(log)))
    assert rc == 0, "%s exited %d:\n%s" % (name, rc, log)
    assert not re.search(r"(definitely|indirectly|possibly) lost: [1-9]", log), log
    assert "ERROR SUMMARY" not in log or "ERROR SUMMARY: 0 errors" in log, log


def test_relay_conversation_is_clean(procs, tmp_path):
    srv = procs.start(memcheck(tmp_path, "server5") + SERVER5 + ["0"])
    srv.port = int(srv.wait_stderr(r"listening on port (\d+)", SLOW).group(1))
    clients = {}
    for name in ("alice", "bob"):
        p = procs.start(memcheck(tmp_path, name) + CHAT5 + [name, "0", "127.0.0.1:%d" % srv.port])
        p.port = int(p.wait_stderr(r"listening on port (\d+)", SLOW).group(1))
        srv.wait_stderr(r"subscribed \S*:%d\b" % p.port, SLOW)
        clients[name] = p
    clients["alice"].send("hello bob")
    clients["bob"].wait_stdout(r"^alice: hello bob$", SLOW)
    clients["bob"].send("hello alice")
    clients["alice"].wait_stdout(r"^bob: hello alice$", SLOW)
    for name, p in clients.items():
        p.send("exit")
        check_clean(tmp_path, name, p)
        srv.wait_stderr(r"unsubscribed \S*:%d\b" % p.port, SLOW)
    srv.signal(signal.SIGTERM)
    check_clean(tmp_path, "server5", srv)


def test_three_peer_chat_is_clean(procs, tmp_path):
    users = {}
    # user3 first (no peers to know yet), then 1 and 2 which name everyone.
    u3 = procs.start(memcheck(tmp_path, "user3") + CHAT + ["user3", "0"])
    u3.port = int(u3.wait_stderr(r"listening on port (\d+)", SLOW).group(1))
    u1 = procs.start(memcheck(tmp_path, "user1") + CHAT + ["user1", "0", "127.0.0.1:%d" % u3.port])
    u1.port = int(u1.wait_stderr(r"listening on port (\d+)", SLOW).group(1))
    u2 = procs.start(memcheck(tmp_path, "user2") + CHAT + [
        "user2", "0", "127.0.0.1:%d" % u1.port, "127.0.0.1:%d" % u3.port])
    u2.port = int(u2.wait_stderr(r"listening on port (\d+)", SLOW).group(1))
    users.update(user1=u1, user2=u2, user3=u3)
    u2.send("hi from 2")
    u1.wait_stdout(r"^user2: hi from 2$", SLOW)
    u3.wait_stdout(r"^user2: hi from 2$", SLOW)
    u1.send("hi from 1")
    u3.wait_stdout(r"^user1: hi from 1$", SLOW)
    for name in ("user2", "user1", "user3"):
        users[name].send("exit")
        check_clean(tmp_path, name, users[name])
