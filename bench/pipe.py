"""bench/pipe.py - the pipe points of the matrix (issue 9): a file piped in.

A file of 100,000 lines of 45 bytes is piped

  pipe-chat    into `chat s 0 127.0.0.1:R`, to one `chat r R` reader;
  pipe-chat5   into `chat5 s 0 127.0.0.1:S`, through `server5 127.0.0.1:0`
               (its default options) to 10 `chat5 rK 0 127.0.0.1:S` readers;
  pipe-nc      into `nc -N 127.0.0.1 P`, to `nc -d -l 127.0.0.1 P`: the cost of
               moving the same bytes at all.

Every reader's stdout goes to a file on tmpfs (/dev/shm).  A run lasts from
just before the sender is started until every reader's file has its full
size (polled every 2 ms): lines/s end to end.  Then the readers'
stdin is closed (they exit as at the end of the input), server5 gets
SIGTERM, and each file is checked by bench/linesink.c (1 MiB reads): every
line of the input, after the "s: " that chat and chat5 put before it, in
order, byte for byte, nothing else.  Every program runs under
bench/peakrss.c, which collects it with wait4: its peak RSS (ru_maxrss)
and CPU time.

Run by bench/matrix.py (`make bench-pipe`, or `--only pipe` / `--only
pipe-chat5,...`).
"""

import os
import re
import shutil
import subprocess
import sys
import time

from benchlib import (Proc, fnum, free_port, log, log_count, log_lines, machine_busy_s,
                      median, wait_log)

NLINES = 100000
LINE_BYTES = 45         # with its newline
CHAT5_READERS = 10
SENDER = "s"            # the sender's user name: readers print "s: LINE"
TARGETS = {
    "pipe-chat": (300000, "chat -> chat >= 300,000 lines/s"),
    "pipe-chat5": (100000, "chat5 -> server5 -> 10 readers >= 100,000 lines/s"),
}
RSS_LIMIT_KB = 64 * 1024

POINTS = [
    dict(name="pipe-chat", kind="chat", readers=1,
         title="100,000 lines piped into chat -> 1 chat reader"),
    dict(name="pipe-chat5", kind="chat5", readers=CHAT5_READERS,
         title="100,000 lines piped into chat5 -> server5 (default options) -> 10 chat5 readers"),
    dict(name="pipe-nc", kind="nc", readers=1,
         title="the same bytes piped into nc -> nc (netcat-openbsd)"),
    dict(name="pipe-python", kind="python", readers=1,
         title="the same file through a simple Python chat -> 1 Python reader (bench/pychat.py)"),
]
PYCHAT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pychat.py")
NAMES = [p["name"] for p in POINTS]


def make_lines(path, n=NLINES):
    """Line k: its number in 6 digits, a space, 37 letters that depend on k
    (45 bytes with the newline).  Plain ASCII: nothing for chat to escape."""
    alpha = "abcdefghijklmnopqrstuvwxyz" * 3
    with open(path, "w") as f:
        for k in range(n):
            f.write("%06d %s\n" % (k, alpha[k % 26:k % 26 + 37]))
    return os.path.getsize(path)


def out_dir(args):
    """Where the readers' output goes: tmpfs when there is one (no disk
    writeback competing with the run)."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return args.out


def verify(tools, lines_path, out_path, prefix, label):
    """linesink on one reader's output: every line, in order, byte for byte."""
    with open(out_path, "rb") as inp:
        r = subprocess.run([os.path.join(tools, "linesink"), "--expect", lines_path,
                            "--prefix", prefix, "--label", label], stdin=inp,
                           capture_output=True, text=True)
    eof = {}
    for line in r.stdout.splitlines():
        if line.startswith("eof "):
            eof = dict(kv.split("=", 1) for kv in line.split()[1:])
    eof["first_bad"] = r.stderr.strip()
    return eof


