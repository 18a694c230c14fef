"""bench/cluster.py - the cluster points of the matrix (issue 12).

Two server5, each joined to its own node of a 2-node nats-server cluster on
loopback (`server5 --nats nats://127.0.0.1:CLIENT_PORT`), 500 receivers on
each, one sender on the first: every message is fanned out by the first
server5 to its 500 and published once; the second gets it from NATS and
fans it out to its 500.  One chatbench drives both (--rx-port A,B: the
receivers alternate between the servers), so a message is complete only
when all 1,000 have it, exactly as at the single-server points it is
compared with (1000x1 and lat1000 of the matrix, server5 alone, 1,000
receivers).  On one machine this measures the cost of the NATS hop, not
scale: both server5, both nats-server and the generator share its 2 CPUs.

    cl1000x1    like 1000x1: closed loop, window 1000
    cllat1000   like lat1000: 50 msg/s, p99 latency

The nats-server nodes are started fresh for every run
(`nats-server -a 127.0.0.1 -p CLIENT -m MONITOR --cluster_name bench
--cluster nats://127.0.0.1:ROUTE --routes nats://127.0.0.1:OTHER_ROUTE`),
the run starts once /routez on both monitoring ports shows num_routes == 1,
and they are stopped (SIGTERM) at its end.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.request

from benchlib import Proc, fnum, free_port, log, log_count, log_lines, median

POINTS = [
    dict(name="cl1000x1", base="1000x1", receivers=1000, senders=1, rate=0,
         title="2 server5 x 500 receivers through a 2-node NATS cluster, 1 sender, max rate "
               "(window 1000)"),
    dict(name="cllat1000", base="lat1000", receivers=1000, senders=1, rate=50,
         title="2 server5 x 500 receivers through a 2-node NATS cluster, 1 sender at "
               "50 msg/s"),
]
NAMES = [p["name"] for p in POINTS]
BASES = [p["base"] for p in POINTS]


def find_nats():
    return shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if os.access("/usr/sbin/nats-server", os.X_OK) else None)


def nats_support(server5, logdir):
    """None if server5 runs with --nats, else why not (its own words)."""
    path = os.path.join(logdir, "cluster-probe.server5.log")
    with open(path, "wb") as f:
        p = subprocess.Popen([server5, "--nats", "nats://127.0.0.1:%d" % free_port(),
                              "127.0.0.1:0"], stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and p.poll() is None:
            if any("listening on port" in l for l in log_lines(path)):
                break
            time.sleep(0.05)
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if any("listening on port" in l for l in log_lines(path)):
                return None
        status = p.returncode
    text = " / ".join(l.strip() for l in log_lines(path)[-3:])
    return "server5 --nats exited with status %s: %s" % (status, text or "(no output)")


class NatsCluster:
    """n nats-server nodes on loopback, each routed to all the others."""

    def __init__(self, binary, n, logdir, tag, timeout=20):
        self.nodes = []
        ports = [(free_port(), free_port(), free_port()) for _ in range(n)]
        self.files = []
        try:
            for i, (client, monitor, route) in enumerate(ports):
                routes = ",".join("nats://127.0.0.1:%d" % r for j, (_, _, r) in enumerate(ports)
                                  if j != i)
                argv = [binary, "-a", "127.0.0.1", "-p", str(client), "-m", str(monitor),
                        "--cluster_name", "bench", "--cluster", "nats://127.0.0.1:%d" % route,
                        "--routes", routes]
                path = os.path.join(logdir, "%s.nats%d.log" % (tag, i))
                f = open(path, "wb")
                self.files.append(f)
                f.write(("# " + " ".join(argv) + "\n").encode())
                f.flush()
                p = Proc("nats-server %d" % i, argv, stdin=subprocess.DEVNULL, stdout=f,
                         stderr=f)
                self.nodes.append(dict(proc=p, client=client, monitor=monitor, route=route,
                                       log=path))
            self._wait_routes(n - 1, timeout)
        except BaseException:
            self.stop()
            raise

    def urls(self):
        return ["nats://127.0.0.1:%d" % n["client"] for n in self.nodes]

    def pids(self):
        return [n["proc"].pid for n in self.nodes]

    def _wait_routes(self, want, timeout):
        deadline = time.monotonic() + timeout
        while True:
            got = []
            for n in self.nodes:
                if n["proc"].poll() is not None:
                    raise RuntimeError("nats-server exited (status %s); see %s"
                                       % (n["proc"].status, n["log"]))
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/routez" % n["monitor"],
                                                timeout=1) as r:
                        got.append(json.load(r).get("num_routes", 0))
                except (OSError, ValueError):
                    got.append(None)
            if all(g == want for g in got):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("NATS cluster not routed after %.0f s (num_routes %s)"
                                   % (timeout, got))
            time.sleep(0.05)

    def stop(self):
        for n in self.nodes:
            n["proc"].stop(grace=10)
        for f in self.files:
            f.close()
        self.files = []


def run(args, point, logdir, rep, mx):
    """One run of a cluster point; mx is bench/matrix.py (Server,
    chatbench_argv, run_chatbench)."""
    tag = "%s-%d" % (point["name"], rep + 1)
    t0 = time.monotonic()
    servers = []
    cluster = NatsCluster(args.nats_server, 2, logdir, tag)
    try:
        # The connection-count limits of half the receivers (and the sender).
        half = dict(point, receivers=(point["receivers"] + 1) // 2)
        for i, url in enumerate(cluster.urls()):
            s = mx.Server("server5", half, args, os.path.join(logdir, "%s.server5-%s.log"
                                                               % (tag, "ab"[i])),
                          extra=["--nats", url])
            servers.append(s)
        for s in servers:
            deadline = time.monotonic() + 15
            while not any("NATS: connected to" in l for l in log_lines(s.logpath)):
                if time.monotonic() > deadline or not s.alive():
                    raise RuntimeError("server5 did not connect to NATS; see %s" % s.logpath)
                time.sleep(0.05)
        pids = [s.pid for s in servers] + cluster.pids()
        argv = mx.chatbench_argv(args, point, servers[0].port, pids, tag)
        argv += ["--proto", "server5", "--rx-port", ",".join(str(s.port) for s in servers)]
        res = mx.run_chatbench(args, argv, logdir, tag)
        alive = all(s.alive() for s in servers) and \
            all(n["proc"].poll() is None for n in cluster.nodes)
    finally:
        status = [s.stop() for s in servers]
        cluster.stop()
    res["point"] = point["name"]
    res["server"] = "server5 x 2 + NATS"
    res["section"] = "cluster"
    res["wall_s"] = round(time.monotonic() - t0, 1)
    res["server_alive_after"] = alive
    res["server_exit"] = status
    res["evictions"] = sum(log_count(s.logpath, "evicted") for s in servers)
    res["refusals"] = sum(log_count(s.logpath, "refused") for s in servers)
    res["slow_consumer"] = sum(log_count(s.logpath, "slow consumer") for s in servers)
    res["nats_warnings"] = [l.strip() for s in servers for l in log_lines(s.logpath)
                            if "NATS:" in l and ("lost" in l or "dropped" in l or
                                                 "never reached" in l or "not published" in l)][:10]
    names = ["server5 A", "server5 B", "nats-server A", "nats-server B"]
    cpu = str(res.get("watch_cpu_pct", "")).split(",")
    hwm = str(res.get("watch_hwm_kb", "")).split(",")
    cs = str(res.get("watch_ctxsw", "")).split(",")
    # Each server5 delivers to half the receivers: its context switches
    # per delivery it made (chatbench counts deliveries in the window).
    half_window = (res.get("deliveries_per_s") or 0) * (res.get("duration") or 0) / 2
    res["procs"] = []
    for i, name in enumerate(names):
        try:
            pr = dict(name=name, pid=pids[i], cpu_pct=float(cpu[i]), peak_rss_kb=int(hwm[i]),
                      ctxsw=int(cs[i]))
            if i < 2 and half_window > 0 and pr["ctxsw"] >= 0:
                pr["ctxsw_per_delivery"] = pr["ctxsw"] / half_window
            res["procs"].append(pr)
        except (IndexError, ValueError):
            res["procs"].append(dict(name=name, pid=pids[i]))
    return res


def table(results, health, ms):
    """The cluster section of results.md: each cluster point beside its
    single-server point (server5 runs of the matrix)."""
    rows = ["| point | servers | runs | deliveries/s | p50 ms | p99 ms | delivered ratio "
            "(min); problems | CPU % of one core: server5 A / server5 B / nats-server A / "
            "nats-server B / chatbench / other programs | server5 context switches per "
            "delivery: A / B | peak RSS MiB: server5 A / B, nats-server A / B |",
            "|---|---|---:|---:|---:|---:|---|---|---|---|"]
    any_row = False
    for p in POINTS:
        for name, server in ((p["base"], "server5"), (p["name"], "server5 x 2 + NATS")):
            rs = [r for r in results if r.get("point") == name and r.get("server") == server]
            if not rs:
                continue
            any_row = True
            key = "lat_p99_us" if p["rate"] else "deliveries_per_s"
            ok = sorted((r for r in rs if r.get(key) is not None), key=lambda r: r[key])
            rep = ok[len(ok) // 2] if ok else rs[0]
            healths = []
            for r in rs:
                h = health(r)
                if r.get("slow_consumer"):
                    h = (h + ", " if h != "ok" else "") + "%d slow-consumer drops logged" % \
                        r["slow_consumer"]
                if h not in healths:
                    healths.append(h)
            if server == "server5":
                cpu = "%s / - / - / - / %s / %s" % (fnum(rep.get("srv_cpu_pct")),
                                                     fnum(rep.get("gen_cpu_pct")),
                                                     fnum(rep.get("other_cpu_pct")))
                rss = "%.1f / -, - / -" % ((rep.get("srv_hwm_kb") or 0) / 1024.0)
                c = rep.get("srv_ctxsw_per_delivery")
                csw = "%s / -" % (fnum(c, 3) if c is not None and c >= 0 else "-")
                label = "1 server5, 1,000 receivers"
            else:
                pc = [pr.get("cpu_pct") for pr in rep.get("procs", [])]
                pr_ = [pr.get("peak_rss_kb") for pr in rep.get("procs", [])]
                pc += [None] * (4 - len(pc))
                pr_ += [None] * (4 - len(pr_))
                cpu = "%s / %s / %s / %s / %s / %s" % tuple(
                    [fnum(v) for v in pc] + [fnum(rep.get("gen_cpu_pct")),
                                            fnum(rep.get("other_cpu_pct"))])
                rss = "%s / %s, %s / %s" % tuple(
                    "-" if v is None else "%.1f" % (v / 1024.0) for v in pr_)
                label = "2 server5 x 500 receivers, 2 NATS nodes"
                csw = " / ".join(fnum(pr.get("ctxsw_per_delivery"), 3)
                                 for pr in rep.get("procs", [])[:2]) or "-"
            vals = [r[key] for r in rs if r.get(key) is not None]
            scale = 1e-3 if p["rate"] else 1
            d = 2 if p["rate"] else 0
            rng = " (%s-%s)" % (fnum(min(vals) * scale, d), fnum(max(vals) * scale, d)) \
                if len(vals) > 1 else ""
            dv = median(r.get("deliveries_per_s") for r in rs)
            p50 = median(ms(r, "lat_p50_us") for r in rs)
            p99 = median(ms(r, "lat_p99_us") for r in rs)
            rows.append("| %s | %s | %d | %s%s | %s | %s%s | %s; %s | %s | %s | %s |" % (
                name, label, len(rs), fnum(dv), "" if p["rate"] else rng, fnum(p50, 2),
                fnum(p99, 2), rng if p["rate"] else "",
                fnum(min((r.get("delivered_ratio", 0) for r in rs), default=None), 6),
                "; ".join(healths), cpu, csw, rss))
    if not any_row:
        return ""
    rows.append("")
    rows.append("Medians of the runs (min-max of the key metric: deliveries/s at the "
                "max-rate points, p99 at the 50 msg/s points); CPU and RSS from the median "
                "run, CPU over the measured window.  All processes share this machine's "
                "%d CPUs: this is the overhead of the NATS hop on one machine, not scale."
                % (os.cpu_count() or 0))
    return "\n".join(rows)
