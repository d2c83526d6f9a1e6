"""Admin access and the teacher's console: who may become admin (token,
loopback with its Origin and Host rules, proxies, -A, -o), how fast a
token may be guessed, what the log never shows, and the console's
requests: presence by request, "watch users", names and numbers, kick,
push all.

The loopback rule is tested end to end with a client on another host:
a network namespace joined to this one by a veth pair, with addresses
this test assigns (10.231.0.0/30) and removes afterwards. That needs root
and ip(8); elsewhere it says SKIPPED.

    python3 admin.py                      run the tests
    python3 admin.py --remote HOST PORT [TOKEN]
                                          (inside the namespace) try to
                                          become admin; print one line
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

from wsclient import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Client, HandshakeRefused,
                      Partly, Server, Skip, build_shim, case, expect, finish, http_request,
                      report, skipped)

TOKEN = "correct horse battery staple"
STUDENT = "http://student.example"   # a page elsewhere: not this machine for admin


def become_admin(c, token=None, **more):
    req = dict({"req": "get connections"}, **more)
    if token is not None:
        req["token"] = token
    c.send_json(req)
    return c.recv_json()


def refused(reply, why):
    return reply["resp"] == "error" and why in reply["content"]


def wrong(reply):
    """A guess that was weighed, not one turned away while its address waits."""
    return reply == {"resp": "error", "content": "wrong admin token"}


@case("token: missing and wrong are refused; a user may not push; the right one works")
def test_token():
    with Server("-t", TOKEN, name="token") as srv:
        user, c = Client(srv.port), Client(srv.port)
        expect(refused(become_admin(c), "admin token required"), "no token")
        expect(wrong(become_admin(c, "wrong")), "a wrong token")
        c.send_json({"req": "push a user", "userkey": user.key, "text": "sneaky"})
        expect(refused(c.recv_json(), "only an admin may push"), "a user pushed")
        c.send_json({"req": "push all", "text": "sneaky"})
        expect(refused(c.recv_json(), "only an admin may push"), "a user pushed to all")
        c.send_json({"req": "kick", "userkey": user.key})
        expect(refused(c.recv_json(), "only an admin may kick"), "a user kicked")
        c.send_json({"req": "watch users"})
        expect(refused(c.recv_json(), "only an admin may watch"), "a user watched")
        c.send_json({"req": "get addresses"})
        expect(refused(c.recv_json(), "only an admin may get addresses"), "a user got addresses")
        expect(user.quiet_for(0.3), "the user received something from a non-admin")
        time.sleep(1.1)                     # the first wrong token's wait
        for attempt in ({"token": TOKEN.upper()}, {"token": TOKEN[:-1]},
                        {"token": TOKEN + " "}):
            a = Client(srv.port)
            reply = become_admin(a, **attempt)
            expect(wrong(reply) or refused(reply, "wait"),
                   "%r made an admin: %r" % (attempt, reply))
        c.send_json({"req": "get connections", "token": 42})
        expect(refused(c.recv_json(), '"token" must be a string'), "a number token")
        c.send_text('{"req":"get \\u0063onnections","token":"nope"}')
        expect(c.recv_json()["resp"] == "error", "an escaped req bypassed the token")
        deadline = time.time() + 70
        a = Client(srv.port)
        while time.time() < deadline:       # the address waits, then may try
            reply = become_admin(a, TOKEN)
            if reply["resp"] == "get connections":
                break
            expect(refused(reply, "wait"), "the right token: %r" % reply)
            time.sleep(0.5)
        expect(reply["resp"] == "get connections" and reply["content"][a.key] == "admin",
               "the right token never worked: %r" % reply)
        a.send_json({"req": "push a user", "userkey": user.key, "text": "from the teacher"})
        expect(user.recv_json()["content"] == "from the teacher", "admin push arrived")
        expect(srv.wait_log("Admin refused"), "refusals are logged")
        log = srv.log()
        expect(TOKEN not in log and TOKEN[:-1] not in log and TOKEN.upper() not in log,
               "a token is in the log")


@case("token: a wrong one makes its address wait 1, 2, 4 ... s, logged once each")
def test_penalty():
    with Server("-t", TOKEN, name="penalty") as srv:
        c = Client(srv.port, origin=STUDENT)   # not this machine's page: it may wait
        expect(wrong(become_admin(c, "guess 1")), "first guess")
        expect(refused(become_admin(c, "guess 2"), "wait"), "a guess at once after")
        expect(refused(become_admin(c, TOKEN), "your address"), "even the right one waits")
        teacher = Client(srv.port)              # this machine: never locked out
        expect(become_admin(teacher, TOKEN)["resp"] == "get connections",
               "the teacher's right token here waits")
        other = Client(srv.port, source=("127.0.0.2", 0))
        expect(become_admin(other, TOKEN)["resp"] == "get connections",
               "another address does not wait")
        time.sleep(1.1)
        expect(wrong(become_admin(c, "guess 3")), "after 1 s")
        time.sleep(1.1)
        expect(refused(become_admin(c, "guess 4"), "wait"), "the second wait is 2 s")
        expect(srv.wait_log("wait 1 s after 1 wrong tokens") and
               srv.wait_log("wait 2 s after 2 wrong tokens"), "penalties logged")
        expect(srv.log().count("wait 1 s after") == 1, "one line per penalty")


@case("token: three wrong ones on one connection close it with 1008")
def test_three_strikes():
    with Server("-t", TOKEN, name="strikes") as srv:
        c = Client(srv.port)
        for i, pause in enumerate((1.1, 2.1, 0)):
            expect(wrong(become_admin(c, "bad %d" % i)), "guess %d" % i)
            time.sleep(pause)
        code, _ = c.expect_close()
        expect(code == 1008, "third wrong token: close %r" % code)


@case("token: from one address, no more than 20 guesses in any 10 s")
def test_guess_rate():
    with Server("-t", TOKEN, "-q", name="guess-rate") as srv:
        guesses, c, t0 = 0, Client(srv.port), time.time()
        while time.time() - t0 < 10:
            try:
                reply = become_admin(c, "guess %d" % guesses)
            except (EOFError, ConnectionError, TimeoutError, AssertionError):
                c = Client(srv.port)            # closed after 3: come back
                continue
            guesses += wrong(reply)
        expect(0 < guesses <= 20, "%d guesses answered in 10 s" % guesses)


@case("token: 64 other addresses guessing do not flush a running penalty; a 65th waits")
def test_penalty_flush():
    with Server("-t", TOKEN, "-q", name="penalty-flush") as srv:
        c = Client(srv.port, origin=STUDENT)
        expect(wrong(become_admin(c, "guess 1")), "first guess")
        others = []
        for i in range(64):
            o = Client(srv.port, source=("127.0.1.%d" % (i + 1), 0))
            reply = become_admin(o, "other %d" % i)
            others.append(reply)
        expect(all(wrong(r) for r in others[:63]), "63 more addresses are weighed")
        expect(refused(others[63], "many addresses"),
               "a 65th address waits while 64 penalties run, and is told why")
        expect(refused(become_admin(c, TOKEN), "wait"), "the first address was flushed")


@case("token: 200 addresses guessing for 4 s: each within its penalties, all within 64 slots")
def test_guess_rate_many():
    with Server("-t", TOKEN, "-q", "-c", "0", name="guess-many") as srv:
        sources = ["127.0.%d.%d" % (2 + i // 200, 1 + i % 200) for i in range(200)]
        clients = {a: Client(srv.port, source=(a, 0)) for a in sources}
        weighed = dict.fromkeys(sources, 0)
        t0 = time.time()
        while time.time() - t0 < 4.0:
            for a in sources:
                try:
                    weighed[a] += wrong(become_admin(clients[a], "guess"))
                except (EOFError, ConnectionError, TimeoutError, AssertionError):
                    clients[a] = Client(srv.port, source=(a, 0))     # closed after 3
        total, most = sum(weighed.values()), max(weighed.values())
        print("guess rate: %d guesses weighed in 4 s from 200 addresses, at most %d from one"
              % (total, most))
        # README: an address waits 1, 2, 4 ... s (guesses at 0, 1, 3 s in 4 s);
        # 64 addresses are remembered at a time.
        expect(most <= 3, "%d guesses from one address in 4 s" % most)
        expect(64 <= total <= 64 * 3, "%d guesses in all in 4 s" % total)


@case("per address: IPv6 clients are counted by their /64 (-c), through a proxy we believe")
def test_ipv6_prefix():
    with Server("-c", "2", name="ipv6-64") as srv:
        xff = lambda addr: "X-Forwarded-For: %s\r\n" % addr
        held = [Client(srv.port, extra=xff("2001:db8:1:2::%x" % i)) for i in (1, 2)]
        try:
            Client(srv.port, extra=xff("2001:db8:1:2:ffff::9"))
            raise AssertionError("a third socket from 2001:db8:1:2::/64 was taken")
        except HandshakeRefused as e:
            expect(e.status == 503 and b"too many" in e.body, "refused: %r" % e.body)
        held.append(Client(srv.port, extra=xff("2001:db8:1:3::1")))    # another /64
        for c in held:
            c.close()


@case("token: -t random (or WSPUSH_ADMIN_TOKEN=random) makes 128 bits; the admin URL "
      "with it is printed once; it is hidden after")
def test_random_token():
    for args, env in ((["-t", "random"], None), ([], {"WSPUSH_ADMIN_TOKEN": "random"})):
        with Server(*args, env=env, name="random-token") as srv:
            expect(srv.wait_log(r"admin\.html\?token=[0-9a-f]{32}\n"), "no admin URL: %s" % args)
            token = re.search(r"admin\.html\?token=([0-9a-f]{32})", srv.log()).group(1)
            a = Client(srv.port)
            expect(refused(become_admin(a), "token required"), "a token is needed")
            expect(become_admin(a, token)["resp"] == "get connections", "the token works")
            a.send_json({"req": "text", "text": "it is %s" % token})
            expect(a.recv_json()["content"] == "it is %s" % token, "echo")
            expect(srv.wait_log(r"it is \*\*\*"), "hidden in a later line")
            expect(srv.log().count(token) == 1, "the token is in the log more than once")


@case("token: from WSPUSH_ADMIN_TOKEN, and never in the log however it is written")
def test_token_log():
    with Server(env={"WSPUSH_ADMIN_TOKEN": TOKEN}, name="token-env") as srv:
        a = Client(srv.port)
        expect(become_admin(a, TOKEN)["resp"] == "get connections", "env token refused")
        a.send_text('{"req":"get connections","token":"%s"' % TOKEN)   # broken JSON
        expect(a.recv_json()["resp"] == "error", "broken JSON")
        a.send_text('{"req":"get connections","\\u0074oken":"%s"}' % TOKEN.replace("o", "\\u006f"))
        expect(a.recv_json()["resp"] == "get connections", "escaped member")
        a.send_text('{"req":"get connections","token":"close %s"}' % TOKEN[:10])
        a.recv_json()
        a.send_text('{"req":"text","text":"my token is %s!"}' % TOKEN)
        expect(a.recv_json()["content"] == "my token is %s!" % TOKEN, "echo")
        http_request(srv.port, ("GET /admin.html?%%74oken=%s HTTP/1.1\r\nHost: x\r\n\r\n"
                                % TOKEN.replace(" ", "%20")).encode())
        expect(srv.wait_log(r"my token is \*\*\*!") and srv.wait_log(r"/admin\.html\?\*\*\*"),
               "the token is masked in a message and a URL")
        log = srv.log()
        for secret in (TOKEN, TOKEN[:10], TOKEN.replace(" ", "%20"), "\\u006f"):
            expect(secret not in log, "%r is in the log" % secret)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    expect(TOKEN not in ps, "the token shows in ps")


# Pauses wspush for 50 ms after each write to a socket (not to stdout or
# stderr): a log line written after its reply would be 50 ms late, and
# missing when the reply is read.
PAUSE_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <unistd.h>
ssize_t write(int fd, const void *p, size_t n)
{
    ssize_t (*real)(int, const void *, size_t) = dlsym(RTLD_NEXT, "write");
    ssize_t done = real(fd, p, n);
    if (fd > 2)
        usleep(50000);
    return done;
}
"""


