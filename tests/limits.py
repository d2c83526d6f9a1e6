"""Limits, timeouts and faults: what hostile, greedy or broken peers get,
and that everyone else keeps being served meanwhile.

Each test starts its own wspush with short timeouts. Memory is read from
/proc/PID/status; under a sanitizer or valgrind memory means nothing, and
those checks say SKIPPED.
"""
import json
import resource
import socket
import struct
import sys
import threading
import time

from wsclient import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Client, HandshakeRefused,
                      Server, http_request, Partly, case, expect, finish, sanitized, upgrade_request,
                      new_key, TIMEOUT)


def still_served(srv, text="still here", source=None):
    """A fresh client gets its echo at once: the server is alive."""
    c = Client(srv.port, source=source)
    t0 = time.time()
    c.send_json({"req": "text", "text": text})
    expect(c.recv_json(2.0)["content"] == text, "echo for a bystander")
    elapsed = time.time() - t0
    c.close()
    return elapsed


def wait_closed(sock, seconds):
    """Seconds until the server closes sock (EOF or reset), or None."""
    t0 = time.time()
    sock.settimeout(seconds)
    try:
        while True:
            if not sock.recv(65536):
                return time.time() - t0
    except (ConnectionResetError, BrokenPipeError):
        return time.time() - t0
    except socket.timeout:
        return None


def raw_handshake(srv, source=None):
    """A socket that completed the handshake (read byte by byte, so no
    frame is taken with it); HandshakeRefused if it was refused."""
    s = socket.create_connection(("127.0.0.1", srv.port), source_address=source)
    s.sendall(upgrade_request(new_key()))
    head = b""
    while b"\r\n\r\n" not in head:
        byte = s.recv(1)
        if not byte:
            break
        head += byte
    if not head.startswith(b"HTTP/1.1 101 "):
        s.close()
        raise HandshakeRefused(head[9:12], {}, head)
    return s


def frames_of(data):
    """Split server bytes into (opcode, payload) frames; a cut tail is left."""
    out, i = [], 0
    while i + 2 <= len(data):
        n, at = data[i + 1] & 0x7f, i + 2
        if n == 126:
            n, at = struct.unpack("!H", data[i + 2:i + 4])[0], i + 4
        elif n == 127:
            n, at = struct.unpack("!Q", data[i + 2:i + 10])[0], i + 10
        if at + n > len(data):
            break
        out.append((data[i] & 0x0f, data[at:at + n]))
        i = at + n
    return out


def read_until_closed(sock, seconds):
    """Everything the server sends until it closes the connection."""
    data, deadline = b"", time.time() + seconds
    sock.settimeout(1)
    while time.time() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


@case("timeouts: an unfinished handshake is dropped after -T seconds, within 250 ms")
def test_handshake_timeout():
    with Server("-T", "1", name="handshake-timeout") as srv:
        half = socket.create_connection(("127.0.0.1", srv.port))
        half.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t0 = time.time()
        slow = socket.create_connection(("127.0.0.1", srv.port))
        still_served(srv)
        for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-a: b\r\n":  # slowloris: a byte each 0.1 s
            try:
                slow.send(bytes([b]))
            except OSError:
                break
            time.sleep(0.1)
            if time.time() - t0 > 2:
                break
        took = wait_closed(slow, 3)
        expect(took is not None and 0.95 <= time.time() - t0 <= 1.25,
               "slowloris lasted %.2f s" % (time.time() - t0))
        expect(wait_closed(half, 1) is not None, "half a handshake not dropped")
        expect(srv.wait_log("timed out"), "timeout logged")
        still_served(srv)


@case("heartbeat: a silent client is pinged, then dropped; one that answers stays")
def test_heartbeat():
    with Server("-i", "1", "-k", "1", name="heartbeat") as srv:
        silent, lively = Client(srv.port), Client(srv.port)
        t0 = time.time()
        op, _ = silent.recv_frame(3)
        expect(op == OP_PING and 0.9 <= time.time() - t0 <= 1.3, "pinged after %.2f s" %
               (time.time() - t0))
        deadline = time.time() + 4
        while time.time() < deadline:           # the lively one answers its pings
            try:
                op, payload = lively.recv_frame(0.2)
                expect(op == OP_PING, "expected a ping, got %d" % op)
                lively.send_frame(OP_PONG, payload)
            except TimeoutError:
                pass
        expect(silent.wait_eof(0.1), "the silent client was not dropped")
        expect(srv.wait_log("did not answer a ping"), "drop logged")
        lively.send_json({"req": "text", "text": "alive"})
        msg = lively.recv_frame()
        while msg[0] == OP_PING:
            msg = lively.recv_frame()
        expect(json.loads(msg[1])["content"] == "alive", "the lively client stays")


