#!/usr/bin/env python3
"""lessons/check.py -- is my answer to a lesson's exercise right?

    cp lessons/02-select.c lessons/my-02.c      # then do the exercise in it
    python3 lessons/check.py 02 lessons/my-02.c

Builds FILE with lesson NN's own cc command (its header's "Build:" line,
adding AddressSanitizer, so that a memory error shows), runs it on a free
port of 127.0.0.1, and tries over real sockets what the "Exercise:" of
lesson NN's header asks, one step at a time: "ok" for each step that
passes, then "NOT YET" with what is missing at the first that does not.
The exit status is 0 when every step passed. The lesson as shipped does
not pass (that is the exercise); lessons/answers/ holds the teacher's.
"""
import contextlib
import glob
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from wsclient import (OUT, TIMEOUT, Client, accept_for, expect, new_key,  # noqa: E402
                      upgrade_request)
from lessons import (Lesson, cpu_seconds, handshake, one_command, read_frame,  # noqa: E402
                     recv_exactly, send_text, tcp, tutorial_checks)

SANITIZE = ["-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
frame = Client.frame        # frame(opcode, payload, fin=True): a masked client frame


class NotYet(Exception):
    pass


passed = []                 # the steps that passed
servers = []                # the servers started, stopped at the end


def serve(binary):
    """Start the student's server on a free port (see tests/lessons.py)."""
    srv = Lesson(binary)
    servers.append(srv)
    return srv


@contextlib.contextmanager
def step(what):
    """One step of a check: "ok", or NotYet saying what is missing."""
    try:
        yield
    except NotYet:
        raise
    except Exception as e:          # the step's own failure, told to the student
        why = str(e) or type(e).__name__
        if isinstance(e, (OSError, ValueError)):
            why = "%s (%s)" % (why, type(e).__name__)
        raise NotYet("%s:\n         %s" % (what, why))
    passed.append(what)
    print("ok       " + what, flush=True)


def build(nn, lesson, copy, defines=None):
    """Build copy as lesson's header says, into tests/out/check/; with
    defines ({"HEAD_TIME": 2}), from a copy of it with those values."""
    cmd = one_command(lesson)
    folder = os.path.join(OUT, "check")
    os.makedirs(folder, exist_ok=True)
    name = os.path.splitext(os.path.basename(copy))[0]
    out = os.path.join(folder, "%s-%s" % (nn, name))
    source = copy
    if defines:
        with open(copy) as f:
            text = f.read()
        for define, value in defines.items():
            text = re.sub(r"^(#define %s +)\d+" % define, r"\g<1>%d" % value, text, flags=re.M)
        source = out + "-copy.c"
        with open(source, "w") as f:
            f.write(text)
    # Its includes are found beside it, and "../sha1.h" from lessons/ too.
    places = ["-iquote", os.path.dirname(copy), "-I", os.path.join(ROOT, "lessons")]
    rest = places + ["-o", out, source] + [os.path.join(ROOT, f) for f in cmd[4:]]
    where = os.path.relpath(copy, ROOT)
    shown = " ".join(cmd[:3] + [copy if where.startswith("..") else where] + cmd[4:])
    done = subprocess.run(["cc"] + SANITIZE + rest, cwd=ROOT, capture_output=True, text=True)
    how = "with AddressSanitizer"
    if done.returncode != 0:            # no sanitizer here? try without
        plain = subprocess.run(["cc"] + rest, cwd=ROOT, capture_output=True, text=True)
        if plain.returncode != 0:
            print("build:   %s\n%s" % (shown, plain.stderr.strip()))
            raise NotYet("it builds with the lesson's command: see the compiler's words above")
        done, how = plain, "WITHOUT AddressSanitizer: cc could not build with it here"
    print("build:   %s   (%s)" % (shown, how))
    if done.stderr.strip():
        print(done.stderr.strip())
    return out


def stop(srv):
    with step("the server is still running, and made no memory error"):
        srv.stop()


def define_value(path, name):
    """The value of #define NAME in a C file: digits, * + ( ) only."""
    with open(path) as f:
        m = re.search(r"^#define %s\s+([0-9*+() ]+?)\s*(?:/\*.*)?$" % name, f.read(), re.M)
    expect(m, "no #define %s" % name)
    return eval(m.group(1), {"__builtins__": {}})


def what_came(s, seconds):
    """What s receives within seconds: bytes, b"" for the server's FIN,
    or None for nothing at all."""
    s.settimeout(seconds)
    try:
        return s.recv(200)
    except socket.timeout:
        return None
    except ConnectionResetError:
        return b""
    finally:
        s.settimeout(TIMEOUT)


def closed_with(s):
    """The close code of the server's close frame on s."""
    op, _, payload = read_frame(s)
    expect(op == 8, "opcode %d (%r), not a close frame" % (op, payload[:60]))
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


def http_answer(port, request):
    """Send a request head; returns (status line, headers with lowercase
    names, whether the server then ended the connection)."""
    s = tcp(port)
    s.sendall(request)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        expect(chunk, "the connection ended with no answer (%r)" % head)
        head += chunk
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    ended = lines[0].split(" ")[1] != "101" and what_came(s, TIMEOUT) == b""
    s.close()
    return lines[0], headers, ended


# ---- 01: ./echo 0

def exercise_01(binary, copy):
    srv = serve(binary)
    with step("./echo PORT still echoes on that port"):
        s = tcp(srv.port)
        s.sendall(b"hello\n")
        expect(recv_exactly(s, 6) == b"hello\n", "no echo")
        s.close()
    stop(srv)
    log = binary + "-0.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([binary, "0"], stdout=out, stderr=subprocess.STDOUT)
    try:
        with step("./echo 0 starts and prints the port the kernel chose"):
            port = wait_for_port(proc, log)
        with step("a client on that port is echoed"):
            s = tcp(port)
            s.sendall(b"chosen\n")
            expect(recv_exactly(s, 7) == b"chosen\n", "no echo")
            s.close()
    finally:
        proc.kill()
        proc.wait()
    with open(log, "w") as out:
        proc = subprocess.Popen([binary, "abc"], stdout=out, stderr=subprocess.STDOUT)
    with step("./echo abc, not a port, is still refused"):
        deadline = time.time() + TIMEOUT
        while proc.poll() is None and time.time() < deadline and "listening" not in read(log):
            time.sleep(0.02)
        running = proc.poll() is None
        proc.kill()
        proc.wait()
        expect(not running, "it started: %r. strtol() reads \"abc\" as 0; its second argument "
               "says where it stopped, and a port must be all digits" % read(log).strip())
        expect(proc.returncode != 0, "it exited with status 0")


def read(path):
    with open(path) as f:
        return f.read()


def wait_for_port(proc, log):
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        m = re.search(r"listening on port (\d+)", read(log))
        if m:
            port = int(m.group(1))
            expect(port != 0, "it printed port 0, which no client can reach: after bind(), "
                   "getsockname() says which port the kernel chose")
            return port
        if proc.poll() is not None:
            raise AssertionError("it exited with status %d and said %r: port 0 must be allowed"
                                 % (proc.returncode, read(log).strip()))
        time.sleep(0.02)
    raise AssertionError("it printed no \"listening on port N\" in %d s" % TIMEOUT)


# ---- 02: the 17th client waits

def exercise_02(binary, copy):
    srv = serve(binary)
    with step("16 clients are served at once"):
        clients = [tcp(srv.port) for _ in range(16)]
        for i, c in enumerate(clients):
            c.sendall(b"client %02d\n" % i)
        for i, c in enumerate(clients):
            expect(recv_exactly(c, 10) == b"client %02d\n" % i, "client %d got no echo" % i)
    with step("a 17th client waits, neither refused nor closed, and costs no CPU meanwhile"):
        extra = tcp(srv.port)
        extra.sendall(b"waiting\n")
        cpu, start = cpu_seconds(srv.proc.pid), time.time()
        came = what_came(extra, 1.5)
        expect(came is None, "it got %r%s; it should wait, held in listen()'s queue, until a "
               "place is free" % (came, " and was closed" if came is not None else ""))
        used = cpu_seconds(srv.proc.pid) - cpu
        expect(used < 0.25, "the server used %.1f s of CPU in %.1f s of waiting: select() says "
               "again and again that the listening socket is ready; while no place is free, "
               "do not ask it" % (used, time.time() - start))
    with step("when one of the 16 leaves, the 17th is served"):
        clients.pop(5).close()
        expect(recv_exactly(extra, 8) == b"waiting\n", "it got no echo")
    with step("the other 15 are still served"):
        for c in clients:
            c.sendall(b"again\n")
            expect(recv_exactly(c, 6) == b"again\n", "no echo")
            c.close()
        extra.close()
    stop(srv)


# ---- 03: Sec-WebSocket-Version

def version_request(key, line):
    """A handshake whose version header line is line (none if empty)."""
    text = upgrade_request(key).decode().replace("Sec-WebSocket-Version: 13\r\n", line)
    return text.encode()


def exercise_03(binary, copy):
    srv = serve(binary)
    for line in ("Sec-WebSocket-Version: 13\r\n", "sec-websocket-version: 13\r\n"):
        with step("%r gets 101 with the right Sec-WebSocket-Accept" % line.strip()):
            key = new_key()
            status, headers, _ = http_answer(srv.port, version_request(key, line))
            expect(status.startswith("HTTP/1.1 101 "), status)
            expect(headers.get("sec-websocket-accept") == accept_for(key), headers)
    for line, why in (("Sec-WebSocket-Version: 8\r\n", "version 8"),
                      ("", "no Sec-WebSocket-Version"),
                      ("Sec-WebSocket-Version: 130\r\n", "version 130 (it starts as 13 does)")):
        with step("%s gets 426 Upgrade Required with Sec-WebSocket-Version: 13, then "
                  "the connection ends" % why):
            status, headers, ended = http_answer(srv.port, version_request(new_key(), line))
            expect(status.startswith("HTTP/1.1 426 "), "it got %r: a server must answer a "
                   "version it does not speak with 426 (RFC 6455 §4.2.2)" % status)
            expect(headers.get("sec-websocket-version") == "13", "the 426 has no header "
                   "\"Sec-WebSocket-Version: 13\" to say which version we speak: %r" % headers)
            expect(ended, "the connection stayed open after the 426")
    stop(srv)


# ---- 04: messages in several frames

def exercise_04(binary, copy):
    limit = define_value(copy, "MAX_MESSAGE")
    srv = serve(binary)
    s, _ = handshake(srv.port, new_key())
    with step("a message in one frame is still echoed"):
        send_text(s, b"Hello")
        expect(read_frame(s) == (1, 7, b"Hello"), "no echo")
    with step("a message in three frames, a ping between them, comes back whole in one frame"):
        s.sendall(frame(1, b"Hel", fin=False))
        came = what_came(s, 0.3)
        if came is not None:
            kind = "a close frame, code %d" % (came[2] << 8 | came[3]) if came[:1] == b"\x88" \
                else "%r" % came
            raise AssertionError("after a text frame without FIN, the server sent %s; it "
                                 "should gather the pieces until one with FIN" % kind)
        s.sendall(frame(9, b"are you there"))
        expect(read_frame(s) == (10, 7, b"are you there"),
               "a ping between the pieces was not answered at once")
        s.sendall(frame(0, b"lo, ", fin=False) + frame(0, b"world"))
        got = read_frame(s)
        expect(got == (1, 7, b"Hello, world"), "it got %r, not one text frame \"Hello, "
               "world\"" % (got,))
    with step("a long message in four frames comes back whole"):
        pieces = [bytes([65 + i]) * (limit // 5) for i in range(4)]
        for i, piece in enumerate(pieces):
            s.sendall(frame(1 if i == 0 else 0, piece, fin=i == 3))
        got = read_frame(s)
        expect(got[0] == 1 and got[2] == b"".join(pieces), "opcode %d, %d bytes, not %d"
               % (got[0], len(got[2]), sum(map(len, pieces))))
    with step("the next message begins afresh"):
        send_text(s, b"again")
        expect(read_frame(s) == (1, 7, b"again"), "no echo")
        s.close()
    for frames, why, code in (
            ([frame(0, b"stray")], "a continuation with no message begun", 1002),
            ([frame(1, b"a", fin=False), frame(1, b"b")],
             "a new text frame before the last message ended", 1002),
            ([frame(9, b"ping", fin=False)], "a ping without FIN (control frames are never "
             "in pieces, §5.5)", 1002),
            ([frame(1, b"x" * (limit // 2 + 1), fin=False),
              frame(0, b"y" * (limit // 2 + 1))[:14]],
             "pieces over MAX_MESSAGE together (the last one's header is enough to say so)",
             1009)):
        with step("%s gets close %d" % (why, code)):
            s, _ = handshake(srv.port, new_key())
            s.sendall(b"".join(frames))
            got = closed_with(s)
            expect(got == code, "close %s, not %d" % (got, code))
            s.close()
    stop(srv)


# ---- 05: a duplicate key

def request(s, obj):
    send_text(s, json.dumps(obj, separators=(",", ":")).encode())
    op, _, payload = read_frame(s)
    expect(op == 1, "opcode %d" % op)
    return json.loads(payload)


def exercise_05(binary, copy):
    srv = serve(binary)
    with step("the tutorial's scenario is still answered byte for byte"):
        tutorial_checks(srv)
    key = new_key()
    first, _ = handshake(srv.port, key)
    with step("a second WebSocket with a key already open gets 409 Conflict, then the "
              "connection ends"):
        status, _, ended = http_answer(srv.port, upgrade_request(key))
        expect(status.startswith("HTTP/1.1 409 "), "it got %r: a key that is open already "
               "must be refused with \"HTTP/1.1 409 Conflict\"" % status)
        expect(ended, "the connection stayed open after the 409")
    with step("the first connection stays, and is served"):
        got = request(first, {"req": "text", "text": "still here"})
        expect(got == {"resp": "text", "content": "still here"}, got)
    admin, _ = handshake(srv.port, new_key())
    with step("the admin's list names the key once, as a user"):
        send_text(admin, b'{"req":"get connections"}')
        raw = read_frame(admin)[2]
        expect(raw.count(b'"%s"' % key.encode()) == 1, "the key is there %d times: %r"
               % (raw.count(key.encode()), raw))
        expect(json.loads(raw)["content"][key] == "user", raw)
    with step("a push to the key reaches the first connection"):
        got = request(admin, {"req": "push a user", "userkey": key, "text": "for you"})
        expect(got == {"resp": "text", "content": "Already sent."}, got)
        op, _, payload = read_frame(first)
        expect(json.loads(payload) == {"resp": "text", "content": "for you"}, payload)
    with step("once the first has gone, its key may connect again"):
        send_text(first, b"\x03\xe8", opcode=8)
        expect(closed_with(first) == 1000, "the close was not answered")
        first.close()
        deadline = time.time() + TIMEOUT
        while key in request(admin, {"req": "get connections"})["content"]:
            expect(time.time() < deadline, "the key is still in the list after %d s" % TIMEOUT)
            time.sleep(0.05)
        again, head = handshake(srv.port, key)
        expect(head.startswith(b"HTTP/1.1 101 "), head)
        again.close()
        admin.close()
    stop(srv)


# ---- 06: deadlines to the millisecond

def exercise_06(binary, copy):
    times = DEFINES["06"]["HEAD_TIME"]        # all three are 2 s in this build
    srv = serve(binary)
    with step("a WebSocket is still answered"):
        s, _ = handshake(srv.port, new_key())
        send_text(s, b'{"req":"text","text":"hi"}')
        expect(read_frame(s)[2] == b'{"resp":"text","content":"hi"}', "no echo")
        s.close()
    # Silent clients that come at different points of a second, while
    # another talks all along, so that the loop wakes often: deadlines
    # counted in whole seconds come up to a second early for some.
    events, done = {}, threading.Event()
    talker, _ = handshake(srv.port, new_key())

    def talk():                         # a ping every 0.2 s, and its pong
        with contextlib.suppress(Exception):
            while not done.wait(0.2):
                send_text(talker, b"tick", opcode=9)
                read_frame(talker)

    def silent_tcp(phase):              # connects, says nothing
        got = events.setdefault("connection at .%d" % (phase * 10), [])
        with contextlib.suppress(Exception):
            s = at_phase(phase, lambda: tcp(srv.port))
            start = time.time()
            s.settimeout(times + 6)
            got.append(s.recv(1) == b"" and time.time() - start)

    def silent_websocket(phase):        # opens, says nothing, answers no ping
        got = events.setdefault("WebSocket at .%d" % (phase * 10), [])
        with contextlib.suppress(Exception):
            s, _ = at_phase(phase, lambda: handshake(srv.port, new_key()))
            start = time.time()
            s.settimeout(2 * times + 6)
            got.append(read_frame(s)[0] == 9 and time.time() - start)
            got.append(s.recv(1) == b"" and time.time() - start - got[0])
    threads = [threading.Thread(target=silent_tcp, args=(phase,)) for phase in (0.3, 0.6, 0.9)]
    threads += [threading.Thread(target=silent_websocket, args=(phase,)) for phase in (0.4, 0.8)]
    ticker = threading.Thread(target=talk)
    cpu = cpu_seconds(srv.proc.pid)
    for t in threads + [ticker]:
        t.start()
    for t in threads:
        t.join(4 * times + 10)
    done.set()
    ticker.join(TIMEOUT)
    talker.close()
    for what, when, i in (("connection", "dropped %d s after it came", 0),
                          ("WebSocket", "pinged %d s after its handshake", 0),
                          ("WebSocket", "dropped %d s after that ping", 1)):
        with step("a silent %s is %s, not sooner (a few, come at different points of a second)"
                  % (what, when % times)):
            seen = {name: got[i] if len(got) > i else None
                    for name, got in sorted(events.items()) if name.startswith(what)}
            expect(all(seen.values()), "not within a few seconds: %s" % seen)
            wrong = {name: "%.2f s" % t for name, t in seen.items()
                     if not times - 0.1 <= t <= times + 0.8}
            expect(not wrong, "after %s: the deadline was %d s. Count in milliseconds: "
                   "time() counts whole seconds" % (wrong, times))
    with step("select() slept between the deadlines"):
        used = cpu_seconds(srv.proc.pid) - cpu
        expect(used < 0.6, "the server used %.1f s of CPU while it waited: select()'s timeval "
               "has seconds and microseconds (tv_usec), and a wait under a second is not 0"
               % used)
    stop(srv)


def at_phase(phase, act):
    """Do act() when the clock's fraction of a second is phase."""
    time.sleep((phase - time.time() % 1) % 1)
    return act()


# ---- 07: text must be UTF-8

def text_request(text):
    """{"req":"text","text":TEXT} with TEXT's bytes as they are."""
    return b'{"req":"text","text":"' + text + b'"}'


def refused_1007(s, why):
    """The server's answer on s must be close 1007."""
    op, _, payload = read_frame(s)
    if op == 1:
        raise AssertionError("it answered %r: %s were taken for text. A text message "
                             "must be UTF-8 (RFC 6455 §8.1): close with 1007" % (payload[:80], why))
    expect(op == 8, "opcode %d, not a close frame" % op)
    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
    expect(code == 1007, "close %s, not 1007" % code)


BAD_UTF8 = [    # (what it is, the bytes of a text)
    ("a lone continuation byte, 80", b"caf\x80"),
    ("an overlong form, C0 AF for \"/\"", b"\xc0\xaf"),
    ("an overlong 3-byte form, E0 80 AF", b"\xe0\x80\xaf"),
    ("a surrogate, ED A0 80 (U+D800)", b"\xed\xa0\x80"),
    ("a character past U+10FFFF, F4 90 80 80", b"\xf4\x90\x80\x80"),
    ("F5, which begins no character", b"\xf5\x80\x80\x80"),
    ("a character cut short by a quote, E2 82 \"", b"\xe2\x82"),
]


def exercise_07(binary, copy):
    srv = serve(binary)
    with step("the tutorial's scenario is still answered byte for byte (é, κόσμε, U+1F600)"):
        tutorial_checks(srv)
    s, _ = handshake(srv.port, new_key())
    with step("a character split between two frames, a ping between them, comes back whole"):
        euro = text_request(b"\xe2\x82\xac!")           # €: E2 82 AC
        s.sendall(frame(1, euro[:24], fin=False) + frame(9, b"ping") + frame(0, euro[24:]))
        expect(read_frame(s) == (10, 7, b"ping"), "the ping was not answered")
        got = read_frame(s)
        expect(got == (1, 7, '{"resp":"text","content":"€!"}'.encode()), "it got %r: E2 82 "
               "ends one frame and AC begins the next; the check must carry on across them"
               % (got,))
    with step("a 4-byte character in three frames comes back whole"):
        grin = text_request("\U0001F600".encode())     # F0 9F 98 80
        s.sendall(frame(1, grin[:23], fin=False) + frame(0, grin[23:25], fin=False) +
                  frame(0, grin[25:]))
        got = read_frame(s)
        expect(got[2] == '{"resp":"text","content":"\U0001F600"}'.encode(), "it got %r" % (got,))
        s.close()
    for why, text in BAD_UTF8:
        with step("text that is not UTF-8 (%s) gets close 1007" % why):
            s, _ = handshake(srv.port, new_key())
            send_text(s, text_request(text))
            refused_1007(s, "bytes that are not UTF-8")
            s.close()
    with step("a message that ends inside a character (E2 82, then FIN) gets close 1007"):
        s, _ = handshake(srv.port, new_key())
        send_text(s, b"\xe2\x82")
        refused_1007(s, "E2 82, two bytes of three,")
        s.close()
    with step("a character begun in one frame and broken in the next (E2 | 28) gets 1007 at "
              "that frame, before the message ends"):
        s, _ = handshake(srv.port, new_key())
        s.sendall(frame(1, b'{"req":"text","text":"\xe2', fin=False) + frame(0, b"(", fin=False))
        refused_1007(s, "E2 and then (")
        s.close()
    with step("the first frame that holds a byte which cannot be UTF-8 gets 1007 at once, "
              "before the message ends"):
        s, _ = handshake(srv.port, new_key())
        s.sendall(frame(1, b'{"req":"text","text":"\xff', fin=False))
        came = what_came(s, 3)
        expect(came is not None, "nothing came in 3 s: check each frame as it is taken, not "
               "only the whole message")
        expect(came[:4] == b"\x88\x02\x03\xef", "it got %r, not close 1007" % came[:40])
        s.close()
    with step("the next WebSocket is served"):
        s, _ = handshake(srv.port, new_key())
        send_text(s, text_request(b"still here"))
        expect(read_frame(s)[2] == b'{"resp":"text","content":"still here"}', "no echo")
        s.close()
    stop(srv)


EXERCISES = {"01": exercise_01, "02": exercise_02, "03": exercise_03, "04": exercise_04,
             "05": exercise_05, "06": exercise_06, "07": exercise_07}
DEFINES = {"06": {"HEAD_TIME": 2, "IDLE_TIME": 2, "CLOSE_TIME": 2}}  # short enough to watch


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in EXERCISES or not os.path.isfile(sys.argv[2]):
        print(__doc__.split("\n\n")[1] + "\nusage: python3 lessons/check.py NN FILE, NN one "
              "of %s" % " ".join(sorted(EXERCISES)), file=sys.stderr)
        sys.exit(2)
    nn, copy = sys.argv[1], os.path.abspath(sys.argv[2])
    lesson = os.path.basename(glob.glob(os.path.join(ROOT, "lessons", nn + "-*.c"))[0])[:-2]
    try:
        for define in DEFINES.get(nn, {}):
            with step("it has #define %s (this check makes it %d)" % (define, DEFINES[nn][define])):
                define_value(copy, define)
        binary = build(nn, lesson, copy, DEFINES.get(nn))
        EXERCISES[nn](binary, copy)
    except NotYet as e:
        print("NOT YET  %s" % e)
        print("exercise %s: not yet (%d step%s passed). Lesson %s's header says what it asks."
              % (nn, len(passed), "" if len(passed) == 1 else "s", nn))
        for srv in servers:
            print("the server's output: %s" % os.path.relpath(srv.logpath, ROOT))
        sys.exit(1)
    finally:
        for srv in servers:             # stopped by PID, if a step left it running
            if srv.proc.poll() is None:
                srv.proc.terminate()
                srv.proc.wait(TIMEOUT)
    print("exercise %s: done, all %d steps passed." % (nn, len(passed)))


if __name__ == "__main__":
    main()
