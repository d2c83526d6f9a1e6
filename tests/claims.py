"""What README.md, wspush.1 and wspush -h claim, checked by running wspush.

- The command line: bad flags and values exit 2 with the usage (README's
  own examples among them), a port in use or a missing -d folder exit 1,
  a short WSPUSH_ADMIN_TOKEN exits 1 naming it, without the usage;
  SIGTERM and SIGINT exit 0 once the clients answered close 1001.
- -q: the lines it leaves out, and those it keeps, in one scenario run
  with and without it.
- -x is matched as an address (fd00:0::2 is fd00::2), and a chain of
  proxies is read leftwards: in a network namespace of its own (root).
- The token is never logged, however escaped or cut.
- Every reply the teacher can get: README's table "Every reply, word for
  word" and wspush.1's list must be the same; wspush must say each one in
  the situation the table gives (driven here over real sockets); and
  every reply string in wspush.c (reply_text, reply_error, the receipts'
  states and whys, the users list's whys) must be in the table.
- README's table of where wspush answers otherwise than the tutorial's
  server.js: each row against wspush, and against server.js when node and
  the tutorial's server are at hand (../shared/seed or $WSPUSH_SEED).

    python3 claims.py [TEST...]       run the tests (all, or those named)
    python3 claims.py --proxies       (inside a network namespace) the -x part
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import lessons      # its crashes(): does a request stop the tutorial's server?
import scenario
from wsclient import (OP_BINARY, OP_CLOSE, OP_TEXT, ROOT, TIMEOUT, Client, HandshakeRefused,
                      Server, Skip, binary, build_shim, case, expect, finish, http_request, new_key,
                      report, skipped, upgrade_request)

TOKEN = "correct horse battery staple"
STUDENT = "http://student.example"


def read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def run_wspush(args, env=None, timeout=10):
    """Run wspush with args until it exits; (status, stdout, stderr)."""
    full = dict(os.environ)
    full.pop("WSPUSH_ADMIN_TOKEN", None)
    full.update(env or {})
    done = subprocess.run([binary()] + args, capture_output=True, text=True, env=full,
                          timeout=timeout, cwd=ROOT)
    return done.returncode, done.stdout, done.stderr


# ---------------------------------------------------------------- the command line

@case("exit status: README's bad values, bad flags and bad addresses exit 2 with what is "
      "wrong and the usage")
def test_bad_command_lines():
    readme = read("README.md")
    said = re.search(r"Bad flags and bad values \(([^)]*)\)", readme)
    expect(said, "README no longer gives examples of bad values")
    examples = [span.split() for span in re.findall(r"`([^`]+)`", said.group(1))]
    expect(len(examples) >= 3, "README's examples: %r" % examples)
    others = [["-b", "garbage"], ["-x", "1"], ["-x", "fd00::2::3"], ["-Z"], ["-p"],
              ["-t", "short"], ["-c", "-1"], ["-M", "1"], ["unexpected"],
              ["-o", "x"] * 17, ["-x", "::1"] * 9]
    for args in examples + others:
        flat = [a for a in args]
        status, out, err = run_wspush(flat + ["-b", "127.0.0.1"] * ("-b" not in flat))
        expect(status == 2, "%s: exit %d, not 2" % (" ".join(flat), status))
        expect(err.count("usage: wspush") == 1 and not out,
               "%s: the usage on stderr only: %r" % (" ".join(flat), err[:200]))
        expect(err.split("\n")[0] and not err.startswith("usage"),
               "%s: says nothing of what is wrong" % " ".join(flat))


@case("exit status: a port in use, a missing -d folder, an address not of this machine exit 1, "
      "without the usage")
def test_cannot_start():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = str(taken.getsockname()[1])
        for args, said in ((["-b", "127.0.0.1", "-p", port], "cannot listen"),
                           (["-b", "127.0.0.1", "-p", "0", "-d", "/nonexistent/www"],
                            "/nonexistent/www"),
                           (["-b", "192.0.2.1", "-p", "0"], "cannot listen")):
            status, out, err = run_wspush(args)
            expect(status == 1, "%s: exit %d, not 1" % (" ".join(args), status))
            expect(said in err and "usage" not in err, "%s: %r" % (" ".join(args), err))
    finally:
        taken.close()


@case("exit status: a WSPUSH_ADMIN_TOKEN under 12 characters exits 1 naming the variable, "
      "without the usage; 12 characters (not bytes) are enough")
def test_short_env_token():
    status, out, err = run_wspush(["-b", "127.0.0.1", "-p", "0"],
                                  env={"WSPUSH_ADMIN_TOKEN": "short"})
    expect(status == 1 and "WSPUSH_ADMIN_TOKEN" in err and "usage" not in err,
           "exit %d: %r" % (status, err))
    status, out, err = run_wspush(["-b", "127.0.0.1", "-p", "0"],
                                  env={"WSPUSH_ADMIN_TOKEN": "\u00e9" * 11})
    expect(status == 1, "11 characters (22 bytes) were taken: exit %d" % status)
    with Server(env={"WSPUSH_ADMIN_TOKEN": "\u00e9" * 12}, name="claims-env12") as srv:
        expect(srv.proc.poll() is None, "12 characters were refused")


@case("exit status: -h and --help print the usage on stdout and exit 0; --version exits 0")
def test_help():
    for flag in ("-h", "--help"):
        status, out, err = run_wspush([flag])
        expect(status == 0 and out.startswith("usage: wspush") and not err,
               "%s: exit %d, %r" % (flag, status, err))
    status, out, err = run_wspush(["--version"])
    expect(status == 0 and re.fullmatch(r"wspush \d+\.\d+\n", out), "--version: %r" % out)


@case("exit status: SIGTERM and SIGINT: every client gets close 1001, and wspush exits 0 once "
      "they answered")
def test_signals():
    for sig in (signal.SIGTERM, signal.SIGINT):
        srv = Server(name="claims-signal")
        try:
            c = Client(srv.port)
            c.send_json({"req": "text", "text": "x"})
            c.recv_json()
            started = time.time()
            srv.proc.send_signal(sig)
            code, _ = c.expect_close()
            expect(code == 1001, "close %s, not 1001" % code)
            c.send_frame(OP_CLOSE, b"\x03\xe9")
            expect(c.wait_eof(), "wspush did not close the connection")
            c.drop()                            # as a browser does: our FIN
            srv.proc.wait(timeout=10)
            expect(srv.proc.returncode == 0, "%s: exit %d" % (sig.name, srv.proc.returncode))
            expect(time.time() - started < 2, "took %.1f s though the client answered"
                   % (time.time() - started))
        finally:
            srv.stop()


# ---------------------------------------------------------------- -q

# What -q leaves out, as README, wspush.1 and -h say: a line for each
# message, connection and seat (taken back, gone), role tables, closes
# with 4000 and 4001. What it keeps: start-up and shutdown, refusals,
# warnings and errors.
QUIET_DROPS = {
    "a message": r"Received Message: ",
    "a connection": r"Connection accepted\. User key: ",
    "a disconnection": r"Peer 127\.0\.0\.1 disconnected\.",
    "a page asked for": r"Received request for /user\.html",
    "a role table": r"Current active connections\n\{\n  '",
    "a seat taken back": r"Seat #\d+ is back: closing its old connection",
    "a seat gone": r"Seat #\d+ is gone: away for 1 s",
    "close 4001": r"Closing \S+ \(127\.0\.0\.1\): 4001 ",
    "close 4000": r"Closing \S+ \(127\.0\.0\.1\): 4000 ",
}
QUIET_KEEPS = {
    "start-up": r"Server is listening on port \d+\nStudents: none can connect",
    "the teacher's address": r"The teacher opens: http://localhost:\d+/admin\.html",
    "a refusal (409)": r"Request from 127\.0\.0\.1 refused: 409 ",
    "an admin refused": r"Admin refused for \S+ from 127\.0\.0\.1: wrong admin token",
    "a wait after wrong tokens": r"Admin attempts from 127\.0\.0\.1 wait 1 s",
    "an error (close 1002)": r"Closing \S+ \(127\.0\.0\.1\): 1002 ",
    "pushes lost with a seat": r"Seat #\d+: 1 pushes not seen are lost: away longer",
    "shutdown": r"Shutting down: closing \d+ connections?\n(.|\n)*Server stopped",
}


def quiet_scenario(*flags):
    """One run of every kind of line; returns the log."""
    srv = Server("-t", TOKEN, "-g", "1", *flags, name="claims-quiet")
    try:
        a = Client(srv.port)
        a.send_json({"req": "get connections", "token": "wrong token, wrong"})
        a.recv_json()
        a.send_json({"req": "get connections", "token": TOKEN})  # this machine: weighed
        expect(a.recv_json()["resp"] == "get connections", "not admin")
        u = Client(srv.port)
        u.send_json({"req": "seat"})
        secret = u.recv_json()["secret"]
        back = Client(srv.port)
        back.send_json({"req": "seat", "secret": secret})      # 4001 for u
        expect(u.expect_close()[0] == 4001, "no 4001")
        back.recv_json()
        try:
            Client(srv.port, key=back.key)                       # 409
            raise AssertionError("a key in use was taken")
        except HandshakeRefused as e:
            expect(e.status == 409, "status %s" % e.status)
        k = Client(srv.port)
        a.send_json({"req": "kick", "userkey": k.key})           # 4000
        expect(a.recv_json()["content"] == "Closed.", "kick")
        expect(k.expect_close()[0] == 4000, "no 4000")
        a.send_json({"req": "push a user", "userkey": back.key, "text": "waits"})
        a.recv_json()
        back.drop()                                              # gone after 1 s
        bad = Client(srv.port)
        bad.send_frame(OP_TEXT, b"x", rsv=4)                     # 1002
        bad.expect_close()
        http_request(srv.port, b"GET /user.html HTTP/1.1\r\nHost: x\r\n\r\n")
        expect(srv.wait_log(r"Seat #\d+: 1 pushes not seen are lost", 10), "the seat never went")
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(timeout=10)
    finally:
        srv.stop()
    return srv.log()


@case("-q: leaves out the lines for each message, connection and seat, role tables and closes "
      "with 4000 or 4001; keeps start-up, refusals, warnings, errors and shutdown")
def test_quiet():
    loud, quiet = quiet_scenario(), quiet_scenario("-q")
    for what, pattern in QUIET_DROPS.items():
        expect(re.search(pattern, loud), "without -q, no line for %s" % what)
        expect(not re.search(pattern, quiet), "-q logs %s: %s" % (
            what, re.search(pattern, quiet) and re.search(".*" + pattern + ".*", quiet).group(0)))
    for what, pattern in QUIET_KEEPS.items():
        expect(re.search(pattern, loud) and re.search(pattern, quiet), "-q drops %s" % what)
    with Server("-q", "-A", name="claims-quiet-warning") as srv:
        expect(srv.wait_log("WARNING: -A"), "-q drops the warning of -A")


@case("log: the admin token is never logged, however escaped or cut")
def test_token_never_logged():
    with Server("-t", TOKEN, name="claims-token") as srv:
        forms = [TOKEN, "\\u0063" + TOKEN[1:], TOKEN.replace("o", "\\u006f"),
                 TOKEN.replace(" ", "\\u0020"), "x" * 160 + TOKEN, "x" * 175 + TOKEN,
                 "x" * 190 + TOKEN]
        for form in forms:
            c = Client(srv.port)
            c.send_text('{"req":"text","text":"%s"}' % form)
            expect(TOKEN in c.recv_json()["content"], "no echo of %r" % form)
            c.drop()
        a = Client(srv.port)
        a.send_text('{"req":"get connections","\\u0074oken":"%s"}' % TOKEN.replace("c", "\\u0063"))
        expect(a.recv_json()["resp"] == "get connections", "the escaped token was refused")
        a.send_json({"req": "text", "text": "the end"})
        a.recv_json()
        expect(srv.wait_log("the end"), "not logged")
        log = srv.log()
        pieces = [TOKEN[i:i + 6] for i in range(len(TOKEN) - 5)]
        found = [p for p in pieces if p in log]
        expect(not found, "pieces of the token in the log: %r" % found)


# ---------------------------------------------------------------- -x, in a namespace

def proxies_main():
    """Inside a new network namespace: fd00::1 (wspush), fd00::2 and
    fd00::3 (proxies, or not) on its loopback device, which only this
    test uses. Prints PASS/FAIL lines."""
    setup = [["ip", "link", "set", "lo", "up"]] + [
        ["ip", "-6", "addr", "add", "fd00::%d/128" % i, "dev", "lo", "nodad"] for i in (1, 2, 3)]
    for cmd in setup:
        subprocess.run(cmd, check=True, capture_output=True, timeout=10)

    def client_is(flags, source, xff):
        """The address wspush logs for a client from source with that
        X-Forwarded-For."""
        with Server("-b", "fd00::1", *flags, name="claims-proxy") as srv:
            c = Client(srv.port, host="fd00::1", source=(source, 0),
                       extra="X-Forwarded-For: %s\r\n" % xff)
            c.close()
            expect(srv.wait_log(r"Peer \S+ disconnected\."), "no line for the disconnection")
            return re.search(r"Peer (\S+) disconnected\.", srv.log()).group(1)

    cases = [
        ("-x fd00:0::2 believes a proxy at fd00::2",
         ["-x", "fd00:0::2"], "fd00::2", "10.7.7.7", "10.7.7.7"),
        ("-x FD00:0:0:0:0:0:0:2 believes a proxy at fd00::2",
         ["-x", "FD00:0:0:0:0:0:0:2"], "fd00::2", "10.7.7.7", "10.7.7.7"),
        ("-x fd00::3 does not believe fd00::2",
         ["-x", "fd00::3"], "fd00::2", "10.7.7.7", "fd00::2"),
        ("without -x, fd00::2 (not this machine's loopback) is not believed",
         [], "fd00::2", "10.7.7.7", "fd00::2"),
        ("the last entry names the client; entries before it are passed over only if they "
         "are -x proxies", ["-x", "fd00::2"], "fd00::2", "10.7.7.7, 10.7.7.8", "10.7.7.8"),
        ("a chain: an entry that is a -x proxy is passed over, leftwards",
         ["-x", "fd00::2", "-x", "10.7.7.8"], "fd00::2", "10.7.7.7, 10.7.7.8", "10.7.7.7"),
    ]
    for name, flags, source, xff, want in cases:
        try:
            got = client_is(flags, source, xff)
            report("-x: " + name, got == want, "logged as %s, not %s" % (got, want))
        except Exception as e:          # the case's own failure, reported
            report("-x: " + name, False, "%s: %s" % (type(e).__name__, e))
    finish()


def test_proxies():
    name = "-x: matched as an address, in a network namespace"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        skipped(name, "needs ip(8) and unshare(1) (apt-get install iproute2 util-linux)")
        return
    if os.geteuid() != 0:
        skipped(name, "needs root for a network namespace (run the tests with sudo)")
        return
    done = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__),
                           "--proxies"], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.abspath(__file__)))
    lines = [line for line in done.stdout.splitlines()
             if re.match(r"(PASS|FAIL|SKIPPED): ", line)]
    for line in lines:
        print(line, flush=True)
    if any(line.startswith("FAIL") for line in lines):
        import wsclient
        wsclient.failures += 1
    if len(lines) < 6:
        report(name, False, "the namespace part did not run: %s %s"
               % (done.stdout[-300:], done.stderr[-300:]))


# ---------------------------------------------------------------- every reply

# Placeholders in the documents: N, M, K (numbers), R (a request), F (a member).
PLACEHOLDER = re.compile(r"(?<![-\w])[NMKRF](?!\w)")
NUMBER = "NMK"
KINDS = {("text", "content"), ("error", "content"), ("receipt", "state"), ("receipt", "why"),
         ("users", "why")}


def doc_pattern(words):
    """A regular expression for a document's words, placeholders matching
    what wspush puts there."""
    out, at = "", 0
    for m in PLACEHOLDER.finditer(words):
        out += re.escape(words[at:m.start()]) + (r"(\d+)" if m.group(0) in NUMBER else "(.+?)")
        at = m.end()
    return out + re.escape(words[at:])


def readme_words():
    """README's table "Every reply, word for word": {(resp, member, words): when}."""
    text = read("README.md")
    part = text.split("### Every reply, word for word")
    expect(len(part) == 2, "README has no section \"Every reply, word for word\"")
    rows = re.findall(r"^\| `(\w+)` \| `(.+?)` \| (.+) \|$", part[1].split("\n#")[0], re.M)
    words = {}
    for resp, cell, when in rows:
        m = re.fullmatch(r'"(state|why)":(".*")', cell)
        member, literal = (m.group(1), m.group(2)) if m else ("content", cell)
        key = (resp, member, json.loads(literal))
        expect(key[:2] in KINDS, "README: a reply of an unknown kind: %r" % (key,))
        expect(key not in words, "README lists %r twice" % (key,))
        words[key] = when
    return words