class Reader(threading.Thread):
    """Reads replies from c until count have come, answering pings."""

    def __init__(self, c, count):
        threading.Thread.__init__(self, daemon=True)
        self.c, self.count, self.got, self.error = c, count, [], None

    def run(self):
        try:
            while len(self.got) < self.count:
                op, payload = self.c.recv_frame(30)
                if op == OP_CLOSE:
                    self.error = "closed: %r" % payload[:40]
                    return
                if op == OP_TEXT:
                    self.got.append(payload)
        except Exception as e:      # reported by the test
            self.error = "%s: %s" % (type(e).__name__, e)


def pipelined(srv, count, size):
    """Send count requests of size bytes without waiting, while reading;
    return (replies in order?, error)."""
    c = Client(srv.port)
    reader = Reader(c, count)
    reader.start()
    for i in range(count):
        c.send_json({"req": "text", "text": "%06d" % i + "x" * (size - 6)})
    reader.join(120)
    if reader.error or len(reader.got) != count:
        return False, reader.error or "%d of %d replies" % (len(reader.got), count)
    for i, payload in enumerate(reader.got):
        if not payload.startswith(b'{"resp":"text","content":"%06d' % i):
            return False, "reply %d out of order" % i
    c.close()
    return True, None


@case("flow control: 10000 pipelined 1 KiB messages all come back, in order")
def test_pipelined_small():
    with Server("-q", "-s", "65536", name="pipelined-small") as srv:
        ok, why = pipelined(srv, 10000, 1024)
        expect(ok, why)
        expect(srv.proc.poll() is None and "not reading" not in srv.log(), "closed a reader")


@case("flow control: 2000 messages of 60 KB sent in a loop all come back, in order")
def test_pipelined_large():
    with Server("-q", name="pipelined-large") as srv:
        t0 = time.time()
        ok, why = pipelined(srv, 2000, 60000)
        expect(ok, why)
        expect(still_served(srv) < 1.0, "a bystander waited")
        print("flow control: 2000 x 60 KB in %.1f s" % (time.time() - t0))


class Flood(threading.Thread):
    """Sends one frame over and over, never reading, until stopped or cut
    off; the server's replies pile up in the kernel, then in its queue."""

    def __init__(self, sock, frame):
        threading.Thread.__init__(self, daemon=True)
        self.sock, self.frame, self.stop, self.sent = sock, frame, False, 0
        sock.settimeout(1)

    def run(self):
        while not self.stop and self.sent < 100000:
            try:
                self.sock.sendall(self.frame)
                self.sent += 1
            except socket.timeout:
                continue
            except OSError:
                return


def flooded(srv, sock, frame):
    """Flood until the server gives up on the client (its queue stayed
    backed up for SEND_TIMEOUT_S); then read it all. Returns the close
    frames the client got, and the server's peak memory (None under a
    sanitizer)."""
    flood = Flood(sock, frame)
    flood.start()
    gave_up = srv.wait_log("is not reading", 40)
    flood.stop = True
    flood.join(5)
    expect(gave_up, "not closed after %d frames" % flood.sent)
    peak = None if sanitized() else srv.rss_kb()
    closes = [p for op, p in frames_of(read_until_closed(sock, 10)) if op == OP_CLOSE]
    return closes, peak


@case("flow control: a client that never reads is closed with 1008; memory stays bounded")
def test_never_reads():
    with Server("-q", name="never-reads") as srv:
        c = raw_handshake(srv)
        request = Client.frame(OP_TEXT, json.dumps({"req": "text", "text": "x" * 1000}).encode())
        closes, peak = flooded(srv, c, request)
        expect(closes and closes[0][:2] == b"\x03\xf0", "no close 1008: %r" % closes[:1])
        expect(still_served(srv) < 1.0, "a bystander waited")
        if peak is None:
            return Partly("memory, under a sanitizer")
        expect(peak < 8 * 1024, "peak memory %d KiB with -s 1 MiB" % peak)


