"""The tutorial's scenario over real sockets, byte for byte.

Two users and an admin: the list, a push to each user arriving only
there, echo, a push to a key that has gone, close handshakes. wspush's
replies must be byte for byte those of the tutorial's Node server: as
recorded in tests/article-transcript.json, and, where Node and the
tutorial's server.js are at hand (../shared/seed, or $WSPUSH_SEED), as that
server sends them now. Then the error paths: malformed JSON, broken
handshakes, the command line, SIGTERM.

    python3 scenario.py            run the tests
    python3 scenario.py --core     wspush's own behaviour only (sanitizer runs)
    python3 scenario.py --record   rewrite the transcript from the Node server
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from wsclient import (OP_TEXT, ROOT, Client, HandshakeRefused, Server, Skip, binary, build_shim,
                      case, expect, finish, http_request, report, seed_dir, skipped,
                      upgrade_request, TIMEOUT)

K1 = "WPe1I4D4U6JMtgVLnU+KmA=="     # the keys from the tutorial's logs
K2 = "95Bq/gTa7rowHRfqc1M9HA=="
KA = "BEt0hhb+LWrRgk2+mad9Lg=="
TRANSCRIPT = os.path.join(ROOT, "tests", "article-transcript.json")

TRICKY = ("quote \" backslash \\ slash / tab \t newline \n nul \u0000 unit \u001f "
          "del \u007f é κόσμε \u2028 </script> \U0001F600")


def wait_gone(adm, key):
    """Ask for the list until key has left it, as a person would look
    again (at most TIMEOUT s). These replies are not compared: how many
    it takes depends on timing."""
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        adm.send_json({"req": "get connections"})
        if key not in json.loads(adm.recv_text())["content"]:
            return
        time.sleep(0.02)
    raise AssertionError("%s never left the list" % key)


def article_scenario(port):
    """Run the scenario; return the replies, in order, as [who, text]."""
    seen = []

    def got(who, c):
        seen.append([who, c.recv_text().decode("utf-8")])
        return seen[-1][1]

    u1, u2, adm = Client(port, K1), Client(port, K2), Client(port, KA)
    adm.send_json({"req": "get connections"})
    got("admin", adm)
    for user, key, text in ((u1, K1, "push message to user 1"),
                            (u2, K2, "push message to user 2"),
                            (u1, K1, "Goodbye user 1"),
                            (u2, K2, "Goodbye user 2")):
        adm.send_json({"req": "push a user", "userkey": key, "text": text})
        got("user " + key, user)
        got("admin", adm)
    u1.send_json({"req": "text", "text": "message from user 1"})
    got("user 1", u1)
    u2.send_json({"req": "text", "text": TRICKY})
    got("user 2", u2)
    u2.send_text('{"req":"text","text":"\\ud83d\\ude00 \\u00e9 \\/ \\b \\u001F"}')
    got("user 2", u2)
    u1.send_json({"req": "hello", "text": "any req is echoed"})
    got("user 1", u1)
    u1.send_json({"req": "hello"})
    got("user 1", u1)
    deep = {"req": "deep", "text": "32 levels", "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
    u1.send_json(deep)
    got("user 1", u1)
    expect(u2.close(1000) == 1000, "close code echoed")
    wait_gone(adm, K2)
    adm.send_json({"req": "push a user", "userkey": K2, "text": "hello again"})
    got("admin", adm)
    got("admin", adm)
    for c in (u1, adm):
        expect(c.quiet_for(0.2), "a client got a message it should not have")
    expect(u1.close(1000) == 1000, "close")
    adm.close(1001)
    return seen


def first_difference(ours, theirs):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return "reply %d: %r, expected %r" % (i, a, b)
    return "%d replies, expected %d" % (len(ours), len(theirs))


def node_server():
    """Start the tutorial's server.js in a temporary folder; returns
    (process, port, folder), or the reason it cannot run."""
    seed, places = seed_dir()
    modules = os.path.join(ROOT, "tests", "node_modules", "websocket")
    if shutil.which("node") is None:
        return "node is not installed"
    if seed is None:
        return "the tutorial's server.js is in none of %s (set WSPUSH_SEED)" % places
    if not os.path.isdir(modules):
        return "npm package websocket missing (cd tests && npm ci)"
    folder = tempfile.mkdtemp(prefix="wspush-node-")
    shutil.copy(os.path.join(seed, "server.js"), folder)
    os.symlink(os.path.join(ROOT, "tests", "node_modules"), os.path.join(folder, "node_modules"))
    s = socket.socket()
    s.bind(("", 0))         # free on every address: the server listens on all of them
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
    return "the tutorial's server did not start"


def with_node(fn):
    """Run fn(port) against the tutorial's server; its result, or a reason."""
    started = node_server()
    if isinstance(started, str):
        return started
    proc, port, folder = started
    try:
        return fn(port)
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT)
        shutil.rmtree(folder, ignore_errors=True)