@case("log: a line is written before the reply it tells of goes out (20 times)")
def test_log_first():
    shim = build_shim(PAUSE_SHIM)
    env = None if isinstance(shim, Skip) else {"LD_PRELOAD": shim}
    try:
        with Server(name="log-first", env=env) as srv:
            c = Client(srv.port)
            for i in range(20):
                c.send_json({"req": "text", "text": "order %d" % i})
                c.recv_json()
                expect('"order %d"' % i in srv.log(), "reply %d came before its log line" % i)
    finally:
        if not isinstance(shim, Skip):
            shutil.rmtree(os.path.dirname(shim), ignore_errors=True)
    if isinstance(shim, Skip):
        return Partly("the 50 ms pause after each reply: " + shim.why)


@case("log: C0, C1, bidirectional overrides and bad UTF-8 are escaped")
def test_log_injection():
    with Server(name="log-injection") as srv:
        c = Client(srv.port)
        c.send_json({"req": "text", "text": "a\u0085b\u009b2Jc\u202ed\u2066e\u2028f"})
        c.recv_json()
        c.send_text('{"req":"text","text":"\x1b[2J\x7f\x00"}'.encode())     # malformed
        c.recv_json()
        c.send_frame(OP_TEXT, b'{"req":"text","text":"\xc2\x85\xe2\x80\xae"}')
        c.recv_json()
        expect(srv.wait_log(r"a\\u\{0085\}b\\u\{009B\}2Jc\\u\{202E\}d\\u\{2066\}"
                            r"e\\u\{2028\}f") and srv.wait_log(r"\\x1b\[2J\\x7f\\x00"),
               "escapes: %r" % srv.log()[-300:])
        for raw in ("\u0085", "\u009b", "\u202e", "\u2066", "\x1b", "\x7f", "\x00"):
            expect(raw not in srv.log(), "%r reached the log" % raw)


