"""Helpers for test_flow.py (issue 9, flow control) and test_hostile.py
(issue 10, hostile local clients).

Everything here drives the real programs over real sockets: starting them
with options, feeding their stdin from a thread (so that a program that
reads slowly never blocks the test), test listeners that read, read slowly
or never read, and figures read from /proc (threads, RSS, peak RSS, CPU)
printed as lines starting with "FIGURES" (see them with pytest -s).

Every wait has a deadline; the only timed pauses are inside polling loops
and in SlowSink, whose slowness is the point.
"""

import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import CHAT, CHAT5, SERVER5, TIMEOUT, FakePeer
from relay_helpers import _lines, wait_until

CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------
# Starting the programs with options
# ---------------------------------------------------------------------------


def env_prefix(env):
    """argv prefix that runs a program with extra environment variables
    (env(1) execs, so the pid stays the program's)."""
    if not env:
        return []
    return ["env"] + ["%s=%s" % kv for kv in sorted(env.items())]


def ready(p):
    p.port = int(p.wait_stderr(r"listening on port (\d+)").group(1))
    return p


def start_chat(procs, name, peers=(), opts=(), stdin=subprocess.PIPE, env=None, port=0, wait=True):
    p = procs.start(env_prefix(env) + CHAT + list(opts) + [name, str(port)] + list(peers), stdin=stdin)
    return ready(p) if wait else p


def hostport(ip, port):
    return "[%s]:%d" % (ip, port) if ":" in ip else "%s:%d" % (ip, port)


def start_chat5(procs, name, server_port, opts=(), stdin=subprocess.PIPE, env=None, server=None,
                host="127.0.0.1"):
    """A chat5 subscribed to host:server_port; with server given, also
    waits until that server has registered it."""
    p = procs.start(env_prefix(env) + CHAT5 + list(opts) + [name, "0", hostport(host, server_port)],
                    stdin=stdin)
    ready(p)
    p.wait_stderr(r"subscribed")
    if server is not None:
        wait_line_from(server, r"(?<!un)subscribed %s\b" % re.escape(hostport(host, p.port)))
    return p


def start_server(procs, *opts, port=0):
    p = procs.start(SERVER5 + list(opts) + [str(port)])
    return ready(p)


def wait_line_from(proc, pattern, timeout=None):
    rx = re.compile(pattern)

    def found():
        return any(rx.search(l) for l in _lines(proc))

    wait_until(found, timeout, "%s: a stderr line matching %r" % (proc.argv[0], pattern),
               lambda: "stderr: %r" % _lines(proc)[-40:])


def lines_matching(proc, pattern, stream="err"):
    rx = re.compile(pattern)
    return [l for l in _lines(proc, stream) if rx.search(l)]


def nout(proc):
    with proc._lock:
        return len(proc.out_lines)


def wait_nout(proc, n, timeout=None, what=None):
    wait_until(lambda: nout(proc) >= n, timeout, what or "%d stdout lines from %s" % (n, proc.argv[-3:]),
               lambda: "got %d; last %r\nstderr: %r" % (nout(proc), _lines(proc, "out")[-5:],
                                                         _lines(proc)[-30:]))
    return _lines(proc, "out")


def exit_status(proc, timeout=None):
    return proc.wait_exit(timeout=timeout or TIMEOUT)


# ---------------------------------------------------------------------------
# Feeding stdin from a thread
# ---------------------------------------------------------------------------


class Feeder:
    """Writes data to a program's stdin on its own thread, in chunks, so the
    test goes on while the program takes its time.  close=True closes stdin
    when all is written (end of input)."""

    def __init__(self, proc, data, close=False, chunk=65536, start=True):
        self.proc, self.data, self.close, self.chunk = proc, data, close, chunk
        self.written = 0
        self.error = None
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        if start:
            self.t.start()

    def start(self):
        self.t.start()

    def _run(self):
        try:
            for i in range(0, len(self.data), self.chunk):
                self.proc.p.stdin.write(self.data[i:i + self.chunk])
                self.written = min(len(self.data), i + self.chunk)
            self.proc.p.stdin.flush()
            if self.close:
                self.proc.close_stdin()
        except (BrokenPipeError, OSError, ValueError) as e:
            self.error = e
        finally:
            self.done.set()

    def wait(self, timeout=None):
        assert self.done.wait(timeout or TIMEOUT), (
            "stdin of %s took only %d of %d bytes" % (self.proc.argv, self.written, len(self.data)))
        assert self.error is None, "writing stdin of %s: %r" % (self.proc.argv, self.error)


