#!/usr/bin/env python3
"""tests/lessons.py -- the five lessons: each builds with the one command its
header gives and with -std=c99 -Wall -Wextra -Werror, keeps to its line
budget, does what it says, and stays memory-safe (AddressSanitizer) under
hostile input. Also: every wspush.c function TOUR.md names exists."""
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import time

from wsclient import (OUT, ROOT, Client, accept_for, case, expect, finish, mask_bytes, new_key,
                      report, upgrade_request, TIMEOUT)
import scenario

LESSONS = [("01-echo", 80), ("02-select", 150), ("03-handshake", 250), ("04-frames", 350),
           ("05-push", 600)]
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


@case("lessons: each keeps to its line budget (80, 150, 250, 350, 500)")
def test_budgets():
    for name, budget in LESSONS:
        with open(source(name)) as f:
            n = len(f.read().splitlines())
        expect(n <= budget, "%s has %d lines; its budget is %d" % (name, n, budget))


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


@case("lesson 5: the tutorial's scenario, byte-identical to its server's replies")
def test_push():
    with open(scenario.TRANSCRIPT) as f:
        theirs = json.load(f)["replies"]
    with Lesson(build("05-push", ASAN, "asan")) as srv:
        ours = scenario.article_scenario(srv.port)
        expect(ours == theirs, scenario.first_difference(ours, theirs))
        s, _ = handshake(srv.port, new_key())
        s.sendall(b"\x81\xff\x7f\xff\xff\xff\xff\xff\xff\xffabcd")      # 2^63 - 1 bytes
        expect(read_frame(s)[2] == b"\x03\xf1", "a huge claim gets 1009")
        s, _ = handshake(srv.port, new_key())
        for bad in (b'{"req":"text","text":"\\ud800"}', b'{"req":', b'[1,2]', b"{" * 40,
                    b'{"req":"a","x":' + b"[" * 40 + b"]" * 40 + b"}"):
            send_text(s, bad)
            expect(read_frame(s)[2] == b'{"resp":"error","content":"malformed request"}', bad)
        s.sendall(b"\x81\xfe\x10\x00abcd" + b'{"req":')      # vanishes mid-frame
        s.close()
        srv.stop()


@case("TOUR.md: every wspush.c function it names exists")
def test_tour():
    with open(os.path.join(ROOT, "TOUR.md")) as f:
        tour = f.read()
    with open(os.path.join(ROOT, "wspush.c")) as f:
        code = f.read()
    named = set(re.findall(r"`([a-z_0-9]+)\(\)`", tour))
    expect(len(named) >= 30, "TOUR.md names only %d functions" % len(named))
    missing = [n for n in sorted(named) if not re.search(r"^\w[\w *]* \**%s\(" % n, code, re.M)]
    expect(not missing, "TOUR.md names functions wspush.c lacks: %s" % ", ".join(missing))


def main():
    only = sys.argv[1:]
    for t in (test_builds, test_budgets, test_echo, test_select, test_handshake, test_frames,
              test_push, test_tour):
        if not only or t.__name__ in only:
            t()
    finish()


if __name__ == "__main__":
    main()
