"""make install / make uninstall into a scratch DESTDIR, and the systemd
unit for a relay that keeps running."""

import os
import shutil
import subprocess

import pytest

from conftest import ROOT, TIMEOUT, need_tool

FILES = ["bin/chat", "bin/chat5", "bin/server5",
         "share/man/man1/chat.1", "share/man/man1/chat5.1", "share/man/man1/server5.1",
         "lib/systemd/system/server5.service"]


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
    unit = (prefix / "lib/systemd/system/server5.service").read_text()
    # The unit runs the installed binary (the path as seen after DESTDIR is
    # gone), keeps its subscribers across restarts, and says where it is.
    assert "ExecStart=/opt/chat/bin/server5 --state " in unit
    assert "@BINDIR@" not in unit

    r = make("uninstall", "DESTDIR=%s" % dest, "PREFIX=/opt/chat")
    assert r.returncode == 0, r.stdout + r.stderr
    for f in FILES:
        assert not (prefix / f).exists(), f


def test_systemd_unit_verifies(tmp_path):
    """systemd's own check of the unit, installed for real (no DESTDIR) so
    that the binary it names exists."""
    analyze = need_tool("systemd-analyze")
    prefix = tmp_path / "prefix"
    r = make("install", "PREFIX=%s" % prefix)
    assert r.returncode == 0, r.stdout + r.stderr
    unit = prefix / "lib/systemd/system/server5.service"
    v = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True,
                       text=True, timeout=TIMEOUT * 3)
    assert v.returncode == 0 and v.stderr.strip() == "", v.stdout + v.stderr