@case("loopback: without a token, admins come from this machine (127.0.0.1, ::1)")
def test_loopback():
    with Server(name="loopback") as srv:
        expect(become_admin(Client(srv.port))["resp"] == "get connections", "127.0.0.1 refused")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        return Skip("this machine has no IPv6 loopback (::1)")
    with Server("-b", "::1", name="loopback6") as srv:
        a = Client(srv.port, host="::1")
        expect(become_admin(a)["resp"] == "get connections", "::1 refused")


@case("loopback: a page from elsewhere, a rebound DNS name, a proxied client are refused")
def test_loopback_origin():
    with Server(name="origin-rule") as srv:
        own = "http://127.0.0.1:%d" % srv.port
        for origin, host, extra, ok in (
                (None, None, "", True), (own, None, "", True),
                ("http://localhost:8000", None, "", True), ("https://[::1]", None, "", True),
                ("http://evil.example", None, "", False), ("null", None, "", False),
                ("http://127.0.0.1.evil.example", None, "", False),
                ("http://evil.example:%d" % srv.port, "evil.example:%d" % srv.port, "", False),
                (None, "localhost:%d" % srv.port, "", True),
                (None, None, "X-Forwarded-For: 127.0.0.1\r\n", False),
                (None, None, "X-Real-IP: 127.0.0.1\r\n", False),
                (None, None, "Forwarded: for=127.0.0.1\r\n", False)):
            a = Client(srv.port, origin=origin, host_header=host, extra=extra)
            reply = become_admin(a)
            expect((reply["resp"] == "get connections") == ok,
                   "Origin %r, Host %r, %r: %r" % (origin, host, extra, reply))
            a.close()


