"""RFC 6455 §5-§7 conformance, case by case, over real sockets.

The cases follow the categories of the Autobahn|Testsuite fuzzing client
(1 framing, 2 pings and pongs, 3 reserved bits, 4 opcodes, 5 fragments,
6 UTF-8, 7 closing, 9 large messages) with its strict expectations: a
case passes only with the outcome the suite grades "OK". Outcomes it
would grade "NON-STRICT" (failing late instead of fast, losing an echo
before failing) count as failures here.

Each case runs twice: against "wspush -e", where messages are echoed
verbatim, and against the default JSON mode, where each text message is
wrapped as {"req":"text","text":...} and must come back as
{"resp":"text","content":...}. Binary echo cases run in -e mode only.

    python3 conformance.py [--quick]   (--quick leaves out category 9)
"""
import struct
import sys
import time

from wsclient import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                      Client, Server, expect, finish, report)

STRICT_WAIT = 1.0       # how soon a failure must show, as the suite waits


# ------------------------------------------------------------ case language
# A case is a list of steps and what must come back.
#   data(op, [fragments], chop=N, pause=S)  one message, FIN on the last
#   frame(op, payload, fin=, rsv=, length=)  one raw frame, never wrapped
#   pause(S)                                 wait
#   closed_within(S)                         the server must have failed
#                                            the connection by now
# Expected events: echo(op, payload) and pong(payload), in order; then
# either a clean close we start (CLEAN) or the server's close with code.

def data(op, fragments, chop=None, pause=0.0):
    return ("data", op, list(fragments), chop, pause)


def frame(op, payload=b"", fin=True, rsv=0, length=None, mask=True):
    return ("frame", Client.frame(op, payload, fin=fin, rsv=rsv, length=length, mask=mask))


def parts(op, fragments, chop=None):
    """The frames of one message as separate steps, so that control
    frames or pauses can go between them; wrapped like data()."""
    return [("part", op, tuple(fragments), i, chop) for i in range(len(fragments))]


def pause(seconds):
    return ("pause", seconds)


def closed_within(seconds):
    return ("closed", seconds)


def echo(op, payload):
    return ("echo", op, payload)


def pong(payload=b""):
    return ("pong", payload)


CLEAN = ("clean",)


def fails(code):
    return ("fail", code)


CASES = []


def add(cid, steps, events, outcome, binary=False, big=False):
    CASES.append((cid, steps, events, outcome, binary, big))


# --------------------------------------------------------------- 1 framing
for i, n in enumerate((0, 125, 126, 127, 128, 65535, 65536)):
    add("1.1.%d" % (i + 1), [data(OP_TEXT, [b"*" * n])], [echo(OP_TEXT, b"*" * n)], CLEAN)
    add("1.2.%d" % (i + 1), [data(OP_BINARY, [b"\xfe" * n])],
        [echo(OP_BINARY, b"\xfe" * n)], CLEAN, binary=True)
add("1.1.8", [data(OP_TEXT, [b"*" * 65536], chop=997)], [echo(OP_TEXT, b"*" * 65536)], CLEAN)
add("1.2.8", [data(OP_BINARY, [b"\xfe" * 65536], chop=997)],
    [echo(OP_BINARY, b"\xfe" * 65536)], CLEAN, binary=True)