def run(args, point, logdir, rep, lines_path, nbytes):
    """One run of a pipe point; returns its result."""
    tag = "%s-%d" % (point["name"], rep + 1)
    kind = point["kind"]
    nread = point["readers"]
    prefix = "" if kind == "nc" else SENDER + ": "
    want = NLINES * len(prefix) + nbytes         # each reader's output, in bytes
    res = dict(point=point["name"], section="pipe", rep=rep + 1, lines=NLINES, bytes=nbytes,
               readers=nread)
    procs = []          # (role, Proc, log path)
    server = None
    files = []
    outs = []           # (label, path, file)
    odir = out_dir(args)

    def logfile(name):
        path = os.path.join(logdir, "%s.%s.log" % (tag, name))
        f = open(path, "wb")
        files.append(f)
        return path, f

    def measured(name):
        return dict(peakrss=os.path.join(args.tools, "peakrss"),
                    report=os.path.join(logdir, "%s.%s.rusage" % (tag, name)))

    busy0 = machine_busy_s()
    t_run0 = time.monotonic()
    try:
        if kind == "chat5":
            spath, sf = logfile("server5")
            server = Proc("server5", [args.server5, "127.0.0.1:0"], stdin=subprocess.DEVNULL,
                          stdout=sf, stderr=sf, **measured("server5"))
            procs.append(("server5", server, spath))
            lines = wait_log(spath, lambda ls: any("listening on port" in l for l in ls), 15,
                             [server.p], "server5 listening")
            sport = int([l for l in lines if "listening on port" in l][0].rsplit(" ", 1)[1])

        # The readers, stdout to a file each.
        readers = []
        for k in range(nread):
            label = "r%d" % k
            opath = os.path.join(odir, "chatbench-%d-%s.%s.out" % (os.getpid(), tag, label))
            of = open(opath, "wb")
            outs.append((label, opath, of))
            rpath, rf = logfile(label)
            if kind == "chat":
                argv = [args.chat, label, "0"]
            elif kind == "python":
                argv = [sys.executable, PYCHAT, label, "0"]
            elif kind == "chat5":
                argv = [args.chat5, label, "0", "127.0.0.1:%d" % sport]
            else:
                nc_port = free_port()
                argv = [args.nc, "-v", "-d", "-l", "127.0.0.1", str(nc_port)]
            r = Proc(label, argv, stdin=subprocess.DEVNULL if kind == "nc" else subprocess.PIPE,
                     stdout=of, stderr=rf, **measured(label))
            readers.append(r)
            procs.append(("reader", r, rpath))

        # Wait until they can take the first line.
        if kind in ("chat", "python"):
            lines = wait_log(procs[-1][2], lambda ls: any("listening on port" in l for l in ls),
                             15, [readers[0].p], "chat reader listening")
            port = int(re.search(r"listening on port (\d+)",
                                 "\n".join(lines)).group(1))
        elif kind == "nc":
            wait_log(procs[-1][2], lambda ls: any("Listening on" in l for l in ls), 15,
                     [readers[0].p], "nc listening")
        else:
            wait_log(spath, lambda ls: sum(1 for l in ls if ": subscribed " in l) >= nread,
                     30, [server.p] + [r.p for r in readers],
                     "%d subscribers in server5's log" % nread)

        # The sender: from here until every reader's output has its full
        # size (polled every 2 ms; verified line by line afterwards).
        if kind == "chat":
            argv = [args.chat, SENDER, "0", "127.0.0.1:%d" % port]
        elif kind == "python":
            argv = [sys.executable, PYCHAT, SENDER, "0", "127.0.0.1:%d" % port]
        elif kind == "chat5":
            argv = [args.chat5, SENDER, "0", "127.0.0.1:%d" % sport]
        else:
            argv = [args.nc, "-N", "127.0.0.1", str(nc_port)]
        tpath, tf = logfile("sender")
        ends = [None] * nread
        fds = [o[2].fileno() for o in outs]
        with open(lines_path, "rb") as inp:
            t0 = time.monotonic()
            sender = Proc("sender", argv, stdin=inp, stdout=subprocess.DEVNULL, stderr=tf,
                          **measured("sender"))
        procs.insert(0, ("sender", sender, tpath))
        deadline = t0 + args.pipe_timeout
        while True:
            now = time.monotonic()
            for k in range(nread):
                if ends[k] is None and os.fstat(fds[k]).st_size >= want:
                    ends[k] = now
            if all(e is not None for e in ends) or now > deadline:
                break
            if sender.poll() is not None and now > sender.t_exit + 10:
                break       # the sender is gone and 10 s later bytes are still missing
            time.sleep(0.002)   # the harness's own CPU: about 3% of one, at 10 readers
        if all(e is not None for e in ends):
            elapsed = max(ends) - t0
            res["elapsed_s"] = elapsed
            res["lines_per_s"] = NLINES / elapsed
            res["deliveries_per_s"] = res["lines_per_s"] * nread
            res["first_reader_s"] = min(ends) - t0
        else:
            res["error"] = "%d of %d readers did not get every byte" % (
                sum(1 for e in ends if e is None), nread)
        res["sender_done_s"] = (sender.t_exit - t0) if sender.t_exit else None

        # Teardown: end the readers' input (chat5 unsubscribes), then the
        # sender (already gone, normally), then server5.
        for r in readers:
            if r.p.stdin:
                r.p.stdin.close()
        for r in readers:
            if r.wait(15) is None:
                r.stop()
        if sender.wait(15) is None:
            sender.stop()
        if server:
            server.stop()
    finally:
        for _, p, _ in procs:
            if p.poll() is None:
                p.stop(grace=5)
        for f in files:
            f.close()
        for _, _, of in outs:
            of.close()
    busy1 = machine_busy_s()
    t_run1 = time.monotonic()

    # Every line at every reader, in order?
    bad = []
    for label, opath, _ in outs:
        e = verify(args.tools, lines_path, opath, prefix, label)
        if e.get("complete") != "1":
            keep = os.path.join(logdir, "%s.%s.out" % (tag, label))
            shutil.move(opath, keep)
            bad.append("%s: %s of %s lines ok, %s missing, %s out of order, %s repeated, "
                       "%s corrupt, %s extra (output kept in %s; %s)" % (
                           label, e.get("ok", "?"), NLINES, e.get("missing", "?"),
                           e.get("out_of_order", "?"), e.get("repeated", "?"),
                           e.get("corrupt", "?"), e.get("extra", "?"), keep,
                           e.get("first_bad", "")))
        else:
            os.unlink(opath)
    res["complete"] = not bad
    res["incomplete"] = bad
    res["procs"] = [dict(role=role, name=p.name, status=p.status,
                         peak_rss_kb=p.peak_rss_kb(), cpu_s=p.cpu_s())
                    for role, p, _ in procs]
    ours = sum(p.cpu_s() or 0 for _, p, _ in procs)
    # Other programs: what the machine did beyond our processes over the
    # whole run (setup and teardown included), in % of one CPU.
    res["other_cpu_s"] = max(0.0, (busy1 - busy0) - ours)
    res["other_cpu_pct"] = 100 * res["other_cpu_s"] / max(1e-3, t_run1 - t_run0)
    for role in ("sender", "server5", "reader"):
        rss = [p["peak_rss_kb"] for p in res["procs"] if p["role"] == role and p["peak_rss_kb"]]
        cpu = [p["cpu_s"] for p in res["procs"] if p["role"] == role and p["cpu_s"] is not None]
        if rss:
            res[role + "_rss_kb"] = max(rss)
            res[role + "_cpu_s"] = sum(cpu)
    res["max_rss_kb"] = max((p["peak_rss_kb"] or 0) for p in res["procs"])
    warn = []
    for role, p, path in procs:
        if role == "server5":
            res["evictions"] = log_count(path, "evicted")
        if p.status != 0:
            warn.append("%s exited %s" % (p.name, p.status))
        if kind != "nc":
            for l in log_lines(path):
                if any(w in l for w in ("dropped", "never delivered", "lost", "evicted",
                                        "stalled", "warning")):
                    warn.append("%s: %s" % (p.name, l.strip()))
                    break
    res["warnings"] = warn
    return res


