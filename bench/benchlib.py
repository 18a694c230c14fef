"""bench/benchlib.py - what bench/matrix.py, bench/pipe.py and bench/cluster.py share:
logging, the quiet-machine wait, processes and their rusage, number formatting."""

import hashlib
import os
import platform
import resource
import signal
import socket
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def log(msg):
    print(msg, flush=True)


def raise_nofile():
    """Children inherit it: ngircd does not raise its own limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def busy_cpus(secs=1.0):
    """CPUs' worth of busy time on the whole machine over secs (/proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    hz = os.sysconf("SC_CLK_TCK")
    a = sample()
    time.sleep(secs)
    return (sample() - a) / hz / secs


def wait_quiet(limit_s, threshold=0.25):
    """Waits (at most limit_s) until other programs use less than threshold
    of a CPU, so that runs do not compete with them.  Returns the last
    reading."""
    deadline = time.monotonic() + limit_s
    busy = busy_cpus()
    warned = False
    while busy > threshold and time.monotonic() < deadline:
        if not warned:
            log("  waiting for the machine to be quiet (other programs use %.0f%% of a "
                "CPU)..." % (100 * busy))
            warned = True
        busy = busy_cpus(2.0)
    if busy > threshold:
        log("  machine still busy (%.0f%% of a CPU); measuring anyway" % (100 * busy))
    return busy


def machine_busy_s():
    """The whole machine's busy CPU seconds so far (all CPUs, /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A port that was free a moment ago (for programs that cannot take 0)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def parse_kv(line):
    out = {}
    for tok in line.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            try:
                out[k] = float(v) if any(c in v for c in ".e") else int(v)
            except ValueError:
                out[k] = v
    return out


def log_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def log_count(path, word):
    return sum(1 for line in log_lines(path) if word in line)


def wait_log(path, pred, timeout, procs=(), what="a log line"):
    """Polls path until pred(lines) is true; raises RuntimeError when one of
    procs exits first or after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        lines = log_lines(path)
        if pred(lines):
            return lines
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError("%s exited (status %s) before %s; see %s"
                                   % (" ".join(p.args[:1]) if isinstance(p.args, list)
                                      else p.args, p.returncode, what, path))
        if time.monotonic() > deadline:
            raise RuntimeError("no %s after %.0f s; see %s" % (what, timeout, path))
        time.sleep(0.01)


class Proc:
    """A child whose exit is collected with wait4, for its rusage: peak RSS
    and CPU time.

    With peakrss (the path of bench/peakrss.c's binary) the program runs
    under it, and the figures are those peakrss collected: the peak RSS of
    a child of Python itself would include Python's own resident pages
    (Linux keeps the high-water mark of the forked copy across exec), so
    measured peaks must come from there.  pid is then peakrss's pid;
    signals sent to it reach the program."""

    def __init__(self, name, argv, peakrss=None, report=None, **kw):
        self.name = name
        self.argv = argv
        self.report = None
        if peakrss:
            self.report = report
            try:
                os.unlink(report)
            except OSError:
                pass
            argv = [peakrss, "--out", report, "--"] + list(argv)
        kw.setdefault("preexec_fn", raise_nofile)
        self.p = subprocess.Popen(argv, **kw)
        self.pid = self.p.pid
        self.status = None
        self.rusage = None
        self.measured = None
        self.t_exit = None

    def poll(self):
        if self.status is None:
            pid, st, ru = os.wait4(self.pid, os.WNOHANG)
            if pid == self.pid:
                self._reaped(st, ru)
        return self.status

    def _reaped(self, st, ru):
        self.t_exit = time.monotonic()
        self.status = os.waitstatus_to_exitcode(st)
        self.p.returncode = self.status
        self.rusage = ru
        if self.report:
            try:
                with open(self.report) as f:
                    self.measured = parse_kv(f.read())
                self.status = self.measured.get("status", self.status)
            except OSError:
                self.measured = {}

    def wait(self, timeout=None):
        """The exit status, or None after timeout seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.005)
        return self.status

    def stop(self, sig=signal.SIGTERM, grace=15):
        """sig, then SIGKILL after grace seconds.  The exit status."""
        if self.poll() is None:
            try:
                self.p.send_signal(sig)
            except ProcessLookupError:
                pass
            if self.wait(grace) is None:
                self.p.kill()
                self.wait()
        return self.status

    def peak_rss_kb(self):
        if self.report:
            return (self.measured or {}).get("maxrss_kb")
        return self.rusage.ru_maxrss if self.rusage else None

    def cpu_s(self):
        if self.report:
            m = self.measured or {}
            if "utime_s" not in m:
                return None
            return m["utime_s"] + m.get("stime_s", 0)
        if not self.rusage:
            return None
        return self.rusage.ru_utime + self.rusage.ru_stime


def fnum(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{}f}".format(v, digits)


def median(vals):
    vals = sorted(v for v in vals if v is not None)
    return vals[len(vals) // 2] if vals else None


def source_version():
    """The commit the programs were built from, and whether C sources differ."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain",
                                "--untracked-files=no", "--", "*.c", "*.h", "Makefile"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" with uncommitted changes to C sources" if dirty else "") if head \
        else "unknown"


def snapshot(binary, out, name=None):
    """A private copy of a program, so that a rebuild while the bench runs
    (make in another shell) cannot change it half-way.  Returns the copy's
    path and the first 12 hex digits of its sha256."""
    with open(binary, "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()[:12]
    copy = os.path.join(out, (name or os.path.basename(binary)) + ".bench")
    tmp = copy + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, copy)
    return copy, digest


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d CPUs (%s), Linux %s" % (os.cpu_count() or 0, cpu, platform.release())