@case("proxy: behind this machine's proxy, the last X-Forwarded-For entry is logged and "
      "counted; X-Real-IP and Forwarded are not believed")
def test_forwarded():
    with Server("-c", "2", name="forwarded") as srv:
        xff = lambda addr: "X-Forwarded-For: 203.0.113.9, %s\r\n" % addr
        forged = ["X-Real-IP: 10.9.0.5\r\n", "Forwarded: for=10.9.0.6\r\n"]
        a = [Client(srv.port, extra=xff("10.9.0.1") + forged[i]) for i in range(2)]
        b = Client(srv.port, extra=xff("10.9.0.2"))
        try:
            Client(srv.port, extra=xff("10.9.0.1"))
            raise AssertionError("a third socket from 10.9.0.1 was taken")
        except HandshakeRefused as e:
            expect(e.status == 503 and b"too many" in e.body, "refused: %r" % e.body)
        b.send_json({"req": "text", "text": "x"})
        b.recv_json()
        b.close()
        expect(srv.wait_log("Peer 10.9.0.2 disconnected"), "the forwarded address is logged")
        for c in a:
            c.close()


def run_remote(ns, host, port, token=None):
    """Run this file's --remote mode inside the namespace; its JSON line."""
    cmd = ["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
           "--remote", host, str(port)] + ([token] if token else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise AssertionError("remote client failed: %s %s" % (out.stdout, out.stderr))
    return json.loads(lines[-1])


def test_remote():
    """A client on another host (a network namespace) is refused admin
    without a token, accepted with one, and accepted under -A."""
    name = "loopback: a client from another host is refused admin (network namespace)"
    if shutil.which("ip") is None:
        skipped(name, "needs ip(8) for a network namespace (apt-get install iproute2)")
        return
    if os.geteuid() != 0:
        skipped(name, "needs root for a network namespace (run the tests with sudo)")
        return
    ns = "wspush-test-%d" % os.getpid()
    host_if, ns_if = "wsp%dh" % (os.getpid() % 10000), "wsp%dn" % (os.getpid() % 10000)
    here, there = "10.231.0.1", "10.231.0.2"
    setup = [["ip", "netns", "add", ns],
             ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
             ["ip", "link", "set", ns_if, "netns", ns],
             ["ip", "addr", "add", here + "/30", "dev", host_if],
             ["ip", "link", "set", host_if, "up"],
             ["ip", "netns", "exec", ns, "ip", "addr", "add", there + "/30", "dev", ns_if],
             ["ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up"],
             ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]]
    try:
        for cmd in setup:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            if r.returncode != 0:
                skipped(name, "cannot make a network namespace here: %s" % r.stderr.strip())
                return
        with Server("-b", here, name="remote") as srv:
            got = run_remote(ns, here, srv.port)
            report(name, got["admin"] is False and "machine running wspush" in got["why"] and
                   got["push"] == "error" and got["echo"] is True, repr(got))
        with Server("-b", here, "-t", TOKEN, name="remote-token") as srv:
            got = run_remote(ns, here, srv.port, TOKEN)
            report("token: a client from another host with the token is admin",
                   got["admin"] is True, repr(got))
        with Server("-b", here, "-A", name="remote-anyone") as srv:
            got = run_remote(ns, here, srv.port)
            report("-A: a client from another host is admin, as in the tutorial",
                   got["admin"] is True and "WARNING" in srv.log(), repr(got))
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def remote_main(host, port, token):
    """Inside the namespace: try to become admin and to push; print JSON.
    The Host header says localhost, as an attacker's may: only the address
    the connection comes from tells who is on this machine."""
    c = Client(port, host=host, host_header="localhost:%d" % port)
    reply = become_admin(c, token)
    result = {"admin": reply["resp"] == "get connections",
              "why": reply.get("content") if reply["resp"] == "error" else None}
    c.send_json({"req": "push all", "text": "from afar"})
    result["push"] = c.recv_json()["resp"]
    c.send_json({"req": "text", "text": "hi"})
    result["echo"] = c.recv_json()["content"] == "hi"
    print(json.dumps(result))


