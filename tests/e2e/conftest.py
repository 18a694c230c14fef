"""Shared harness for the end-to-end tests.

Every test starts the real programs on port 0 and waits for the line each
one prints on stderr when it is ready; nothing here sleeps for a fixed time.
The programs are found through the CHAT, CHAT5 and SERVER5 environment
variables (a command line, e.g. "python3 /path/chat.py"), defaulting to the
binaries built at the top of the tree.
"""

import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TIMEOUT = float(os.environ.get("E2E_TIMEOUT", "10"))


def program(var, name):
    """The command line of a program under test, as a list."""
    value = os.environ.get(var)
    if value:
        return shlex.split(value)
    return [os.path.join(ROOT, name)]


# Lines that mean a sanitizer found a bug in a program under test.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "WARNING: ThreadSanitizer",
    "runtime error:",
    "ERROR: ThreadSanitizer",
)

CHAT = program("CHAT", "chat")
CHAT5 = program("CHAT5", "chat5")
SERVER5 = program("SERVER5", "server5")


class Proc:
    """A running program whose stdout and stderr are read line by line."""

    def __init__(self, argv, stdin=subprocess.PIPE):
        self.argv = argv
        self.p = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self.pid = self.p.pid
        self.out = queue.Queue()
        self.err = queue.Queue()
        self.out_lines = []
        self.err_lines = []
        self._out_seen = 0
        self._err_seen = 0
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._pump, args=(self.p.stdout, self.out_lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.p.stderr, self.err_lines), daemon=True),
        ]
        for t in self._readers:
            t.start()
        self.port = None

    def _pump(self, stream, lines):
        """Reads in chunks (a byte per read() would fall behind floods)."""
        fd = stream.fileno()
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            if complete:
                with self._lock:
                    lines.extend(c.decode("utf-8", "replace") for c in complete)
        if pending:
            with self._lock:
                lines.append(pending.decode("utf-8", "replace"))
        stream.close()

    def _wait_for(self, lines, seen_attr, pattern, timeout):
        """Finds the first line at or after the cursor matching pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + (timeout or TIMEOUT)
        while True:
            with self._lock:
                start = getattr(self, seen_attr)
                for i in range(start, len(lines)):
                    m = rx.search(lines[i])
                    if m:
                        setattr(self, seen_attr, i + 1)
                        return m
            if time.monotonic() > deadline:
                raise AssertionError(
                    "%s: no line matching %r within %ss\nstdout: %r\nstderr: %r"
                    % (self.argv[0], pattern, timeout or TIMEOUT, self.out_lines, self.err_lines)
                )
            time.sleep(0.01)

    def wait_stderr(self, pattern, timeout=None):
        return self._wait_for(self.err_lines, "_err_seen", pattern, timeout)

    def wait_stdout(self, pattern, timeout=None):
        return self._wait_for(self.out_lines, "_out_seen", pattern, timeout)

    def stdout_lines(self, n, timeout=None):
        """Waits until at least n stdout lines arrived; returns all of them."""
        deadline = time.monotonic() + (timeout or TIMEOUT)
        while True:
            with self._lock:
                if len(self.out_lines) >= n:
                    return list(self.out_lines)
            if time.monotonic() > deadline:
                raise AssertionError(
                    "%s: %d stdout lines, wanted %d: %r\nstderr: %r"
                    % (self.argv[0], len(self.out_lines), n, self.out_lines, self.err_lines)
                )
            time.sleep(0.01)

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def wait_exit(self, timeout=None):
        rc = self.p.wait(timeout=timeout or TIMEOUT)
        for t in self._readers:
            t.join(timeout=TIMEOUT)
        return rc

    def signal(self, sig):
        self.p.send_signal(sig)

    def alive(self):
        return self.p.poll() is None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        try:
            self.p.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.p.stdin,):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass


class Procs:
    """Starts programs for one test and kills whatever is left at the end."""

    def __init__(self):
        self.all = []

    def start(self, argv, **kw):
        p = Proc(argv, **kw)
        self.all.append(p)
        return p

    def chat(self, name, port=0, peers=(), wait=True):
        p = self.start(CHAT + [name, str(port)] + list(peers))
        if wait:
            p.port = int(p.wait_stderr(r"listening on port (\d+)").group(1))
        return p

    def server(self, *args, port=0, wait=True):
        p = self.start(SERVER5 + list(args) + [str(port)])
        if wait:
            p.port = int(p.wait_stderr(r"listening on port (\d+)").group(1))
        return p

    def chat5(self, name, server_port, port=0, server=None, wait=True):
        """Starts chat5; with server given, also waits until that server
        has registered the subscription."""
        p = self.start(CHAT5 + [name, str(port), "127.0.0.1:%d" % server_port])
        if wait:
            p.port = int(p.wait_stderr(r"listening on port (\d+)").group(1))
            p.wait_stderr(r"subscribed")
            if server is not None:
                server.wait_stderr(r"subscribed \S*:%d\b" % p.port)
        return p

    def cleanup(self):
        """Stops every program politely (so sanitizers' exit-time checks
        run), then fails the test if any of them reported a problem."""
        for p in self.all:
            if p.alive():
                p.signal(signal.SIGTERM)
        for p in self.all:
            try:
                p.p.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
            p.kill()
            for t in p._readers:
                t.join(timeout=TIMEOUT)
        reports = [
            "%s: %s" % (p.argv[0], line)
            for p in self.all
            for line in p.err_lines
            if any(marker in line for marker in SANITIZER_MARKERS)
        ]
        if reports:
            pytest.fail("sanitizer reports:\n" + "\n".join(reports[:40]), pytrace=False)


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.cleanup()


# Set by make check-asan / check-tsan: memory figures of such a build mean
# nothing (the sanitizer's shadow memory and quarantine), so the tests that
# bound RSS leave that check out there, and only that.
SANITIZER = os.environ.get("E2E_SANITIZER", "")


def memory_bounds_apply():
    return SANITIZER == ""


# Tools the tests run.  `make check` installs every one of them
# (scripts/deps.sh test), so one that is missing is a broken set-up, not a
# reason to pass: with E2E_REQUIRE_TOOLS=1 (as .ci/run sets it) the test
# fails instead of skipping.
REQUIRE_TOOLS = os.environ.get("E2E_REQUIRE_TOOLS") == "1"


def need_tool(name, package=None):
    """The path of a command a test needs; skips (or, under
    E2E_REQUIRE_TOOLS=1, fails) when it is not installed."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path:
        return path
    why = "%s is not installed (package %s; scripts/deps.sh test installs it)" % (
        name, package or name)
    if REQUIRE_TOOLS:
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


