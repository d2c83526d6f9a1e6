#!/usr/bin/env python3
"""tests/lessons.py -- the seven lessons: each builds with the one command its
header gives and with -std=c99 -Wall -Wextra -Werror, keeps to its line
budget, does what it says, and stays memory-safe (AddressSanitizer) under
hostile input. Also: every wspush.c function TOUR.md names exists, the
first reading's size as README and TOUR.md give it, and every limit of
wspush.c's section 1 in README's table and in "wspush -h"."""
import contextlib
import difflib
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time

from wsclient import (OUT, ROOT, Client, Skip, accept_for, case, expect, finish, mask_bytes,
                      new_key, report, upgrade_request, TIMEOUT)
import scenario

LESSONS = [("01-echo", 80), ("02-select", 150), ("03-handshake", 250), ("04-frames", 350),
           ("05-push", 600), ("06-nonblocking", 700), ("07-classroom", 900)]
NONBLOCKING = ["06-nonblocking", "07-classroom"]    # lessons 6 and 7 share these tests
BIN = os.path.join(OUT, "lessons")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror"]
ASAN = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def source(name):
    return os.path.join(ROOT, "lessons", name + ".c")


def one_command(name):
    """The build command the lesson's header gives, e.g. cc -o echo lessons/01-echo.c."""
    with open(source(name)) as f:
        m = re.search(r"Build: (cc -o \S+ lessons/\S+\.c(?: sha1\.c)?)", f.read())
    return m.group(1).split() if m else None


def build(name, flags, tag):
    """Build the lesson into tests/out/lessons/NAME-TAG; returns the path or raises."""
    os.makedirs(BIN, exist_ok=True)
    cmd = one_command(name)
    out = os.path.join(BIN, "%s-%s" % (name, tag))
    cmd = ["cc"] + flags + ["-o", out] + cmd[3:]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(cmd), done.stderr[-600:]))
    return out