@case("-A: anyone may become admin, and start-up warns about it")
def test_anyone():
    with Server("-A", name="anyone") as srv:
        expect("WARNING" in srv.log() and "-A" in srv.log(), "no warning")
        a = Client(srv.port, origin="http://evil.example")
        expect(become_admin(a)["resp"] == "get connections", "refused")


@case("origin: -o lists the pages allowed to connect; others get 403")
def test_origin():
    with Server("-o", "http://teacher.example", "-o", "http://localhost:8000",
                name="origin") as srv:
        for origin in ("http://teacher.example", "http://localhost:8000"):
            Client(srv.port, origin=origin).close()
        for origin in ("http://evil.example", "http://teacher.example.evil", "null", None):
            try:
                Client(srv.port, origin=origin)
                raise AssertionError("origin %r accepted" % origin)
            except HandshakeRefused as e:
                expect(e.status == 403, "origin %r got %s" % (origin, e.status))
        expect(srv.wait_log("403 origin not allowed"), "refusal logged")
    with Server(name="any-origin") as srv:        # without -o, any origin
        Client(srv.port, origin="http://anywhere.example").close()


@case("presence: the tutorial's admin gets a list only when it asks, as from its server")
def test_presence_by_request():
    with Server(name="presence") as srv:
        a = Client(srv.port)
        become_admin(a)
        u = Client(srv.port)
        u.close()
        v = Client(srv.port)
        v.drop()
        expect(a.quiet_for(0.5), "an unasked message reached the tutorial's admin")
        roles = become_admin(a)
        expect(list(roles["content"]) == [a.key], "asked: %r" % roles)


