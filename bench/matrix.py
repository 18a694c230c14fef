#!/usr/bin/env python3
"""bench/matrix.py - the fixed benchmark matrix: server5 beside ngircd, the
pipe points and the cluster points.

Run by `make bench` (see bench/bench.mk).  Every chatbench point starts a
fresh server, runs bench/chatbench.c against it on loopback, stops the
server and keeps chatbench's last output line (key=value pairs).  server5
runs with its default queue options (--queue-limit 1000: where a fan-out
waits; --stall-timeout 10: the only eviction); only its connection-count
limits are raised for the matrix's clients, all from 127.0.0.1.  The same
points also run against bench/trivial_relay.c, the generator's own
ceiling, unless --no-ceiling.  Then the pipe points (bench/pipe.py: a file
piped into chat -> chat, chat5 -> server5 -> 10 chat5, nc -> nc) and the
cluster points (bench/cluster.py: two server5 through a 2-node NATS
cluster, beside one).  Prints the tables and writes
build/bench/results.{json,md}; every server's log and chatbench's full
output go to build/bench/logs/.

    python3 bench/matrix.py --server5 ./server5 --tools build/bench
    python3 bench/matrix.py ... --only 100x2,lat100 --duration 5
    python3 bench/matrix.py ... --only pipe            (or pipe-chat5, ...)
    python3 bench/matrix.py ... --only cluster         (or cl1000x1, cllat1000)
    python3 bench/matrix.py --tools build/bench --ceiling   (trivial relay only)
    python3 bench/matrix.py ... --perf     (100x2 on server5 under perf record)
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import cluster
import pipe
from benchlib import (can_connect, fnum, log, log_count, machine, median, parse_kv,
                      port_free, raise_nofile, snapshot, source_version, wait_quiet)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NGIRCD_CONF = os.path.join(HERE, "ngircd.conf")
NGIRCD_PORT = 26667  # must match Ports in bench/ngircd.conf
WINDOW = 1000

# The matrix.  rate 0: closed loop with WINDOW messages outstanding per
# sender (a message is outstanding until every receiver got it).
POINTS = [
    dict(name="10x1", title="10 receivers x 1 sender, max rate (window 1000)",
         receivers=10, senders=1, rate=0),
    dict(name="100x2", title="100 receivers x 2 senders, max rate (window 1000)",
         receivers=100, senders=2, rate=0),
    dict(name="1000x1", title="1000 receivers x 1 sender, max rate (window 1000)",
         receivers=1000, senders=1, rate=0),
    dict(name="lat100", title="latency: 100 receivers, 1 sender at 200 msg/s",
         receivers=100, senders=1, rate=200),
    dict(name="lat1000", title="latency: 1000 receivers, 1 sender at 50 msg/s",
         receivers=1000, senders=1, rate=50),
    dict(name="hold5000", title="5000 subscribers held, 1 sender at 20 msg/s (server5 only)",
         receivers=5000, senders=1, rate=20, only=("server5", "trivial")),
]


class Server:
    """One fresh server process for one point."""

    def __init__(self, kind, point, args, logpath, extra=()):
        self.kind = kind
        self.logpath = logpath
        self.logf = open(logpath, "wb")
        n = point["receivers"] + point["senders"] + 64
        if kind == "server5":
            # Its default queue options (--queue-limit 1000, --stall-timeout
            # 10): only the connection-count limits are raised, since all
            # the clients come from 127.0.0.1.
            argv = [args.server5, "--max-clients", str(n), "--max-per-ip", str(n),
                    "--max-conns", str(n)] + list(extra) + ["127.0.0.1:0"]
        elif kind == "ngircd":
            if not port_free(NGIRCD_PORT):
                raise RuntimeError("port %d (bench/ngircd.conf) is in use: is another "
                                   "ngircd running?" % NGIRCD_PORT)
            argv = [args.ngircd, "-n", "-f", NGIRCD_CONF]
        else:
            argv = [os.path.join(args.tools, "trivial_relay"), "0"]
        self.argv = argv
        self.logf.write(("# " + " ".join(argv) + "\n").encode())
        self.logf.flush()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                  stderr=self.logf, preexec_fn=raise_nofile)
        self.pid = self.p.pid
        self.port = self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("%s exited at start (status %s); see %s"
                                   % (self.kind, self.p.returncode, self.logpath))
            if self.kind == "ngircd":
                if can_connect(NGIRCD_PORT):
                    return NGIRCD_PORT
            else:
                with open(self.logpath, "rb") as f:
                    for line in f.read().decode(errors="replace").splitlines():
                        if "listening on port" in line:
                            return int(line.rsplit(" ", 1)[1])
            time.sleep(0.05)
        raise RuntimeError("%s not ready after 15 s; see %s" % (self.kind, self.logpath))

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        """SIGTERM, then SIGKILL after 15 s.  Returns the exit status."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()
        return self.p.returncode

    def log_count(self, word):
        return log_count(self.logpath, word)


