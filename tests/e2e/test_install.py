"""make install / make uninstall into a scratch DESTDIR."""

import os
import subprocess

from conftest import ROOT, TIMEOUT

FILES = ["bin/chat", "bin/chat5", "bin/server5",
         "share/man/man1/chat.1", "share/man/man1/chat5.1", "share/man/man1/server5.1"]


def make(*args):
    return subprocess.run(["make", "-C", ROOT, "--no-print-directory"] + list(args),
                          capture_output=True, text=True, timeout=TIMEOUT * 12)


def test_install_and_uninstall(tmp_path):
    dest = tmp_path / "root"
    r = make("install", "DESTDIR=%s" % dest, "PREFIX=/opt/chat")
    assert r.returncode == 0, r.stdout + r.stderr
    prefix = dest / "opt" / "chat"
    for f in FILES:
        assert (prefix / f).is_file(), f
    for prog in ("chat", "chat5", "server5"):
        path = prefix / "bin" / prog
        assert os.access(path, os.X_OK)
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.startswith(prog + " "), out
    assert oct((prefix / "share/man/man1/chat.1").stat().st_mode & 0o777) == "0o644"

    r = make("uninstall", "DESTDIR=%s" % dest, "PREFIX=/opt/chat")
    assert r.returncode == 0, r.stdout + r.stderr
    for f in FILES:
        assert not (prefix / f).exists(), f