def pytest_configure(config):
    config.addinivalue_line("markers", "valgrind: runs under valgrind (make valgrind)")


def free_port():
    """A port nobody listens on right now (for 'nobody is there' cases)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def split_json(data):
    """Splits bytes holding JSON objects (any separation) into objects."""
    text = data.decode("utf-8")
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        out.append(obj)


class FakePeer:
    """A listening test socket that records every accepted connection and
    the bytes each one sent.  Each connection is served by handle(entry)
    on a thread of its own, entry = [socket, bytearray, closed]; a subclass
    serves them otherwise by overriding it."""

    def __init__(self, host="127.0.0.1", family=None, port=0, rcvbuf=None, backlog=64):
        if family is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.conns = []  # [socket, bytearray, closed]
        self._lock = threading.Lock()
        self._stop = False
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            entry = [c, bytearray(), False]
            with self._lock:
                self.conns.append(entry)
            threading.Thread(target=self.handle, args=(entry,), daemon=True).start()

    def handle(self, entry):
        c = entry[0]
        while True:
            try:
                b = c.recv(65536)
            except OSError:
                b = b""
            if not b:
                with self._lock:
                    entry[2] = True
                return
            with self._lock:
                entry[1].extend(b)

    def connections(self):
        with self._lock:
            return len(self.conns)

    def data(self):
        with self._lock:
            return b"".join(bytes(e[1]) for e in self.conns)

    def objects(self):
        return split_json(self.data())

    def wait(self, cond, timeout=None, what="condition"):
        deadline = time.monotonic() + (timeout or TIMEOUT)
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError("FakePeer: timed out waiting for %s; data=%r" % (what, self.data()))
            time.sleep(0.01)

    def wait_objects(self, n, timeout=None):
        self.wait(lambda: len(self.objects()) >= n if self._complete() else False, timeout, "%d objects" % n)
        return self.objects()

    def _complete(self):
        try:
            self.objects()
            return True
        except ValueError:
            return False

    def all_closed(self):
        with self._lock:
            return all(e[2] for e in self.conns)

    def close(self):
        self._stop = True
        self.sock.close()
        with self._lock:
            for e in self.conns:
                try:
                    e[0].close()
                except OSError:
                    pass


@pytest.fixture
def fake_peer():
    made = []

    def make(**kw):
        f = FakePeer(**kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def connect(port, host="127.0.0.1"):
    return socket.create_connection((host, port), timeout=TIMEOUT)
