#!/usr/bin/env python3
"""tests/install.py -- "make install" and "make uninstall" from a copy of the
sources: PREFIX and DESTDIR are honoured; the installed wspush serves the
installed pages when there is no ./www; the man page passes mandoc's lint
and names every flag."""
import os
import re
import shutil
import subprocess
import tempfile

from wsclient import ROOT, Server, case, expect, finish, http_request, skipped

FILES = ("bin/wspush", "share/man/man1/wspush.1", "share/wspush/www/user.html",
         "share/wspush/www/admin.html", "share/wspush/www/wspush.js")


def copy_sources(folder):
    src = os.path.join(folder, "src")
    os.makedirs(src)
    for name in ("wspush.c", "sha1.c", "sha1.h", "wspush.1", "Makefile"):
        shutil.copy(os.path.join(ROOT, name), src)
    shutil.copytree(os.path.join(ROOT, "www"), os.path.join(src, "www"))
    return src


def make(src, *args):
    done = subprocess.run(["make", "-s", "-C", src] + list(args), capture_output=True, text=True)
    expect(done.returncode == 0, "make %s: %s" % (" ".join(args), done.stderr[-500:]))


@case("install: PREFIX gets the binary (built for it, after a plain cc build too), the man "
      "page and the pages; they serve; uninstall")
def test_prefix():
    folder = tempfile.mkdtemp(prefix="wspush-install-")
    try:
        src, prefix = copy_sources(folder), os.path.join(folder, "prefix")
        # First the README's one-command build, as a user would have done:
        # the install must still build for its own PREFIX.
        subprocess.run(["cc", "-O2", "-o", "wspush", "wspush.c", "sha1.c"], cwd=src, check=True)
        make(src, "install", "PREFIX=" + prefix)
        for f in FILES:
            expect(os.path.isfile(os.path.join(prefix, f)), "not installed: " + f)
        with open(os.path.join(prefix, "share", "man", "man1", "wspush.1")) as f:
            page = f.read()
        expect(os.path.join(prefix, "share", "wspush", "www") in page and
               "/usr/local" not in page, "the man page does not name PREFIX's pages")
        binary = os.path.join(prefix, "bin", "wspush")
        out = subprocess.run([binary, "--version"], capture_output=True, text=True)
        expect(re.fullmatch(r"wspush \d+\.\d+\n", out.stdout), "--version: %r" % out.stdout)
        elsewhere = os.path.join(folder, "elsewhere")      # no ./www here
        os.makedirs(elsewhere)
        old = os.environ.get("WSPUSH")
        os.environ["WSPUSH"] = binary
        try:
            with Server(cwd=elsewhere, name="installed") as srv:
                expect(srv.wait_log("Serving files from %s" % re.escape(
                    os.path.realpath(os.path.join(prefix, "share", "wspush", "www")))),
                    "the installed pages are not served: %s" % srv.log())
                status, _, body = http_request(
                    srv.port, b"GET /user.html HTTP/1.1\r\nHost: x\r\n\r\n")
                expect(status == 200 and b"wspush.js" in body, "GET /user.html: %s" % status)
        finally:
            if old is None:
                del os.environ["WSPUSH"]
            else:
                os.environ["WSPUSH"] = old
        make(src, "uninstall", "PREFIX=" + prefix)
        for f in FILES:
            expect(not os.path.exists(os.path.join(prefix, f)), "left behind: " + f)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@case("install: DESTDIR stages the files under it, and uninstall takes them away")
def test_destdir():
    folder = tempfile.mkdtemp(prefix="wspush-destdir-")
    try:
        src, stage = copy_sources(folder), os.path.join(folder, "stage")
        make(src, "install", "PREFIX=/usr/local", "DESTDIR=" + stage)
        for f in FILES:
            expect(os.path.isfile(os.path.join(stage, "usr/local", f)), "not staged: " + f)
        make(src, "uninstall", "PREFIX=/usr/local", "DESTDIR=" + stage)
        for f in FILES:
            expect(not os.path.exists(os.path.join(stage, "usr/local", f)), "left: " + f)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_man():
    name = "man page: mandoc -T lint is clean, and every flag of wspush is in it"
    if shutil.which("mandoc") is None:
        skipped(name, "mandoc is not installed (apt-get install mandoc)")
        return

    @case(name)
    def check():
        page = os.path.join(ROOT, "wspush.1")
        lint = subprocess.run(["mandoc", "-T", "lint", "-W", "style", page],
                              capture_output=True, text=True)
        expect(lint.returncode == 0 and not lint.stdout and not lint.stderr,
               "mandoc: %s%s" % (lint.stdout, lint.stderr))
        with open(os.path.join(ROOT, "wspush.c")) as f:
            flags = re.search(r'static const char flags\[\] = "([^"]+)";', f.read()).group(1)
        with open(page) as f:
            text = f.read()
        missing = [c for c in flags.replace(":", "") if not re.search(r"\bFl %s\b" % c, text)]
        expect(not missing, "flags missing from wspush.1: %s" % missing)
        expect("Fl -version" in text and "EXIT STATUS" in text, "--version, exit status")
    check()


def main():
    test_prefix()
    test_destdir()
    test_man()
    finish()


if __name__ == "__main__":
    main()
