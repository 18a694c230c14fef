"""The manual pages in man/: clean mdoc, and in step with the programs.

For each of chat(1), chat5(1) and server5(1):
  - `mandoc -T lint -W warning` reports nothing, and `groff -ww` neither;
  - `man -l` renders it without error;
  - every long option the program's --help prints is documented, both in
    the SYNOPSIS and in the OPTIONS section, and the SYNOPSIS names the
    program with the same short options and operands as its usage line,
    so the pages cannot drift from the code.

The programs are found as conftest.py finds them (CHAT, CHAT5, SERVER5, or
the binaries at the top of the tree).  The pages may document options that
--help does not print; the other way round fails.  A tool that is not
installed skips its own checks (fails under E2E_REQUIRE_TOOLS=1).
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import CHAT, CHAT5, ROOT, SERVER5, need_tool

MAN_DIR = os.path.join(ROOT, "man")
PAGES = {"chat": CHAT, "chat5": CHAT5, "server5": SERVER5}
NAMES = sorted(PAGES)

def mandoc():
    return need_tool("mandoc")


def groff():
    return need_tool("groff", "groff-base")


def man():
    return need_tool("man", "man-db")


def page_path(name):
    return os.path.join(MAN_DIR, name + ".1")


def run(argv, env=None, timeout=30):
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        timeout=timeout,
        check=False,
    )


def plain(raw):
    """Rendered bytes as plain text: overstrikes (bold, underline) removed,
    Unicode dashes folded to '-' so options compare as typed."""
    text = raw.decode("utf-8", "replace")
    text = re.sub(r".\x08", "", text)
    for dash in ("\u2010", "\u2011", "\u2012", "\u2013", "\u2212"):
        text = text.replace(dash, "-")
    return text


def render(name):
    """The page as text, one very wide line per paragraph, so that no
    option is broken across lines."""
    path = page_path(name)
    r = run([mandoc(), "-T", "ascii", "-O", "width=1000", path])
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    return plain(r.stdout)


def sections(text):
    """{SECTION NAME: body} of a rendered page (headers flush left)."""
    out, current = {}, None
    for line in text.splitlines():
        if re.match(r"^[A-Z][A-Z0-9 /]*$", line.rstrip()):
            current = line.strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def squash(text):
    return " ".join(text.split())


def help_text(name):
    argv = PAGES[name]
    if len(argv) == 1 and not os.access(argv[0], os.X_OK):
        pytest.skip(f"{argv[0]} is not built (make programs)")
    r = run(argv + ["--help"], timeout=10)
    assert r.returncode == 0, f"{name} --help exited {r.returncode}"
    text = r.stdout.decode("utf-8", "replace")
    assert text.strip(), f"{name} --help printed nothing"
    return text


def long_options(help_out):
    return sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help_out)))


def usage_line(help_out):
    """The usage line, continuation lines joined."""
    lines = help_out.splitlines()
    assert lines and lines[0].startswith("usage:"), lines[:1]
    usage = [lines[0]]
    for line in lines[1:]:
        if not line[:1].isspace() or not line.strip():
            break
        usage.append(line)
    return squash(" ".join(usage))


def mentions(text, option):
    return re.search(r"(?<![\w-])" + re.escape(option) + r"(?![\w-])", text)


@pytest.fixture(params=NAMES)
def name(request):
    if not os.path.exists(page_path(request.param)):
        pytest.fail(f"man/{request.param}.1 is missing")
    return request.param


# ---------------------------------------------------------------------------
# the pages are clean mdoc


def test_mandoc_lint_is_silent(name):
    r = run([mandoc(), "-T", "lint", "-W", "warning", page_path(name)])
    report = (r.stdout + r.stderr).decode("utf-8", "replace")
    assert report == "" and r.returncode == 0, report


def test_groff_has_no_warnings(name):
    r = run([groff(), "-ww", "-mdoc", "-Tutf8", "-z", page_path(name)])
    report = r.stderr.decode("utf-8", "replace")
    assert report == "" and r.returncode == 0, report


def test_man_l_renders(name):
    env = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat")
    env.pop("MAN_KEEP_FORMATTING", None)
    r = run([man(), "-l", page_path(name)], env=env)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, err
    assert not re.search(r"(?i)warning|error", err), err
    text = plain(r.stdout)
    for header in ("NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "EXAMPLES", "SEE ALSO"):
        assert re.search(rf"(?m)^{header}$", text), f"no {header} section"
    assert re.search(rf"(?m)^{name.upper()}\(1\)", text), "title is not NAME(1)"


def test_mandoc_utf8_renders(name):
    r = run([mandoc(), "-T", "utf8", page_path(name)])
    assert r.returncode == 0 and not r.stderr, r.stderr.decode("utf-8", "replace")
    assert name.encode() in r.stdout


# ---------------------------------------------------------------------------
# the pages say what the programs do


def test_every_long_option_of_help_is_documented(name):
    options = long_options(help_text(name))
    assert "--help" in options and "--version" in options, options
    text = render(name)
    secs = sections(text)
    assert "SYNOPSIS" in secs and "OPTIONS" in secs, sorted(secs)
    missing = [o for o in options if not mentions(text, o)]
    assert not missing, f"man/{name}.1 does not mention {missing}"
    missing = [o for o in options if not mentions(secs["OPTIONS"], o)]
    assert not missing, f"OPTIONS of man/{name}.1 lacks {missing}"


def test_synopsis_matches_usage_line(name):
    usage = usage_line(help_text(name))
    synopsis = squash(sections(render(name))["SYNOPSIS"])
    # Names the program, first.
    assert synopsis.split()[0] == name, synopsis
    assert usage.split()[1] == name, usage
    # The same cluster of short options, e.g. [-hqv].
    for cluster in re.findall(r"\[-[A-Za-z]+\]", usage):
        assert cluster in synopsis, f"{cluster} not in SYNOPSIS: {synopsis}"
    # Every long option of the usage line (those without a short form).
    missing = [o for o in long_options(usage) if not mentions(synopsis, o)]
    assert not missing, f"SYNOPSIS of man/{name}.1 lacks {missing}"
    # The same operands in the same order (the page writes them in
    # lower case, as mdoc does): what is left of the usage line once the
    # program name and the bracketed options are taken out.
    operands = re.sub(r"\[--?[^\]]*\]", " ", usage.split(None, 2)[2])
    operands = squash(operands).lower()
    assert operands, usage
    assert operands in synopsis.lower(), f"{operands!r} not in SYNOPSIS: {synopsis}"


def test_name_section_and_title(name):
    text = render(name)
    secs = sections(text)
    assert squash(secs["NAME"]).startswith(f"{name} - "), secs["NAME"]
    assert text.lstrip().startswith(f"{name.upper()}(1)"), text[:80]


def test_exit_status_and_environment(name):
    secs = sections(render(name))
    status = squash(secs["EXIT STATUS"])
    for code in ("0", "1", "2"):
        assert re.search(rf"(?<!\d){code} ", status), f"exit status {code} not described"
    if name != "server5":
        assert "NO_COLOR" in secs.get("ENVIRONMENT", ""), "ENVIRONMENT lacks NO_COLOR"