def chatbench_argv(args, point, port, pids, tag):
    argv = [os.path.join(args.tools, "chatbench"), "--port", str(port),
            "--server-pid", ",".join(str(p) for p in pids),
            "-r", str(point["receivers"]), "-s", str(point["senders"]),
            "-d", str(args.duration), "--drain", str(args.drain), "--idle", str(args.idle),
            "--label", tag]
    if point["rate"]:
        argv += ["--rate", str(point["rate"])]
    else:
        argv += ["-w", str(WINDOW)]
    return argv


def run_chatbench(args, argv, logdir, tag, on_ready=None):
    """Runs chatbench to its end; returns the key=value pairs of its last
    line, with its stderr (last 20 lines) and exit status.  on_ready() is
    called from here once its setup is done (perf record)."""
    argv = argv + args.chatbench_arg
    timeout = args.duration + args.drain + 300
    out_path = os.path.join(logdir, tag + ".chatbench.txt")
    extra = {}
    with open(out_path, "w") as outf:
        outf.write("# " + " ".join(argv) + "\n")
        outf.flush()
        cb = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, preexec_fn=raise_nofile)
        ready = threading.Event()
        err_lines, out_lines = [], []

        def pump_err():
            for line in cb.stderr:
                err_lines.append(line)
                if "setup:" in line:
                    ready.set()
            ready.set()

        def pump_out():
            for line in cb.stdout:
                out_lines.append(line)

        readers = [threading.Thread(target=pump_err, daemon=True),
                   threading.Thread(target=pump_out, daemon=True)]
        for th in readers:
            th.start()
        if on_ready:
            extra = on_ready(ready) or {}
        try:
            cb.wait(timeout)
        except subprocess.TimeoutExpired:
            cb.kill()
            cb.wait()
            out_lines.append("\nerror=timeout\n")
        for th in readers:
            th.join(5)
        out = "".join(out_lines)
        outf.write("".join(err_lines))
        outf.write(out)
    lines = [l for l in out.splitlines() if l.strip()]
    res = parse_kv(lines[-1]) if lines else {"error": "no output"}
    res["chatbench_exit"] = cb.returncode
    res["stderr"] = [l.rstrip("\n") for l in err_lines][-20:]
    res.update(extra)
    return res


def run_point(args, point, kind, logdir, rep, perf=False):
    tag = "%s-%s-%d" % (point["name"], kind, rep + 1)
    t0 = time.monotonic()
    server = Server(kind, point, args, os.path.join(logdir, tag + ".server.log"))
    argv = chatbench_argv(args, point, server.port, [server.pid], tag)
    argv += ["--proto", "irc" if kind == "ngircd" else "server5"]
    on_ready = None
    if perf:
        def on_ready(ready):
            txt = record_perf(args, server, ready, logdir, tag)
            return {"perf_report": txt} if txt else {}
    try:
        res = run_chatbench(args, argv, logdir, tag, on_ready)
    finally:
        alive = server.alive()
        status = server.stop()
    res["point"] = point["name"]
    res["server"] = kind
    res["wall_s"] = round(time.monotonic() - t0, 1)
    res["server_alive_after"] = alive
    res["server_exit"] = status
    if kind == "server5":
        res["evictions"] = server.log_count("evicted")
        res["refusals"] = server.log_count("refused")
    if kind == "ngircd":
        # Clients ngIRCd dropped for flooding or for not reading fast enough.
        res["ngircd_dropped"] = server.log_count("space exhausted") + \
            server.log_count("Excess Flood")
    return res