@case("scenario: replies byte-identical to the tutorial's server's (recorded)")
def test_scenario(srv):
    with open(TRANSCRIPT) as f:
        theirs = json.load(f)["replies"]
    ours = article_scenario(srv.port)
    expect(ours == theirs, first_difference(ours, theirs))


def test_node_live(srv):
    name = "scenario: replies byte-identical to the tutorial's server's (live)"
    theirs = with_node(article_scenario)
    if isinstance(theirs, str):
        skipped(name, theirs)
        return
    ours = article_scenario(srv.port)
    with open(TRANSCRIPT) as f:
        recorded = json.load(f)["replies"]
    report(name, ours == theirs and theirs == recorded,
           first_difference(ours, theirs) if ours != theirs
           else "the transcript is out of date: python3 tests/scenario.py --record")


def record():
    theirs = with_node(article_scenario)
    if isinstance(theirs, str):
        sys.exit("cannot record: " + theirs)
    with open(TRANSCRIPT, "w") as f:
        json.dump({"about": "The tutorial's server.js (npm websocket) answering "
                   "tests/scenario.py's article_scenario(): who got each reply, "
                   "and its text. Rewrite with: python3 tests/scenario.py --record",
                   "replies": theirs}, f, indent=1, ensure_ascii=True)
        f.write("\n")
    print("recorded %d replies in %s" % (len(theirs), TRANSCRIPT))


@case("scenario: the log reads like the tutorial's")
def test_log(srv):
    log = srv.log()
    for line in ("Server is listening on port %d" % srv.port,
                 "Connection accepted. User key: " + K1,
                 'Received Message: {"req":"get connections"}',
                 "Request: get connections",
                 "disconnected.",
                 "Current active connections (close event)"):
        expect(line in log, "log lacks %r" % line)
    expect("forged\\x0a newline" in log and "\n newline" not in log,
           "control characters from clients are escaped in the log")
    stamp = r"\w{3} \w{3} \d\d \d{4} \d\d:\d\d:\d\d GMT[+-]\d{4}"
    expect(re.search(stamp + r" .*Connection accepted", log), "log lines are dated")


@case("log: role tables at most once a second; every prompt at once; the last table is whole")
def test_table():
    with Server(name="table") as srv:
        t0 = time.time()
        users = [Client(srv.port) for _ in range(30)]
        admin = Client(srv.port)
        admin.send_json({"req": "get connections"})
        admin.recv_json()
        want = [r"'%s': 'user'" % re.escape(u.key) for u in users]
        want.append(r"'%s': 'admin'" % re.escape(admin.key))
        # The table as it is now, within a second or so, with every role.
        expect(srv.wait_log(r"\{\n(  '[^\n]*\n){31}\}", 3), "no whole table of 31 roles")
        took = time.time() - t0
        log = srv.log()
        table = log[log.rindex("{\n"):]
        for line in want:
            expect(re.search(line, table), "the last table lacks %s" % line)
        tables = log.count("\n{\n")
        expect(tables <= took / 1.0 + 1, "%d tables in %.2f s" % (tables, took))
        expect(log.count("Connection accepted.") == 31 and
               log.count("Current active connections\n") >= 31,
               "a prompt for every connection")
        expect(log.count("Request: get connections") == 1, "the admin's prompt")
        for c in users + [admin]:
            c.drop()


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
                     ('{"req":"x","a":' + "[" * 32 + "]" * 32 + "}", "nested too deeply")):
        a.send_text(bad)
        reply = a.recv_json()
        expect(reply["resp"] == "error" and why in reply["content"], "%r got %r" % (bad, reply))
    a.send_text('{"req":"x","text":"31","a":' + "[" * 31 + "]" * 31 + "}")
    expect(a.recv_text() == b'{"resp":"x","content":"31"}', "32 levels in all are fine")
    b.send_json({"req": "text", "text": "still here"})
    expect(b.recv_text() == b'{"resp":"text","content":"still here"}', "other client disturbed")
    a.send_text('{"req":"text","text":"at byte"')
    expect(a.recv_text() == b'{"resp":"error","content":"malformed JSON at byte 30: '
           b'expected \',\' or \'}\'"}', "the error says where")
    a.close()
    b.close()