def roff_text(s):
    return s.replace("\\(dq", '"').replace("\\&", "").replace("\\e", "\\")


def man_words():
    """wspush.1's list of replies: {(resp, member, words)}."""
    text = read("wspush.1")
    part = text.split(".Ss Every reply, word for word")
    expect(len(part) == 2, "wspush.1 has no subsection \"Every reply, word for word\"")
    words = set()
    for resp, member, said in re.findall(r"^\.It Li (\w+)(?: (\w+))? Qq (.*)$",
                                         part[1].split("\n.Sh ")[0], re.M):
        key = (resp, member or "content", roff_text(said))
        expect(key[:2] in KINDS, "wspush.1: a reply of an unknown kind: %r" % (key,))
        words.add(key)
    return words


def c_strip_comments(code):
    """wspush.c without its comments (string literals kept)."""
    return re.sub(r'"(?:[^"\\\n]|\\.)*"|/\*.*?\*/|//[^\n]*',
                  lambda m: m.group(0) if m.group(0)[0] == '"' else " ", code, flags=re.S)


def c_literals(text):
    """The string literals in a piece of C, decoded, adjacent ones joined."""
    text = re.sub(r'"\s*\n\s*"', "", text)
    decode = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    return [re.sub(r"\\(.)", lambda m: decode.get(m.group(1), "\\" + m.group(1)), lit)
            for lit in re.findall(r'"((?:[^"\\\n]|\\.)*)"', text)]