# ------------------------------------------------------- 2 pings and pongs
add("2.1", [frame(OP_PING)], [pong()], CLEAN)
add("2.2", [frame(OP_PING, b"Hello, world!")], [pong(b"Hello, world!")], CLEAN)
add("2.3", [frame(OP_PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")],
    [pong(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")], CLEAN)
add("2.4", [frame(OP_PING, b"\xfe" * 125)], [pong(b"\xfe" * 125)], CLEAN)
add("2.5", [frame(OP_PING, b"\xfe" * 126)], [], fails(1002))
add("2.6", [("chopped", Client.frame(OP_PING, b"\xfe" * 125), 1)], [pong(b"\xfe" * 125)], CLEAN)
add("2.7", [frame(OP_PONG)], [], CLEAN)
add("2.8", [frame(OP_PONG, b"unsolicited pong payload")], [], CLEAN)
add("2.9", [frame(OP_PONG, b"unsolicited pong payload"), frame(OP_PING, b"ping payload")],
    [pong(b"ping payload")], CLEAN)
add("2.10", [frame(OP_PING, b"payload-%d" % i) for i in range(10)],
    [pong(b"payload-%d" % i) for i in range(10)], CLEAN)
add("2.11", [("chopped", Client.frame(OP_PING, b"payload-%d" % i), 1) for i in range(10)],
    [pong(b"payload-%d" % i) for i in range(10)], CLEAN)

# ------------------------------------------------------- 3 reserved bits
HELLO = b"Hello, world!"
add("3.1", [frame(OP_TEXT, HELLO, rsv=1)], [], fails(1002))
add("3.2", [data(OP_TEXT, [HELLO]), frame(OP_TEXT, HELLO, rsv=2), frame(OP_PING)],
    [echo(OP_TEXT, HELLO)], fails(1002))
add("3.3", [data(OP_TEXT, [HELLO]), pause(0.2), frame(OP_TEXT, HELLO, rsv=3), pause(0.2),
            frame(OP_PING)], [echo(OP_TEXT, HELLO)], fails(1002))
add("3.4", [data(OP_TEXT, [HELLO], chop=1),
            ("chopped", Client.frame(OP_TEXT, HELLO, rsv=4), 1),
            ("chopped", Client.frame(OP_PING), 1)], [echo(OP_TEXT, HELLO)], fails(1002))
add("3.5", [frame(OP_BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5)], [], fails(1002))
add("3.6", [frame(OP_PING, HELLO, rsv=6)], [], fails(1002))
add("3.7", [frame(OP_CLOSE, b"\x03\xe8", rsv=7)], [], fails(1002))

# ---------------------------------------------------- 4 reserved opcodes
for i, op in enumerate((3, 4, 5, 6, 7)):
    add("4.1.%d" % (i + 1), [data(OP_TEXT, [HELLO]), frame(op, b"reserved" if i % 2 else b""),
                             frame(OP_PING)], [echo(OP_TEXT, HELLO)], fails(1002))
for i, op in enumerate((11, 12, 13, 14, 15)):
    add("4.2.%d" % (i + 1), [data(OP_TEXT, [HELLO]), frame(op, b"reserved" if i % 2 else b""),
                             frame(OP_PING)], [echo(OP_TEXT, HELLO)], fails(1002))

# --------------------------------------------------------- 5 fragments
F1, F2 = b"fragment1", b"fragment2"
add("5.1", [frame(OP_PING, F1, fin=False), frame(OP_CONT, F2)], [], fails(1002))
add("5.2", [frame(OP_PONG, F1, fin=False), frame(OP_CONT, F2)], [], fails(1002))
add("5.3", [data(OP_TEXT, [F1, F2])], [echo(OP_TEXT, F1 + F2)], CLEAN)
add("5.4", [data(OP_TEXT, [F1, F2], chop=1)], [echo(OP_TEXT, F1 + F2)], CLEAN)
add("5.5", [data(OP_TEXT, [F1, F2], pause=0.2)], [echo(OP_TEXT, F1 + F2)], CLEAN)
one, two = parts(OP_TEXT, [F1, F2])
add("5.6", [one, frame(OP_PING, b"ping payload"), two],
    [pong(b"ping payload"), echo(OP_TEXT, F1 + F2)], CLEAN)
one, two = parts(OP_TEXT, [F1, F2], chop=1)
add("5.7", [one, ("chopped", Client.frame(OP_PING, b"ping"), 1), two],
    [pong(b"ping"), echo(OP_TEXT, F1 + F2)], CLEAN)
# A ping between fragments is answered at once, not after the message.
one, two = parts(OP_TEXT, [F1, F2])
add("5.8", [one, frame(OP_PING, b"ping"), ("pong_now", b"ping"), pause(0.2), two],
    [echo(OP_TEXT, F1 + F2)], CLEAN)
for cid, chop in (("5.9", None), ("5.10", 9), ("5.11", 1)):
    raw = Client.frame(OP_CONT, F1) + Client.frame(OP_TEXT, HELLO)
    add(cid, [("chopped", raw, chop or len(raw))], [], fails(1002))
for cid, chop in (("5.12", None), ("5.13", 9), ("5.14", 1)):
    raw = Client.frame(OP_CONT, F1, fin=False) + Client.frame(OP_TEXT, HELLO)
    add(cid, [("chopped", raw, chop or len(raw))], [], fails(1002))
add("5.15", [data(OP_TEXT, [F1, F2]), frame(OP_CONT, b"fragment3", fin=False),
             frame(OP_TEXT, b"fragment4")], [echo(OP_TEXT, F1 + F2)], fails(1002))
add("5.16", [frame(OP_CONT, F1, fin=False), frame(OP_TEXT, F2, fin=False),
             frame(OP_CONT, b"fragment3")], [], fails(1002))
add("5.17", [frame(OP_CONT, F1), frame(OP_TEXT, F2, fin=False),
             frame(OP_CONT, b"fragment3")], [], fails(1002))
add("5.18", [frame(OP_TEXT, F1, fin=False), frame(OP_TEXT, F2)], [], fails(1002))
PIECES = [b"fragment1", b"fragment2", b"fragment3", b"fragment4", b"fragment5"]
for cid, chop in (("5.19", None), ("5.20", 1)):
    steps = []
    for i, part in enumerate(parts(OP_TEXT, PIECES, chop=chop)):
        steps.append(part)
        if i in (0, 3):
            steps.append(("chopped", Client.frame(OP_PING, b"pongme %d!" % (i + 1)), chop or 99))
            steps.append(pause(0.2))
    add(cid, steps, [pong(b"pongme 1!"), pong(b"pongme 4!"), echo(OP_TEXT, b"".join(PIECES))],
        CLEAN)

# -------------------------------------------------------------- 6 UTF-8
add("6.1.1", [data(OP_TEXT, [b""])], [echo(OP_TEXT, b"")], CLEAN)
add("6.1.2", [data(OP_TEXT, [b"", b"", b""])], [echo(OP_TEXT, b"")], CLEAN)
add("6.1.3", [data(OP_TEXT, [b"", b"middle frame payload", b""])],
    [echo(OP_TEXT, b"middle frame payload")], CLEAN)
HELLO_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode()
KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
add("6.2.1", [data(OP_TEXT, [HELLO_UTF8])], [echo(OP_TEXT, HELLO_UTF8)], CLEAN)
add("6.2.2", [data(OP_TEXT, [HELLO_UTF8[:12], HELLO_UTF8[12:]])],
    [echo(OP_TEXT, HELLO_UTF8)], CLEAN)
add("6.2.3", [data(OP_TEXT, [bytes([b]) for b in HELLO_UTF8])], [echo(OP_TEXT, HELLO_UTF8)],
    CLEAN)
add("6.2.4", [data(OP_TEXT, [bytes([b]) for b in KOSME])], [echo(OP_TEXT, KOSME)], CLEAN)
BAD = KOSME + b"\xed\xa0\x80" + b"edited"
add("6.3.1", [data(OP_TEXT, [BAD])], [], fails(1007))
add("6.3.2", [data(OP_TEXT, [bytes([b]) for b in BAD])], [], fails(1007))
# 6.4: fail fast. The bad byte comes in the middle; the rest follows a
# second later, after the server must already have failed.
P1, P2, P3 = KOSME, b"\xf4\x90\x80\x80", b"edited"
add("6.4.1", [frame(OP_TEXT, P1, fin=False), pause(0.3), frame(OP_CONT, P2, fin=False),
              closed_within(STRICT_WAIT), frame(OP_CONT, P3)], [], fails(1007))
add("6.4.2", [frame(OP_TEXT, P1 + P2[:1], fin=False), pause(0.3),
              frame(OP_CONT, P2[1:], fin=False), closed_within(STRICT_WAIT),
              frame(OP_CONT, P3)], [], fails(1007))
whole = Client.frame(OP_TEXT, P1 + P2 + P3)
head_len = len(whole) - len(P1 + P2 + P3)
add("6.4.3", [("raw", whole[:head_len + len(P1)]), pause(0.3),
              ("raw", whole[head_len + len(P1):head_len + len(P1) + 4]),
              closed_within(STRICT_WAIT), ("raw", whole[head_len + len(P1) + 4:])],
    [], fails(1007))
add("6.4.4", [("raw", whole[:head_len + len(P1)]), pause(0.3),
              ("raw", whole[head_len + len(P1):head_len + len(P1) + 2]),
              closed_within(STRICT_WAIT), ("raw", whole[head_len + len(P1) + 2:])],
    [], fails(1007))


def utf8_sequences():
    """(name, bytes, valid) from the classic UTF-8 decoder stress test:
    boundaries, stray continuations, lonely and missing bytes, overlong
    forms, surrogates, and values past U+10FFFF."""
    seqs = [("kosme", KOSME, True)]
    for cp in (0x0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF, 0xD7FF,
               0xE000, 0xFFFD, 0xFFFE, 0xFDD0, 0x1FFFF):
        seqs.append(("U+%04X" % cp, chr(cp).encode("utf-8", "surrogatepass"), True))
    for b in range(0x80, 0xC0):
        seqs.append(("continuation %02x" % b, bytes([b]), False))
    seqs += [("2 continuations", b"\x80\xbf", False), ("3 continuations", b"\x80\xbf\x80", False),
             ("7 continuations", b"\x80\xbf\x80\xbf\x80\xbf\x80", False)]
    for b in list(range(0xC0, 0xE0)) + list(range(0xE0, 0xF0)) + list(range(0xF0, 0xF8)) + \
            list(range(0xF8, 0xFC)) + [0xFC, 0xFD]:
        seqs.append(("lonely start %02x" % b, bytes([b, 0x20]), False))
    for raw in (b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80",
                b"\xfc\x80\x80\x80\x80", b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf",
                b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf",
                b"\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80\xdf\xef\xbf"
                b"\xf7\xbf\xbf\xfb\xbf\xbf\xbf\xfd\xbf\xbf\xbf\xbf"):
        seqs.append(("last byte missing %s" % raw[:6].hex(), raw, False))
    for raw in (b"\xfe", b"\xff", b"\xfe\xfe\xff\xff"):
        seqs.append(("impossible %s" % raw.hex(), raw, False))
    for raw in (b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf8\x80\x80\x80\xaf",
                b"\xfc\x80\x80\x80\x80\xaf", b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf",
                b"\xf8\x87\xbf\xbf\xbf", b"\xfc\x83\xbf\xbf\xbf\xbf", b"\xc0\x80",
                b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\xf8\x80\x80\x80\x80",
                b"\xfc\x80\x80\x80\x80\x80"):
        seqs.append(("overlong %s" % raw.hex(), raw, False))
    for raw in (b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",
                b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf",
                b"\xed\xa0\x80\xed\xb0\x80", b"\xed\xaf\xbf\xed\xbf\xbf"):
        seqs.append(("surrogate %s" % raw.hex(), raw, False))
    for raw in (b"\xf4\x90\x80\x80", b"\xf7\xbf\xbf\xbf"):
        seqs.append(("past U+10FFFF %s" % raw.hex(), raw, False))
    return seqs


for i, (name, raw, valid) in enumerate(utf8_sequences()):
    outcome = CLEAN if valid else fails(1007)
    events = [echo(OP_TEXT, raw)] if valid else []
    add("6.5.%d %s" % (i + 1, name), [data(OP_TEXT, [raw])], events, outcome)
    add("6.6.%d %s, byte by byte" % (i + 1, name),
        [data(OP_TEXT, [bytes([b]) for b in raw] or [b""])], events, outcome)
    add("6.7.%d %s, inside text" % (i + 1, name),
        [data(OP_TEXT, [b"ab" + raw + b"cd"])], [echo(OP_TEXT, b"ab" + raw + b"cd")] if valid
        else [], outcome)

# ------------------------------------------------------------- 7 closing
add("7.1.1", [data(OP_TEXT, [HELLO])], [echo(OP_TEXT, HELLO)], CLEAN)
add("7.1.2", [frame(OP_CLOSE, b"\x03\xe8"), frame(OP_CLOSE, b"\x03\xe8")], [], ("echoed", 1000))
add("7.1.3", [frame(OP_CLOSE, b"\x03\xe8"), frame(OP_PING, b"late")], [], ("echoed", 1000))
add("7.1.4", [frame(OP_CLOSE, b"\x03\xe8"), frame(OP_TEXT, HELLO)], [], ("echoed", 1000))
add("7.1.5", [frame(OP_TEXT, F1, fin=False), frame(OP_CLOSE, b"\x03\xe8"),
              frame(OP_CONT, F2)], [], ("echoed", 1000))
add("7.1.6", [data(OP_TEXT, [b"BAsd7&jh23" * 26214]), frame(OP_CLOSE, b"\x03\xe8"),
              frame(OP_PING)], [echo(OP_TEXT, b"BAsd7&jh23" * 26214)], ("echoed", 1000))
add("7.3.1", [frame(OP_CLOSE, b"")], [], ("echoed", None))
add("7.3.2", [frame(OP_CLOSE, b"\x03")], [], fails(1002))
add("7.3.3", [frame(OP_CLOSE, b"\x03\xe8")], [], ("echoed", 1000))
add("7.3.4", [frame(OP_CLOSE, b"\x03\xe8Hello World!")], [], ("echoed", 1000))
add("7.3.5", [frame(OP_CLOSE, b"\x03\xe8" + b"*" * 123)], [], ("echoed", 1000))
add("7.3.6", [frame(OP_CLOSE, b"\x03\xe8" + b"*" * 124)], [], fails(1002))
add("7.5.1", [frame(OP_CLOSE, b"\x03\xe8" + KOSME + b"\xed\xa0\x80edited")], [], fails(1007))
for i, code in enumerate((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                          1014, 3000, 3999, 4000, 4999)):
    add("7.7.%d code %d" % (i + 1, code), [frame(OP_CLOSE, struct.pack("!H", code))], [],
        ("echoed", code))
for i, code in enumerate((0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999)):
    add("7.9.%d code %d" % (i + 1, code), [frame(OP_CLOSE, struct.pack("!H", code))], [],
        fails(1002))
add("7.13.1 code 5000", [frame(OP_CLOSE, struct.pack("!H", 5000))], [], fails(1002))
add("7.13.2 code 65535", [frame(OP_CLOSE, struct.pack("!H", 65535))], [], fails(1002))

# ------------------------------------------------ rules beyond the suite
add("x.1 unmasked frame", [frame(OP_TEXT, HELLO, mask=False)], [], fails(1002))
add("x.2 64-bit length with top bit", [("raw", b"\x81\xff\x80" + b"\x00" * 7 + b"abcd")],
    [], fails(1002))
add("x.3 text after close is ignored", [frame(OP_CLOSE, b"\x03\xe8"), frame(OP_TEXT, HELLO),
                                         frame(OP_TEXT, b"\xff")], [], ("echoed", 1000))
one, two = parts(OP_TEXT, [F1, F2])
add("x.4 pong between fragments", [one, frame(OP_PONG, b"p"), two],
    [echo(OP_TEXT, F1 + F2)], CLEAN)

# ------------------------------------------------------ 9 large messages
MB = 1 << 20
for i, n in enumerate((64 << 10, 256 << 10, MB, 4 * MB, 8 * MB, 16 * MB)):
    add("9.1.%d" % (i + 1), [data(OP_TEXT, [b"*" * n])], [echo(OP_TEXT, b"*" * n)], CLEAN,
        big=True)
    add("9.2.%d" % (i + 1), [data(OP_BINARY, [b"\xfe" * n])], [echo(OP_BINARY, b"\xfe" * n)],
        CLEAN, binary=True, big=True)
for i, size in enumerate((64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, MB,
                          4 * MB)):
    msg = b"*" * (4 * MB)
    add("9.3.%d" % (i + 1), [data(OP_TEXT, [msg[j:j + size] for j in range(0, len(msg), size)])],
        [echo(OP_TEXT, msg)], CLEAN, big=True)
    add("9.4.%d" % (i + 1), [data(OP_BINARY, [msg[j:j + size] for j in range(0, len(msg), size)])],
        [echo(OP_BINARY, msg)], CLEAN, binary=True, big=True)
for i, chop in enumerate((64, 128, 256, 512, 1024, 2048)):
    add("9.5.%d" % (i + 1), [data(OP_TEXT, [b"*" * MB], chop=chop)], [echo(OP_TEXT, b"*" * MB)],
        CLEAN, big=True)
    add("9.6.%d" % (i + 1), [data(OP_BINARY, [b"\xfe" * MB], chop=chop)],
        [echo(OP_BINARY, b"\xfe" * MB)], CLEAN, binary=True, big=True)
for i, n in enumerate((0, 16, 64, 256, 1024, 4096)):
    add("9.7.%d" % (i + 1), [("roundtrips", OP_TEXT, b"*" * n, 1000)], [], CLEAN, big=True)
    add("9.8.%d" % (i + 1), [("roundtrips", OP_BINARY, b"\xfe" * n, 1000)], [], CLEAN,
        binary=True, big=True)


# ------------------------------------------------------------------ runner

def js_string(raw):
    """raw (UTF-8) as JSON.stringify writes it: the reply wspush owes."""
    out = bytearray(b'"')
    short = {0x22: b'\\"', 0x5c: b"\\\\", 0x08: b"\\b", 0x0c: b"\\f", 0x0a: b"\\n",
             0x0d: b"\\r", 0x09: b"\\t"}
    for b in raw:
        if b in short:
            out += short[b]
        elif b < 0x20:
            out += b"\\u%04x" % b
        else:
            out.append(b)
    return bytes(out + b'"')


PREFIX, SUFFIX = b'{"req":"text","text":', b"}"


def wrap(fragments):
    """Fragments of a text message, made into one JSON request split at
    the same places: each fragment escaped on its own (escapes touch only
    ASCII bytes, so no character is cut), the quotes added at the ends."""
    escaped = [js_string(f)[1:-1] for f in fragments]
    escaped[0] = PREFIX + b'"' + escaped[0]
    escaped[-1] = escaped[-1] + b'"' + SUFFIX
    return escaped


def expected_reply(op, payload, json_mode):
    if json_mode and op == OP_TEXT:
        return (OP_TEXT, b'{"resp":"text","content":' + js_string(payload) + b"}")
    return (op, payload)


def send_chopped(c, raw, chop):
    """Send raw in pieces of chop bytes. Once the server has failed the
    connection it may stop reading; bytes it refuses are not an error."""
    try:
        for i in range(0, len(raw), chop):
            c.send_raw(raw[i:i + chop])
    except (BrokenPipeError, ConnectionResetError):
        pass


def run_case(port, steps, events, outcome, json_mode):
    """Run one case; return None if it passed, else what went wrong."""
    c = Client(port)
    got = []
    try:
        for step in steps:
            kind = step[0]
            if kind == "data":
                _, op, fragments, chop, gap = step
                if json_mode and op == OP_TEXT:
                    fragments = wrap(fragments)
                for i, piece in enumerate(fragments):
                    raw = Client.frame(op if i == 0 else OP_CONT, piece,
                                       fin=i == len(fragments) - 1)
                    send_chopped(c, raw, chop or len(raw))
                    if gap:
                        time.sleep(gap)
            elif kind == "part":
                _, op, fragments, i, chop = step
                if json_mode and op == OP_TEXT:
                    fragments = wrap(list(fragments))
                raw = Client.frame(op if i == 0 else OP_CONT, fragments[i],
                                   fin=i == len(fragments) - 1)
                send_chopped(c, raw, chop or len(raw))
            elif kind == "frame" or kind == "raw":
                send_chopped(c, step[1], len(step[1]))
            elif kind == "chopped":
                send_chopped(c, step[1], step[2])
            elif kind == "pause":
                time.sleep(step[1])
            elif kind == "pong_now":
                op, payload = c.recv_frame(STRICT_WAIT)
                if (op, payload) != (OP_PONG, step[1]):
                    return "no pong at once between fragments: %r" % ((op, payload[:20]),)
            elif kind == "closed":
                try:
                    op, payload = c.recv_frame(step[1])
                except TimeoutError:
                    return "NON-STRICT: not failed within %.1f s (fail fast)" % step[1]
                if op != OP_CLOSE:
                    return "expected close, got opcode %d" % op
                c.buf = c.frame(OP_CLOSE, payload, mask=False) + c.buf  # seen again below
            elif kind == "roundtrips":
                _, op, payload, count = step
                want = expected_reply(op, payload, json_mode)
                for _ in range(count):
                    body = wrap([payload])[0] if json_mode and op == OP_TEXT else payload
                    c.send_frame(op, body)
                    if c.recv_frame() != want:
                        return "round trip mismatch"

        # What comes back, in order, up to the close.
        closing = outcome[0] in ("fail", "echoed")
        for ev in events:
            op, payload = c.recv_frame(30)
            if ev[0] == "pong":
                want = (OP_PONG, ev[1])
            else:
                want = expected_reply(ev[1], ev[2], json_mode)
            if (op, payload) != want:
                return "expected %r, got %r" % ((want[0], want[1][:40]), (op, payload[:40]))

        if outcome[0] == "clean":
            c.send_frame(OP_CLOSE, b"\x03\xe8")
            op, payload = c.recv_frame()
            if op != OP_CLOSE or payload[:2] != b"\x03\xe8":
                return "close not echoed: %r" % ((op, payload[:20]),)
        elif closing:
            op, payload = c.recv_frame()
            if op != OP_CLOSE:
                return "expected close %s, got opcode %d %r" % (outcome[1], op, payload[:40])
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            if code != outcome[1]:
                return "close code %r, expected %r" % (code, outcome[1])
            if outcome[0] == "fail":    # answer the server's close, as a client does
                try:
                    c.send_frame(OP_CLOSE, payload[:2])
                except OSError:
                    pass
        # Nothing more, and the server closes TCP within a bounded time.
        try:
            extra = c.recv_frame(3)
            return "unexpected frame after close: %r" % ((extra[0], extra[1][:20]),)
        except (TimeoutError, EOFError, ConnectionResetError):
            pass
        if c.buf or not c.wait_eof(3):
            return "TCP connection not closed by the server"
        return None
    except (TimeoutError, EOFError, ConnectionResetError, BrokenPipeError) as e:
        return "%s: %s" % (type(e).__name__, e)
    finally:
        c.drop()


def main():
    quick = "--quick" in sys.argv
    for mode, args in (("-e", ["-e", "-q", "-m", str(20 << 20), "-s", str(20 << 20)]),
                       ("JSON", ["-q", "-m", str(20 << 20), "-s", str(20 << 20)])):
        json_mode = mode == "JSON"
        with Server(*args, name="conformance" + mode) as srv:
            results = {"ok": 0, "failed": []}
            for cid, steps, events, outcome, binary, big in CASES:
                if (binary and json_mode) or (big and quick):
                    continue
                why = run_case(srv.port, steps, events, outcome, json_mode)
                if why is None:
                    results["ok"] += 1
                else:
                    results["failed"].append((cid, why))
            for cid, why in results["failed"]:
                report("conformance %s: case %s" % (mode, cid), False, why)
            total = results["ok"] + len(results["failed"])
            report("conformance %s: all %d cases OK, none non-strict" % (mode, total),
                   not results["failed"], "%d of them failed" % len(results["failed"]))
            expect(srv.proc.poll() is None, "server died")
    finish()


if __name__ == "__main__":
    main()
