"""Admin access and presence: who may list and push, the Origin list,
join/leave announcements, and push to all.

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
import shutil
import socket
import subprocess
import sys

from wsclient import (Client, HandshakeRefused, Server, case, expect, finish,
                      report, skipped)

TOKEN = "correct horse battery staple"


def become_admin(c, token=None):
    req = {"req": "get connections"}
    if token is not None:
        req["token"] = token
    c.send_json(req)
    return c.recv_json()


def next_reply(c):
    """The next reply that is not a presence list."""
    msg = c.recv_json()
    while msg["resp"] == "get connections":
        msg = c.recv_json()
    return msg


@case("token: right, wrong and missing; 3 wrong close with 1008")
def test_token():
    with Server("-t", TOKEN, name="token") as srv:
        user = Client(srv.port)
        c = Client(srv.port)
        for attempt in ({}, {"token": "wrong"}, {"token": TOKEN.upper()},
                        {"token": TOKEN[:-1]}, {"token": TOKEN + " "}, {"token": 42}):
            c.send_json(dict({"req": "get connections"}, **attempt))
            reply = c.recv_json()
            expect(reply["resp"] == "error", "%r made an admin: %r" % (attempt, reply))
            c.close()
            c = Client(srv.port)
        # the article's admin page sends no token: refused, stays a user
        reply = become_admin(c)
        expect(reply["resp"] == "error" and "token" in reply["content"], repr(reply))
        c.send_json({"req": "push a user", "userkey": user.key, "text": "sneaky"})
        expect(next_reply(c)["resp"] == "error", "a user pushed")
        c.send_json({"req": "push all", "text": "sneaky"})
        expect(next_reply(c)["resp"] == "error", "a user pushed to all")
        expect(user.quiet_for(0.3), "the user received a push from a non-admin")
        # an escaped request name is the same request
        c.send_text('{"req":"get \\u0063onnections","token":"nope"}')
        expect(c.recv_json()["resp"] == "error", "escaped req bypassed the token")
        c.send_json({"req": "get connections", "token": "third try"})
        expect(c.recv_json()["resp"] == "error", "third wrong token")
        code, _ = c.expect_close()
        expect(code == 1008, "third wrong token: close %r" % code)
        # the right token works
        a = Client(srv.port)
        roles = become_admin(a, TOKEN)
        expect(roles["resp"] == "get connections" and roles["content"][a.key] == "admin",
               repr(roles))
        a.send_json({"req": "push a user", "userkey": user.key, "text": "from the teacher"})
        expect(user.recv_json()["content"] == "from the teacher", "admin push arrived")
        log = srv.log()
        expect("Admin refused" in log, "refusals are logged")
        expect(TOKEN not in log and TOKEN[:-1] not in log, "the token is in the log")


@case("token: from WSPUSH_ADMIN_TOKEN, and never in the log, even in broken JSON")
def test_token_env():
    with Server(env={"WSPUSH_ADMIN_TOKEN": TOKEN}, name="token-env") as srv:
        a = Client(srv.port)
        expect(become_admin(a)["resp"] == "error", "no token accepted")
        a.close()
        a = Client(srv.port)
        expect(become_admin(a, TOKEN)["resp"] == "get connections", "env token refused")
        a.send_text('{"req":"get connections","token":"%s"' % TOKEN)   # broken JSON
        expect(a.recv_json()["resp"] == "error", "broken JSON")
        a.send_text('{"req":"text","text":"my token is %s!"}' % TOKEN)
        expect(a.recv_json()["content"] == "my token is %s!" % TOKEN, "echo")
        expect(TOKEN not in srv.log(), "the token is in the log")
        expect("is not logged" in srv.log(), "a message with a token key is cut")
        expect("my token is ***!" in srv.log(), "the token elsewhere is masked")
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    expect(TOKEN not in ps, "the token shows in ps")


@case("loopback: without a token, admins come from this machine (127.0.0.1, ::1)")
def test_loopback():
    with Server(name="loopback") as srv:
        a = Client(srv.port)
        expect(become_admin(a)["resp"] == "get connections", "127.0.0.1 refused")
    try:                            # IPv6 loopback, where the machine has it
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        return
    with Server("-b", "::1", name="loopback6") as srv:
        a = Client(srv.port, host="::1")
        expect(become_admin(a)["resp"] == "get connections", "::1 refused")


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
    if os.geteuid() != 0 or shutil.which("ip") is None:
        why = "needs root and ip(8) for a network namespace"
        (report(name, False, why) if os.environ.get("CI") else skipped(name, why))
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
                why = "cannot make a network namespace here: %s" % r.stderr.strip()
                (report(name, False, why) if os.environ.get("CI") else skipped(name, why))
                return
        ok = True
        with Server("-b", here, name="remote") as srv:
            got = run_remote(ns, here, srv.port)
            ok &= got["admin"] is False and "machine running wspush" in got["why"]
            ok &= got["push"] == "error" and got["echo"] is True
            report(name, ok, repr(got))
        with Server("-b", here, "-t", TOKEN, name="remote-token") as srv:
            got = run_remote(ns, here, srv.port, TOKEN)
            report("token: a client from another host with the token is admin",
                   got["admin"] is True, repr(got))
        with Server("-b", here, "-A", name="remote-anyone") as srv:
            got = run_remote(ns, here, srv.port)
            report("-A: a client from another host is admin, as in the article",
                   got["admin"] is True and "WARNING" in srv.log(), repr(got))
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def remote_main(host, port, token):
    """Inside the namespace: try to become admin and to push; print JSON."""
    c = Client(port, host=host)
    reply = become_admin(c, token)
    result = {"admin": reply["resp"] == "get connections",
              "why": reply.get("content") if reply["resp"] == "error" else None}
    c.send_json({"req": "push all", "text": "from afar"})
    result["push"] = next_reply(c)["resp"]
    c.send_json({"req": "text", "text": "hi"})
    result["echo"] = next_reply(c)["content"] == "hi"
    print(json.dumps(result))


@case("-A: anyone may become admin, and start-up warns about it")
def test_anyone():
    with Server("-A", name="anyone") as srv:
        expect("WARNING" in srv.log() and "-A" in srv.log(), "no warning")
        a = Client(srv.port)
        expect(become_admin(a)["resp"] == "get connections", "refused")


@case("origin: -o lists the pages allowed to connect; others get 403")
def test_origin():
    with Server("-o", "http://teacher.example", "-o", "http://localhost:8000",
                name="origin") as srv:
        for origin in ("http://teacher.example", "http://localhost:8000"):
            c = Client(srv.port, origin=origin)
            c.close()
        for origin in ("http://evil.example", "http://teacher.example.evil", "null", None):
            try:
                Client(srv.port, origin=origin)
                raise AssertionError("origin %r accepted" % origin)
            except HandshakeRefused as e:
                expect(e.status == 403, "origin %r got %s" % (origin, e.status))
        expect("403 origin not allowed" in srv.log(), "refusal logged")
    with Server(name="any-origin") as srv:        # without -o, any origin
        Client(srv.port, origin="http://anywhere.example").close()


@case("presence: every admin sees each join and leave without asking")
def test_presence():
    with Server(name="presence") as srv:
        a1, a2 = Client(srv.port), Client(srv.port)
        become_admin(a1)
        roles = become_admin(a2)
        expect(list(roles["content"].values()) == ["admin", "admin"], repr(roles))
        expect(a1.recv_json()["content"][a2.key] == "admin", "a1 told a2 became admin")
        u = Client(srv.port)
        for a in (a1, a2):
            roles = a.recv_json()
            expect(roles["resp"] == "get connections" and roles["content"].get(u.key) == "user",
                   "join: %r" % roles)
        u.close()
        for a in (a1, a2):
            roles = a.recv_json()
            expect(u.key not in roles["content"], "leave: %r" % roles)
        v = Client(srv.port)
        for a in (a1, a2):
            a.recv_json()
        v.drop()                                   # vanishing counts too
        for a in (a1, a2):
            expect(v.key not in a.recv_json()["content"], "vanished user listed")


@case("push all: every user gets it, admins do not; the count is right")
def test_push_all():
    with Server(name="push-all") as srv:
        a = Client(srv.port)
        become_admin(a)
        users = [Client(srv.port) for _ in range(3)]
        for _ in users:
            a.recv_json()
        other_admin = Client(srv.port)
        a.recv_json()
        become_admin(other_admin)
        a.recv_json()
        a.send_json({"req": "push all", "text": "<b>everyone</b> \"quoted\""})
        expect(a.recv_json() == {"resp": "text", "content": "Sent to 3 users."}, "count")
        for u in users:
            expect(u.recv_json() == {"resp": "text", "content": "<b>everyone</b> \"quoted\""},
                   "user missed it")
        expect(other_admin.quiet_for(0.3), "an admin got the broadcast")
        users[0].close()
        a.recv_json()
        a.send_json({"req": "push all", "text": "fewer"})
        expect(next_reply(a)["content"] == "Sent to 2 users.", "count after a leave")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--remote":
        remote_main(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
        return
    test_token()
    test_token_env()
    test_loopback()
    test_remote()
    test_anyone()
    test_origin()
    test_presence()
    test_push_all()
    finish()


if __name__ == "__main__":
    main()