def c_calls(code, name):
    """The argument text of every call of function name."""
    found = []
    for m in re.finditer(r"\b%s\(" % name, code):
        depth, i = 1, m.end()
        while depth and i < len(code):
            if code[i] == '"':
                i = re.match(r'"(?:[^"\\\n]|\\.)*"', code[i:]).end() + i
                continue
            depth += {"(": 1, ")": -1}.get(code[i], 0)
            i += 1
        found.append(code[m.end():i - 1])
    return found


def c_bodies(code):
    """The body of each function of a C file."""
    return re.findall(r"^[a-z][^;{}()]*\([^;{}]*?\)\n\{\n(.*?)^\}", code, re.M | re.S)


def code_words():
    """Every reply string in wspush.c: {(resp, member, C format)}: the
    literals that reach reply_text() or reply_error(), there or through a
    variable of the same function (assigned, or written by snprintf());
    JSON's reasons (json_fail()) behind "malformed JSON at byte %zu: %s";
    the literals given to receipt(), push_done(), seat_free() and
    seat_drop_pushes() (states and whys); and those of away_why."""
    code = re.sub(r'"\s*\n\s*"', "", c_strip_comments(read("wspush.c")))
    found = set()

    def add(resp, member, texts):
        for t in texts:
            if len(t) >= 2 and re.search(r"[A-Za-z]", t):
                found.add((resp, member, t))
    reasons = [r for args in c_calls(code, "json_fail") for r in c_literals(args)]
    for body in c_bodies(code):
        for call, resp in (("reply_text", "text"), ("reply_error", "error")):
            said = []
            for args in c_calls(body, call):
                said += c_literals(args)
                names = re.sub(r'"(?:[^"\\]|\\.)*"', "", args)     # its variables
                for var in set(re.findall(r"\b[a-z_]\w*\b", names)):
                    for m in re.finditer(r"(?<![\w.>])%s\s*=(?!=)([^;]*);" % var, body):
                        said += c_literals(m.group(1))
                    for sargs in c_calls(body, "snprintf"):
                        if re.match(r"\s*%s\b" % var, sargs):
                            said += c_literals(sargs)
            for t in said:
                if t.endswith(": %s") and reasons:     # "malformed JSON at byte %zu: %s"
                    add(resp, "content", [t[:-2] + why for why in reasons])
                else:
                    add(resp, "content", [t])
    states = {"sent", "queued", "seen", "lost"}
    for name in ("receipt", "push_done", "seat_free", "seat_drop_pushes"):
        for args in c_calls(code, name):
            for lit in c_literals(args):
                add("receipt", "state" if lit in states else "why", [lit])
    for m in re.finditer(r"\baway_why\s*=(?!=)([^;]*);", code):
        add("users", "why", c_literals(m.group(1)))
    return found


