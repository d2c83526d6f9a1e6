"""The article's scenario over real sockets, byte for byte.

Two users and an admin: the list, a push to each user arriving only
there, echo, a push to a key that has gone, close handshakes. The same
scenario runs against the article's Node server (../shared/seed/server.js,
or $WSPUSH_SEED) when Node and its npm package are present, and every
reply must match wspush's byte for byte. Then the error paths: malformed
JSON, broken handshakes, the command line.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from wsclient import (OP_TEXT, ROOT, Client, HandshakeRefused, Server, case,
                      expect, finish, http_request, report, seed_dir, skipped,
                      upgrade_request, TIMEOUT)

K1 = "WPe1I4D4U6JMtgVLnU+KmA=="     # the keys from the article's logs
K2 = "95Bq/gTa7rowHRfqc1M9HA=="
KA = "BEt0hhb+LWrRgk2+mad9Lg=="

TRICKY = ("quote \" backslash \\ slash / tab \t newline \n nul \u0000 unit \u001f "
          "del \u007f é κόσμε \u2028 </script> \U0001F600")


def article_scenario(port, presence):
    """Run the scenario; return the replies, in order, as (who, bytes)."""
    seen = []

    def got(who, c):
        seen.append((who, c.recv_text()))
        return json.loads(seen[-1][1])

    u1 = Client(port, K1)
    u2 = Client(port, K2)
    adm = Client(port, KA)
    adm.send_json({"req": "get connections"})
    roles = got("admin", adm)
    expect(list(roles["content"].items()) ==
           [(K1, "user"), (K2, "user"), (KA, "admin")], "role list: %r" % roles)

    for user, key, text in ((u1, K1, "push message to user 1"),
                            (u2, K2, "push message to user 2"),
                            (u1, K1, "Goodbye user 1"),
                            (u2, K2, "Goodbye user 2")):
        adm.send_json({"req": "push a user", "userkey": key, "text": text})
        msg = got("user " + key, user)
        expect(msg == {"resp": "text", "content": text}, "push arrived as %r" % msg)
        expect(got("admin", adm)["content"] == "Already sent.", "admin not told")

    u1.send_json({"req": "text", "text": "message from user 1"})
    expect(got("user 1", u1) == {"resp": "text", "content": "message from user 1"},
           "echo")
    u2.send_json({"req": "text", "text": TRICKY})
    expect(got("user 2", u2)["content"] == TRICKY, "echo of escapes")
    u2.send_text('{"req":"text","text":"\\ud83d\\ude00 \\u00e9 \\/ \\b"}')
    got("user 2", u2)
    u1.send_json({"req": "hello", "text": "any req is echoed"})
    got("user 1", u1)
    u1.send_json({"req": "hello"})
    expect(seen.append(("user 1", u1.recv_text())) or seen[-1][1] == b'{"resp":"hello"}',
           "a request without text: %r" % seen[-1][1])

    code = u2.close(1000)
    expect(code == 1000, "close code echoed: %r" % code)
    if presence:   # wspush tells admins who left; the article's server does not
        roles = adm.recv_json()
        expect(list(roles["content"].items()) == [(K1, "user"), (KA, "admin")],
               "presence after a leave: %r" % roles)

    adm.send_json({"req": "push a user", "userkey": K2, "text": "hello again"})
    expect(got("admin", adm)["content"] == "Refresh user list complete. Try again!",
           "push to a key that has gone")
    roles = got("admin", adm)
    expect(list(roles["content"]) == [K1, KA], "fresh list: %r" % roles)

    for c in (u1, adm):
        expect(c.quiet_for(0.2), "a client got a message it should not have")
    expect(u1.close(1000) == 1000, "close")
    if presence:
        roles = adm.recv_json()
        expect(list(roles["content"]) == [KA], "presence after the last user left")
    adm.close(1001)
    return seen


def node_server():
    """Start the article's server.js in a temporary folder; returns
    (process, port, folder), or a reason it cannot run."""
    seed, places = seed_dir()
    modules = os.path.join(ROOT, "tests", "node_modules", "websocket")
    if shutil.which("node") is None:
        return "node is not installed"
    if seed is None:
        return "the article's server.js is in none of %s (set WSPUSH_SEED)" % places
    server_js = os.path.join(seed, "server.js")
    if not os.path.isdir(modules):
        return "npm package websocket missing (cd tests && npm ci)"
    folder = tempfile.mkdtemp(prefix="wspush-node-")
    shutil.copy(server_js, folder)
    os.symlink(os.path.join(ROOT, "tests", "node_modules"),
               os.path.join(folder, "node_modules"))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(["node", "server.js"], cwd=folder,
                            env=dict(os.environ, PORT=str(port), QUIET="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port, folder
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return "the article's server did not start"


@case("scenario: the article's flow against wspush")
def test_scenario(srv):
    article_scenario(srv.port, presence=True)


def test_byte_identical(srv):
    name = "scenario: replies byte-identical to the article's Node server"
    started = node_server()
    if isinstance(started, str):
        if os.environ.get("CI"):
            report(name, False, started)
        else:
            skipped(name, started)
        return
    proc, port, folder = started
    try:
        ours = article_scenario(srv.port, presence=True)
        theirs = article_scenario(port, presence=False)
        diff = [(a, b) for a, b in zip(ours, theirs) if a != b]
        report(name, len(ours) == len(theirs) and not diff,
               "%d vs %d replies; first difference: %r" % (len(ours), len(theirs),
                                                          diff[:1]))
    except Exception as e:
        report(name, False, "%s: %s" % (type(e).__name__, e))
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT)
        shutil.rmtree(folder, ignore_errors=True)


@case("scenario: the log reads like the article's")
def test_log(srv):
    log = srv.log()
    for line in ("Server is listening on port %d" % srv.port,
                 "Connection accepted. User key: " + K1,
                 'Received Message: {"req":"get connections"}',
                 "Request: get connections",
                 "'%s': 'admin'" % KA,
                 "disconnected.",
                 "Current active connections (close event)"):
        expect(line in log, "log lacks %r" % line)
    expect("forged\\x0a newline" in log and "\n newline" not in log,
           "control characters from clients are escaped in the log")
    stamp = r"\w{3} \w{3} \d\d \d{4} \d\d:\d\d:\d\d GMT[+-]\d{4}"
    import re
    expect(re.search(stamp + r" .*Connection accepted", log), "log lines are dated")


@case("JSON: malformed request gets an error reply, connection stays open")
def test_malformed(srv):
    a = Client(srv.port)
    b = Client(srv.port)
    for bad, why in (('{"req": "text", "text": "x"', "expected ',' or '}'"),
                     ("not json", "a request must be a JSON object"),
                     ('{"req":"text","text":"\\x"}', "unknown escape"),
                     ("[1,2]", "a request must be a JSON object"),
                     ('{"req":5}', '"req" must be a string'),
                     ('{"text":"no req"}', 'a request needs a "req" string'),
                     ('{"req":"text","text":{"a":1}}', '"text" must be a string'),
                     ('{"req":"text","text":"forged\n newline"}', "control character"),
                     ("{" * 40 + "}" * 40, "")):
        a.send_text(bad)
        reply = a.recv_json()
        expect(reply["resp"] == "error" and why in reply["content"],
               "%r got %r" % (bad, reply))
    b.send_json({"req": "text", "text": "still here"})
    expect(b.recv_json()["content"] == "still here", "other client disturbed")
    a.send_json({"req": "text", "text": "me too"})
    expect(a.recv_json()["content"] == "me too", "the sender is still served")
    a.send_text('{"req":"text","text":"at byte"')
    reply = a.recv_json()
    expect("at byte 30" in reply["content"], "error says where: %r" % reply)
    a.close()
    b.close()


@case("JSON: a binary message gets close 1003")
def test_binary(srv):
    c = Client(srv.port)
    c.send_frame(2, b"\x00\x01")
    code, reason = c.expect_close()
    expect(code == 1003, "close code %r" % code)
    expect(c.wait_eof(), "TCP not closed")


def status_of(port, raw):
    return http_request(port, raw)


@case("handshake: every refusal has its status and a reason")
def test_refusals(srv):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    cases = [
        (upgrade_request("short=="), 400, b"base64 of 16 bytes"),
        (upgrade_request("dGhlIHNhbXBsZSBub25jZR=="), 400, b"base64 of 16 bytes"),
        (upgrade_request(key).replace(b"Version: 13", b"Version: 8"), 426, b"13"),
        (upgrade_request(key).replace(b"Upgrade: websocket", b"Upgrade: nope"), 400,
         b"Upgrade"),
        (upgrade_request(key).replace(b"Connection: Upgrade", b"Connection: close"), 400,
         b"Connection"),
        (upgrade_request(key).replace(b"GET", b"PUT"), 400, b"GET"),
        (upgrade_request(key).replace(b"Host: 127.0.0.1\r\n", b""), 400, b"Host"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 9000 + b"\r\n\r\n", 431, b"8192"),
        (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 405, b"GET"),
        (b"hello\r\n\r\n", 400, b"GET /path"),
    ]
    for raw, status, reason in cases:
        got, headers, body = status_of(srv.port, raw)
        expect(got == status and reason in body,
               "%r... got %s %r" % (raw[:40], got, body))
        if status == 426:
            expect(headers.get("sec-websocket-version") == "13", "426 names version 13")
    # the server still serves after all that
    c = Client(srv.port)
    c.send_json({"req": "text", "text": "ok"})
    expect(c.recv_json()["content"] == "ok", "server keeps serving")
    c.close()


@case("handshake: a plain GET gets 404 without a www folder, like the article's")
def test_plain_404():
    folder = tempfile.mkdtemp(prefix="wspush-nowww-")
    try:
        with Server(cwd=folder, name="nowww") as srv:
            status, _, _ = http_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            expect(status == 404, "got %s" % status)
    finally:
        shutil.rmtree(folder)


@case("handshake: a key already connected gets 409 and the first keeps it")
def test_duplicate_key(srv):
    first = Client(srv.port, K1)
    try:
        Client(srv.port, K1)
        raise AssertionError("second client with the same key was accepted")
    except HandshakeRefused as e:
        expect(e.status == 409, "got %s" % e.status)
    first.send_json({"req": "text", "text": "mine"})
    expect(first.recv_json()["content"] == "mine", "first client lost its key")
    first.close()


@case("handshake: echo-protocol is answered; none or others get none")
def test_subprotocols(srv):
    for offered, answer in ((("echo-protocol",), "echo-protocol"),
                            (("chat", "echo-protocol"), "echo-protocol"),
                            ((), None), (("chat",), None)):
        c = Client(srv.port, protocols=offered)
        expect(c.protocol == answer, "offered %r, got %r" % (offered, c.protocol))
        c.send_json({"req": "text", "text": "x"})
        expect(c.recv_json()["content"] == "x", "served")
        c.close()


@case("handshake: a request in 1-byte segments, and one with the first frame")
def test_segments(srv):
    import wsclient
    key = wsclient.new_key()
    raw = upgrade_request(key)
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(raw)):
        s.send(raw[i:i + 1])
        time.sleep(0.002)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    expect(head.startswith(b"HTTP/1.1 101"), "byte by byte: %r" % head[:40])
    s.close()
    # handshake and a first frame in one segment
    key = wsclient.new_key()
    frame = Client.frame(OP_TEXT, b'{"req":"text","text":"early"}')
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
    s.sendall(upgrade_request(key) + frame)
    data = b""
    deadline = time.time() + TIMEOUT
    while b"early" not in data and time.time() < deadline:
        data += s.recv(4096)
    expect(data.startswith(b"HTTP/1.1 101") and b'{"resp":"text","content":"early"}' in data,
           "first frame with the handshake: %r" % data[-60:])
    s.close()


@case("-q silences the per-message lines")
def test_quiet():
    with Server("-q", name="quiet") as srv:
        c = Client(srv.port)
        c.send_json({"req": "text", "text": "hush"})
        c.recv_json()
        c.close()
        expect(srv.wait_log("disconnected"), "connection lines stay")
        expect("Received Message" not in srv.log(), "message lines silenced")


@case("SIGTERM: every client gets close 1001, then exit 0")
def test_sigterm():
    srv = Server(name="sigterm")
    clients = [Client(srv.port) for _ in range(3)]
    srv.proc.send_signal(signal.SIGTERM)
    for c in clients:
        code, _ = c.expect_close()
        expect(code == 1001, "close code %r" % code)
        c.send_frame(8, b"\x03\xe9")
    status = srv.stop()
    expect(status == 0, "exit status %r" % status)


@case("command line: bad flags exit 2 with usage, port in use exits 1")
def test_cli(srv):
    binary = os.path.join(ROOT, "wspush")
    r = subprocess.run([binary, "-x"], capture_output=True, timeout=TIMEOUT)
    expect(r.returncode == 2 and b"usage:" in r.stderr, "bad flag: %r" % (r,))
    r = subprocess.run([binary, "-p", "70000"], capture_output=True, timeout=TIMEOUT)
    expect(r.returncode == 2 and b"-p 70000" in r.stderr, "bad port: %r" % (r,))
    r = subprocess.run([binary, "-p", str(srv.port), "-b", "127.0.0.1"],
                       capture_output=True, timeout=TIMEOUT)
    expect(r.returncode == 1 and b"Address already in use" in r.stderr,
           "port in use: %r" % (r,))
    for flag in ("-h", "--help"):
        r = subprocess.run([binary, flag], capture_output=True, timeout=TIMEOUT)
        expect(r.returncode == 0 and b"-m BYTES" in r.stdout and b"1000" in r.stdout,
               "%s prints flags and limits" % flag)


def main():
    # --core: the server's own behaviour only, for the sanitizer and
    # valgrind runs (no Node comparison, no command-line checks).
    core = "--core" in sys.argv
    with Server(name="scenario") as srv:
        test_scenario(srv)
        if not core:
            test_byte_identical(srv)
        test_malformed(srv)
        test_binary(srv)
        test_refusals(srv)
        test_duplicate_key(srv)
        test_subprotocols(srv)
        test_segments(srv)
        if not core:
            test_cli(srv)
        test_log(srv)
    test_sigterm()
    if not core:
        test_plain_404()
        test_quiet()
    finish()


if __name__ == "__main__":
    main()