class PacedFeeder(Feeder):
    """A Feeder that writes at most `rate` bytes a second (input that
    arrives over time, as a long paste or a producer would)."""

    def __init__(self, proc, data, rate, close=False, chunk=16384):
        self.rate = rate
        super().__init__(proc, data, close=close, chunk=chunk)

    def _run(self):
        start = time.monotonic()
        try:
            for i in range(0, len(self.data), self.chunk):
                ahead = i / self.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
                self.proc.p.stdin.write(self.data[i:i + self.chunk])
                self.proc.p.stdin.flush()
                self.written = min(len(self.data), i + self.chunk)
            if self.close:
                self.proc.close_stdin()
        except (BrokenPipeError, OSError, ValueError) as e:
            self.error = e
        finally:
            self.done.set()


class GapWatch:
    """Samples a process's stdout line count on a thread until it reaches
    n, and keeps the pauses: spans of at least `gap` seconds without a new
    line."""

    def __init__(self, proc, n, gap=1.5, interval=0.02):
        self.proc, self.n, self.gap, self.interval = proc, n, gap, interval
        self.pauses = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        last_n, since = -1, time.monotonic()
        while not self._stop.wait(self.interval):
            k = nout(self.proc)
            now = time.monotonic()
            if k != last_n:
                if now - since >= self.gap and last_n >= 0:
                    self.pauses.append((last_n, round(now - since, 2)))
                last_n, since = k, now
            if k >= self.n:
                return

    def stop(self):
        self._stop.set()
        self._t.join(timeout=TIMEOUT)


def numbered(tag, n, width=45):
    """n distinct lines 'tag 000000 ...' about width bytes each."""
    pad = "x" * max(0, width - len(tag) - 8)
    return ["%s %06d %s" % (tag, i, pad) for i in range(n)]


def as_input(lines):
    return ("".join(l + "\n" for l in lines)).encode()


def first_difference(got, want):
    """A readable account of where two line lists first differ."""
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return "first difference at line %d: got %r, wanted %r (got %d lines, wanted %d)" % (
                i, g[:120], w[:120], len(got), len(want))
    return "got %d lines, wanted %d; last got %r" % (len(got), len(want), got[-1:] if got else None)


def assert_lines(got, want, who):
    assert got == want, "%s: %s" % (who, first_difference(got, want))


# ---------------------------------------------------------------------------
# Test listeners
# ---------------------------------------------------------------------------


class Listener(FakePeer):
    """A FakePeer whose connections are not read unless a subclass's
    handle(entry) reads them."""

    def __init__(self, rcvbuf=None, backlog=128, host="127.0.0.1"):
        super().__init__(host=host, rcvbuf=rcvbuf, backlog=backlog)

    def handle(self, entry):
        pass


class StallSink(Listener):
    """Accepts and never reads (small receive buffer): a reader that has stopped."""

    def __init__(self):
        super().__init__(rcvbuf=4096)


class ReadSink(Listener):
    """Reads everything as it comes, counting newlines."""

    def __init__(self, rate=None, rcvbuf=None, host="127.0.0.1"):
        self.rate = rate            # bytes per second at most, or None
        self.nl = 0
        super().__init__(rcvbuf=rcvbuf, host=host)

    def handle(self, entry):
        c = entry[0]
        start = time.monotonic()
        got = 0
        while True:
            try:
                b = c.recv(16384 if self.rate else 65536)
            except OSError:
                b = b""
            with self._lock:
                if not b:
                    entry[2] = True
                    return
                entry[1].extend(b)
                self.nl += b.count(b"\n")
            got += len(b)
            if self.rate:
                # Slow but live: never more than rate bytes a second.
                ahead = got / self.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(min(ahead, 0.05))

    def count(self):
        with self._lock:
            return self.nl

    def wait_count(self, n, timeout=None):
        wait_until(lambda: self.count() >= n, timeout, "%d lines at test listener %d" % (n, self.port),
                   lambda: "got %d" % self.count())


# ---------------------------------------------------------------------------
# Figures from /proc
# ---------------------------------------------------------------------------


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        text = f.read()

    def kb(key):
        m = re.search(r"^%s:\s+(\d+)" % key, text, re.M)
        return int(m.group(1)) if m else 0

    return {"rss_kb": kb("VmRSS"), "hwm_kb": kb("VmHWM")}


def threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])     # utime + stime


def snapshot(pid):
    s = proc_status(pid)
    s["threads"] = threads(pid)
    s["cpu_ticks"] = cpu_ticks(pid)
    s["t"] = time.monotonic()
    return s


class Monitor:
    """Samples one process's threads, RSS and CPU on a thread, phase by
    phase: mark("during") starts a phase; each phase keeps the largest
    thread count and RSS seen and the CPU used (percent of one core)."""

    def __init__(self, pid, interval=0.02):
        self.pid = pid
        self.interval = interval
        self.phases = []        # [name, first, last, max_threads, max_rss]
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.mark("before")
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _sample(self):
        try:
            s = snapshot(self.pid)
        except (OSError, ValueError, IndexError):
            return None
        with self.lock:
            ph = self.phases[-1]
            ph[2] = s
            ph[3] = max(ph[3], s["threads"])
            ph[4] = max(ph[4], s["rss_kb"])
        return s

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def mark(self, name):
        s = snapshot(self.pid)
        with self.lock:
            if self.phases:
                self.phases[-1][2] = s
            self.phases.append([name, s, s, s["threads"], s["rss_kb"]])

    def stop(self):
        self._sample()
        self._stop.set()
        self._t.join(timeout=TIMEOUT)

    def phase(self, name):
        with self.lock:
            for ph in self.phases:
                if ph[0] == name:
                    return ph
        raise KeyError(name)

    def max_threads(self, name):
        return self.phase(name)[3]

    def max_rss(self, name):
        return self.phase(name)[4]

    def last(self, name):
        return self.phase(name)[2]

    def cpu_percent(self, name):
        _, a, b, _, _ = self.phase(name)
        wall = b["t"] - a["t"]
        if wall <= 0:
            return 0.0
        return 100.0 * (b["cpu_ticks"] - a["cpu_ticks"]) / CLK_TCK / wall

    def summary(self):
        out = []
        with self.lock:
            phases = list(self.phases)
        for name, a, b, mt, mr in phases:
            wall = b["t"] - a["t"]
            cpu = 100.0 * (b["cpu_ticks"] - a["cpu_ticks"]) / CLK_TCK / wall if wall > 0 else 0.0
            out.append("%s: threads %d->%d (max %d) rss_kb %d->%d (max %d) cpu %.0f%% over %.2fs"
                       % (name, a["threads"], b["threads"], mt, a["rss_kb"], b["rss_kb"], mr, cpu, wall))
        return out


def figures(test, *parts, **kv):
    """One line of figures (pytest -s shows it), for docs/RELIABILITY.md."""
    items = list(parts) + ["%s=%s" % (k, v) for k, v in kv.items()]
    print("\nFIGURES %s | %s" % (test, " | ".join(items)), flush=True)


def wait_threads(pid, n, timeout=None, what="threads"):
    """Waits until the process has at most n threads; returns the count."""
    last = []

    def ok():
        last[:] = [threads(pid)]
        return last[0] <= n

    wait_until(ok, timeout, "%s back to %d" % (what, n), lambda: "now %r" % last)
    return last[0]


# ---------------------------------------------------------------------------
# Many sockets
# ---------------------------------------------------------------------------


def hold_silent(port, n, host="127.0.0.1", timeout=None):
    """Opens n connections that never send a byte; returns them."""
    socks = []
    deadline = time.monotonic() + (timeout or TIMEOUT)
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        s = socket.socket()
        s.settimeout(TIMEOUT)
        try:
            s.connect((host, port))
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def need_fds(n):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        new = n if hard == resource.RLIM_INFINITY else min(n, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft != resource.RLIM_INFINITY and soft < n:
        pytest.skip("open-file limit %d is below the %d this test needs" % (soft, n))


def accept_queue(port):
    """Connections waiting in the accept queue of whoever listens on port
    (rx_queue of the LISTEN socket in /proc/net/tcp*), or None."""
    total = None
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        total = (total or 0) + int(parts[4].split(":")[1], 16)
        except OSError:
            pass
    return total


def wait_accepted(port, timeout=None):
    """Waits until the program listening on port has accepted every
    connection made to it so far."""
    wait_until(lambda: accept_queue(port) == 0, timeout, "the accept queue of port %d drained" % port,
               lambda: "queue %r" % accept_queue(port))