def users_of(msg):
    expect(msg["resp"] == "users", "expected a users list, got %r" % msg)
    return msg["content"]


@case("watch users: numbers, names, roles, addresses, times; updates on each change")
def test_watch():
    with Server(name="watch") as srv:
        a = Client(srv.port)
        become_admin(a)
        a.send_json({"req": "watch users"})
        first = users_of(a.recv_json())
        expect(len(first) == 1 and first[0]["key"] == a.key and first[0]["role"] == "admin" and
               first[0]["address"] == "127.0.0.1" and first[0]["name"] == "" and
               first[0]["since"].endswith("Z"), "the watcher itself: %r" % first)
        u1 = Client(srv.port)
        lst = users_of(a.recv_json())
        expect([u["key"] for u in lst] == [a.key, u1.key], "a join: %r" % lst)
        n1 = lst[1]["number"]
        expect(n1 > first[0]["number"], "numbers go up")
        u1.send_json({"req": "set name", "name": "  Ann Lee  "})
        expect(u1.recv_text() == b'{"resp":"set name","content":"Ann Lee"}', "name echoed")
        lst = users_of(a.recv_json())
        expect(lst[1]["name"] == "Ann Lee", "the name shows: %r" % lst)
        u2 = Client(srv.port)
        users_of(a.recv_json())
        u1.close()
        lst = users_of(a.recv_json())
        expect([u["key"] for u in lst] == [a.key, u2.key], "a leave: %r" % lst)
        u3 = Client(srv.port)
        lst = users_of(a.recv_json())
        expect(lst[-1]["key"] == u3.key and lst[-1]["number"] > lst[-2]["number"] > n1,
               "numbers are never reused: %r" % lst)