def health(res):
    bad = []
    if res.get("error"):
        bad.append(res["error"])
    if not res.get("complete", False):
        bad.extend(res.get("incomplete", []) or ["incomplete"])
    if res.get("evictions"):
        bad.append("%d evicted" % res["evictions"])
    bad.extend(res.get("warnings", []))
    if res.get("max_rss_kb", 0) >= RSS_LIMIT_KB:
        bad.append("a process over 64 MiB")
    return "; ".join(bad) if bad else "ok"


def run_all(args, points, logdir, quiet):
    """Every pipe point, args.repeat times, interleaved; returns the results.
    quiet() waits for a quiet machine before each run and returns the last
    reading of its load."""
    lines_path = os.path.join(args.out, "pipe-lines.txt")
    nbytes = make_lines(lines_path)
    if not args.nc:
        log("bench: nc not found (scripts/deps.sh bench installs netcat-openbsd): "
            "no pipe-nc point")
        points = [p for p in points if p["kind"] != "nc"]
    runs = [(p, rep) for rep in range(max(1, args.repeat)) for p in points]
    results = []
    for i, (point, rep) in enumerate(runs):
        log("[pipe %d/%d] %s%s: %s" % (i + 1, len(runs), point["name"],
                                       " (run %d)" % (rep + 1) if rep else "", point["title"]))
        busy = quiet()
        t = time.monotonic()
        try:
            res = run(args, point, logdir, rep, lines_path, nbytes)
        except RuntimeError as e:
            log("  FAILED: %s" % e)
            res = dict(point=point["name"], section="pipe", rep=rep + 1, error=str(e),
                       complete=False)
        res["busy_before"] = busy
        res["wall_s"] = round(time.monotonic() - t, 1)
        results.append(res)
        log("  %s lines/s end to end (%s deliveries/s), %s s; peak RSS MiB: sender %s, "
            "server5 %s, readers %s; %s" % (
                fnum(res.get("lines_per_s")), fnum(res.get("deliveries_per_s")),
                fnum(res.get("elapsed_s"), 3), mib(res.get("sender_rss_kb")),
                mib(res.get("server5_rss_kb")), mib(res.get("reader_rss_kb")), health(res)))
    if any(p["kind"] == "chat5" for p in points):
        floor = json_floor(args, lines_path)
        if floor:
            results.append(floor)
    return results