@case("JSON: a binary message gets close 1003")
def test_binary(srv):
    c = Client(srv.port)
    c.send_frame(2, b"\x00\x01")
    code, reason = c.expect_close()
    expect(code == 1003, "close code %r" % code)
    expect(c.end_of_stream() == "eof", "TCP not closed cleanly")


@case("handshake: every refusal has its status and a reason")
def test_refusals(srv):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    cases = [
        (upgrade_request("short=="), 400, b"base64 of 16 bytes"),
        (upgrade_request("dGhlIHNhbXBsZSBub25jZR=="), 400, b"base64 of 16 bytes"),
        (upgrade_request(key).replace(b"Version: 13", b"Version: 8"), 426, b"13"),
        (upgrade_request(key).replace(b"Upgrade: websocket", b"Upgrade: nope"), 400, b"Upgrade"),
        (upgrade_request(key).replace(b"Connection: Upgrade", b"Connection: close"), 400,
         b"Connection"),
        (upgrade_request(key).replace(b"GET", b"PUT"), 400, b"GET"),
        (upgrade_request(key).replace(b"Host: 127.0.0.1\r\n", b""), 400, b"Host"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 9000 + b"\r\n\r\n", 431, b"8192"),
        (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 405, b"GET"),
        (b"hello\r\n\r\n", 400, b"GET /path"),
    ]
    for raw, status, reason in cases:
        got, headers, body = http_request(srv.port, raw)
        expect(got == status and reason in body, "%r... got %s %r" % (raw[:40], got, body))
        if status == 426:
            expect(headers.get("sec-websocket-version") == "13", "426 names version 13")
    c = Client(srv.port)
    c.send_json({"req": "text", "text": "ok"})
    expect(c.recv_json()["content"] == "ok", "server keeps serving")
    c.close()


@case("handshake: a plain GET gets 404 without a www folder, like the tutorial's")
def test_plain_404():
    if os.path.isdir("/usr/local/share/wspush/www"):
        return Skip("an installed wspush serves /usr/local/share/wspush/www here")
    folder = tempfile.mkdtemp(prefix="wspush-nowww-")
    try:
        with Server(cwd=folder, name="nowww") as srv:
            status, _, _ = http_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            expect(status == 404 and "Serving files" not in srv.log(), "got %s" % status)
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
                            ((), None), (("chat",), None), (("ECHO-PROTOCOL",), None)):
        c = Client(srv.port, protocols=offered)
        expect(c.protocol == answer, "offered %r, got %r" % (offered, c.protocol))
        c.send_json({"req": "text", "text": "x"})
        expect(c.recv_json()["content"] == "x", "served")
        c.close()


@case("handshake: a request in 1-byte segments, and one with the first frame")
def test_segments(srv):
    import wsclient
    raw = upgrade_request(wsclient.new_key())
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
    frame = Client.frame(OP_TEXT, b'{"req":"text","text":"early"}')
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
    s.sendall(upgrade_request(wsclient.new_key()) + frame)
    data = b""
    deadline = time.time() + TIMEOUT
    while b"early" not in data and time.time() < deadline:
        data += s.recv(4096)
    expect(data.startswith(b"HTTP/1.1 101") and b'{"resp":"text","content":"early"}' in data,
           "first frame with the handshake: %r" % data[-60:])
    s.close()