@case("flow control: pushes to a user who never reads close that user, not the admin")
def test_push_to_stuck_user():
    with Server("-q", "-s", "4096", name="stuck-user") as srv:
        adm = Client(srv.port)
        adm.send_json({"req": "get connections"})
        adm.recv_json()
        key = new_key()
        stuck = socket.create_connection(("127.0.0.1", srv.port))
        stuck.sendall(upgrade_request(key))
        time.sleep(0.2)
        last = None
        for _ in range(200):                # 100 MB at most
            adm.send_json({"req": "push a user", "userkey": key, "text": "y" * 500000})
            last = adm.recv_json()
            if last != {"resp": "text", "content": "Already sent."}:
                break
        expect(last == {"resp": "error", "content": "that user is not reading and was "
                        "disconnected"}, "admin told: %r" % last)
        data = read_until_closed(stuck, 10)
        closes = [p for op, p in frames_of(data[data.index(b"\r\n\r\n") + 4:]) if op == OP_CLOSE]
        expect(closes and closes[0][:2] == b"\x03\xf0", "the stuck user got no 1008")
        adm.send_json({"req": "text", "text": "admin fine"})
        expect(adm.recv_json()["content"] == "admin fine", "admin still served")


@case("flow control: pings from a client that never reads its pongs end in 1008")
def test_ping_flood():
    with Server("-q", name="ping-flood") as srv:
        c = raw_handshake(srv)
        closes, peak = flooded(srv, c, Client.frame(OP_PING, b"p" * 125) * 100)
        expect(closes and closes[0][:2] == b"\x03\xf0", "close: %r" % closes[:1])
        if peak is not None:
            expect(peak < 8 * 1024, "server peak memory %d KiB" % peak)


def over_limit(srv, size, fragment=False):
    """Send a message of size bytes against -m and keep sending until the
    server's close comes; answer it as a browser does. Returns (close
    code, how the TCP connection ended)."""
    c = Client(srv.port)
    state = {"code": None}
    seen = threading.Event()

    def reader():
        try:
            while True:
                op, payload = c.recv_frame(10)
                if op == OP_CLOSE:
                    state["code"] = struct.unpack("!H", payload[:2])[0]
                    break
        except Exception as e:      # reported through state
            state["error"] = repr(e)
        seen.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    head = Client.frame(OP_TEXT, b"", fin=not fragment, length=size)
    try:
        c.send_raw(head[:-4] + head[-4:])       # the header (with its mask)
        chunk = b"z" * 65536
        sent = 0
        while not seen.is_set() and sent < 64 << 20:
            c.send_raw(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError) as e:
        return state.get("code"), "reset while sending (%s)" % type(e).__name__
    seen.wait(10)
    t.join(1)
    try:
        c.send_frame(OP_CLOSE, b"\x03\xf1")
    except OSError:
        pass
    return state.get("code"), c.end_of_stream(8)


@case("-m: a message over the limit gets close 1009 and a clean end, never a reset")
def test_max_message():
    with Server("-m", "1048576", name="max-message") as srv:
        for run in range(3):
            code, end = over_limit(srv, 2 << 20)
            expect(code == 1009 and end == "eof", "run %d: close %r, then %s" % (run, code, end))
        c = Client(srv.port)
        c.send_raw(b"\x81\xff" + struct.pack("!Q", 1 << 30) + b"abcd")   # claims 1 GiB
        code, _ = c.expect_close()
        expect(code == 1009, "claimed length: close %r" % code)
        if not sanitized():
            expect(srv.rss_kb() < 16 * 1024, "memory grew for a claimed length")
        c = Client(srv.port)
        c.send_frame(OP_TEXT, b"x" * 600000, fin=False)
        c.send_frame(0, b"x" * 600000)
        code, _ = c.expect_close()
        expect(code == 1009, "fragments over -m: close code %r" % code)
        c = Client(srv.port)
        text = json.dumps({"req": "text", "text": "z" * (1048576 - 40)})
        c.send_text(text)
        expect(c.recv_json()["content"] == "z" * (1048576 - 40), "a message at the limit")
        c.close()


@case("limits: 1000 clients at once are served (-c 0); the next one gets 503")
def test_thousand():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    with Server("-q", "-c", "0", name="thousand") as srv:
        clients = [Client(srv.port) for _ in range(1000)]
        try:
            Client(srv.port)
            raise AssertionError("client 1001 was accepted")
        except HandshakeRefused as e:
            expect(e.status == 503 and b"server is full" in e.body, "client 1001 got %s" % e.status)
        for i, c in enumerate(clients):
            c.send_json({"req": "text", "text": "n%d" % i})
        for i, c in enumerate(clients):
            expect(c.recv_json()["content"] == "n%d" % i, "client %d served" % i)
        peak = None if sanitized() else srv.rss_kb()
        for c in clients[:10]:
            c.close()
        still_served(srv)
        for c in clients[10:]:
            c.drop()
        if peak is not None:
            expect(peak < 20 * 1024, "peak memory with 1000 clients: %d KiB" % peak)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@case("per address: the teacher's own pages (this machine, an Origin of wspush) are not "
      "capped by -c; another site's page on this machine still is")