def json_floor(args, lines_path):
    """json-c's own cost per message (bench/jsonfloor.c): the floor under
    every reader of the chat5 point."""
    tool = os.path.join(args.tools, "jsonfloor")
    if not os.access(tool, os.X_OK):
        log("bench: %s not built (make bench-tools): no json-c floor" % tool)
        return None
    out = subprocess.run([tool, lines_path, SENDER, "7"], capture_output=True, text=True)
    m = re.search(r"(\d+) ns of CPU per object", out.stdout)
    if out.returncode != 0 or not m:
        log("bench: jsonfloor failed: %s" % (out.stderr.strip() or out.stdout.strip()))
        return None
    log("  json-c alone: %s" % out.stdout.strip())
    return dict(point="jsonfloor", section="pipe", ns_per_object=int(m.group(1)))


def floor_note(results):
    """json-c's cost beside what the chat5 point's readers spent in all."""
    floor = next((r for r in results if r.get("point") == "jsonfloor"), None)
    rep = representative([r for r in results if r.get("point") == "pipe-chat5"])
    if not floor or not rep or rep.get("reader_cpu_s") is None:
        return ""
    spent = rep["reader_cpu_s"] / (NLINES * CHAT5_READERS) * 1e9
    return ("json-c alone (bench/jsonfloor.c: the readers' tokener, flags and field "
            "lookups, C locale, CPU time): %d ns per object; the chat5 point's readers "
            "spent %.0f ns of CPU per object in all (receiving, scanning, json-c, "
            "printing).  This host's speed drifts by up to 2x from minute to minute: "
            "compare the two within one run only."
            % (floor["ns_per_object"], spent))


def mib(kb):
    return "-" if kb is None else "%.1f" % (kb / 1024.0)


