"""The programs as a person sees them in a terminal (tmux is the terminal),
and byte for byte as a script sees them through a pipe."""

import os
import re
import shlex
import shutil
import subprocess
import time

import pytest

from conftest import CHAT, CHAT5, ROOT, TIMEOUT, need_tool

@pytest.fixture
def needs_tmux_fixture():
    need_tool("tmux")


needs_tmux = pytest.mark.usefixtures("needs_tmux_fixture")


class Tmux:
    """One tmux server of our own, one 100x12 window running a command."""

    def __init__(self, tmp_path, argv, env=None):
        self.sock = str(tmp_path / "tmux.sock")
        cmd = " ".join(shlex.quote(a) for a in argv)
        if env:
            cmd = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in env.items()) + " " + cmd
        # Keep the pane after the program exits, to tell that it did.
        self.tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "12",
                  "sh -c %s" % shlex.quote(cmd + "; echo EXITED $?; sleep 30"))

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.sock] + list(args), check=True,
                              capture_output=True, timeout=TIMEOUT).stdout.decode()

    def screen(self, escapes=False, joined=False):
        args = ["capture-pane", "-p", "-t", "t"] + (["-e"] if escapes else []) + \
            (["-J"] if joined else [])
        return self.tmux(*args)

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def text(self, s):
        """Types s as it is (no key names)."""
        self.tmux("send-keys", "-t", "t", "-l", s)

    def wait(self, pattern, escapes=False, joined=False):
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + TIMEOUT
        while True:
            s = self.screen(escapes, joined)
            if rx.search(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError("screen never matched %r:\n%s" % (pattern, s))
            time.sleep(0.05)

    def resize(self, width, height=12):
        self.tmux("resize-window", "-t", "t", "-x", str(width), "-y", str(height))

    def close(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True)


@pytest.fixture
def term(tmp_path):
    made = []

    def start(argv, env=None):
        t = Tmux(tmp_path, argv, env)
        made.append(t)
        return t

    yield start
    for t in made:
        t.close()


def last_line(screen):
    lines = [l for l in screen.splitlines() if l.strip()]
    return lines[-1] if lines else ""


@needs_tmux
def test_message_arrives_while_typing(procs, term):
    """Half a typed line survives a message arriving: the message appears
    on its own line above the prompt, the half line is redrawn intact."""
    srv = procs.server()
    t = term(CHAT5 + ["alice", "0", "127.0.0.1:%d" % srv.port])
    t.wait(r"alice subscribed")
    srv.wait_stderr(r"subscribed")
    t.wait(r"^alice> ?$")
    t.keys("half typ")
    t.wait(r"^alice> half typ$")
    bob = procs.chat5("bob", srv.port, server=srv)
    bob.send("hello alice")
    screen = t.wait(r"^bob: hello alice$")
    print("\n--- the terminal after a message arrived mid-line ---\n" + screen.rstrip())
    assert last_line(screen) == "alice> half typ", screen
    lines = screen.splitlines()
    assert lines.index("bob: hello alice") < lines.index("alice> half typ")
    # The redrawn line is really what readline holds: finish and send it.
    t.keys("ed", "Enter")
    bob.wait_stdout(r"^alice: half typed$")
    t.keys("exit", "Enter")
    t.wait(r"^EXITED 0$")


@needs_tmux
def test_log_lines_do_not_garble_the_prompt(procs, term):
    srv = procs.server()
    t = term(CHAT5 + ["alice", "0", "127.0.0.1:%d" % srv.port])
    t.wait(r"^alice> ?$")
    t.keys("draft")
    t.wait(r"^alice> draft$")
    srv.signal(15)
    screen = t.wait(r"^chat5: lost connection to server")
    assert last_line(screen) == "alice> draft", screen
    # Ctrl-U clears the draft; exit still works after the server is gone.
    t.keys("C-u", "exit", "Enter")
    t.wait(r"^EXITED 0$")


@needs_tmux
def test_history_and_editing(procs, term, fake_peer):
    peer = fake_peer()
    t = term(CHAT + ["alice", "0", "127.0.0.1:%d" % peer.port])
    t.wait(r"^alice> ?$")
    t.keys("first line", "Enter")
    peer.wait_objects(1)
    # Up arrow brings the line back; edit its end and send it again.
    t.keys("Up", "BSpace", "BSpace", "BSpace", "BSpace", "word", "Enter")
    objs = peer.wait_objects(2)
    assert [o["message"] for o in objs] == ["first line", "first word"]
    t.keys("C-d")
    t.wait(r"^EXITED 0$")


def colored(screen_with_escapes, name):
    """Whether an SGR escape sequence sits right before the name."""
    return re.search(r"\x1b\[[0-9;]*m%s" % re.escape(name), screen_with_escapes) is not None


@needs_tmux
@pytest.mark.parametrize("how", ["default", "NO_COLOR", "--no-color"])
def test_colors(procs, term, how):
    srv = procs.server()
    opts = ["--no-color"] if how == "--no-color" else []
    env = {"NO_COLOR": "1"} if how == "NO_COLOR" else None
    t = term(CHAT5 + opts + ["alice", "0", "127.0.0.1:%d" % srv.port], env=env)
    t.wait(r"^alice> ?$")
    srv.wait_stderr(r"subscribed")
    bob = procs.chat5("bob", srv.port, server=srv)
    bob.send("hi")
    screen = t.wait(r"bob.*: hi$", escapes=True)
    assert colored(screen, "bob") == (how == "default"), repr(screen)


def test_pipe_output_is_exact_bytes(procs, tmp_path):
    """What graders see: no prompt, no colour, no escape, one flushed
    line per message, even with a colour-capable TERM and a TTY-less pipe."""
    srv = procs.server()
    out = tmp_path / "alice.out"
    with open(out, "wb") as f:
        alice = subprocess.Popen(CHAT5 + ["alice", "0", "127.0.0.1:%d" % srv.port],
                                 stdin=subprocess.PIPE, stdout=f, stderr=subprocess.PIPE,
                                 env=dict(os.environ, TERM="xterm-256color"))
    try:
        srv.wait_stderr(r"subscribed")
        bob = procs.chat5("bob", srv.port, server=srv)
        bob.send("hello")
        bob.send("caf\u00e9 \U0001f600")
        deadline = time.monotonic() + TIMEOUT
        want = "bob: hello\nbob: caf\u00e9 \U0001f600\n".encode()
        while out.read_bytes() != want and time.monotonic() < deadline:
            time.sleep(0.02)
        assert out.read_bytes() == want
        alice.stdin.write(b"exit\n")
        alice.stdin.close()
        assert alice.wait(TIMEOUT) == 0
        assert out.read_bytes() == want
    finally:
        if alice.poll() is None:
            alice.kill()
        alice.stderr.close()


def test_timestamps_in_a_pipe(procs):
    srv = procs.server()
    alice = procs.start(CHAT5 + ["--timestamps", "alice", "0", "127.0.0.1:%d" % srv.port])
    srv.wait_stderr(r"subscribed")
    bob = procs.chat5("bob", srv.port, server=srv)
    bob.send("tick")
    alice.wait_stdout(r"^\[\d\d:\d\d:\d\d\] bob: tick$")


@needs_tmux
def test_window_narrowed_while_editing_a_long_line(procs, term, fake_peer):
    """Type a line longer than the window, narrow the window, go to the
    start of the line and type a word: the screen, wrapped lines joined,
    shows the prompt and exactly the edited line (readline follows the new
    width), and the edited line is what gets sent."""
    peer = fake_peer()
    t = term(CHAT + ["alice", "0", "127.0.0.1:%d" % peer.port])
    t.wait(r"^alice> ?$")
    long_line = " ".join("w%02d" % i for i in range(40))     # 159 characters
    t.text(long_line)
    t.wait(re.escape(long_line[-20:]) + "$", joined=True)
    t.resize(40)
    t.wait(r"^alice> ", joined=True)
    t.keys("C-a")
    t.text("first ")
    edited = "alice> first " + long_line
    screen = t.wait(r"^" + re.escape(edited) + r"\s*$", joined=True)
    print("\n--- the terminal narrowed to 40 columns, line edited at its start ---\n"
          + t.screen().rstrip() + "\n--- the same, wrapped lines joined ---\n" + screen.rstrip())
    lines = [l.rstrip() for l in screen.splitlines() if l.strip()]
    assert lines[-1] == edited, screen
    # Readline wraps at the new width: every screen row of the line is
    # 40 columns wide, except the last.
    rows = [l.rstrip("\n") for l in t.screen().splitlines()]
    start = max(i for i, l in enumerate(rows) if l.startswith("alice> first "))
    drawn = [r for r in rows[start:] if r.strip()]
    assert all(len(r) == 40 for r in drawn[:-1]) and "".join(drawn) == edited, rows
    # Control-L clears the screen and redraws the line at the new width.
    t.keys("C-l")
    screen = t.wait(r"\A" + re.escape(edited) + r"\s*\Z", joined=True)
    t.keys("Enter")
    assert [o["message"] for o in peer.wait_objects(1)] == ["first " + long_line]
    t.keys("exit", "Enter")
    t.wait(r"^EXITED 0$")


def _demo_processes(port):
    """Processes of a demo on this server port (its server, participants,
    the user's chat5), from /proc."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"127.0.0.1:%d" % port) for a in argv) or \
                (len(argv) > 1 and argv[0].endswith(b"server5") and b"0" in argv[1:2]):
            found.append((int(pid), argv))
    return found


@needs_tmux
@pytest.mark.parametrize("key", ["C-c", "C-d"])
def test_demo_ends_cleanly_on_control_c_and_d(term, key):
    """make demo, then Control-C (or Control-D): no error line (from chat5
    or from make), status 0, and nothing of the demo left running."""
    t = term(["make", "-C", ROOT, "--no-print-directory", "demo", "NAME=tester"])
    screen = t.wait(r"ada: Welcome, tester!")
    port = int(re.search(r"server5 on port (\d+)", t.screen()).group(1))
    t.wait(r"^tester> ?$")
    t.keys("hello bots", "Enter")
    t.wait(r"^ada: Hi tester! You said \"hello bots\"")
    t.keys(key)
    screen = t.wait(r"^EXITED \d+$")
    print("\n--- make demo after %s ---\n%s" % (key, screen.rstrip()))
    assert re.search(r"(?m)^EXITED 0$", screen), screen
    assert not re.search(r"Error|lost connection|error", screen), screen
    deadline = time.monotonic() + TIMEOUT
    while _demo_processes(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _demo_processes(port) == []