def code_pattern(fmt):
    out, at = "", 0
    for m in re.finditer(r"%[-0-9.]*(?:zu|lu|llu|d|u|s)", fmt):
        out += re.escape(fmt[at:m.start()]) + "(.*?)"
        at = m.end()
    return out + re.escape(fmt[at:])


class Replies:
    """What the situations below saw: for each document key they expect,
    whether wspush said it, and where."""

    def __init__(self):
        self.seen = {}          # (resp, member, words) -> [(situation, said, ok)]

    def saw(self, resp, member, words, said, situation):
        ok = said is not None and re.fullmatch(doc_pattern(words), said) is not None
        self.seen.setdefault((resp, member, words), []).append((situation, said, ok))

    def text(self, words, said, situation):
        self.saw("text", "content", words, said, situation)

    def error(self, words, said, situation):
        self.saw("error", "content", words, said, situation)

    def reply(self, words, msg, situation):
        """msg is a text or an error reply; which one, README says (a
        reply of the other kind is then a reply README does not list)."""
        resp = msg.get("resp") if isinstance(msg, dict) else None
        if resp in ("text", "error"):
            self.saw(resp, "content", words, msg.get("content"), situation)
        else:
            self.saw("text", "content", words, None, "%s (got %r)" % (situation, msg))


def recv_until(c, want, timeout=TIMEOUT, skipped_=None):
    """Messages c gets until want(msg); returns that message. Others go to
    skipped_ if given."""
    deadline = time.time() + timeout
    while True:
        msg = c.recv_json(max(0.01, deadline - time.time()))
        if want(msg):
            return msg
        if skipped_ is not None:
            skipped_.append(msg)


def reply_of(c, timeout=TIMEOUT, passed=None):
    """The next reply that is not a receipt or a users list (those go to
    passed, if given)."""
    return recv_until(c, lambda m: m.get("resp") not in ("receipt", "users"), timeout, passed)


def receipt_of(c, ref, state=None, timeout=TIMEOUT):
    return recv_until(c, lambda m: m.get("resp") == "receipt" and m.get("ref") == ref and
                      (state is None or m.get("state") == state), timeout)


def become_admin(port, **kw):
    a = Client(port, **kw)
    a.send_json({"req": "get connections"})
    expect(a.recv_json()["resp"] == "get connections", "not admin")
    return a


def seat(c, secret=None):
    c.send_json({"req": "seat", "secret": secret} if secret else {"req": "seat"})
    msg = recv_until(c, lambda m: m.get("resp") in ("seat", "error"))
    expect(msg["resp"] == "seat", "no seat: %r" % msg)
    return msg


def wait_row(watcher, number, pred, timeout=TIMEOUT):
    """Ask watcher (an admin) for lists until seat number's row satisfies pred."""
    deadline = time.time() + timeout
    watcher.send_json({"req": "watch users"})
    while True:
        msg = recv_until(watcher, lambda m: m.get("resp") == "users",
                         max(0.01, deadline - time.time()))
        rows = [r for r in msg["content"] if r["number"] == number]
        if rows and pred(rows[0]):
            return rows[0]


def stuck_page(port, source="127.0.0.1"):
    """A tutorial's page (no seat) that never reads: a raw socket, its
    receive buffer small."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    key = new_key()
    s.sendall(upgrade_request(key))
    return s, key


def wait_listed(a, present=(), absent=(), timeout=TIMEOUT):
    """Ask for the list (get connections) until these keys are in it and
    those are not: a connection's handshake may come after our request."""
    deadline = time.time() + timeout
    while True:
        a.send_json({"req": "get connections"})
        keys = recv_until(a, lambda m: m.get("resp") == "get connections",
                          max(0.01, deadline - time.time()))["content"]
        if all(k in keys for k in present) and not any(k in keys for k in absent):
            return
        expect(time.time() < deadline, "the list never had %r without %r" % (present, absent))
        time.sleep(0.02)


def until_not(a, request, usual, tries=60, passed=None):
    """Send request until the reply is not `usual' (its content, or a test
    of the whole reply); that reply. Receipts and lists go to passed."""
    for _ in range(tries):
        a.send_json(request)
        msg = reply_of(a, 20, passed)
        if not (isinstance(usual, str) and msg.get("content") == usual or
                callable(usual) and usual(msg)):
            return msg
    raise AssertionError("%d times %r" % (tries, msg))


BIG = "y" * 500000