def record_perf(args, server, ready, logdir, tag):
    """perf record on the server for most of the measured window."""
    perf = shutil.which("perf")
    if not perf:
        log("  (perf not found: no profile)")
        return None
    ready.wait(120)
    time.sleep(1.0)  # settle (0.5 s) and let the load build up
    data = os.path.join(logdir, tag + ".perf.data")
    secs = max(1.0, args.duration - 2)
    subprocess.run([perf, "record", "-F", "999", "-g", "-o", data, "-p", str(server.pid),
                    "--", "sleep", str(secs)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    rep = subprocess.run([perf, "report", "-i", data, "--no-children", "--sort", "sym",
                          "--stdio", "-g", "none", "--percent-limit", "0.7"],
                         capture_output=True, text=True)
    path = os.path.join(logdir, tag + ".perf.txt")
    with open(path, "w") as f:
        f.write(rep.stdout)
    top = [l for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#")]
    log("  perf profile of %s (top symbols, self time; full: %s):" % (tag, path))
    for l in top[:25]:
        log("    " + l.strip())
    return "\n".join(top[:40])


# ---------------------------------------------------------------------------
# Tables


def ms(res, key):
    v = res.get(key) if res else None
    return None if v is None else v / 1000.0


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return "%.2fx" % (a / b)


def health(res):
    """What went wrong in a run, in a few words ("ok" if nothing)."""
    bad = []
    if res.get("error") not in (0, None):
        bad.append("error: %s" % res.get("error"))
    if not res.get("server_alive_after", True):
        bad.append("SERVER DIED")
    for key, word in (("out_of_order", "out-of-order"), ("corrupt", "corrupt"),
                      ("gaps", "gaps"), ("rx_disconnects", "rx disconnects"),
                      ("tx_disconnects", "tx disconnects"), ("evictions", "evictions"),
                      ("ngircd_dropped", "clients dropped by ngircd")):
        if res.get(key):
            bad.append("%s %s" % (fnum(res[key]), word))
    if res.get("stalled"):
        bad.append("stalled")
    if res.get("delivered_ratio", 1) < 1:
        bad.append("%s not delivered %s s after the last send" % (
            fnum(res.get("missing")), fnum(res.get("drain_s"))))
    if res.get("other_cpu_pct", 0) > 15:
        bad.append("other programs used %s%% of a CPU" % fnum(res["other_cpu_pct"]))
    if res.get("tx_late_max_us", 0) > 10000:
        bad.append("generator sent up to %s ms late" % fnum(res["tx_late_max_us"] / 1000.0))
    return ", ".join(bad) if bad else "ok"


def group(results, point, server):
    return [r for r in results if r["point"] == point and r["server"] == server]


def key_metric(point):
    return "lat_p99_us" if point.startswith("lat") else "deliveries_per_s"


def representative(runs, point):
    """The run whose key metric is the median."""
    key = key_metric(point)
    ok = [r for r in runs if r.get(key) is not None]
    if not ok:
        return runs[0] if runs else None
    ok.sort(key=lambda r: r[key])
    return ok[len(ok) // 2]


def spread(runs, key, scale, digits):
    vals = [r[key] * scale for r in runs if r.get(key) is not None]
    if len(vals) < 2:
        return ""
    return " (%s-%s)" % (fnum(min(vals), digits), fnum(max(vals), digits))


def all_health(runs):
    seen = []
    for r in runs:
        h = health(r)
        if h != "ok" and h not in seen:
            seen.append(h)
    return "; ".join(seen) if seen else "ok"


def compare_table(results):
    rows = ["| point | metric | server5 | ngircd | server5 / ngircd | target (issues 5, 9) | "
            "generator ceiling (trivial relay) |",
            "|---|---|---:|---:|---:|---|---:|"]
    spec = [
        ("10x1", "deliveries/s", 1, 0, ""),
        ("100x2", "deliveries/s", 1, 0, ">= 3x ngircd"),
        ("1000x1", "deliveries/s", 1, 0, ">= 2x ngircd"),
        ("lat100", "p99 latency ms", 1e-3, 2, "<= ngircd"),
        ("lat1000", "p99 latency ms", 1e-3, 2, "<= ngircd"),
    ]
    for point, label, scale, d, target in spec:
        a, b, t = (group(results, point, k) for k in ("server5", "ngircd", "trivial"))
        if not a and not b:
            continue
        key = key_metric(point)
        va = median(r.get(key) for r in a)
        vb = median(r.get(key) for r in b)
        vt = median(r.get(key) for r in t)
        va, vb, vt = (None if v is None else v * scale for v in (va, vb, vt))
        rows.append("| %s | %s | %s%s | %s%s | %s | %s | %s |" % (
            point, label, fnum(va, d), spread(a, key, scale, d), fnum(vb, d),
            spread(b, key, scale, d), ratio(va, vb), target, fnum(vt, d)))
        rows.append("| %s | delivered ratio (min); problems | %s; %s | %s; %s | | every "
                    "message, in order, none corrupt | %s; %s |" % (
                        point,
                        fnum(min((r.get("delivered_ratio", 0) for r in a), default=None), 6),
                        all_health(a),
                        fnum(min((r.get("delivered_ratio", 0) for r in b), default=None), 6),
                        all_health(b),
                        fnum(min((r.get("delivered_ratio", 0) for r in t), default=None), 6),
                        all_health(t)))
    return "\n".join(rows)


def detail_table(results):
    rows = ["| point | server | runs | msgs sent/s | deliveries/s | delivered ratio | "
            "p50 ms | p99 ms | max ms | sender late max ms | server CPU % | "
            "server peak RSS MiB | server threads | server context switches per delivery | "
            "generator CPU % | other programs CPU % |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    keys = []
    for r in results:
        if (r["point"], r["server"]) not in keys:
            keys.append((r["point"], r["server"]))
    for point, server in keys:
        runs = group(results, point, server)
        r = representative(runs, point)
        cs = r.get("srv_ctxsw_per_delivery")
        rows.append("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            point, server if server != "trivial" else "trivial relay", len(runs),
            fnum(r.get("sent_per_s")), fnum(r.get("deliveries_per_s")),
            fnum(r.get("delivered_ratio"), 6), fnum(ms(r, "lat_p50_us"), 2),
            fnum(ms(r, "lat_p99_us"), 2), fnum(ms(r, "lat_max_us"), 2),
            fnum(ms(r, "tx_late_max_us"), 2) if r.get("rate") else "-",
            fnum(r.get("srv_cpu_pct")), fnum((r.get("srv_hwm_kb") or 0) / 1024.0, 1),
            fnum(r.get("srv_threads_end")), fnum(cs, 3) if cs is not None and cs >= 0 else "-",
            fnum(r.get("gen_cpu_pct")), fnum(r.get("other_cpu_pct"))))
    return "\n".join(rows)


def hold_table(results):
    r = representative(group(results, "hold5000", "server5"), "hold5000")
    if not r:
        return ""
    rows = ["| server5, 5000 subscribers x 20 msg/s | threads | RSS MiB | fds |",
            "|---|---:|---:|---:|"]
    for tag, what in (("base", "before subscribing"), ("ready", "all 5000 subscribed"),
                      ("end", "end of the run"),
                      ("unsub", "after all unsubscribed (connections still open)"),
                      ("closed", "after closing their connections")):
        rows.append("| %s | %s | %s | %s |" % (
            what, fnum(r.get("srv_threads_" + tag)),
            fnum((r.get("srv_rss_kb_" + tag) or 0) / 1024.0, 1), fnum(r.get("srv_fds_" + tag))))
    rows.append("")
    rows.append("Delivered %s of %s (ratio %s) within %s s of the last send, %s more while "
                "unsubscribing; %s deliveries/s (offered: %s); latency p50 %s ms, p99 %s ms, "
                "max %s ms; peak RSS %s MiB; server CPU %s%% of one core; problems: %s." % (
                    fnum(r.get("delivered")), fnum(r.get("expected")),
                    fnum(r.get("delivered_ratio"), 6), fnum(r.get("drain_s")),
                    fnum(r.get("late")), fnum(r.get("deliveries_per_s")),
                    fnum(5000 * 20), fnum(ms(r, "lat_p50_us"), 1), fnum(ms(r, "lat_p99_us"), 1),
                    fnum(ms(r, "lat_max_us"), 1), fnum((r.get("srv_hwm_kb") or 0) / 1024.0, 1),
                    fnum(r.get("srv_cpu_pct")), health(r)))
    return "\n".join(rows)


def build_commit(rev, out):
    """Builds server5 from commit rev (git archive, so the working tree is
    not touched) and returns the binary's path."""
    full = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", rev + "^{commit}"],
                          capture_output=True, text=True)
    if full.returncode != 0:
        sys.exit("matrix.py: no commit %s" % rev)
    rev = full.stdout.strip()
    src = os.path.join(out, "src-" + rev)
    binary = os.path.join(src, "server5")
    if not os.access(binary, os.X_OK):
        shutil.rmtree(src, ignore_errors=True)
        os.makedirs(src)
        arch = subprocess.Popen(["git", "-C", ROOT, "archive", rev], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", src], stdin=arch.stdout, check=True)
        arch.wait()
        log("bench: building server5 from commit %s in %s" % (rev, src))
        if subprocess.run(["make", "-C", src, "--no-print-directory", "programs"],
                          stdout=subprocess.DEVNULL).returncode != 0:
            shutil.rmtree(src, ignore_errors=True)
            sys.exit("matrix.py: server5 does not build at commit %s" % rev)
    return binary, rev


def select(args):
    """The chatbench points, pipe points and cluster points that --only asks
    for (all of them without --only)."""
    names = [p["name"] for p in POINTS]
    if not args.only:
        return POINTS, pipe.POINTS, cluster.POINTS
    want = args.only.split(",")
    for w in want:
        if w not in names + pipe.NAMES + cluster.NAMES + ["pipe", "cluster"]:
            sys.exit("matrix.py: --only: no point or section '%s' (points: %s; sections: "
                     "pipe, cluster)" % (w, ", ".join(names + pipe.NAMES + cluster.NAMES)))
    return ([p for p in POINTS if p["name"] in want],
            [p for p in pipe.POINTS if p["name"] in want or "pipe" in want],
            [p for p in cluster.POINTS if p["name"] in want or "cluster" in want])


def chatbench_results(results):
    return [r for r in results if "section" not in r]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server5", default=os.path.join(ROOT, "server5"))
    ap.add_argument("--chat", default="",
                    help="chat for the pipe points (default: next to --server5)")
    ap.add_argument("--chat5", default="",
                    help="chat5 for the pipe points (default: next to --server5)")
    ap.add_argument("--commit", default="",
                    help="benchmark server5 (and chat, chat5) as of this git commit (built "
                         "from git archive under build/bench/) instead of --server5")
    ap.add_argument("--ngircd", default=shutil.which("ngircd") or "/usr/sbin/ngircd")
    ap.add_argument("--nc", default=pipe.find_nc() or "",
                    help="netcat-openbsd, for the pipe-nc point")
    ap.add_argument("--nats-server", default=cluster.find_nats() or "",
                    help="nats-server, for the cluster points")
    ap.add_argument("--tools", default=os.path.join(ROOT, "build", "bench"),
                    help="directory with chatbench, trivial_relay and linesink")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--duration", type=float, default=8.0,
                    help="seconds of load per chatbench run (default 8)")
    ap.add_argument("--drain", type=float, default=15.0,
                    help="max seconds to wait for deliveries after sending stops")
    ap.add_argument("--idle", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each server5/ngircd comparison point, pipe point and "
                         "cluster point; the tables show the median (default 3)")
    ap.add_argument("--only", default="",
                    help="comma-separated point names, or the sections pipe, cluster")
    ap.add_argument("--servers", default="server5,ngircd,trivial")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the trivial relay")
    ap.add_argument("--ceiling", action="store_true", help="only the trivial relay")
    ap.add_argument("--perf", action="store_true",
                    help="only 100x2 (or the --only points) on server5, under perf record")
    ap.add_argument("--pipe-timeout", type=float, default=120.0,
                    help="pipe points: give up on a run after this many seconds")
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="max seconds to wait at the start for other programs to go "
                         "quiet (default 60; then at most 10 s before each run; 0: never "
                         "wait)")
    ap.add_argument("--chatbench-arg", action="append", default=[],
                    help="extra chatbench argument (repeatable)")
    args = ap.parse_args()

    servers = args.servers.split(",")
    if args.no_ceiling and "trivial" in servers:
        servers.remove("trivial")
    points, pipe_points, cluster_points = select(args)
    if args.ceiling:
        servers = ["trivial"]
        pipe_points, cluster_points = [], []
    if args.perf:
        wanted = args.only.split(",") if args.only else ["100x2"]
        points = [p for p in POINTS if p["name"] in wanted]
        servers = ["server5"]
        args.repeat = 1
        pipe_points, cluster_points = [], []
    tools = ["chatbench", "trivial_relay"] + (["linesink", "peakrss", "jsonfloor"] if pipe_points else [])
    for tool in tools:
        if not os.access(os.path.join(args.tools, tool), os.X_OK):
            sys.exit("matrix.py: %s not built (make bench-tools)" % tool)
    need_s5 = ("server5" in servers and points) or pipe_points or cluster_points
    if need_s5 and not args.commit and not os.access(args.server5, os.X_OK):
        sys.exit("matrix.py: %s not built (make programs)" % args.server5)
    if "ngircd" in servers and points and not os.access(args.ngircd, os.X_OK):
        sys.exit("matrix.py: ngircd not found (scripts/deps.sh bench installs it)")

    logdir = os.path.join(args.out, "logs")
    os.makedirs(logdir, exist_ok=True)
    raise_nofile()
    # Repeats are interleaved (server5, ngircd, server5, ...) so that a
    # slow spell of the machine does not land on one server only.
    runs = []
    for p in points:
        kinds = [s for s in servers if s in p.get("only", servers)]
        reps = 1 if p["name"] == "hold5000" else max(1, args.repeat)
        for rep in range(reps):
            for s in kinds:
                if s == "trivial" and rep > 0:
                    continue
                runs.append((p, s, rep))
    # The cluster points are compared with server5 alone at the same load:
    # when the matrix does not run those points, the cluster section does.
    cluster_runs = []
    for c in cluster_points:
        base = [p for p in POINTS if p["name"] == c["base"]][0]
        have_base = any(p is base and s == "server5" for p, s, _ in runs)
        for rep in range(max(1, args.repeat)):
            if not have_base:
                cluster_runs.append(("base", base, rep))
            cluster_runs.append(("cluster", c, rep))

    ngv = ""
    if "ngircd" in servers and points:
        ngv = subprocess.run([args.ngircd, "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    version = "-"
    if need_s5:
        if args.commit:
            server5, rev = build_commit(args.commit, args.out)
            src = os.path.dirname(server5)
            args.server5 = server5
            args.chat = args.chat or os.path.join(src, "chat")
            args.chat5 = args.chat5 or os.path.join(src, "chat5")
            version = rev
        else:
            version = source_version()
        bindir = os.path.dirname(os.path.abspath(args.server5))
        args.server5, digest = snapshot(args.server5, args.out, "server5")
        version += " (server5 sha256 %s" % digest
        if pipe_points:
            for prog in ("chat", "chat5"):
                path = getattr(args, prog) or os.path.join(bindir, prog)
                if not os.access(path, os.X_OK):
                    sys.exit("matrix.py: %s not built (make programs)" % path)
                copy, d = snapshot(path, args.out, prog)
                setattr(args, prog, copy)
                version += ", %s %s" % (prog, d)
        version += ")"
    nats_problem = None
    if cluster_points:
        if not args.nats_server or not os.access(args.nats_server, os.X_OK):
            nats_problem = "nats-server not found (%s; scripts/deps.sh bench installs it)" \
                % (args.nats_server or "not in PATH")
        else:
            nats_problem = cluster.nats_support(args.server5, logdir)
        if nats_problem:
            log("bench: no cluster points: %s" % nats_problem)
            cluster_runs = []
    log("bench: %d chatbench runs of %s s load each, %d pipe runs, %d cluster runs; %s; "
        "programs from %s" % (len(runs) + len(cluster_runs), fnum(args.duration),
                              len(pipe_points) * max(1, args.repeat),
                              sum(1 for k, _, _ in cluster_runs if k == "cluster"),
                              machine(), version))
    if ngv:
        log("bench: %s" % ngv)
    results = []
    t_all = time.monotonic()
    first = [True]

    def quiet_first():
        if args.quiet_wait <= 0:
            return None
        limit = args.quiet_wait if first[0] else min(10.0, args.quiet_wait)
        first[0] = False
        return wait_quiet(limit)

    def report_run(res):
        log("  %s deliveries/s, %s msgs/s sent, ratio %s, p50 %s ms, p99 %s ms, "
            "server CPU %s%%, %s (%s s)" % (
                fnum(res.get("deliveries_per_s")), fnum(res.get("sent_per_s")),
                fnum(res.get("delivered_ratio"), 6), fnum(ms(res, "lat_p50_us"), 2),
                fnum(ms(res, "lat_p99_us"), 2), fnum(res.get("srv_cpu_pct")), health(res),
                res.get("wall_s")))
        for line in res.get("stderr", []):
            if "setup:" not in line:
                log("    chatbench: " + line.split("chatbench: ", 1)[-1])

    for i, (point, kind, rep) in enumerate(runs):
        log("[%d/%d] %s on %s%s: %s" % (i + 1, len(runs), point["name"], kind,
                                         " (run %d)" % (rep + 1) if rep else "", point["title"]))
        quiet = quiet_first()
        try:
            res = run_point(args, point, kind, logdir, rep, perf=args.perf)
        except RuntimeError as e:
            log("  FAILED: %s" % e)
            res = {"point": point["name"], "server": kind, "error": str(e)}
        res["drain_s"] = args.drain
        res["busy_before"] = quiet
        results.append(res)
        report_run(res)

    if pipe_points:
        results += pipe.run_all(args, pipe_points, logdir, quiet_first)

    for i, (what, point, rep) in enumerate(cluster_runs):
        log("[cluster %d/%d] %s%s: %s" % (
            i + 1, len(cluster_runs), point["name"], " (run %d)" % (rep + 1) if rep else "",
            point["title"] if what == "cluster" else "server5 alone, for comparison: " +
            point["title"]))
        quiet = quiet_first()
        try:
            if what == "cluster":
                res = cluster.run(args, point, logdir, rep, sys.modules[__name__])
            else:
                res = run_point(args, point, "server5", logdir, rep)
        except RuntimeError as e:
            log("  FAILED: %s" % e)
            res = {"point": point["name"], "error": str(e),
                   "server": "server5 x 2 + NATS" if what == "cluster" else "server5"}
            if what == "cluster":
                res["section"] = "cluster"
        res["drain_s"] = args.drain
        res["busy_before"] = quiet
        results.append(res)
        report_run(res)

    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    md = []
    md.append("Measured %s on %s; programs from commit %s; %s s of load per chatbench run, "
              "drain up to %s s; median of %d runs (min-max); %s" % (
                  when, machine(), version, fnum(args.duration), fnum(args.drain),
                  args.repeat, ngv or ""))
    md.append("")
    cb = chatbench_results(results)
    if any(r["server"] in ("server5", "ngircd") for r in cb if r["point"] in
           [p["name"] for p in points]):
        md.append(compare_table(cb))
        md.append("")
    if cb:
        md.append("Median run of each point:")
        md.append("")
        md.append(detail_table(cb))
    hold = hold_table(cb)
    if hold:
        md.append("")
        md.append(hold)
    pt = pipe.table(results)
    if pt:
        md.append("")
        md.append("Pipe points (issue 9): a file piped into chat or chat5, every line to "
                  "every reader:")
        md.append("")
        md.append(pt)
    if cluster_points:
        md.append("")
        md.append("Cluster points (issue 12): two server5 joined through a 2-node NATS "
                  "cluster beside one server5:")
        md.append("")
        if nats_problem:
            md.append("Not run: %s." % nats_problem)
        else:
            md.append(cluster.table(results, health, ms))
    text = "\n".join(md)
    log("")
    log(text)
    log("")
    log("bench: done in %.0f s; results in %s/results.{md,json}, logs in %s" % (
        time.monotonic() - t_all, args.out, logdir))
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"when": when, "machine": machine(), "ngircd": ngv, "commit": version,
                   "duration": args.duration, "drain": args.drain, "repeat": args.repeat,
                   "nats_problem": nats_problem, "results": results}, f, indent=1,
                  default=str)


if __name__ == "__main__":
    main()
