"""The programs and the build as a new user meets them: errors that quote
the value that was wrong, a chat5 that says what to do when no server runs,
exit statuses a script can trust, and a plain `make` that only builds."""

import re
import subprocess

import pytest

from conftest import CHAT, CHAT5, ROOT, SERVER5, TIMEOUT, free_port


def run(argv, stdin=b"", timeout=None):
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout or TIMEOUT)


def err_lines(r):
    return r.stderr.decode("utf-8", "replace").splitlines()


# (program, arguments, the one-line reason expected, whole line)
BAD = [
    (CHAT, ["alice", "abc"], "chat: bad port 'abc': expected a number from 0 to 65535"),
    (CHAT, ["alice", "70000"], "chat: bad port '70000': expected a number from 0 to 65535"),
    (CHAT, ["alice", ""], "chat: bad port '': expected a number from 0 to 65535"),
    (CHAT, ["", "0"], "chat: bad name '': must not be empty"),
    (CHAT, ["a: fake", "0"], "chat: bad name 'a: fake': must not contain ': ' "
                             "(it would look like the start of another line)"),
    (CHAT, ["bo\u200bb", "0"], "chat: bad name 'bo\\u200bb': must not contain control or "
                               "invisible characters"),
    (CHAT, ["x" * 65, "0"], "chat: bad name '%s': must be at most 64 bytes" % ("x" * 65)),
    (CHAT, ["alice", "0", "127.0.0.1"], "chat: bad peer '127.0.0.1': expected HOST:PORT"),
    (CHAT, ["alice", "0", "127.0.0.1:0"],
     "chat: bad peer '127.0.0.1:0': port 0 cannot be connected to; expected 1 to 65535"),
    (CHAT, ["alice", "0", "::1:5002"],
     "chat: bad peer '::1:5002': an IPv6 address needs brackets: [ADDR]:PORT"),
    (CHAT, ["--bogus", "alice", "0"], "chat: unknown option '--bogus'"),
    (CHAT, ["-x", "alice", "0"], "chat: unknown option '-x'"),
    (CHAT, ["alice", "0", "--bind"], "chat: option '--bind' needs a value"),
    (CHAT, ["--stall-timeout", "0", "alice", "0"],
     "chat: bad --stall-timeout '0': expected a number from 1 to 86400"),
    (CHAT, ["alice"], "chat: PORT is missing"),
    (CHAT5, ["alice", "0", "nohost"], "chat5: bad server address 'nohost': expected HOST:PORT"),
    (CHAT5, ["alice", "0", "127.0.0.1:9000,"],
     "chat5: bad server address '127.0.0.1:9000,': expected HOST:PORT[,HOST:PORT...]"),
    (CHAT5, ["alice", "x", "127.0.0.1:9000"], "chat5: bad port 'x': expected a number from 0 to 65535"),
    (CHAT5, ["alice", "0"], "chat5: NAME, PORT and SERVER_HOST:PORT are missing"),
    (SERVER5, ["abc"], "server5: bad port 'abc': expected a number from 0 to 65535"),
    (SERVER5, ["--max-clients", "x", "0"],
     "server5: bad --max-clients 'x': expected a number from 1 to 10000000"),
    (SERVER5, ["--queue-limit", "0", "0"],
     "server5: bad --queue-limit '0': expected a number from 1 to 10000000"),
    (SERVER5, ["--partial-timeout", "-3", "0"],
     "server5: bad --partial-timeout '-3': expected a number from 1 to 86400"),
    (SERVER5, ["[::1:9000"], "server5: bad address '[::1:9000': expected [IPv6]:PORT"),
    (SERVER5, [], "server5: PORT is missing"),
]


@pytest.mark.parametrize("prog,args,line", BAD,
                         ids=["%s-%d" % (p[-1].split("/")[-1], i) for i, (p, _, _) in enumerate(BAD)])
def test_usage_errors_quote_the_value(prog, args, line):
    r = run(prog + args)
    err = err_lines(r)
    assert r.returncode == 2, err
    assert err[0] == line, err
    assert err[1].startswith("usage: "), err
    assert r.stdout == b""


def test_chat5_without_a_server_says_what_to_do():
    port = free_port()
    r = run(CHAT5 + ["alice", "0", "127.0.0.1:%d" % port])
    assert r.returncode == 1
    assert err_lines(r)[-1] == ("chat5: cannot reach server 127.0.0.1:%d: Connection refused "
                                "(is server5 running there?)" % port), err_lines(r)


def test_chat5_without_any_of_several_servers():
    a, b = free_port(), free_port()
    r = run(CHAT5 + ["alice", "0", "127.0.0.1:%d,127.0.0.1:%d" % (a, b)])
    assert r.returncode == 1
    assert err_lines(r)[-1] == ("chat5: cannot reach server 127.0.0.1:%d: Connection refused; "
                                "127.0.0.1:%d: Connection refused (is server5 running there?)"
                                % (a, b)), err_lines(r)


def test_chat_exit_status_0_when_everything_arrived(procs):
    bob = procs.chat("bob")
    r = run(CHAT + ["alice", "0", "127.0.0.1:%d" % bob.port], stdin=b"hello\nexit\n")
    assert r.returncode == 0, err_lines(r)
    bob.wait_stdout(r"^alice: hello$")


def test_chat_exit_status_1_when_a_peer_never_got_a_line():
    dead = free_port()
    r = run(CHAT + ["alice", "0", "127.0.0.1:%d" % dead], stdin=b"hello\nagain\n")
    assert r.returncode == 1
    assert err_lines(r)[-1] == "chat: peer 127.0.0.1:%d: 2 message(s) never delivered" % dead


def test_chat5_exit_status_1_when_the_server_never_got_a_line(procs):
    srv = procs.server()
    alice = procs.chat5("alice", srv.port, server=srv)
    srv.signal(15)
    srv.wait_exit()
    alice.wait_stderr(r"lost connection to server")
    alice.send("into the void")
    alice.close_stdin()
    assert alice.wait_exit(TIMEOUT) == 1
    assert any(re.search(r"server 127\.0\.0\.1:%d: 1 message\(s\) never delivered" % srv.port, l)
               for l in alice.err_lines), alice.err_lines


def test_chat5_exit_status_0_after_a_clean_session(procs):
    srv = procs.server()
    bob = procs.chat5("bob", srv.port, server=srv)
    r = run(CHAT5 + ["alice", "0", "127.0.0.1:%d" % srv.port], stdin=b"hi bob\n")
    assert r.returncode == 0, err_lines(r)
    bob.wait_stdout(r"^alice: hi bob$")


def make(*args):
    return subprocess.run(["make", "-C", ROOT, "--no-print-directory"] + list(args),
                          capture_output=True, text=True, timeout=TIMEOUT * 6)


def test_plain_make_never_installs_anything():
    for goal in ([], ["all"], ["programs"]):
        r = make("-n", *goal)
        assert r.returncode == 0, r.stderr
        assert "deps.sh" not in r.stdout and "apt-get" not in r.stdout and "sudo" not in r.stdout, \
            (goal, r.stdout)


def test_make_without_json_c_says_what_to_install():
    """As on a machine without json-c (pkg-config finds nothing): one line
    that names the package and the command that installs it."""
    r = make("PKG_CONFIG=false", "programs")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "libjson-c-dev" in lines[0] and "make deps" in lines[0], lines


def test_make_deps_check_and_demo_install_first():
    for goal in ("check", "demo"):
        r = make("-n", goal)
        assert r.returncode == 0, r.stderr
        assert "scripts/deps.sh build" in r.stdout, (goal, r.stdout)