def push_and_hear(a, key, text, ref, state):
    """Push text to key with ref; (the receipt with that state, the reply)."""
    a.send_json({"req": "push a user", "userkey": key, "text": text, "ref": ref})
    got, deadline = {}, time.time() + TIMEOUT
    while len(got) < 2:
        msg = a.recv_json(max(0.01, deadline - time.time()))
        if msg.get("resp") == "receipt" and msg.get("ref") == ref and msg["state"] == state:
            got["receipt"] = msg
        elif msg.get("resp") in ("text", "error"):
            got["reply"] = msg
    return got["receipt"], got["reply"]


def situations_pushes(r):
    """A user here, a seat here, away, gone, kicked; a page not reading.
    Each part has an admin of its own, so that no reply is left over."""
    with Server("-s", "4096", "-g", "60", name="claims-pushes") as srv:
        w = become_admin(srv.port)              # watches the list
        a = become_admin(srv.port)
        u = Client(srv.port)
        receipt, reply = push_and_hear(a, u.key, "hi", "r1", "sent")
        r.saw("receipt", "state", "sent", receipt["state"], "a push to a page that is here")
        r.reply("Already sent.", reply, "push a user: a tutorial's page that is here")
        expect(u.recv_json() == {"resp": "text", "content": "hi"}, "u got no push")

        p = Client(srv.port)
        mine = seat(p)
        receipt, reply = push_and_hear(a, p.key, "hi", "r2", "sent")
        r.reply("Already sent.", reply, "push a user: a seat that is here")
        pushed = recv_until(p, lambda m: m.get("resp") == "text")
        p.send_json({"req": "seen", "id": pushed["id"]})
        r.saw("receipt", "state", "seen", receipt_of(a, "r2", "seen")["state"],
              "the page answered seen")

        p.drop()                                       # no close: "lost"
        row = wait_row(w, mine["number"], lambda x: "away" in x)
        r.saw("users", "why", "lost", row.get("why"), "a seat whose connection ended "
              "without a close")
        receipt, reply = push_and_hear(a, p.key, "later", "r3", "queued")
        r.saw("receipt", "state", "queued", receipt["state"], "a push to a seat away")
        r.reply("Queued: that user is away; it goes when they are back.", reply,
                "push a user: a seat away")

        q = Client(srv.port)
        theirs = seat(q)
        q.close()                                      # a close: "closed"
        row = wait_row(w, theirs["number"], lambda x: "away" in x)
        r.saw("users", "why", "closed", row.get("why"), "a seat whose page closed")
        push_and_hear(a, q.key, "for q", "r7", "queued")
        a.send_json({"req": "kick", "userkey": q.key})
        lost = receipt_of(a, "r7", "lost")
        r.saw("receipt", "state", "lost", lost["state"], "a push to a seat kicked")
        r.saw("receipt", "why", "the teacher kicked that user", lost.get("why"),
              "a push to a seat away, kicked")
        r.reply("Closed.", reply_of(a), "kick: a seat away")
        k = Client(srv.port)
        a.send_json({"req": "kick", "userkey": k.key})
        r.reply("Closed.", reply_of(a), "kick: a page that is here")
        expect(k.expect_close()[0] == 4000, "the kicked page got no 4000")
        a.send_json({"req": "kick", "userkey": new_key()})
        r.reply("no such user: it has gone", reply_of(a), "kick: a key no seat holds")
        a.send_json({"req": "push a user", "userkey": new_key(), "text": "x"})
        r.reply("Refresh user list complete. Try again!", reply_of(a),
                "push a user: a key no seat holds")
        expect(a.recv_json()["resp"] == "get connections", "no fresh list after it")

        # The page left: its seat is given up for another it takes back.
        a = become_admin(srv.port)
        one, two = Client(srv.port), Client(srv.port)
        seat(one)
        other = seat(two)
        push_and_hear(a, one.key, "unseen", "r9", "sent")
        two.drop()
        wait_row(w, other["number"], lambda x: "away" in x)
        one.send_json({"req": "seat", "secret": other["secret"]})
        lost = receipt_of(a, "r9", "lost")
        r.saw("receipt", "why", "the page left", lost.get("why"),
              "a push not yet seen by a page that took another seat back")

        # More than a seat keeps: 64 pushes.
        a = become_admin(srv.port)
        v = Client(srv.port)
        vs = seat(v)
        v.drop()
        wait_row(w, vs["number"], lambda x: "away" in x)
        for i in range(65):
            a.send_json({"req": "push a user", "userkey": v.key, "text": "p%d" % i,
                         "ref": "v%d" % i})
        lost = receipt_of(a, "v0", "lost")
        r.saw("receipt", "why", "more pushes waited than a seat keeps (64, or -s bytes)",
              lost.get("why"), "65 pushes to a seat away")

        # A tutorial's page that does not read, more than -s behind.
        a = become_admin(srv.port)
        s, key = stuck_page(srv.port)
        wait_listed(a, [key])
        msg = until_not(a, {"req": "push a user", "userkey": key, "text": BIG}, "Already sent.")
        r.reply("that user is not reading and was disconnected", msg,
                "push a user: a page more than -s behind")
        s.close()
        s, key = stuck_page(srv.port)
        wait_listed(a, [key])
        receipts = []
        until_not(a, {"req": "push a user", "userkey": key, "text": BIG, "ref": "st"},
                  "Already sent.", passed=receipts)
        lost = ([m for m in receipts if m.get("ref") == "st" and m["state"] == "lost"] or
                [receipt_of(a, "st", "lost")])[0]
        r.saw("receipt", "why", "the page was not reading", lost.get("why"),
              "a push to a page more than -s behind")
        s.close()


def situations_push_all(r):
    with Server("-s", "4096", "-g", "60", name="claims-push-all") as srv:
        a, w = become_admin(srv.port), become_admin(srv.port)
        u1, u2 = Client(srv.port), Client(srv.port)

        def push_all(text, reading=(u1, u2)):
            a.send_json({"req": "push all", "text": text})
            msg = reply_of(a, 20)
            for u in reading:
                expect(u.recv_json(20)["content"] == text, "a user missed a push all")
            return msg
        r.reply("Sent to N users.", push_all("one"), "push all: two users here")
        away = Client(srv.port)
        seat_away = seat(away)
        away.drop()
        wait_row(w, seat_away["number"], lambda x: "away" in x)
        r.reply("Sent to N users; queued for M away.", push_all("two"),
                "push all: two users here, one away")

        def with_a_page_not_reading():
            """Pushes to all, with a page that does not read, until that
            page is lost; the last reply."""
            s, key = stuck_page(srv.port)
            wait_listed(a, [key])
            for _ in range(40):
                msg = push_all(BIG)
                if "lost" in msg.get("content", ""):
                    break
            s.close()
            return msg, key
        msg, _ = with_a_page_not_reading()
        r.reply("Sent to N users; queued for M away; lost for K.", msg,
                "push all: two here, one away, one not reading")
        a.send_json({"req": "kick", "userkey": away.key})
        reply_of(a)
        msg, key = with_a_page_not_reading()
        r.reply("Sent to N users; lost for K.", msg,
                "push all: two here, one not reading")
        u2.close()
        wait_listed(a, absent=[u2.key, key])
        r.reply("Sent to 1 user.", push_all("last", (u1,)), "push all: one user here")