def test_own_pages():
    with Server("-c", "2", name="own-pages") as srv:
        own = "http://127.0.0.1:%d" % srv.port
        pages = [Client(srv.port, origin=own) for _ in range(4)]    # raises if refused
        refused = []
        for _ in range(3):
            try:
                pages.append(Client(srv.port, origin="http://elsewhere.example"))
            except HandshakeRefused as e:
                refused.append((e.status, b"too many connections" in e.body))
        expect(refused == [(503, True)] * 3, "another site's pages: %r" % refused)
        pages[0].send_json({"req": "text", "text": "still here"})
        expect(pages[0].recv_json()["content"] == "still here", "an own page is served")
        for c in pages:
            c.close()


@case("per address: -c sockets, then 503 with a reason; each refusal logged once per burst, "
      "with its count at the burst's end")
def test_per_address():
    with Server("-c", "5", name="per-address") as srv:
        t0 = time.time()
        held = [Client(srv.port) for _ in range(5)]
        bodies = []
        for _ in range(20):
            try:
                held.append(Client(srv.port))
            except HandshakeRefused as e:
                bodies.append((e.status, e.body))
        expect(len(bodies) == 20 and all(status == 503 and b"too many connections from your "
                                         b"address" in body for status, body in bodies),
               "refusals: %r" % bodies[:2])
        expect(still_served(srv, source=("127.0.0.2", 0)) < 1.0, "another address is served")
        expect(srv.wait_log("refused: 503 too many connections"), "refusal logged")
        expect(srv.log().count("503 too many connections") == 1, "logged more than once")
        # Two other refusals, alternating, from another address: one burst
        # for the address, whatever the reason (an address cycling through
        # reasons must not get a line for each); the count names the last.
        for i in range(20):
            request = b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n" if i % 2 == 0 else \
                b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"
            http_request(srv.port, request, source=("127.0.0.3", 0))
        expect(srv.wait_log("refused: 404"), "404 logged")
        log = srv.log()
        expect(log.count("refused: 404") == 1 and log.count("refused: 405") == 0,
               "one line for the address's burst, not one for each reason")
        # At each burst's end (LOG_BURST_S, 10 s), its count.
        burst = 10 + 2
        for pattern in (r"127\.0\.0\.1 refused 19 more times in 10 s: 503 too many",
                        r"127\.0\.0\.3 refused 19 more times in 10 s: 405"):
            expect(srv.wait_log(pattern, max(0.1, t0 + burst - time.time())),
                   "no count by the end of the burst: %s" % pattern)
        for c in held:
            c.close()


@case("per address: one address holds at most -c sockets, so at most -c unfinished messages")
def test_one_address_memory():
    with Server("-q", name="one-address") as srv:
        socks, refused = [], 0
        for _ in range(200):
            try:
                socks.append(raw_handshake(srv))
            except HandshakeRefused:
                refused += 1
        expect(len(socks) == 64, "%d sockets held, %d refused" % (len(socks), refused))
        part = Client.frame(OP_TEXT, b"q" * (1 << 20))[:-1]    # all but the last byte
        for s in socks:
            s.sendall(part)
        expect(still_served(srv, source=("127.0.0.2", 0)) < 1.0, "a bystander waited")
        if sanitized():
            return Partly("memory, under a sanitizer")
        peak = srv.rss_kb()
        expect(peak < 140 * 1024, "one address made the server hold %d KiB" % peak)
        print("one address: 64 unfinished 1 MiB messages, peak %d KiB" % peak)