def representative(runs):
    ok = [r for r in runs if r.get("lines_per_s") is not None]
    if not ok:
        return runs[0] if runs else None
    ok.sort(key=lambda r: r["lines_per_s"])
    return ok[len(ok) // 2]


def table(results):
    """The pipe section of results.md."""
    groups = [(p, [r for r in results if r.get("point") == p["name"]]) for p in POINTS]
    groups = [(p, rs) for p, rs in groups if rs]
    if not groups:
        return ""
    nc = median(r.get("lines_per_s") for r in results if r.get("point") == "pipe-nc")
    rows = ["| point | runs | lines/s end to end | deliveries/s | / nc | target | "
            "every line at every reader, in order | peak RSS MiB: sender / server5 / "
            "reader (max) | CPU s: sender / server5 / readers (per reader) | CPU of the "
            "run's processes / elapsed | other programs, % of a CPU |",
            "|---|---:|---:|---:|---:|---|---|---|---|---:|---:|"]
    for p, rs in groups:
        v = median(r.get("lines_per_s") for r in rs)
        vals = [r["lines_per_s"] for r in rs if r.get("lines_per_s") is not None]
        rng = " (%s-%s)" % (fnum(min(vals)), fnum(max(vals))) if len(vals) > 1 else ""
        d = median(r.get("deliveries_per_s") for r in rs)
        target = TARGETS.get(p["name"])
        tgt = "-"
        if target:
            tgt = "%s: %s" % (target[1], "met" if v is not None and v >= target[0]
                              else "**not met**")
        rep = representative(rs)
        healths = []
        for r in rs:
            h = health(r)
            if h not in healths:
                healths.append(h)
        ours = sum(pr["cpu_s"] or 0 for pr in rep.get("procs", []))
        busy = "%.2f CPUs" % (ours / rep["elapsed_s"]) if rep.get("elapsed_s") else "-"
        nr = rep.get("readers") or 1
        rows.append("| %s | %d | %s%s | %s | %s | %s | %s | %s / %s / %s | %s / %s / %s (%s) "
                    "| %s | %s |"
                    % (p["name"], len(rs), fnum(v), rng, fnum(d),
                       "%.3f" % (v / nc) if v and nc else "-", tgt,
                       "yes, all %d runs" % len(rs) if healths == ["ok"] else
                       "; ".join(healths),
                       mib(max_of(rs, "sender_rss_kb")), mib(max_of(rs, "server5_rss_kb")),
                       mib(max_of(rs, "reader_rss_kb")),
                       fnum(rep.get("sender_cpu_s"), 2), fnum(rep.get("server5_cpu_s"), 2),
                       fnum(rep.get("reader_cpu_s"), 2),
                       fnum((rep.get("reader_cpu_s") or 0) / nr, 3), busy,
                       fnum(rep.get("other_cpu_pct"))))
    mx = max_of(results, "max_rss_kb")
    rows.append("")
    rows.append("%s lines of %d bytes (%s bytes); lines/s: median of the runs (min-max), "
                "from the sender's start until the last reader had its last line; "
                "deliveries/s = lines/s x readers; / nc: lines/s over nc -> nc's.  Peak "
                "RSS (ru_maxrss from wait4, in bench/peakrss.c) is the largest over the "
                "runs; every process under 64 MiB: %s (largest %s MiB).  CPU: the median "
                "run, each process's whole life (start-up included), and that total over "
                "the end-to-end time (this machine has %d CPUs)."
                % (fnum(NLINES), LINE_BYTES, fnum(NLINES * LINE_BYTES),
                   "met" if mx and mx < RSS_LIMIT_KB else "**not met**", mib(mx),
                   os.cpu_count() or 0))
    note = floor_note(results)
    if note:
        rows.append("")
        rows.append(note)
    return "\n".join(rows)


def max_of(rs, key):
    vals = [r.get(key) for r in rs if r.get(key) is not None]
    return max(vals) if vals else None


def find_nc():
    return shutil.which("nc.openbsd") or shutil.which("nc")