def situations_seats_given(r):
    """-g 1 and -c 1: a seat away too long; a seat given to a newcomer;
    the memory budget."""
    with Server("-g", "2", name="claims-grace") as srv:
        a, w = become_admin(srv.port), become_admin(srv.port)
        p = Client(srv.port)
        mine = seat(p)
        p.drop()
        wait_row(w, mine["number"], lambda x: "away" in x)
        a.send_json({"req": "push a user", "userkey": p.key, "text": "late", "ref": "g"})
        lost = receipt_of(a, "g", "lost", 10)
        r.saw("receipt", "why", "away longer than -g allows", lost.get("why"),
              "a push to a seat away longer than -g")
    with Server("-c", "1", name="claims-newcomer") as srv:
        a = become_admin(srv.port)
        w = become_admin(srv.port, source=("127.0.0.3", 0))     # -c 1: one an address
        p = Client(srv.port, source=("127.0.0.2", 0))
        mine = seat(p)
        p.drop()
        wait_row(w, mine["number"], lambda x: "away" in x)
        a.send_json({"req": "push a user", "userkey": p.key, "text": "x", "ref": "n"})
        receipt_of(a, "n", "queued")
        Client(srv.port, source=("127.0.0.2", 0))
        lost = receipt_of(a, "n", "lost")
        r.saw("receipt", "why", "its seat was given to a newcomer", lost.get("why"),
              "a push to a seat away, its address at -c, and a newcomer from it")
    with Server("-M", "300000", name="claims-budget") as srv:
        a, w = become_admin(srv.port), become_admin(srv.port)
        p = Client(srv.port, source=("127.0.0.2", 0))
        mine = seat(p)
        p.drop()
        wait_row(w, mine["number"], lambda x: "away" in x)
        for i in range(20):                         # 20 x 30 KB > 300000
            a.send_json({"req": "push a user", "userkey": p.key, "text": "m" * 30000,
                         "ref": "m%d" % i})
        lost = receipt_of(a, "m0", "lost", 10)
        r.saw("receipt", "why", "the server's memory budget (-M) was spent", lost.get("why"),
              "pushes to a seat away past -M")