@case("memory budget (-M): past it, the client holding the most gets 1009")
def test_budget():
    with Server("-q", "-c", "0", "-M", str(8 << 20), "-m", str(4 << 20), name="budget") as srv:
        socks = [raw_handshake(srv) for _ in range(10)]
        part = Client.frame(OP_TEXT, b"q" * (3 << 20))[:-1]
        for s in socks:
            s.settimeout(5)
            try:
                s.sendall(part)
            except OSError:
                pass
        codes = []
        for s in socks:
            closes = [p for op, p in frames_of(read_until_closed(s, 8)) if op == OP_CLOSE]
            codes.append(closes[0][:2] if closes else None)
        expect(codes.count(b"\x03\xf1") >= 6, "closes: %r" % codes)
        expect(srv.wait_log("Over the memory budget"), "not logged")
        expect(still_served(srv) < 1.0, "a bystander waited")
        if not sanitized():
            expect(srv.rss_kb() < 40 * 1024, "peak %d KiB with -M 8 MiB" % srv.rss_kb())


@case("memory budget (-M): small buffers count too: 60 clients of 4 KiB under -M 64 KiB")
def test_budget_small():
    with Server("-q", "-c", "0", "-M", str(64 << 10), name="budget-small") as srv:
        socks = [raw_handshake(srv) for _ in range(60)]
        part = Client.frame(OP_TEXT, b"q" * 5000)[:3000]      # an unfinished message
        for s in socks:
            s.sendall(part)
        codes = []
        for s in socks:
            s.settimeout(0.5)
            try:
                closes = [p for op, p in frames_of(read_until_closed(s, 0.5)) if op == OP_CLOSE]
            except OSError:
                closes = []
            codes.append(closes[0][:2] if closes else None)
        held = codes.count(None)
        # Each holds about 4 KiB: no more than 16 fit in 64 KiB.
        expect(held <= 16 and codes.count(b"\x03\xf1") == 60 - held,
               "%d of 60 still hold their 4 KiB under -M 64 KiB: %r" % (held, codes[:5]))
        expect(still_served(srv) < 1.0, "a bystander waited")


@case("table full: a new handshake drops the oldest one still in its handshake")
def test_eviction():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    with Server("-q", "-c", "0", name="eviction") as srv:
        early = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(20)]
        for s in early:                     # 20 handshakes at once, with room for all
            s.sendall(upgrade_request(new_key()))
        for s in early:
            s.settimeout(TIMEOUT)
            expect(s.recv(12) == b"HTTP/1.1 101", "a handshake of a burst was not served")
            s.close()
        idle = []
        for i in range(1008):               # MAX_CLIENTS + MAX_PENDING that never
            idle.append(socket.create_connection(("127.0.0.1", srv.port)))  # handshake
        burst = [Client(srv.port) for _ in range(12)]   # more than MAX_PENDING at once
        for i, c in enumerate(burst):
            c.send_json({"req": "text", "text": "served %d" % i})
            expect(c.recv_json()["content"] == "served %d" % i, "newcomer %d not served" % i)
        expect(wait_closed(idle[0], 2) is not None, "the oldest was not dropped")
        expect(wait_closed(idle[-1], 0.3) is None, "the newest idle one was dropped")
        expect(srv.wait_log("handshake dropped for a newer one"), "not logged")
        for s in idle:
            s.close()


@case("faults: out of file descriptors (EMFILE), the server sheds load and recovers")
def test_emfile():
    def low_limit():        # in the child: 32 descriptors, hard limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    with Server("-q", name="emfile", preexec=low_limit) as srv:
        held, refused = [], 0
        for _ in range(60):
            try:
                held.append(Client(srv.port))
            except (HandshakeRefused, OSError, AssertionError):
                refused += 1
        expect(refused > 0 and len(held) >= 20, "held %d, refused %d" % (len(held), refused))
        for c in held[:5]:
            c.send_json({"req": "text", "text": "alive"})
            expect(c.recv_json()["content"] == "alive", "held clients served")
        for c in held[20:]:
            c.close()
        again = Client(srv.port)
        again.send_json({"req": "text", "text": "back"})
        expect(again.recv_json()["content"] == "back", "new clients accepted again")
        expect(srv.proc.poll() is None, "server died")
        # strerror(EMFILE) is "Too many open files" in glibc, but not in musl
        expect(srv.wait_log(r"accept: .+; refusing a client"), "EMFILE logged")