class Lesson:
    """A lesson's server on a free port of 127.0.0.1 (it takes the port as its
    argument, so a few are tried), its output in tests/out."""

    def __init__(self, binary):
        self.logpath = binary + ".log"
        for _ in range(10):
            self.port = random.randint(20000, 60000)
            self.log = open(self.logpath, "w+")
            self.proc = subprocess.Popen([binary, str(self.port)], stdout=self.log,
                                         stderr=subprocess.STDOUT)
            if self.wait_output("listening on port", 10):
                return
            self.proc.kill()
            self.proc.wait()
        raise RuntimeError("%s did not start: %s" % (binary, self.output()))

    def output(self):
        with open(self.logpath) as f:
            return f.read()

    def wait_output(self, text, timeout=TIMEOUT):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.output():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def stop(self):
        """Stop it by its PID; its output must show no sanitizer report."""
        alive = self.proc.poll() is None
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()
        expect(alive, "the lesson had died: %s" % self.output()[-800:])
        expect("Sanitizer" not in self.output() and "runtime error" not in self.output(),
               "sanitizer report: %s" % self.output()[-1500:])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def tcp(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    return s


def recv_exactly(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def silent(s, seconds):
    """True if nothing comes on s for that long (a bounded wait for a non-event)."""
    s.settimeout(seconds)
    try:
        return s.recv(1) == b"" and False
    except socket.timeout:
        return True
    finally:
        s.settimeout(TIMEOUT)


def recv_all(s):
    """Everything until the peer's FIN."""
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def handshake(port, key="dGhlIHNhbXBsZSBub25jZQ=="):
    s = tcp(port)
    s.sendall(upgrade_request(key))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        expect(chunk, "closed during the handshake: %r" % head)
        head += chunk
    return s, head


def send_text(s, payload, opcode=1):
    key = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else
                                     b"\xfe" + struct.pack("!H", n) if n < 65536 else
                                     b"\xff" + struct.pack("!Q", n))
    s.sendall(head + key + mask_bytes(payload, key))


def read_frame(s):
    """(opcode, length form of the header: 7, 16 or 64, payload)."""
    b0, b1 = recv_exactly(s, 2)
    n, form = b1 & 0x7f, 7
    if n == 126:
        n, form = struct.unpack("!H", recv_exactly(s, 2))[0], 16
    elif n == 127:
        n, form = struct.unpack("!Q", recv_exactly(s, 8))[0], 64
    return b0 & 0x0f, form, recv_exactly(s, n)


@case("lessons: each builds with its one command, and with -std=c99 -Wall -Wextra -Werror")
def test_builds():
    for name, _ in LESSONS:
        expect(one_command(name), "%s: no \"Build: cc -o ...\" line in its header" % name)
        build(name, [], "plain")
        build(name, STRICT, "strict")


@case("lessons: each keeps to its line budget (80, 150, 250, 350, 600, 700, 900); lessons/README.md "
      "gives each lesson's and each answer's length, and how far an answer is over")
def test_budgets():
    for name, budget in LESSONS:
        with open(source(name)) as f:
            n = len(f.read().splitlines())
        expect(n <= budget, "%s has %d lines; its budget is %d" % (name, n, budget))
        with open(os.path.join(ROOT, "lessons", "README.md")) as f:
            told = re.search(r"\| \[%s\.c\]\(%s\.c\) \| (\d+) \|" % (name, name), f.read())
        expect(told and int(told.group(1)) == n, "lessons/README.md gives %s %s lines, not %d"
               % (name, told and told.group(1), n))
    # The answers may be a little over; lessons/README.md says by how much.
    with open(os.path.join(ROOT, "lessons", "README.md")) as f:
        readme = f.read()
    over = {}
    for name, budget in LESSONS:
        with open(os.path.join(ROOT, "lessons", "answers", name + ".c")) as f:
            n = len(f.read().splitlines())
        told = re.search(r"\(answers/%s\.c\): (\d+) lines" % name, readme)
        expect(told and int(told.group(1)) == n, "lessons/README.md gives answers/%s.c %s "
               "lines, not %d" % (name, told and told.group(1), n))
        if n > budget:
            over[name[:2]] = str(n - budget)
        expect(n <= budget + 25, "answers/%s.c is %d lines over" % (name, n - budget))
    said = readme.split("line\nbudget (80, 150, 250, 350, 600, 700, 900) allows, by a little:")[1]
    said = dict(re.findall(r"(\d\d) by (\d+)", said.split(".")[0]))
    expect(said == over, "lessons/README.md says the answers are over by %s; they are %s"
           % (said, over))


@case("lesson 1: echoes a TCP client; the next one waits its turn")
def test_echo():
    with Lesson(build("01-echo", ASAN, "asan")) as srv:
        a, b = tcp(srv.port), tcp(srv.port)
        a.sendall(b"one\n")
        expect(recv_exactly(a, 4) == b"one\n", "no echo")
        b.sendall(b"two\n")
        expect(silent(b, 0.3), "the second client was served while the first was on")
        a.close()
        expect(recv_exactly(b, 4) == b"two\n", "the second client was not served after")
        b.sendall(b"x" * 20000)
        expect(recv_exactly(b, 20000) == b"x" * 20000, "a long line")
        b.close()
        srv.stop()


@case("lesson 2: serves several clients at once; the 17th hears \"server is full\"")
def test_select():
    with Lesson(build("02-select", ASAN, "asan")) as srv:
        clients = [tcp(srv.port) for _ in range(16)]
        for i, c in enumerate(reversed(clients)):
            c.sendall(b"hello %d\n" % i)
        for i, c in enumerate(reversed(clients)):
            expect(recv_exactly(c, 7 + len(str(i))) == b"hello %d\n" % i, "client %d" % i)
        extra = tcp(srv.port)
        expect(recv_exactly(extra, 15) == b"server is full\n", "the 17th client")
        clients[3].close()
        expect(srv.wait_output("client 3: closed"), "a close was not noticed")
        again = tcp(srv.port)
        again.sendall(b"room\n")
        expect(recv_exactly(again, 5) == b"room\n", "a freed place is used again")
        srv.stop()


@case("lesson 3: the RFC's sample key gets s3pPLMBiTxaQ9kYGzzhZRbK+xOo=; bad requests get 400/431")
def test_handshake():
    with Lesson(build("03-handshake", ASAN, "asan")) as srv:
        s, head = handshake(srv.port)
        expect(head.startswith(b"HTTP/1.1 101 "), head)
        expect(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head, head)
        expect(b"Sec-WebSocket-Protocol: echo-protocol\r\n" in head, head)
        expect(srv.wait_output("base64 = s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "the trace")
        key = new_key()
        c = Client(srv.port, key)       # our client checks the accept value too
        c.drop()
        t = tcp(srv.port)
        t.sendall(b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 8192 + b"\r\n\r\n")
        expect(t.recv(100).startswith(b"HTTP/1.1 431"), "an 8 KiB header line")
        t = tcp(srv.port)
        t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        expect(t.recv(100).startswith(b"HTTP/1.1 400"), "no key")
        t = tcp(srv.port)
        t.sendall(b"GET / HTTP/1.1\r\nSec-WebSocket-Key: abc")    # and vanishes
        t.close()
        s.close()
        srv.stop()


@case("lesson 4: echoes 7-, 16- and 64-bit lengths; ping, close; refuses 2^63 bytes")
def test_frames():
    with Lesson(build("04-frames", ASAN, "asan")) as srv:
        s, _ = handshake(srv.port)
        for n, form in ((5, 7), (125, 7), (126, 16), (65535, 16), (65536, 64), (200000, 64)):
            payload = bytes(random.choice(b"abcxyz") for _ in range(n))
            send_text(s, payload)
            expect(read_frame(s) == (1, form, payload), "%d bytes" % n)
        send_text(s, b"are you there", opcode=9)
        expect(read_frame(s) == (10, 7, b"are you there"), "ping")
        send_text(s, b"\x03\xe8bye", opcode=8)
        expect(read_frame(s)[2] == b"\x03\xe8", "close code echoed")
        s, _ = handshake(srv.port)
        s.sendall(b"\x81\xff\x80\x00\x00\x00\x00\x00\x00\x00abcd")      # 2^63 bytes
        op, _, payload = read_frame(s)
        expect(op == 8 and payload[:2] == b"\x03\xf1", "a 2^63-byte claim: %r" % payload)
        s, _ = handshake(srv.port)
        s.sendall(b"\x81\xfe\x10\x00abcd" + b"x" * 100)     # vanishes mid-frame
        s.close()
        s, _ = handshake(srv.port)
        s.sendall(b"\x81\x05Hello")                         # not masked
        expect(read_frame(s)[2][:2] == b"\x03\xea", "an unmasked frame gets 1002")
        t = tcp(srv.port)
        t.sendall(b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 8192 + b"\r\n\r\n")
        expect(t.recv(100).startswith(b"HTTP/1.1 431"), "an 8 KiB header line")
        srv.stop()


def tutorial_checks(srv):
    """The tutorial's scenario, byte-identical to its server's replies, then
    hostile input: a huge length claim, bad JSON, a peer gone mid-frame."""
    with open(scenario.TRANSCRIPT) as f:
        theirs = json.load(f)["replies"]
    ours = scenario.article_scenario(srv.port)
    expect(ours == theirs, scenario.first_difference(ours, theirs))
    s, _ = handshake(srv.port, new_key())
    s.sendall(b"\x81\xff\x7f\xff\xff\xff\xff\xff\xff\xffabcd")      # 2^63 - 1 bytes
    expect(read_frame(s)[2] == b"\x03\xf1", "a huge claim gets 1009")
    s, _ = handshake(srv.port, new_key())
    for bad in (b'{"req":"text","text":"\\ud800"}', b'{"req":', b'[1,2]', b"{" * 40,
                b'{"req":"a","x":' + b"[" * 40 + b"]" * 40 + b"}", b'{"req":"a","x": }',
                b'{"req":"a"} x', b'{"req":"a",}', b'{"req":"a","b":[1,]}'):
        send_text(s, bad)
        expect(read_frame(s)[2] == b'{"resp":"error","content":"malformed request"}', bad)
    send_text(s, b'{"req":"a","n":-1.5e3,"t":[true,false,null,{"x":[]}],"text":"ok"}')
    expect(read_frame(s)[2] == b'{"resp":"a","content":"ok"}', "numbers and literals")
    t, head = handshake(srv.port, 'AAAA","Z":"admin"}}xxxxx')
    expect(head.startswith(b"HTTP/1.1 400"), "a key that is not base64: %r" % head)
    s.sendall(b"\x81\xfe\x10\x00abcd" + b'{"req":')      # vanishes mid-frame
    s.close()


# Where lessons 5 and 6 answer otherwise than the tutorial's server.js, as
# lessons/README.md's table gives it: (request, theirs, ours); theirs None:
# the tutorial's server crashes; ours None: the lessons' error reply.
DIFFERENCES = [
    (b'{"req":"text","text":5}', b'{"resp":"text","content":5}', b'{"resp":"text"}'),
    (b'{"req":"text","text":{"b":1,"2":[1.50,1e3]}}',
     b'{"resp":"text","content":{"2":[1.5,1000],"b":1}}', b'{"resp":"text"}'),
    (b'{"req":"text","text":"\\ud800"}', b'{"resp":"text","content":"\\ud800"}', None),
    (b'{"req":5,"text":"x"}', b'{"resp":5,"content":"x"}', None),
    (b'{"text":"x"}', b'{"content":"x"}', None),
    (b'[1]', b'{}', None),
    (b'null', None, None),
    (b'{"req":', None, None),
    (b'{"req":"a","x":tru}', None, b'{"resp":"a"}'),
]
MALFORMED = b'{"resp":"error","content":"malformed request"}'


def answer_to(port, request):
    """The reply to one request on a new WebSocket, or None if the
    connection ends instead."""
    s, head = handshake(port, new_key())
    expect(head.startswith(b"HTTP/1.1 101 "), head)
    send_text(s, request)
    try:
        op, _, payload = read_frame(s)
    except (ValueError, ConnectionError):   # the connection ended
        return None
    finally:
        s.close()
    expect(op == 1, "opcode %d" % op)
    return payload


@case("lessons 5, 6 and 7: where they differ from the tutorial's server, they answer as "
      "lessons/README.md's table says, and its table is this test's")
def test_differences():
    with open(os.path.join(ROOT, "lessons", "README.md")) as f:
        text = f.read().split("## Where lessons 5, 6 and 7 differ")[1].split("\n## ")[0]
    rows = re.findall(r"^\| `(.+?)` \| (.+?) \| (.+?) \|$", text, re.M)
    told = [(r.encode(), None if t == "crashes" else t.strip("`").encode(),
             None if o == "error" else o.strip("`").encode()) for r, t, o in rows]
    expect(told == DIFFERENCES, "lessons/README.md's table: %r" % told)
    for name in ("05-push", "06-nonblocking", "07-classroom"):
        with Lesson(build(name, ASAN, "asan")) as srv:
            for request, _, ours in DIFFERENCES:
                got = answer_to(srv.port, request)
                expect(got == (ours or MALFORMED), "%s: %s gets %r" % (name, request, got))
            srv.stop()


def crashes(port, request):
    """True if request ends the connection unanswered, and the server with it."""
    if answer_to(port, request) is not None:
        return False
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


@case("the tutorial's server.js answers lessons/README.md's requests as its table says")
def test_differences_tutorial():
    got = scenario.with_node(lambda port: [answer_to(port, r) for r, theirs, _ in DIFFERENCES
                                           if theirs is not None])
    if got == "node is not installed":
        return Skip(got + " (apt-get install nodejs)")
    if isinstance(got, str):
        return Skip(got)
    expect(got == [theirs for _, theirs, _ in DIFFERENCES if theirs is not None],
           "the tutorial's server answered %r" % got)
    for request, theirs, _ in DIFFERENCES:
        if theirs is None:
            crashed = scenario.with_node(lambda port: crashes(port, request))
            expect(crashed is True, "the tutorial's server did not crash on %s: %s"
                   % (request, crashed))


@case("lesson 5: the tutorial's scenario, byte-identical to its server's replies")
def test_push():
    with Lesson(build("05-push", ASAN, "asan")) as srv:
        tutorial_checks(srv)
        srv.stop()


def lessons_6_and_7(title):
    """Decorator: the test, given a lesson's name, runs as a case of its
    own for lesson 6 and for lesson 7, which does all that lesson 6 does."""
    def wrap(fn):
        def run():
            for name in NONBLOCKING:
                case("lesson %d: %s" % (int(name[:2]), title))(fn)(name)
        run.__name__ = fn.__name__
        return run
    return wrap


@lessons_6_and_7("the tutorial's scenario, byte-identical; hostile input under ASan")
def test_nonblocking(name):
    with Lesson(build(name, ASAN, "asan")) as srv:
        tutorial_checks(srv)
        srv.stop()


@lessons_6_and_7("a client that does not read stops no one, and is dropped once its queue is full")
def test_not_reading(name):
    with Lesson(build(name, ASAN, "asan")) as srv:
        lazy, _ = handshake(srv.port, new_key())
        lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        admin, _ = handshake(srv.port, new_key())
        request = json.dumps({"req": "text", "text": "x" * 60000}).encode()
        sent, gone, deadline = 0, False, time.time() + 60
        while sent < 1000 and time.time() < deadline and not gone:
            try:
                send_text(lazy, request)        # the server reads on: no wait
                sent += 1
            except (BrokenPipeError, ConnectionResetError):
                gone = True                     # the server dropped us
            send_text(admin, b'{"req":"get connections"}')
            expect(read_frame(admin)[0] == 1, "the admin was not answered")
            gone = gone or "Peer disconnected" in srv.output()
        expect(gone, "a client that read nothing was still there after %d requests" % sent)
        expect(sent * 60000 > 2 * 6 * 64 * 1024, "dropped after only %d requests" % sent)
        srv.stop()


@lessons_6_and_7("a close is answered, then our FIN (shutdown), even with the peer's bytes unread")
def test_close(name):
    with Lesson(build(name, ASAN, "asan")) as srv:
        for tail in (b"", b"unread " * 30000):
            s, _ = handshake(srv.port, new_key())
            send_text(s, b"\x03\xe8", opcode=8)
            s.sendall(tail)                     # a plain close() would answer with a reset
            expect(read_frame(s) == (8, 7, b"\x03\xe8"), "the close frame, with its code")
            expect(s.recv(1) == b"", "no FIN after the close frame")
            s.sendall(b"still here")            # the server reads on until our FIN
            s.close()
        s, _ = handshake(srv.port, new_key())
        s.sendall(b"\x81\x05Hello")                         # not masked
        expect(read_frame(s)[2] == b"\x03\xea", "an unmasked frame gets 1002")
        expect(s.recv(1) == b"", "no FIN after 1002")
        t = tcp(srv.port)
        t.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        expect(recv_all(t).startswith(b"HTTP/1.1 400"), "no key: 400, then FIN")
        srv.stop()


def tcp_state(s):
    """The kernel's state of our end of s (Linux's TCP_INFO): 8 after the
    peer's FIN, 7 once it is all over."""
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def ends_cleanly(s):
    """Read to the server's FIN, then send more and close our side, as a
    client that has not read its answer yet might. Returns what came before
    the FIN; raises if the server reset the connection instead (a close()
    with our bytes unread), which can destroy an answer on its way."""
    try:
        got = recv_all(s)
        s.sendall(b"still here")            # the server must read on until our FIN
        s.shutdown(socket.SHUT_WR)
        deadline = time.time() + TIMEOUT
        while tcp_state(s) != 7 and time.time() < deadline:
            time.sleep(0.01)
        error = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    except OSError as e:
        error = e.errno
    expect(tcp_state(s) == 7, "the connection did not end")
    expect(error == 0, "a reset (%s), not a clean FIN" % os.strerror(error))
    return got


@lessons_6_and_7("a 431 or a 400 is whole, then a clean FIN, however much the client sends on")
def test_refused(name):
    with Lesson(build(name, ASAN, "asan")) as srv:
        for head, answer in ((b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 9000,
                              b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n"),
                             (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                              b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")):
            t = tcp(srv.port)
            t.sendall(head + b"more " * 20000)      # more than the head's buffer takes
            got = ends_cleanly(t)
            expect(got == answer, "%r, expected %r" % (got, answer))
            t.close()
        srv.stop()


def short_times(lesson, seconds):
    """The lesson (6 or 7) built from a copy of its source whose deadlines
    are all SECONDS long, so that a test can watch them pass."""
    with open(source(lesson)) as f:
        text = f.read()
    for name in ("HEAD_TIME", "IDLE_TIME", "CLOSE_TIME"):
        text, n = re.subn(r"(#define %s +)\d+" % name, r"\g<1>%d" % seconds, text)
        expect(n == 1, "%s has no #define %s" % (lesson, name))
    text = text.replace('"../sha1.h"', '"%s"' % os.path.join(ROOT, "sha1.h"))
    os.makedirs(BIN, exist_ok=True)
    copy = os.path.join(BIN, "%s-short.c" % lesson)
    with open(copy, "w") as f:
        f.write(text)
    out = os.path.join(BIN, "%s-short" % lesson)
    done = subprocess.run(["cc"] + ASAN + ["-o", out, copy, os.path.join(ROOT, "sha1.c")],
                          capture_output=True, text=True)
    expect(done.returncode == 0, done.stderr[-600:])
    return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@lessons_6_and_7("deadlines: a silent head is dropped, a silent client pinged then dropped, "
                 "select() sleeps between")
def test_deadlines(name):
    with Lesson(short_times(name, 2)) as srv:
        quiet = tcp(srv.port)
        answers, _ = handshake(srv.port, new_key())
        silent_ws, _ = handshake(srv.port, new_key())
        start, cpu = time.time(), cpu_seconds(srv.proc.pid)
        pings = []

        def answer_pings():                     # one that answers stays
            answers.settimeout(8)
            while len(pings) < 3:
                op, _, payload = read_frame(answers)
                if op != 9:
                    return
                pings.append(time.time() - start)
                send_text(answers, payload, opcode=10)
        helper = threading.Thread(target=answer_pings)
        helper.start()
        quiet.settimeout(8)
        expect(quiet.recv(1) == b"", "a silent connection was not closed")
        expect(1 <= time.time() - start <= 6, "closed after %.1f s" % (time.time() - start))
        silent_ws.settimeout(8)
        expect(read_frame(silent_ws)[0] == 9, "a silent client got no ping")
        expect(silent_ws.recv(1) == b"", "a client that did not answer a ping was not dropped")
        helper.join(30)
        expect(len(pings) == 3, "the client that answers got pings at %s" % pings)
        send_text(answers, b'{"req":"still","text":"here"}')
        expect(read_frame(answers)[2] == b'{"resp":"still","content":"here"}', "it was dropped")
        used = cpu_seconds(srv.proc.pid) - cpu
        expect(used < 0.5, "%.2f s of CPU in %.0f s of waiting" % (used, time.time() - start))
        srv.stop()


def server_rx_queues(port):
    """The bytes the kernel holds, unread, for each server socket of
    127.0.0.1:port (Linux's /proc/net/tcp): all 0 once the server has
    read everything its clients sent."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return [int(row[4].split(":")[1], 16) for row in rows
            if row[1] == "0100007F:%04X" % port and row[3] == "01"]


def read_all_sent(srv, n):
    """Wait until the server's n sockets hold nothing unread."""
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        queues = server_rx_queues(srv.port)
        if len(queues) >= n and not any(queues):
            return
        time.sleep(0.05)
    raise AssertionError("the server did not read what was sent: %s" % server_rx_queues(srv.port))


def vm_data_kb(pid):
    """The process's private data, heap included (VmData), in kB."""
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmData:\s+(\d+)", f.read(), re.M).group(1))


def wake_ups(pid):
    """How often the process has gone to sleep and woken since it began."""
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", f.read(), re.M).group(1))


def roles(admin):
    """The keys of the admin's "get connections" list, in its order."""
    send_text(admin, b'{"req":"get connections"}')
    op, _, payload = read_frame(admin)
    expect(op == 1, "opcode %d" % op)
    return list(json.loads(payload)["content"])


def echoes(s, text):
    """True if s gets its request echoed."""
    send_text(s, json.dumps({"req": "text", "text": text}).encode())
    return read_frame(s)[2] == json.dumps({"resp": "text", "content": text},
                                          separators=(",", ":")).encode()


@case("lesson 7: clients[fd], with select()'s sets kept between passes: 60 WebSockets come and "
      "go in any order, each served, the admin's list right; the 101st socket is closed at "
      "once, a place freed is taken again; idle, no CPU")
def test_table():
    rng = random.Random(7)
    with Lesson(build("07-classroom", ASAN, "asan")) as srv:
        admin_key = new_key()
        admin, _ = handshake(srv.port, admin_key)
        here = {}                               # key -> socket, in arrival order
        for _ in range(60):
            key = new_key()
            here[key] = handshake(srv.port, key)[0]
        expect(roles(admin) == [admin_key] + list(here), "the list of 61")
        for i, key in enumerate(rng.sample(list(here), 30)):
            s = here.pop(key)
            if i % 2:                           # half say goodbye, half vanish
                send_text(s, b"\x03\xe8", opcode=8)
                expect(read_frame(s)[2] == b"\x03\xe8", "a close was not answered")
            s.close()
        deadline = time.time() + TIMEOUT
        while roles(admin) != [admin_key] + list(here):
            expect(time.time() < deadline, "the list is not the 31 left: %d keys" % len(roles(admin)))
            time.sleep(0.05)
        for _ in range(30):                     # on the fds the others left
            key = new_key()
            here[key] = handshake(srv.port, key)[0]
        for i, (key, s) in enumerate(rng.sample(list(here.items()), len(here))):
            expect(echoes(s, "client %d" % i), "a client was not answered")
        expect(roles(admin) == [admin_key] + list(here), "the list of 61, in arrival order")
        waiting = [tcp(srv.port) for _ in range(100 - 61)]     # MAX_CLIENTS sockets in all
        extra = tcp(srv.port)
        extra.settimeout(TIMEOUT)
        try:
            came = extra.recv(1)
        except ConnectionResetError:
            came = b""
        expect(came == b"", "the 101st socket was not closed: %r" % came)
        expect(silent(waiting[0], 0.3), "a socket within MAX_CLIENTS was closed")
        waiting.pop().close()
        deadline = time.time() + TIMEOUT
        while True:                             # the place is free once the close is seen
            s, head = tcp(srv.port), b""
            s.sendall(upgrade_request(new_key()))
            with contextlib.suppress(OSError):
                head = s.recv(12)
            if head == b"HTTP/1.1 101":
                break
            expect(time.time() < deadline, "a freed place was not taken again")
            time.sleep(0.05)
        cpu = cpu_seconds(srv.proc.pid)
        time.sleep(1.5)
        used = cpu_seconds(srv.proc.pid) - cpu
        expect(used < 0.3, "%.2f s of CPU in 1.5 s with nothing to do: is a socket left in "
               "the write set with nothing to write?" % used)
        srv.stop()


@case("lesson 7: buffers grow with the bytes that come: 50 clients claiming 60,000 bytes and "
      "sending 100 cost the server under 1 MB; a message of MAX_MESSAGE in small pieces comes "
      "back whole, one byte more gets 1009")
def test_growing():
    claim = b"\x81\xfe" + struct.pack("!H", 60000) + b"\0\0\0\0"    # mask 0: bytes as they are
    with Lesson(build("07-classroom", [], "plain")) as srv:     # its heap, not ASan's
        clients = [handshake(srv.port, new_key())[0] for _ in range(50)]
        read_all_sent(srv, 50)
        before = vm_data_kb(srv.proc.pid)
        for s in clients:
            s.sendall(claim + b'{"req":"text","text":"' + b"x" * 78)
        read_all_sent(srv, 50)
        grown = vm_data_kb(srv.proc.pid) - before
        expect(grown < 1024, "the server's data grew by %d kB: 50 claims of 60,000 bytes "
               "with 100 sent" % grown)
        for s in clients[:5]:                   # the rest of the message, and its reply
            s.sendall(b"x" * (60000 - 100 - 2) + b'"}')
            expect(read_frame(s)[2] == b'{"resp":"text","content":"' + b"x" * 59976 + b'"}',
                   "the whole message did not come back")
        srv.stop()
    with Lesson(build("07-classroom", ASAN, "asan")) as srv:
        s, _ = handshake(srv.port, new_key())
        text = b"y" * (64 * 1024 - 24)
        request = b'{"req":"text","text":"' + text + b'"}'
        expect(len(request) == 64 * 1024, len(request))
        key = os.urandom(4)
        data = b"\x81\xff" + struct.pack("!Q", len(request)) + key + mask_bytes(request, key)
        rng, at = random.Random(64), 0
        while at < len(data):                   # many reads, the buffer growing
            n = rng.randint(1, 4000)
            s.sendall(data[at:at + n])
            at += n
            time.sleep(0.001)
        expect(read_frame(s)[2] == b'{"resp":"text","content":"' + text + b'"}', "64 KiB")
        send_text(s, request + b" ")
        expect(read_frame(s)[:3:2] == (8, b"\x03\xf1"), "64 KiB and 1 byte: not 1009")
        srv.stop()


@case("lesson 7: messages in several frames (§5.4): pieces gathered, pings and a close between "
      "them; 1002 for frames out of order, 1003 for binary, 1009 for pieces too long together")
def test_fragments():
    frame = Client.frame
    with Lesson(build("07-classroom", ASAN, "asan")) as srv:
        s, _ = handshake(srv.port, new_key())
        s.sendall(frame(1, b'{"req":"te', fin=False))
        expect(silent(s, 0.3), "something came after a frame without FIN")
        s.sendall(frame(9, b"are you there"))
        expect(read_frame(s) == (10, 7, b"are you there"), "a ping between the pieces")
        s.sendall(frame(0, b'xt","te', fin=False) + frame(10, b"pong") +
                  frame(0, b'xt":"whole"}'))
        expect(read_frame(s)[2] == b'{"resp":"text","content":"whole"}', "three pieces")
        pieces = [b'{"req":"text","text":"'] + [bytes([65 + i]) * 16000 for i in range(4)]
        pieces[-1] = pieces[-1][:64 * 1024 - 2 - sum(map(len, pieces[:-1]))] + b'"}'
        for i, piece in enumerate(pieces):
            s.sendall(frame(1 if i == 0 else 0, piece, fin=i == len(pieces) - 1))
        got = read_frame(s)[2]
        whole = b"".join(pieces)
        expect(got == b'{"resp":"text","content":"' + whole[22:-2] + b'"}',
               "%d bytes in five pieces: %d back" % (len(whole), len(got)))
        s.sendall(frame(1, b'{"req":"a",', fin=False) + frame(0, b"", fin=False) +
                  frame(0, b'"text":"b"}', fin=False) + frame(0, b""))
        expect(read_frame(s)[2] == b'{"resp":"a","content":"b"}', "empty pieces")
        send_text(s, b'{"req":"again","text":"afresh"}')
        expect(read_frame(s)[2] == b'{"resp":"again","content":"afresh"}', "the next message")
        s.sendall(frame(1, b'{"req":', fin=False) + frame(8, b"\x03\xe8"))
        expect(read_frame(s) == (8, 7, b"\x03\xe8"), "a close between pieces")
        expect(recv_all(s) == b"", "no FIN after the close")
        s.close()
        for frames, why, code in (
                ([frame(0, b"stray")], "a continuation with no message begun", 1002),
                ([frame(1, b"a", fin=False), frame(1, b"b")], "a new text frame", 1002),
                ([frame(1, b"a", fin=False), frame(2, b"b")], "a binary frame inside", 1002),
                ([frame(9, b"ping", fin=False)], "a ping without FIN", 1002),
                ([frame(2, b"\x00\x01")], "a binary message", 1003),
                ([frame(1, b"x" * 40000, fin=False), frame(0, b"y" * 40000)[:14]],
                 "pieces over MAX_MESSAGE together (the last one's header says so)", 1009)):
            s, _ = handshake(srv.port, new_key())
            s.sendall(b"".join(frames))
            op, _, payload = read_frame(s)
            expect((op, payload[:2]) == (8, struct.pack("!H", code)), "%s: %r, not close %d"
                   % (why, payload, code))
            s.close()
        srv.stop()


@case("lesson 7: one wake-up time: deadlines to the millisecond (lessons/check.py 06 passes "
      "it), and with no deadline at all, select() sleeps until a socket is ready")
def test_timers():
    status, output = check_exercise("06", source("07-classroom"))
    expect(status == 0, "lessons/check.py 06 lessons/07-classroom.c: %s" % not_yet(output))
    with Lesson(short_times("07-classroom", 2)) as srv:
        quiet = tcp(srv.port)
        quiet.settimeout(8)
        expect(quiet.recv(1) == b"", "a silent connection was not closed")
        quiet.close()
        deadline = time.time() + TIMEOUT
        while server_rx_queues(srv.port) and time.time() < deadline:
            time.sleep(0.05)                    # the server's end is gone too
        time.sleep(0.2)
        before = wake_ups(srv.proc.pid)
        time.sleep(5)
        woke = wake_ups(srv.proc.pid) - before
        expect(woke <= 1, "with no client, it woke up %d times in 5 s: with no deadline, "
               "select() needs no timeout" % woke)
        s, _ = handshake(srv.port, new_key())
        expect(echoes(s, "awake"), "a client after the quiet was not answered")
        srv.stop()


def carried_over(earlier, later):
    """diff -u EARLIER LATER reads as the later lesson: at most 20% of the
    earlier one's lines changed or removed."""
    with open(source(earlier)) as f:
        before = f.read().splitlines()
    with open(source(later)) as f:
        after = f.read().splitlines()
    match = difflib.SequenceMatcher(None, before, after, autojunk=False)
    kept = sum(block.size for block in match.get_matching_blocks())
    gone = len(before) - kept
    expect(gone <= 0.2 * len(before), "%d of %s's %d lines changed or removed"
           % (gone, earlier, len(before)))
    expect(kept >= 0.8 * len(before), "only %d lines carried over" % kept)


@case("lesson 6: diff -u 05 06 reads as the lesson: at most 20% of 05's lines changed or removed")
def test_carried_over():
    carried_over("05-push", "06-nonblocking")


@case("lesson 7: diff -u 06 07 reads as the lesson: at most 20% of 06's lines changed or removed")
def test_carried_over_07():
    carried_over("06-nonblocking", "07-classroom")


# Each exercise's step at which lessons/check.py must stop the lesson as
# shipped: the exercise itself, not a step the lesson already passes.
EXERCISE_STEPS = {"01": "./echo 0", "02": "a 17th client waits", "03": "version 8 gets 426",
                  "04": "a message in three frames", "05": "409 Conflict",
                  "06": "dropped 2 s after it came",
                  "07": "not UTF-8 (a lone continuation byte"}


def check_exercise(nn, path):
    """Run lessons/check.py NN PATH: (exit status, its output)."""
    done = subprocess.run([sys.executable, os.path.join(ROOT, "lessons", "check.py"), nn, path],
                          capture_output=True, text=True, timeout=180)
    return done.returncode, done.stdout + done.stderr


def not_yet(output):
    """The step lessons/check.py stopped at, and why."""
    return output.split("NOT YET  ")[1].split("\nexercise ")[0] if "NOT YET  " in output else ""


def exercise_case(name):
    nn = name[:2]

    @case("exercise %s: lessons/check.py fails the lesson as shipped at its exercise, and "
          "passes lessons/answers/%s.c (which builds with -std=c99 -Wall -Wextra -Werror)"
          % (nn, name))
    def run():
        answer = os.path.join(ROOT, "lessons", "answers", name + ".c")
        cmd = one_command(name)
        with open(source(name)) as f:
            expect(cmd and "Exercise:" in f.read(), "%s has no Exercise:" % name)
        os.makedirs(BIN, exist_ok=True)
        with open(answer) as f:
            told = re.search(r"Build: (cc -o \S+ lessons/answers/\S+\.c(?: sha1\.c)?)", f.read())
        expect(told and told.group(1).split()[4:] == cmd[4:],
               "answers/%s.c: no \"Build:\" line like the lesson's" % name)
        done = subprocess.run(["cc"] + STRICT + ["-o", os.path.join(BIN, name + "-answer"),
                               answer] + cmd[4:], cwd=ROOT, capture_output=True, text=True)
        expect(done.returncode == 0, "answers/%s.c: %s" % (name, done.stderr[-600:]))
        status, output = check_exercise(nn, source(name))
        expect(status == 1 and EXERCISE_STEPS[nn] in not_yet(output),
               "on the lesson as shipped: status %d, %s" % (status, output[-900:]))
        status, output = check_exercise(nn, answer)
        expect(status == 0 and "exercise %s: done" % nn in output,
               "on the answer: status %d, %s" % (status, output[-900:]))
    run()


def near_miss(nn, path, edit):
    """A copy of lessons/PATH with edit (old, new) made, in tests/out."""
    with open(os.path.join(ROOT, "lessons", path)) as f:
        text = f.read()
    expect(edit[0] in text, "%s no longer has %r" % (path, edit[0]))
    os.makedirs(BIN, exist_ok=True)
    copy = os.path.join(BIN, "near-miss-%s.c" % nn)
    text = text.replace('"../../sha1.h"', '"%s"' % os.path.join(ROOT, "sha1.h"))
    with open(copy, "w") as f:
        f.write(text.replace(edit[0], edit[1]))
    return copy


@case("exercises: lessons/check.py stops answers that are nearly right where they go wrong "
      "(port 0 printed as 0; a 17th client that waits while select() spins; a UTF-8 check "
      "that starts afresh at each frame)")
def test_near_misses():
    for nn, path, edit, why in (
            ("01", "01-echo.c", ("if (port < 1 ||", "if (port < 0 ||"), "it printed port 0"),
            ("02", "answers/02-select.c", ("        if (free_place != -1)\n            FD_SET(",
                                           "        FD_SET("), "s of CPU in"),
            ("07", "answers/07-classroom.c", ("    if (opcode == 1)\n        c->need = 0;",
                                              "    if (opcode <= 1)\n        c->need = 0;"),
             "a character split between two frames")):
        status, output = check_exercise(nn, near_miss(nn, path, edit))
        expect(status == 1 and why in not_yet(output), "%s: status %d, %s"
               % (path, status, output[-900:]))


def test_exercises():
    for name, _ in LESSONS:
        exercise_case(name)


@case("TOUR.md, lessons/README.md and each lesson's \"Left out\" name only wspush.c functions that exist")
def test_tour():
    with open(os.path.join(ROOT, "TOUR.md")) as f:
        tour = f.read()
    with open(os.path.join(ROOT, "wspush.c")) as f:
        code = f.read()
    with open(os.path.join(ROOT, "lessons", "README.md")) as f:
        pointers = f.read().split("## What wspush.c adds")[1]
    for name, _ in LESSONS:
        with open(source(name)) as f:
            pointers += f.read().split("Left out:")[1].split("*/")[0]
    named = set(re.findall(r"`([a-z_0-9]+)\(\)`", tour))
    expect(len(named) >= 30, "TOUR.md names only %d functions" % len(named))
    named |= set(re.findall(r"([a-z_0-9]+)\(\)", pointers)) - {"read", "write", "select", "close"}
    missing = [n for n in sorted(named) if not re.search(r"^\w[\w *]* \**%s\(" % n, code, re.M)]
    expect(not missing, "functions wspush.c lacks: %s" % ", ".join(missing))


NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
           "eight": 8, "nine": 9, "ten": 10}


def first_reading():
    """wspush.c's sections as (number, first reading?, first line, last line),
    its functions by the section they are in, and the helpers: functions of
    other sections that the first reading's functions call."""
    with open(os.path.join(ROOT, "wspush.c")) as f:
        lines = f.read().split("\n")
    starts = [(i, int(m.group(1)), "[first reading]" in line) for i, line in enumerate(lines)
              for m in [re.match(r"/\* =+ (\d+)\. ", line)] if m]
    sections = [(n, first, i, (starts[k + 1][0] if k + 1 < len(starts) else len(lines)))
                for k, (i, n, first) in enumerate(starts)]

    def section_of(line):
        return [sec for sec in sections if sec[2] <= line < sec[3]][0]
    defs = {}
    for i, line in enumerate(lines):
        m = re.match(r"^(?:static )?[a-z][\w ]*?[ *]+(\w+)\([^;]*$", line)
        if m:
            defs[m.group(1)] = i
    helpers = set()
    for name, i in defs.items():
        if not section_of(i)[1]:
            continue
        end = next(j for j in range(i, len(lines)) if lines[j].startswith("}"))
        for called in re.findall(r"\b(\w+)\(", "\n".join(lines[i + 1:end])):
            if called in defs and not section_of(defs[called])[1]:
                helpers.add(called)
    text = "\n".join(line for n, first, a, b in sections if first for line in lines[a:b])
    return sections, len(lines), helpers, text


def about(told, actual, what):
    """A number the text gives as "about N" must be within 60 of the truth."""
    n = int(told.replace(",", ""))
    expect(abs(n - actual) <= 60, "%s says about %s; it is %d" % (what, told, actual))


@case("first reading: README, TOUR.md and wspush.c give its true size; TOUR.md lists every "
      "helper it calls; socket(), bind(), listen(), accept() and select() are in it")
def test_first_reading():
    sections, total, helpers, text = first_reading()
    first = [sec for sec in sections if sec[1]]
    first_lines = sum(b - a for _, _, a, b in first)
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(ROOT, "TOUR.md")) as f:
        tour = f.read()
    with open(os.path.join(ROOT, "wspush.c")) as f:
        head = f.read(3000)
    told = [("README.md", re.search(r"`wspush.c` is about ([\d,]+) lines in (\d+) numbered "
                                    r"sections. (\w+) are marked\s+\[first reading\] \(about "
                                    r"([\d,]+) lines", readme)),
            ("TOUR.md", re.search(r"wspush.c is one file of about ([\d,]+) lines in (\d+) "
                                  r"numbered sections. (\w+) of\s+them are marked \*\*\[first "
                                  r"reading\]\*\*: together about ([\d,]+) lines", tour)),
            ("wspush.c", re.search(r"Reading it: about ([\d,]+) lines. The ()(\w+) sections "
                                   r"marked \[first reading\],\s+\* about ([\d,]+) lines", head))]
    for where, m in told:
        expect(m, "%s no longer says how long wspush.c and its first reading are" % where)
        about(m.group(1), total, where + " (all of wspush.c)")
        expect(m.group(2) in ("", str(len(sections))), "%s: %s sections, not %d"
               % (where, m.group(2), len(sections)))
        expect(NUMBERS.get(m.group(3).lower()) == len(first), "%s: %s first-reading sections, "
               "not %d" % (where, m.group(3), len(first)))
        about(m.group(4), first_lines, where + " (the first reading)")
    m = re.search(r"## The first reading \(about ([\d,]+) lines", tour)
    expect(m, "TOUR.md: no heading for the first reading")
    about(m.group(1), first_lines, "TOUR.md's heading")
    listed = tour.split("## Helpers the first reading meets")[1].split("\n## ")[0]
    missing = sorted(h for h in helpers if "`%s()`" % h not in listed)
    expect(not missing, "TOUR.md does not list these helpers of the first reading: %s"
           % ", ".join(missing))
    for call in ("socket(", "bind(", "listen(", "accept(", "select("):
        expect(call in text, "%s is not in the first reading" % call)


@case("wspush.c: no function is over 60 lines")
def test_function_length():
    with open(os.path.join(ROOT, "wspush.c")) as f:
        lines = f.read().split("\n")
    long = []
    for i, line in enumerate(lines):
        m = re.match(r"^(?:static )?[a-z][\w ]*?[ *]+(\w+)\([^;]*$", line)
        if m:
            end = next(j for j in range(i, len(lines)) if lines[j].startswith("}"))
            if end - i + 1 > 60:
                long.append("%s (%d lines)" % (m.group(1), end - i + 1))
    expect(not long, "over 60 lines: %s" % ", ".join(long))


@case("limits: every constant of wspush.c's section 1 is in README's table, and wspush -h "
      "prints its value")
def test_limits_documented():
    """Each constant is given a value of its own (7001, 7002 ...) in a copy
    of wspush.c, and the copy's -h must print every one of them: a limit
    left out of --help, or printed from another constant, shows."""
    with open(os.path.join(ROOT, "wspush.c")) as f:
        code = f.read()
    section = code.split("1. Limits and options")[1].split("#if ")[0]
    names = re.findall(r"^#define (\w+) +([^/\n]*?)\s*(?:/\*|$)", section, re.M)
    expect(len(names) >= 30, "section 1 has only %d constants" % len(names))
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    table = readme.split("## Options and limits")[1].split("\n`select()`")[0]
    derived = {n for n, v in names if re.search(r"[A-Z]", v)}  # LOOKUP_SLOTS, from LOOKUP_BITS
    missing = [n for n, _ in names if n not in derived and "`%s`" % n not in table]
    expect(not missing, "README's limits table lacks %s" % ", ".join(missing))
    copy, wanted = code.replace("#error", "#warning"), {}
    for i, (n, v) in enumerate(names):
        value = 12 if n == "LOOKUP_BITS" else 7001 + i
        if n not in derived:
            copy = re.sub(r"^#define %s +[^/\n]*?(\s*(?:/\*|$))" % n,
                          lambda m: "#define %s %d%s" % (n, value, m.group(1)), copy, 1, re.M)
        wanted[n] = 4096 if n == "LOOKUP_SLOTS" else value
    wanted.pop("LOOKUP_BITS")               # -h gives the slots it makes
    os.makedirs(OUT, exist_ok=True)
    src, exe = os.path.join(OUT, "limits-copy.c"), os.path.join(OUT, "limits-copy")
    with open(src, "w") as f:
        f.write(copy)
    done = subprocess.run(["cc", "-w", "-I", ROOT, "-o", exe, src, os.path.join(ROOT, "sha1.c")],
                          capture_output=True, text=True)
    expect(done.returncode == 0, "the copy does not build: %s" % done.stderr[-400:])
    if done.returncode == 0:
        shown = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=10).stdout
        left = [n for n, v in wanted.items() if not re.search(r"\b%d\b" % v, shown)]
        expect(not left, "wspush -h does not print %s" % ", ".join(left))
        # The synopsis: the same flags in -h, README and the man page.
        flags = set(re.findall(r"\[(-\w)", shown.split("\nA WebSocket")[0]))
        with open(os.path.join(ROOT, "wspush.1")) as f:
            man = {"-" + letter for word, arg in re.findall(r"^\.O[po] Fl (\w+)( Ar)?", f.read(), re.M)
                   for letter in (word if arg == "" else word[0])}
        synopsis = set(re.findall(r"\[(-\w)", table.split("| Flag |")[0]))
        expect(len(flags) >= 15 and synopsis == flags == man,
               "synopses differ: -h %s, README %s, wspush.1 %s"
               % ("".join(sorted(flags)), "".join(sorted(synopsis)), "".join(sorted(man))))


def main():
    only = sys.argv[1:]
    for t in (test_builds, test_budgets, test_echo, test_select, test_handshake, test_frames,
              test_push, test_nonblocking, test_differences, test_differences_tutorial,
              test_not_reading, test_close, test_refused, test_deadlines, test_table,
              test_growing, test_fragments, test_timers, test_carried_over, test_carried_over_07,
              test_exercises, test_near_misses, test_tour, test_first_reading,
              test_function_length, test_limits_documented):
        if not only or t.__name__ in only:
            t()
    finish()


if __name__ == "__main__":
    main()
