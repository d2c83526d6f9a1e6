"""Static files from wspush: content types, HEAD, methods, and every way
of asking for a file outside the www folder.

The traversal tests serve a temporary folder holding the site, a secret
file beside it, and symlinks pointing in and out; no answer may ever
carry the secret.
"""
import os
import shutil
import subprocess
import tempfile

from wsclient import ROOT, Server, binary, case, expect, finish, http_request

SECRET = b"TOP-SECRET-OUTSIDE-WWW"


def get(srv, target, method="GET"):
    return http_request(srv.port, ("%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % (method, target)).encode())


@case("static: the pages and their content types")
def test_types(srv):
    for target, ctype, marker in (
            ("/", "text/html; charset=utf-8", b"User console"),
            ("/index.html", "text/html; charset=utf-8", b"Admin console"),
            ("/user.html", "text/html; charset=utf-8", b"Send to server"),
            ("/admin.html?token=x&ws=ws://a", "text/html; charset=utf-8", b"Push to all users"),
            ("/style.css", "text/css; charset=utf-8", b".log"),
            ("/wspush.js", "text/javascript; charset=utf-8", b"textContent"),
            ("/favicon.svg", "image/svg+xml", b"<svg")):
        status, headers, body = get(srv, target)
        expect(status == 200, "%s: %s" % (target, status))
        expect(headers.get("content-type") == ctype, "%s: %r" % (target, headers))
        expect(marker in body, "%s: body" % target)
        expect(int(headers["content-length"]) == len(body), "%s: length" % target)
        expect(headers.get("server") == "wspush", "Server header")
        expect(headers.get("x-content-type-options") == "nosniff", "nosniff")


@case("static: HEAD has the headers alone; other methods get 405")
def test_methods(srv):
    status, headers, body = get(srv, "/user.html", "HEAD")
    full = get(srv, "/user.html")[2]
    expect(status == 200 and body == b"" and int(headers["content-length"]) == len(full),
           "HEAD: %s %r %r" % (status, headers, body[:40]))
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = get(srv, "/user.html", method)
        expect(status == 405 and headers.get("allow") == "GET, HEAD", "%s: %s" % (method, status))


@case("static: no such file, folders and the index")
def test_missing(srv):
    expect(get(srv, "/nope.html")[0] == 404, "missing file")
    expect(get(srv, "/sub")[0] == 404, "a folder without / is not listed")
    expect(get(srv, "/empty/")[0] == 404, "a folder without index.html is not listed")
    status, _, body = get(srv, "/sub/")
    expect(status == 200 and b"sub index" in body, "sub/index.html for /sub/")
    expect(get(srv, "/alias.html")[0] == 200, "a symlink inside the folder is fine")


@case("static: traversal in any form never reads outside the folder")
def test_traversal(srv):
    attempts = [
        "/../secret.txt", "/../../../../etc/passwd", "/%2e%2e/secret.txt",
        "/%2E%2E/%2e%2e/etc/passwd", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt",
        "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/./../secret.txt",
        "/..\\secret.txt", "/%5c..%5csecret.txt", "/index.html%00.png", "/%00",
        "//etc/passwd", "/etc/passwd", "/leak.txt", "/out/secret.txt", "/out/",
        "/.hidden", "/%2ehidden", "/sub/.hidden", "/%252e%252e/secret.txt",
        "/..%00/secret.txt", "/.%2e/secret.txt", "/%2e./secret.txt",
    ]
    for target in attempts:
        status, _, body = get(srv, target)
        expect(status in (400, 403, 404), "%s got %s" % (target, status))
        expect(SECRET not in body and b"root:" not in body, "%s leaked the secret" % target)
    for raw in (b"GET http://x/../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET ../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET * HTTP/1.1\r\nHost: x\r\n\r\n"):
        status, _, body = http_request(srv.port, raw)
        expect(status == 400 and SECRET not in body, "%r got %s" % (raw[:30], status))
    # the symlinks out are refused as such, not just missing
    expect(get(srv, "/leak.txt")[0] == 403, "symlink to a file outside")
    expect(get(srv, "/out/secret.txt")[0] == 403, "symlinked folder outside")


@case("static: a file over the size limit gets 500 and the server goes on")
def test_too_big(srv):
    status, _, body = get(srv, "/big.bin")
    expect(status == 500 and b"larger" in body, "got %s" % status)
    expect(get(srv, "/user.html")[0] == 200, "still serving")


@case("static: -d with a missing folder is a start-up error")
def test_bad_dir():
    r = subprocess.run([binary(), "-d", "/no/such/folder", "-p", "0"],
                       capture_output=True, timeout=10)
    expect(r.returncode == 1 and b"not a folder" in r.stderr, repr(r))


def main():
    top = tempfile.mkdtemp(prefix="wspush-static-")
    site = os.path.join(top, "site")
    try:
        shutil.copytree(os.path.join(ROOT, "www"), site)
        with open(os.path.join(top, "secret.txt"), "wb") as f:
            f.write(SECRET)
        os.makedirs(os.path.join(site, "sub"))
        os.makedirs(os.path.join(site, "empty"))
        with open(os.path.join(site, "sub", "index.html"), "w") as f:
            f.write("<p>sub index</p>")
        for hidden in (os.path.join(site, ".hidden"), os.path.join(site, "sub", ".hidden")):
            with open(hidden, "wb") as f:
                f.write(SECRET)
        with open(os.path.join(site, "big.bin"), "wb") as f:
            f.write(b"\0" * (2 << 20))
        os.symlink(os.path.join(top, "secret.txt"), os.path.join(site, "leak.txt"))
        os.symlink(top, os.path.join(site, "out"))
        os.symlink("index.html", os.path.join(site, "alias.html"))
        with Server("-d", site, name="static") as srv:
            test_types(srv)
            test_methods(srv)
            test_missing(srv)
            test_traversal(srv)
            test_too_big(srv)
        test_bad_dir()
    finally:
        shutil.rmtree(top)
    finish()


if __name__ == "__main__":
    main()
