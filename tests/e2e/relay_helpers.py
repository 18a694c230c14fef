"""Helpers shared by the relay's end-to-end suites (test_relay.py and
test_faults.py): the objects on the wire, the server's log lines, waiting
on events with a deadline, and sockets closed at the end of a test."""

import json
import re
import socket
import time

import pytest

from conftest import TIMEOUT


def chat_obj(seq, user, message):
    return {"seq": seq, "user": user, "message": message}


def ctl_obj(client, op="subscribe"):
    return {"operation": op, "client": client}


def wire(obj):
    """An object as our programs send it: json.dumps spacing, raw UTF-8, \\n."""
    return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")


def loop(port):
    return "127.0.0.1:%d" % port


def subscribed_rx(port, ip=r"127\.0\.0\.1"):
    return r"(?<!un)subscribed %s:%d\b" % (ip, port)


def unsubscribed_rx(port):
    return r"unsubscribed 127\.0\.0\.1:%d\b" % port


def evicted_rx(port):
    return r"evicted 127\.0\.0\.1:%d\b" % port


def _lines(proc, stream="err"):
    with proc._lock:
        return list(proc.err_lines if stream == "err" else proc.out_lines)


def find_line(proc, pattern, stream="err"):
    """Index of the first line (from the very start, whatever the harness's
    cursor) matching pattern, or None."""
    rx = re.compile(pattern)
    for i, line in enumerate(_lines(proc, stream)):
        if rx.search(line):
            return i
    return None


def count_lines(proc, pattern, stream="err"):
    rx = re.compile(pattern)
    return sum(1 for line in _lines(proc, stream) if rx.search(line))


def wait_until(cond, timeout=None, what="condition", dump=None):
    deadline = time.monotonic() + (timeout or TIMEOUT)
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            extra = ("\n" + dump()) if dump else ""
            raise AssertionError("timed out after %ss waiting for %s%s" % (timeout or TIMEOUT, what, extra))
        time.sleep(0.01)


def dump_proc(proc):
    return lambda: "%s\nstdout: %r\nstderr: %r" % (proc.argv, _lines(proc, "out")[-20:], _lines(proc, "err")[-60:])


def wait_line(proc, pattern, timeout=None, stream="err"):
    """Waits for a line matching pattern anywhere in proc's output (not
    only after the harness's cursor); returns its index."""
    found = []

    def cond():
        i = find_line(proc, pattern, stream)
        if i is not None:
            found.append(i)
            return True
        return False

    wait_until(cond, timeout, "%s line matching %r" % (stream, pattern), dump_proc(proc))
    return found[0]


def wait_count(proc, pattern, n, timeout=None, stream="err"):
    wait_until(lambda: count_lines(proc, pattern, stream) >= n, timeout,
               "%d %s lines matching %r" % (n, stream, pattern), dump_proc(proc))


def wait_eof(sock, timeout=None):
    """Reads sock until the peer closes it (EOF or reset); returns the bytes."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + (timeout or TIMEOUT)
    got = bytearray()
    while True:
        try:
            b = sock.recv(65536)
        except socket.timeout:
            if time.monotonic() > deadline:
                raise AssertionError("connection not closed by the other side within %ss; got %r"
                                     % (timeout or TIMEOUT, bytes(got[:300])))
            continue
        except (ConnectionResetError, BrokenPipeError):
            return bytes(got)
        if not b:
            return bytes(got)
        got.extend(b)


def send_quietly(sock, data):
    """sendall that tolerates the other side closing on us mid-way."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


@pytest.fixture
def closing():
    """Collects things with a close() method to close at the end."""
    things = []

    def add(x):
        things.append(x)
        return x

    yield add
    for x in reversed(things):
        try:
            x.close()
        except OSError:
            pass