@case("-q silences the lines for each message and connection, not refusals")
def test_quiet():
    with Server("-q", name="quiet") as srv:
        c = Client(srv.port)
        c.send_json({"req": "text", "text": "hush"})
        c.recv_json()
        c.close()
        http_request(srv.port, upgrade_request("short=="))     # a refusal, logged
        expect(srv.wait_log("refused: 400"), "refusals are still logged")
        log = srv.log()
        for line in ("Received Message", "Connection accepted", "disconnected", "{"):
            expect(line not in log, "-q did not silence %r" % line)


@case("SIGTERM: every client gets close 1001; exit 0 within 2 s if they never answer")
def test_sigterm():
    srv = Server(name="sigterm")
    clients = [Client(srv.port) for _ in range(3)]
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    for c in clients:
        code, _ = c.expect_close()
        expect(code == 1001, "close code %r" % code)   # and we never answer it
    status = srv.proc.wait(timeout=10)
    took = time.time() - t0
    srv.stop()
    expect(status == 0, "exit status %r" % status)
    expect(1.9 <= took <= 2.3, "exited %.2f s after SIGTERM" % took)


@case("SIGTERM: clients that answer the close let wspush exit at once")
def test_sigterm_answered():
    srv = Server(name="sigterm-answered")
    clients = [Client(srv.port) for _ in range(3)]
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    for c in clients:
        code, _ = c.expect_close()
        expect(code == 1001, "close code %r" % code)
        c.send_frame(8, b"\x03\xe9")
        c.drop()
    status = srv.proc.wait(timeout=10)
    srv.stop()
    expect(status == 0 and time.time() - t0 < 1.0, "status %r after %.2f s" %
           (status, time.time() - t0))


# A signal that comes while the loop is busy, just before it waits, must
# not be lost: this shim raises SIGTERM inside the wait call itself, before
# handing over to the real one, the moment where a plain select() misses it.
RAISE_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <sys/select.h>
#include <time.h>
/* At the first long wait after start-up's (no timeout, or a second and
 * more), when only a signal or a client could end it soon. */