# Makes calloc() (of 1 KiB or more) fail while $WSPUSH_FAIL/calloc
# exists, and open("/dev/urandom") while $WSPUSH_FAIL/urandom does.
FAIL_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
extern void *__libc_calloc(size_t, size_t);
static int failing(const char *what)
{
    char path[600];
    const char *dir = getenv("WSPUSH_FAIL");
    if (dir == NULL)
        return 0;
    snprintf(path, sizeof path, "%s/%s", dir, what);
    return access(path, F_OK) == 0;
}
void *calloc(size_t n, size_t size)
{
    if (n * size >= 1024 && failing("calloc"))
        return NULL;
    return __libc_calloc(n, size);
}
int open(const char *path, int flags, ...)
{
    static int (*real)(const char *, int, ...);
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (strcmp(path, "/dev/urandom") == 0 && failing("urandom")) {
        errno = EIO;
        return -1;
    }
    if (real == NULL)
        real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    return real(path, flags, mode);
}
"""


def situations_failing(r):
    """Out of memory, and /dev/urandom gone: through a shim."""
    shim = build_shim(FAIL_SHIM)
    if isinstance(shim, Skip):
        return shim.why
    flags = tempfile.mkdtemp(prefix="wspush-fail-")
    try:
        with Server(env={"LD_PRELOAD": shim, "WSPUSH_FAIL": flags}, name="claims-fail") as srv:
            a = become_admin(srv.port)
            open(os.path.join(flags, "urandom"), "w").close()
            c = Client(srv.port)
            c.send_json({"req": "seat"})
            r.reply("no seat: the server cannot read /dev/urandom now", c.recv_json(),
                    "seat, while /dev/urandom cannot be read")
            os.remove(os.path.join(flags, "urandom"))
            seat(c)
            open(os.path.join(flags, "calloc"), "w").close()
            a.send_json({"req": "push a user", "userkey": c.key, "text": "x", "ref": "o"})
            lost = receipt_of(a, "o", "lost")
            r.saw("receipt", "why", "out of memory", lost.get("why"),
                  "a push to a seat while memory is short")
            told = reply_of(a)
            r.reply("out of memory: that push could not be kept", told,
                    "push a user, to a seat while memory is short")
            told = told.get("content")
            os.remove(os.path.join(flags, "calloc"))
            c.send_json({"req": "text", "text": "still here?"})
            here = recv_until(c, lambda m: m.get("resp") == "text")["content"] == "still here?"
            expect(not (told == "that user is not reading and was disconnected" and here),
                   "out of memory, the teacher is told %r, but that user is still connected "
                   "and reading" % told)
    finally:
        shutil.rmtree(flags, ignore_errors=True)
        shutil.rmtree(os.path.dirname(shim), ignore_errors=True)
    return None


# Malformed JSON, one request for each reason wspush gives.
MALFORMED = [
    (b'{"req":"\\q"}', "unknown escape in a string"),
    (b'{"req":"\\u12"}', "expected 4 hex digits after \\u"),
    (b'{"req":"\\ud800"}', "unpaired surrogate in \\u escape"),
    (b'{5:1}', "expected a string"),
    (b'{"req":"abc', "unterminated string"),
    (b'{"req":"a\tb"}', "control character in a string"),
    (b'{"req":"a","x":tru}', "expected a value"),
    (b'{"req":"a","x":1.}', "expected a digit"),
    (b'{"req" "a"}', "expected ':' after a key"),
    (b'{"req":"a","x":' + b"[" * 32 + b"]" * 32 + b"}", "nested too deeply"),
    (b'{"req":"a" "x":1}', "expected ',' or '}'"),
    (b'{"req":"a","x":[1 2]}', "expected ',' or ']'"),
    (b'[1]', "a request must be a JSON object"),
    (b'{"req":"a"} x', "unexpected text after the object"),
]
ADMIN_ONLY = ["push a user", "push all", "watch users", "kick", "get addresses"]
FIELDS = ["req", "text", "userkey", "token", "name", "secret", "id", "ref"]


def situations_errors(r):
    with Server(name="claims-errors") as srv:
        u = Client(srv.port)
        for req in ADMIN_ONLY:
            u.send_json({"req": req, "userkey": "k", "text": "x"})
            said = u.recv_json().get("content", "")
            r.error("only an admin may R; send \"get connections\" first", said,
                    "%s from a user" % req)
            expect(re.search(r"may %s;" % req, said), "R is not %r: %r" % (req, said))
        u.send_json({"text": "x"})
        r.reply("a request needs a \"req\" string", u.recv_json(), "a request without req")
        for field in FIELDS:
            u.send_text('{"req":"text","%s":5}' % field)
            said = u.recv_json()
            r.reply("\"F\" must be a string", said, "%s: 5" % field)
            expect(said.get("content") == "\"%s\" must be a string" % field, "F is not %s" % field)
        for request, why in MALFORMED:
            u.send_text(request)
            said = u.recv_json()
            r.reply("malformed JSON at byte N: " + why, said, request.decode()[:40])
        u.send_json({"req": "set name"})
        r.reply("\"set name\" needs a \"name\" string", u.recv_json(), "set name without name")
        u.send_json({"req": "set name", "name": "a\u202eb"})
        r.reply("a name is plain text: no control or direction-changing characters",
                u.recv_json(), "a name with U+202E")
        u.send_json({"req": "set name", "name": "x" * 41})
        r.reply("a name is 1 to 40 characters", u.recv_json(), "a name of 41 characters")
        u.send_json({"req": "set name", "name": "  "})
        r.reply("a name is 1 to 40 characters", u.recv_json(), "a name of spaces")
        msg = until_not(u, {"req": "set name", "name": "Ann"},
                        lambda m: m.get("resp") == "set name", 30)
        r.reply("too many names: at most 5 a second", msg, "6 names in a second")
        a = become_admin(srv.port)
        a.send_json({"req": "push a user", "userkey": u.key})
        r.reply("a push needs a \"text\" string", a.recv_json(), "push a user without text")
        a.send_json({"req": "push all", "text": "x", "ref": "r" * 17})
        r.reply("a \"ref\" is at most 16 bytes", a.recv_json(), "a ref of 17 bytes")
        far = Client(srv.port, origin=STUDENT)
        far.send_json({"req": "get connections"})
        r.reply("admins must connect from the machine running wspush, from one of its pages "
                "(or the server must be started with -t TOKEN)", far.recv_json(),
                "get connections from another site's page, without -t")


def situations_tokens(r):
    with Server("-t", TOKEN, name="claims-tokens") as srv:
        c = Client(srv.port)
        c.send_json({"req": "get connections"})
        r.reply("admin token required: send \"token\" with \"get connections\"", c.recv_json(),
                "get connections without a token, under -t")
        c.send_json({"req": "get connections", "token": "not the token at all"})
        r.reply("wrong admin token", c.recv_json(), "a wrong token")
        c.send_json({"req": "get connections", "token": "not the token at all"})
        r.reply("too many wrong admin tokens from your address: wait N s, then try again",
                c.recv_json(), "a second wrong token at once")
        for i in range(1, 65):                  # 64 addresses are remembered
            g = Client(srv.port, source=("127.0.1.%d" % i, 0))
            g.send_json({"req": "get connections", "token": "not the token at all"})
            g.recv_json()
            g.drop()
        g = Client(srv.port, source=("127.0.2.1", 0))
        g.send_json({"req": "get connections", "token": "not the token at all"})
        r.reply("wrong admin tokens came from many addresses: wait a minute, then try again",
                g.recv_json(), "a guess from a 66th address while 64 wait")


def check_replies():
    """The documents, the situations and wspush.c agree on every reply."""
    name = "replies: README's table and wspush.1's list of replies are the same"
    readme, man = readme_words(), man_words()
    only_readme = sorted(set(readme) - man)
    only_man = sorted(man - set(readme))
    report(name, not only_readme and not only_man and len(readme) >= 40,
           "only in README: %r; only in wspush.1: %r; %d in README"
           % (only_readme, only_man, len(readme)))

    # The protocol table's own words are in the list.
    table = read("README.md").split("## Protocol")[1].split("### Every reply")[0]
    inline = {("text" if m.group(1) == "text" else "error", "content", json.loads(m.group(2)))
              for m in re.finditer(r'\{"resp":"(text|error)","content":("(?:[^"\\]|\\.)*")\}',
                                   table)}
    receipts_row = [line for line in table.splitlines() if '"resp":"receipt"' in line]
    for span in re.findall(r"`(\"[^`]*\")`", "".join(receipts_row)):
        said = json.loads(span)
        inline.add(("receipt", "state" if " " not in said else "why", said))
    missing = sorted(inline - set(readme))
    report("replies: each reply the protocol table names is in the list below it",
           not missing and len(inline) >= 10, "not in the list: %r" % missing)

    r = Replies()
    runs = [("pushes", situations_pushes), ("push all", situations_push_all),
            ("seats given up", situations_seats_given), ("errors", situations_errors),
            ("tokens", situations_tokens), ("memory and randomness", situations_failing)]
    could_not = {}
    for what, fn in runs:
        try:
            why = fn(r)
            if why:
                could_not[what] = why
        except Exception as e:      # a situation that broke: its words stay unseen
            report("replies: the situations of %s" % what, False,
                   "%s: %s" % (type(e).__name__, e))
    shim_words = {("error", "content", "no seat: the server cannot read /dev/urandom now"),
                  ("receipt", "why", "out of memory")}
    for key in sorted(readme):
        resp, member, words = key
        label = "reply: %s %s %s" % (resp, member, json.dumps(words))
        seen = r.seen.get(key)
        if not seen and key in shim_words and "memory and randomness" in could_not:
            skipped(label, could_not["memory and randomness"])
        elif not seen:
            report(label, False, "README lists it, and no situation here makes wspush say it "
                   "(README's words changed, or the test lacks a situation)")
        else:
            bad = [(s, said) for s, said, ok in seen if not ok]
            report("%s (%s)" % (label, seen[0][0]), not bad,
                   "wspush said otherwise: %r" % bad)
    for key in sorted(set(r.seen) - set(readme)):
        report("reply: %s %s %s" % key, False, "wspush says it (%s: %r), README does not list "
               "it" % (r.seen[key][0][0], r.seen[key][0][1]))

    code = code_words()
    name = "replies: every reply string of wspush.c is in README's table"
    missing = []
    for resp, member, fmt in sorted(code):
        pattern = code_pattern(fmt)
        docs = [w for (rr, m, w) in readme if (rr, m) == (resp, member)]
        match = re.search if resp == "text" else re.fullmatch    # "; queued for %d away"
        if not any(match(pattern, w) for w in docs):
            missing.append("%s %s %r" % (resp, member, fmt))
    report(name, not missing and len(code) >= 40,
           "%d strings found in wspush.c; not in README: %s" % (len(code), "; ".join(missing)))


# ---------------------------------------------------------------- the tutorial's server

def tutorial_rows():
    text = read("README.md")
    part = text.split("### Where wspush answers otherwise than the tutorial's server")
    expect(len(part) == 2, "README has no section on where wspush answers otherwise")
    rows = re.findall(r"^\| `(.+?)` \| (.+?) \| `(.+?)` \|$", part[1].split("\n#")[0], re.M)
    expect(len(rows) >= 10, "README's table has %d rows" % len(rows))
    return [(q.encode(), None if t == "crashes" else t.strip("`").encode(), o.encode())
            for q, t, o in rows]


def answer(port, request):
    """The reply to one request on a new connection, or None if the
    connection ends instead."""
    c = Client(port)
    try:
        c.send_text(request)
        return c.recv_text()
    except (EOFError, ConnectionError, TimeoutError):
        return None
    finally:
        c.drop()


@case("tutorial: wspush answers each request of README's table of differences as it says")
def test_differences_wspush():
    rows = tutorial_rows()
    with Server(name="claims-differences") as srv:
        for request, _, ours in rows:
            got = answer(srv.port, request)
            expect(got == ours, "%s: wspush answers %r, README says %r" % (request, got, ours))


def with_node(fn):
    got = scenario.with_node(fn)
    if got == "node is not installed":
        return Skip(got + " (apt-get install nodejs)")
    return Skip(got) if isinstance(got, str) else got


@case("tutorial: its server.js answers each request of README's table of differences as it "
      "says (crashing where it says so)")
def test_differences_tutorial():
    rows = tutorial_rows()
    got = with_node(lambda port: [answer(port, q) for q, theirs, _ in rows if theirs])
    if isinstance(got, Skip):
        return got
    want = [theirs for _, theirs, _ in rows if theirs]
    expect(got == want, "server.js answered %r" % [(a, b) for a, b in zip(got, want) if a != b])
    for request, theirs, _ in rows:
        if theirs is None:
            crashed = with_node(lambda port: lessons.crashes(port, request))
            expect(crashed is True, "server.js did not crash on %s: %s" % (request, crashed))


def frames_of(c, timeout=TIMEOUT):
    """(opcode with FIN, length) of each frame until a close or a quiet second."""
    out = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c._fill(2, min(deadline, time.time() + 1))
        except TimeoutError:
            break
        b0, n, at = c.buf[0], c.buf[1] & 0x7f, 2
        if n == 126:
            c._fill(4, deadline)
            n, at = struct.unpack("!H", c.buf[2:4])[0], 4
        elif n == 127:
            c._fill(10, deadline)
            n, at = struct.unpack("!Q", c.buf[2:10])[0], 10
        c._fill(at + n, deadline)
        out.append((b0, n, c.buf[at:at + n]))
        c.buf = c.buf[at + n:]
        if b0 & 0x0f == OP_CLOSE:
            break
    return out


def transport(port):
    """What README says of the tutorial's server and wspush beyond the
    replies: frames of a long reply, a frame over 64 KiB, a binary
    message, a key in use, another site's page asking for the list."""
    seen = {}
    c = Client(port)
    c.send_json({"req": "text", "text": "y" * 40000})
    seen["long reply"] = [(b0, n) for b0, n, _ in frames_of(c)]
    c.drop()
    c = Client(port)
    c.send_json({"req": "text", "text": "y" * 70000})
    frames = frames_of(c)
    seen["70 KB"] = [(b0, n, p[:2] if b0 & 0x0f == OP_CLOSE else b"") for b0, n, p in frames]
    c.drop()
    c = Client(port)
    c.send_frame(OP_BINARY, b'{"req":"text","text":"b"}')
    c.send_json({"req": "text", "text": "after"})
    seen["binary"] = [(b0 & 0x0f, p[:2] if b0 & 0x0f == OP_CLOSE else p)
                      for b0, n, p in frames_of(c)][:1]
    c.drop()
    first = Client(port)
    try:
        Client(port, key=first.key).drop()
        seen["key in use"] = 101
    except HandshakeRefused as e:
        seen["key in use"] = e.status
    first.drop()
    far = Client(port, origin=STUDENT)
    far.send_json({"req": "get connections"})
    seen["another site"] = far.recv_json()["resp"]
    far.drop()
    return seen


