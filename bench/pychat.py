#!/usr/bin/env python3
"""bench/pychat.py - a simple Python chat of the assignment (question 1),
the yardstick issue 9 names: "a simple Python implementation moves this file
chat -> chat at about 100,000 lines/s, losing nothing, because its blocking
sendall is back-pressure".  The pipe points run it beside chat, so the
host's speed can be told apart from the programs'.

    python3 bench/pychat.py NAME PORT [HOST:PORT ...]

Listens on PORT (0: any; "listening on port N" on stderr), prints every
message received as USER: MESSAGE, sends every line of stdin to every peer
as {"seq": N, "user": NAME, "message": LINE}, ends at "exit" or EOF.
"""

import json
import socket
import sys
import threading


def serve(conn, out, lock):
    for line in conn.makefile("rb"):
        m = json.loads(line)
        text = "%s: %s\n" % (m["user"], m["message"])
        with lock:
            out.write(text)
    with lock:
        out.flush()


def main():
    name, port, peers = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    sys.stderr.write("%s listening on port %d\n" % (name, srv.getsockname()[1]))
    sys.stderr.flush()
    lock = threading.Lock()

    def accept():
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn, sys.stdout, lock), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    socks = []
    for p in peers:
        host, pport = p.rsplit(":", 1)
        socks.append(socket.create_connection((host, int(pport))))
    seq = 0
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line == "exit":
            break
        data = (json.dumps({"seq": seq, "user": name, "message": line}) + "\n").encode()
        seq += 1
        for s in socks:
            s.sendall(data)
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