@case("faults: peers that vanish mid-handshake, mid-frame, by RST or half-close")
def test_vanishing():
    with Server(name="vanish") as srv:
        adm = Client(srv.port)
        adm.send_json({"req": "get connections"})
        adm.recv_json()
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(upgrade_request(new_key())[:40])
        s.close()                                     # mid-handshake
        c = Client(srv.port)
        c.send_raw(Client.frame(OP_TEXT, b"x" * 100)[:20])
        c.drop()                                      # mid-frame
        c = Client(srv.port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.drop()                                      # RST
        c = Client(srv.port)
        c.sock.shutdown(socket.SHUT_WR)               # half-close: gone
        expect(c.wait_eof(), "half-closed client not closed")
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            adm.send_json({"req": "get connections"})
            roles = adm.recv_json()
            if list(roles["content"]) == [adm.key]:
                break
            time.sleep(0.05)
        expect(list(roles["content"]) == [adm.key], "leftovers in the list: %r" % roles)
        still_served(srv)
        expect(srv.proc.poll() is None, "server died")


@case("closing: the server closes TCP within CLOSE_TIMEOUT_S if the peer never answers")
def test_close_timeout():
    with Server(name="close-timeout") as srv:
        c = Client(srv.port)
        c.send_raw(Client.frame(OP_TEXT, b"x", rsv=1))
        code, _ = c.expect_close()
        expect(code == 1002, "close code %r" % code)
        t = wait_closed(c.sock, 8)   # we never send our close, nor close
        expect(t is not None and t <= 0.5, "no FIN after the close frame: %s" % t)
        s = raw_handshake(srv)
        s.sendall(Client.frame(OP_TEXT, b"x", rsv=1) + b"junk that keeps coming")
        t0 = time.time()
        for _ in range(60):                 # keep talking, never close
            try:
                s.sendall(b"more junk")
            except OSError:
                break
            time.sleep(0.1)
        expect(time.time() - t0 <= 5.5, "the server waited %.1f s" % (time.time() - t0))


@case("log: a slow stdout (256 KiB/s) never stalls another client; the log grows at most "
      "2x what is sent")
def test_slow_log():
    with Server(name="slow-log", slow_log=256 << 10) as srv:
        bystander = Client(srv.port)
        attacker = Client(srv.port, source=("127.0.0.2", 0))
        expect(srv.wait_log("Connection accepted.*\n(.*\n)*.*Connection accepted"), "both in")
        time.sleep(1.1)                 # the role table's second has passed
        before = len(srv.log_bytes())
        sent = [0]

        def attack():
            # 8 x 200 KiB of control bytes, in messages of 1000 (each byte
            # is 4 in a log that escapes it), then many tiny messages.
            for _ in range(8 * 200):
                attacker.send_frame(OP_TEXT, b"\x01" * 1000)
                sent[0] += 1000 + 8
            for _ in range(20000):
                attacker.send_frame(OP_TEXT, b"\x02")
                sent[0] += 7

        def drain():
            attacker.sock.settimeout(30)
            try:
                while attacker.sock.recv(1 << 16):
                    pass
            except OSError:
                pass

        threading.Thread(target=drain, daemon=True).start()
        sender = threading.Thread(target=attack)
        sender.start()
        worst, trips, mine = 0.0, 0, 0
        while sender.is_alive() or trips < 20:
            text = "trip %d" % trips
            t0 = time.time()
            bystander.send_json({"req": "text", "text": text})
            expect(bystander.recv_json(5)["content"] == text, "the bystander's echo")
            worst = max(worst, time.time() - t0)
            trips += 1
            mine += 8 + len(json.dumps({"req": "text", "text": text}, separators=(",", ":")))
        sender.join()
        # The log drains at 256 KiB/s: wait until it stops growing.
        size, still = len(srv.log_bytes()), 0
        while still < 10:
            time.sleep(0.1)
            now = len(srv.log_bytes())
            still = still + 1 if now == size else 0
            size = now
        grown = size - before
        print("slow log: worst round trip %.1f ms in %d; log grew %d bytes for %d sent" %
              (worst * 1000, trips, grown, sent[0] + mine))
        expect(worst < 0.1, "a round trip took %.0f ms" % (worst * 1000))
        expect(grown <= 2 * (sent[0] + mine), "the log grew %d bytes for %d sent" %
               (grown, sent[0] + mine))


def main():
    only = sys.argv[1:]
    tests = [test_handshake_timeout, test_heartbeat, test_pipelined_small, test_pipelined_large,
             test_never_reads, test_push_to_stuck_user, test_ping_flood, test_max_message,
             test_thousand, test_per_address, test_own_pages, test_one_address_memory, test_budget,
             test_budget_small,
             test_eviction, test_emfile, test_vanishing, test_close_timeout, test_slow_log]
    for t in tests:
        if not only or t.__name__ in only:
            t()
    finish()


if __name__ == "__main__":
    main()