@case("names: control, bidi, 41 characters, lone surrogates, empty are refused; old name stays")
def test_names():
    with Server(name="names") as srv:
        u = Client(srv.port)
        u.send_json({"req": "set name", "name": "Zoë 😀"})
        expect(u.recv_json() == {"resp": "set name", "content": "Zoë 😀"}, "a good name")
        for bad in ("a\nb", "a\u0085b", "abc\u202edef", "x\u2066y", "x" * 41, "", "   ",
                    "tab\there", "\u007f", "lrm\u200e", "rlm\u200fx", "alm\u061cx"):
            u.send_json({"req": "set name", "name": bad})
            reply = u.recv_json()
            expect(reply["resp"] == "error", "%r was taken: %r" % (bad, reply))
        u.send_text('{"req":"set name","name":"\\ud800"}')
        expect(u.recv_json()["resp"] == "error", "a lone surrogate was taken")
        u.send_json({"req": "set name", "name": "y" * 40})
        expect(u.recv_json()["content"] == "y" * 40, "40 characters are fine")
        u.send_json({"req": "set name", "name": 7})
        expect(refused(u.recv_json(), '"name" must be a string'), "a number")
        a = Client(srv.port)
        become_admin(a)
        a.send_json({"req": "watch users"})
        lst = users_of(a.recv_json())
        expect(lst[0]["name"] == "y" * 40, "the last good name stays: %r" % lst)


@case("kick: the user gets close 4000, 'closed by the teacher'; only admins kick")
def test_kick():
    with Server(name="kick") as srv:
        a, u, other = Client(srv.port), Client(srv.port), Client(srv.port)
        become_admin(a)
        a.send_json({"req": "kick", "userkey": u.key})
        expect(a.recv_json() == {"resp": "text", "content": "Closed."}, "kick answered")
        code, reason = u.expect_close()
        expect(code == 4000 and reason == "closed by the teacher", "%r %r" % (code, reason))
        a.send_json({"req": "kick", "userkey": u.key})
        expect(refused(a.recv_json(), "no such user"), "kick of a user who has gone")
        other.send_json({"req": "text", "text": "still here"})
        expect(other.recv_json()["content"] == "still here", "the others stay")
        expect(srv.wait_log("4000 closed by the teacher"), "kick logged")


class Watcher(threading.Thread):
    """An admin that watches and reads all the time, answering pings."""

    def __init__(self, port):
        threading.Thread.__init__(self, daemon=True)
        self.c = Client(port)
        become_admin(self.c)
        self.c.send_json({"req": "watch users"})
        self.lists, self.times, self.closed, self.stop = [], [], None, False

    def run(self):
        while not self.stop:
            try:
                op, payload = self.c.recv_frame(0.2)
            except TimeoutError:
                continue
            except (EOFError, ConnectionError):
                self.closed = "EOF"
                return
            if op == OP_PING:
                self.c.send_frame(OP_PONG, payload)
            elif op == OP_CLOSE:
                self.closed = payload
                return
            elif op == OP_TEXT:
                self.lists.append(json.loads(payload))
                self.times.append(time.time())

    def last(self):
        return [u["key"] for u in self.lists[-1]["content"]]


@case("watch users: a watcher that reads is never closed while 300 come and go")
def test_watch_churn():
    with Server("-q", "-c", "100", name="watch-churn") as srv:
        w = Watcher(srv.port)
        w.start()
        keep = [Client(srv.port, source=("127.0.0.%d" % (2 + i % 5), 0)) for i in range(20)]
        for round_ in range(10):                    # 300 come and go
            batch = [Client(srv.port, source=("127.0.0.%d" % (2 + i % 5), 0)) for i in range(30)]
            for i, c in enumerate(batch):
                c.drop() if i % 2 else c.close()
        want = [w.c.key] + [c.key for c in keep]
        deadline = time.time() + 10
        while time.time() < deadline and (not w.lists or w.last() != want):
            time.sleep(0.05)
        w.stop = True
        w.join(5)
        expect(w.closed is None, "the watcher was closed: %r" % (w.closed,))
        expect(w.lists and w.last() == want, "it ends with the wrong list")
        print("watch users: %d lists for 620 comings and goings" % len(w.lists))