@case("tutorial: what README says of frames, binary messages, keys in use and other sites' "
      "pages, from wspush and from server.js")
def test_transport():
    with Server(name="claims-transport") as srv:
        ours = transport(srv.port)
    reply = len(json.dumps({"resp": "text", "content": "y" * 40000}, separators=(",", ":")))
    expect(ours == {"long reply": [(0x81, reply)], "70 KB": [(0x81, reply + 30000, b"")],
                    "binary": [(OP_CLOSE, b"\x03\xeb")], "key in use": 409,
                    "another site": "error"}, "wspush: %r" % ours)
    theirs = with_node(transport)
    if isinstance(theirs, Skip):
        return theirs
    theirs["70 KB"] = [(b0, p) for b0, _, p in theirs["70 KB"]]
    expect(theirs == {"long reply": [(0x01, 16384), (0x00, 16384), (0x80, reply - 32768)],
                      "70 KB": [(0x88, b"\x03\xf1")],
                      "binary": [(OP_TEXT, b'{"resp":"text","content":"after"}')],
                      "key in use": 101, "another site": "get connections"},
           "server.js: %r" % theirs)


def main():
    if sys.argv[1:2] == ["--proxies"]:
        proxies_main()
        return
    tests = [test_bad_command_lines, test_cannot_start, test_short_env_token, test_help,
             test_signals, test_quiet, test_token_never_logged, test_proxies, check_replies,
             test_differences_wspush, test_differences_tutorial, test_transport]
    only = sys.argv[1:]
    for t in tests:
        if not only or t.__name__ in only:
            t()
    finish()


if __name__ == "__main__":
    main()
