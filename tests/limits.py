"""Limits, timeouts and faults: what hostile or broken peers get, and
that everyone else keeps being served meanwhile.

Each test starts its own wspush with short timeouts, so the whole file
runs in well under a minute. Memory is read from /proc/PID/status.
"""
import json
import os
import resource
import socket
import struct
import time

from wsclient import (OP_PING, OP_PONG, OP_TEXT, Client, HandshakeRefused,
                      Server, case, expect, finish, upgrade_request, new_key, TIMEOUT)


def rss_kb(srv, field="VmHWM"):
    """The server's peak (VmHWM) or current (VmRSS) resident memory, in KiB.
    Under a sanitizer or valgrind (WSPUSH_TAG set) memory means nothing,
    and 0 is returned so the bounds are not checked there."""
    if os.environ.get("WSPUSH_TAG"):
        return 0
    with open("/proc/%d/status" % srv.proc.pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s" % field)


def still_served(srv, text="still here"):
    """A fresh client gets its echo: the server is alive and responsive."""
    c = Client(srv.port)
    t0 = time.time()
    c.send_json({"req": "text", "text": text})
    expect(c.recv_json(2.0)["content"] == text, "echo for a bystander")
    elapsed = time.time() - t0
    c.close()
    return elapsed


def admin(srv):
    a = Client(srv.port)
    a.send_json({"req": "get connections"})
    a.recv_json()
    return a


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


@case("timeouts: an unfinished handshake is dropped after -T seconds")
def test_handshake_timeout():
    with Server("-T", "1", name="handshake-timeout") as srv:
        half = socket.create_connection(("127.0.0.1", srv.port))
        half.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        slow = socket.create_connection(("127.0.0.1", srv.port))
        still_served(srv)
        # slowloris: a byte every 0.2 s does not extend the deadline
        t0 = time.time()
        for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-a: b\r\n":
            try:
                slow.send(bytes([b]))
            except OSError:
                break
            time.sleep(0.2)
            if time.time() - t0 > 4:
                break
        expect(wait_closed(slow, 3) is not None, "slowloris client not dropped")
        expect(time.time() - t0 < 3.5, "slowloris lasted %.1f s" % (time.time() - t0))
        expect(wait_closed(half, 3) is not None, "half a handshake not dropped")
        expect(srv.wait_log("timed out"), "timeout logged")
        still_served(srv)


@case("heartbeat: a silent client is pinged, dropped, and leaves the admin's list")
def test_heartbeat():
    with Server("-i", "1", "-k", "1", name="heartbeat") as srv:
        adm = admin(srv)
        silent = Client(srv.port)
        lively = Client(srv.port)
        roles = None
        for _ in range(2):          # presence: two joins
            roles = adm.recv_json()
        expect(silent.key in roles["content"], "silent client listed")
        op, _ = silent.recv_frame(3)
        expect(op == OP_PING, "silent client was pinged")
        deadline = time.time() + 6
        while time.time() < deadline:     # the lively one answers pings
            try:
                op, payload = lively.recv_frame(0.2)
                if op == OP_PING:
                    lively.send_frame(OP_PONG, payload)
            except TimeoutError:
                pass
            try:
                msg = adm.recv_json(0.05)
                adm.send_frame(OP_PONG, b"")   # the admin is alive too
                if silent.key not in msg["content"]:
                    roles = msg
                    break
            except TimeoutError:
                pass
            except AssertionError:        # a ping for the admin
                adm.send_frame(OP_PONG, b"")
        expect(roles is not None and silent.key not in roles["content"],
               "silent client still listed")
        expect(lively.key in roles["content"], "lively client dropped")
        expect(silent.wait_eof(1), "silent client's socket not closed")
        expect(srv.wait_log("did not answer a ping"), "drop logged")


@case("backpressure: a client that never reads is closed with 1008, memory bounded")
def test_backpressure():
    with Server("-q", "-s", "65536", name="backpressure") as srv:
        c = socket.create_connection(("127.0.0.1", srv.port))
        key = new_key()
        c.sendall(upgrade_request(key))
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.recv(1)
        request = Client.frame(OP_TEXT, json.dumps({"req": "text", "text": "x" * 60000}).encode())
        c.settimeout(0.5)
        sent = 0
        for _ in range(2000):             # at most 120 MB; stops when the server stops
            try:
                c.sendall(request)
                sent += 1
            except (socket.timeout, OSError):
                break
        # A bystander is served at once while the flood sits in the queue.
        elapsed = still_served(srv)
        expect(elapsed < 1.0, "bystander waited %.2f s" % elapsed)
        peak = rss_kb(srv)
        expect(peak < 40 * 1024, "server peak memory %d KiB" % peak)
        # Read what is there, quickly (the server waits CLOSE_TIMEOUT_S for
        # a goodbye): the replies already queued, then a close with 1008.
        c.settimeout(TIMEOUT)
        data = b""
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                chunk = c.recv(1 << 20)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        close_at = data.rfind(b"\x88")
        expect(close_at >= 0 and data[close_at + 2:close_at + 4] == b"\x03\xf0",
               "no close 1008 after %d requests (%d bytes read)" % (sent, len(data)))
        expect(srv.wait_log("is not reading"), "slow reader logged")


@case("backpressure: pushes to a user who never reads close that user, not the admin")
def test_push_to_stuck_user():
    with Server("-q", "-s", "4096", name="stuck-user") as srv:
        adm = admin(srv)
        stuck = socket.create_connection(("127.0.0.1", srv.port))
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = new_key()
        stuck.sendall(upgrade_request(key))
        adm.recv_json()                   # presence: the stuck user joined
        replies = []
        for i in range(400):
            adm.send_json({"req": "push a user", "userkey": key, "text": "y" * 30000})
            reply = adm.recv_json()
            while reply["resp"] == "get connections":
                reply = adm.recv_json()
            replies.append(reply)
            if reply["resp"] != "text" or reply["content"] != "Already sent.":
                break
        last = replies[-1]
        expect(last["resp"] in ("error", "text") and last["content"] != "Already sent.",
               "admin never told: %r" % last)
        adm.send_json({"req": "text", "text": "admin fine"})
        msg = adm.recv_json()
        while msg["resp"] == "get connections":
            msg = adm.recv_json()
        expect(msg["content"] == "admin fine", "admin still served")
        stuck.close()
        adm.close()


@case("backpressure: pings from a client that never reads its pongs end in 1008")
def test_ping_flood():
    with Server("-q", "-s", "65536", name="ping-flood") as srv:
        c = Client(srv.port)
        ping = Client.frame(OP_PING, b"p" * 125)
        c.sock.settimeout(0.5)
        for _ in range(200):                  # at most 26 MB of pings
            try:
                c.sock.sendall(ping * 1000)
            except (socket.timeout, OSError):
                break
        code = None
        try:
            code, _ = c.expect_close(20)
        except (EOFError, ConnectionResetError, TimeoutError):
            pass
        expect(code == 1008, "close code %r" % code)
        expect(srv.wait_log("is not reading"), "not logged")
        expect(rss_kb(srv) < 40 * 1024, "server peak memory %d KiB" % rss_kb(srv))


@case("-m: a message over the limit gets 1009, and nothing is allocated for it")
def test_max_message():
    with Server("-m", "1000", name="max-message") as srv:
        before = rss_kb(srv)
        c = Client(srv.port)
        # a header that claims 1 GiB, and no payload
        c.send_raw(b"\x81\xff" + struct.pack("!Q", 1 << 30) + b"abcd")
        code, _ = c.expect_close()
        expect(code == 1009, "close code %r" % code)
        expect(rss_kb(srv) - before < 1024, "memory grew for a claimed length")
        c = Client(srv.port)
        c.send_frame(OP_TEXT, b"x" * 600, fin=False)
        c.send_frame(0, b"x" * 600)
        code, _ = c.expect_close()
        expect(code == 1009, "fragments over -m: close code %r" % code)
        c = Client(srv.port)
        text = json.dumps({"req": "text", "text": "z" * 950})
        expect(len(text) <= 1000, "test message fits")
        c.send_text(text)
        expect(c.recv_json()["content"] == "z" * 950, "a message at the limit passes")
        c.close()


@case("limits: 1000 clients at once are served; the next one gets 503")
def test_thousand():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    with Server("-q", name="thousand") as srv:
        clients = [Client(srv.port) for _ in range(1000)]
        try:
            Client(srv.port)
            raise AssertionError("client 1001 was accepted")
        except HandshakeRefused as e:
            expect(e.status == 503, "client 1001 got %s" % e.status)
        for i, c in enumerate(clients):
            c.send_json({"req": "text", "text": "n%d" % i})
        for i, c in enumerate(clients):
            expect(c.recv_json()["content"] == "n%d" % i, "client %d served" % i)
        peak = rss_kb(srv)
        for c in clients[:10]:
            c.close()
        still_served(srv)
        for c in clients[10:]:
            c.drop()
        expect(peak < 20 * 1024, "peak memory with 1000 clients: %d KiB" % peak)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


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
        expect("Too many open files" in srv.log(), "EMFILE logged")


@case("faults: peers that vanish mid-handshake, mid-frame, by RST or half-close")
def test_vanishing():
    with Server(name="vanish") as srv:
        adm = admin(srv)
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(upgrade_request(new_key())[:40])
        s.close()                                     # mid-handshake
        c = Client(srv.port)
        adm.recv_json()
        c.send_raw(Client.frame(OP_TEXT, b"x" * 100)[:20])
        c.drop()                                      # mid-frame
        adm.recv_json()
        c = Client(srv.port)
        adm.recv_json()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.drop()                                      # RST
        adm.recv_json()
        c = Client(srv.port)
        adm.recv_json()
        c.sock.shutdown(socket.SHUT_WR)               # half-close: gone
        expect(c.wait_eof(), "half-closed client not closed")
        roles = adm.recv_json()
        expect(list(roles["content"]) == [adm.key], "leftovers in the list: %r" % roles)
        still_served(srv)
        expect(srv.proc.poll() is None, "server died")


@case("closing: the server closes TCP within a bounded time if the peer never answers")
def test_close_timeout():
    with Server(name="close-timeout") as srv:
        c = Client(srv.port)
        c.send_raw(Client.frame(OP_TEXT, b"x", rsv=1))
        code, _ = c.expect_close()
        expect(code == 1002, "close code %r" % code)
        t = wait_closed(c.sock, 8)   # we never send our close
        expect(t is not None and t <= 6.5, "TCP still open after %s s" % t)


def main():
    test_handshake_timeout()
    test_heartbeat()
    test_backpressure()
    test_push_to_stuck_user()
    test_ping_flood()
    test_max_message()
    test_thousand()
    test_emfile()
    test_vanishing()
    test_close_timeout()
    finish()


if __name__ == "__main__":
    main()