static void maybe_raise(long seconds)
{
    static int calls, raised;
    if (++calls > 1 && seconds >= 1 && !raised) {
        raised = 1;
        raise(SIGTERM);
    }
}
int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t)
{
    int (*real)(int, fd_set *, fd_set *, fd_set *, struct timeval *) = dlsym(RTLD_NEXT, "select");
    maybe_raise(t ? (long)t->tv_sec : 3600);
    return real(n, r, w, e, t);
}
int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *m)
{
    int (*real)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *) =
        dlsym(RTLD_NEXT, "pselect");
    maybe_raise(t ? (long)t->tv_sec : 3600);
    return real(n, r, w, e, t, m);
}
"""


@case("SIGTERM: a signal that comes just before the loop waits is not missed")
def test_sigterm_race():
    shim = build_shim(RAISE_SHIM)
    if isinstance(shim, Skip):
        return shim
    try:
        srv = Server(name="sigterm-race", env={"LD_PRELOAD": shim})
        c = Client(srv.port)        # wakes the loop: the shim raises at its next wait
        try:
            status = srv.proc.wait(timeout=2 + 3)
        except subprocess.TimeoutExpired:
            status = None
        srv.stop(signal.SIGKILL)
        c.drop()
        expect(status == 0, "wspush did not stop on a SIGTERM raised before its wait")
    finally:
        shutil.rmtree(os.path.dirname(shim), ignore_errors=True)


@case("command line: bad flags and values exit 2 with the usage; port in use exits 1")
def test_cli(srv):
    program = binary()
    for args, says in ((["-x"], b"option requires"), (["-Z"], b"invalid option"),
                       (["-p", "70000"], b"-p 70000"), (["-m", "abc"], b"-m abc"),
                       (["-T", "0"], b"-T 0"), (["-c", "-1"], b"-c -1"),
                       (["extra"], b"unexpected argument"),
                       (["-b", "garbage"], b"-b garbage"), (["-x", "1"], b"-x 1"),
                       (["-t", "short token"], b"-t random")):
        r = subprocess.run([program] + args, capture_output=True, timeout=TIMEOUT)
        expect(r.returncode == 2 and b"usage:" in r.stderr and says in r.stderr,
               "%r: %r" % (args, r))
    env = dict(os.environ, WSPUSH_ADMIN_TOKEN="sesame")
    r = subprocess.run([program], capture_output=True, timeout=TIMEOUT, env=env)
    expect(r.returncode == 1 and b"WSPUSH_ADMIN_TOKEN must be at least 12 characters" in
           r.stderr and b"usage:" not in r.stderr, "a short token from the environment: %r" % r)
    r = subprocess.run([program, "-p", str(srv.port), "-b", "127.0.0.1"],
                       capture_output=True, timeout=TIMEOUT)
    expect(r.returncode == 1 and b"Address already in use" in r.stderr, "port in use: %r" % (r,))
    for flag in ("-h", "--help"):
        r = subprocess.run([program, flag], capture_output=True, timeout=TIMEOUT)
        expect(r.returncode == 0 and b"-m BYTES" in r.stdout and b"1000" in r.stdout,
               "%s prints flags and limits" % flag)
    for args in (["--version"], ["-q", "--version"], ["--version", "-p", "1"]):
        r = subprocess.run([program] + args, capture_output=True, timeout=TIMEOUT)
        expect(r.returncode == 0 and re.match(rb"wspush \d+\.\d+", r.stdout),
               "%r: %r" % (args, r))


@case("-v: the trace shows the handshake, the RFC's masked \"Hello\" frame, closes; no token")
def test_trace():
    with Server("-v", "-t", "a secret token", name="trace") as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=TIMEOUT)
        s.sendall(upgrade_request("dGhlIHNhbXBsZSBub25jZQ=="))
        head = s.recv(1000)
        expect(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, "accept: %r" % head)
        s.sendall(bytes.fromhex("818537fa213d7f9f4d5158"))     # RFC 6455 §5.7
        s.recv(1000)
        c = Client(srv.port)
        c.send_json({"req": "get connections", "token": "a secret token"})
        c.recv_json()
        c.close(1000)
        for line in (r"\[\d+\] listen\(\) on 127\.0\.0\.1 port \d+",
                     r"\[\d+\] accept\(\) from 127\.0\.0\.1 port \d+",
                     r"<- GET / HTTP/1\.1",
                     r"<- Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                     r"key dGhlIHNhbXBsZSBub25jZQ== \+ GUID 258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
                     r"SHA-1 = b37a4f2cc0624f1690f64606cf385945b2bec4ea; "
                     r"base64 = s3pPLMBiTxaQ9kYGzzhZRbK\+xOo= = Sec-WebSocket-Accept",
                     r"-> HTTP/1\.1 101 Switching Protocols",
                     r"<- frame: FIN 1, RSV 000, text \(0x1\), MASK 1, length 5 \(7-bit\), "
                     r"key 37fa213d: 48 65 6c 6c 6f \"Hello\"",
                     r"-> frame: FIN 1, RSV 000, text \(0x1\), MASK 0, length \d+ \(7-bit\)",
                     r"<- close 1000: normal closure",
                     r"-> close 1000: normal closure"):
            expect(srv.wait_log(line), "the trace lacks %r" % line)
        expect("a secret token" not in srv.log(), "the token is in the trace")


def main():
    if "--record" in sys.argv:
        record()
        return
    core = "--core" in sys.argv     # wspush's own behaviour only
    with Server(name="scenario") as srv:
        test_scenario(srv)
        if not core:
            test_node_live(srv)
        test_malformed(srv)
        test_binary(srv)
        test_refusals(srv)
        test_duplicate_key(srv)
        test_subprotocols(srv)
        test_segments(srv)
        if not core:
            test_cli(srv)
        test_log(srv)
    test_table()
    test_sigterm()
    test_sigterm_answered()
    if not core:
        test_sigterm_race()
    test_trace()
    if not core:
        test_plain_404()
        test_quiet()
    finish()


if __name__ == "__main__":
    main()