@case("watch users: at most 4 lists a second, the last change within 250 ms; "
      "at most 5 names a second")
def test_list_rate():
    with Server("-q", "-c", "0", name="list-rate") as srv:
        u = Client(srv.port)
        for i in range(200):
            u.send_json({"req": "set name", "name": "name %d" % i})
        replies = [u.recv_json() for _ in range(200)]
        taken = [r for r in replies if r["resp"] == "set name"]
        expect(len(taken) == 5 and all(refused(r, "too many names") for r in replies[5:]),
               "%d of 200 names at once were taken" % len(taken))
        w = Watcher(srv.port)
        w.start()
        t0 = time.time()
        while time.time() - t0 < 2.0:               # comings and goings for 2 s
            c = Client(srv.port)
            u.send_json({"req": "set name", "name": "n%d" % int((time.time() - t0) * 1000)})
            u.recv_json()
            c.drop()
        changed = time.time()
        want = [u.key, w.c.key]
        deadline = changed + 2
        while time.time() < deadline and (not w.lists or sorted(w.last()) != sorted(want)):
            time.sleep(0.01)
        w.stop = True
        w.join(5)
        took = w.times[-1] - changed
        during = [t for t in w.times if t0 <= t <= changed]
        print("watch users: %d lists in %.1f s of changes; the last %.0f ms after them" %
              (len(during), changed - t0, took * 1000))
        expect(sorted(w.last()) == sorted(want), "it ends with the wrong list")
        expect(len(during) <= (changed - t0) * 4 + 1, "%d lists in %.1f s" %
               (len(during), changed - t0))
        expect(took <= 0.25 + 0.1, "the last change came %.0f ms late" % (took * 1000))


@case("shutdown: with a watcher and 400 users, every client gets 1001")
def test_shutdown_watcher():
    srv = Server("-q", "-c", "0", name="shutdown-watcher")
    w = Watcher(srv.port)
    w.start()
    users = [Client(srv.port) for _ in range(400)]
    time.sleep(0.2)
    srv.proc.send_signal(15)
    codes = set()
    for u in users:
        code, _ = u.expect_close()
        codes.add(code)
    w.join(5)
    status = srv.stop()
    expect(codes == {1001}, "users got %r" % codes)
    expect(w.closed is not None and w.closed[:2] == b"\x03\xe9", "the watcher got %r" % (w.closed,))
    expect(status == 0, "exit status %r" % status)


@case("push all: every user gets it, admins do not; the count is right")
def test_push_all():
    with Server(name="push-all") as srv:
        a = Client(srv.port)
        become_admin(a)
        users = [Client(srv.port) for _ in range(3)]
        other_admin = Client(srv.port)
        become_admin(other_admin)
        a.send_json({"req": "push all", "text": "<b>everyone</b> \"quoted\""})
        expect(a.recv_text() == b'{"resp":"text","content":"Sent to 3 users."}', "count")
        for u in users:
            expect(u.recv_text() == b'{"resp":"text","content":"<b>everyone</b> \\"quoted\\""}',
                   "user missed it")
        expect(other_admin.quiet_for(0.3), "an admin got the broadcast")
        users[0].close()
        a.send_json({"req": "push all", "text": "fewer"})
        expect(a.recv_json()["content"] == "Sent to 2 users.", "count after a leave")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--remote":
        remote_main(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
        return
    only = sys.argv[1:]
    tests = [test_token, test_penalty, test_three_strikes, test_guess_rate, test_penalty_flush,
             test_guess_rate_many, test_ipv6_prefix, test_random_token, test_token_log,
             test_log_first, test_log_injection, test_loopback, test_loopback_origin,
             test_forwarded, test_remote, test_anyone, test_origin, test_presence_by_request,
             test_watch, test_names, test_kick, test_watch_churn, test_list_rate,
             test_shutdown_watcher,
             test_push_all]
    for t in tests:
        if not only or t.__name__ in only:
            t()
    finish()


if __name__ == "__main__":
    main()
