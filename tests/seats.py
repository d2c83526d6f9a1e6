"""Seats: a student's seat survives a dropped connection, and the teacher
sees what was delivered. Over real sockets, Python's standard library
only (tests/seats.js does the same in Chromium, through a relay that can
silence and reset a connection).

A page asks for its seat and gets a secret; on a new connection it sends
the secret and takes the seat back: its number, its name, the pushes it
has not acknowledged. The old connection, if any, is closed (4001); a
push to any key the seat held reaches it; while it is away, pushes wait,
and after -g seconds it is gone and they are lost. An admin that sends a
"ref" gets a receipt for each step: sent, queued, seen, lost.

    python3 seats.py [TEST...]
"""
import json
import re
import sys
import threading
import time

from wsclient import (OP_CLOSE, OP_TEXT, Client, Server, case, expect, finish, sanitized,
                      TIMEOUT)

SECRET = re.compile(r"^seat-[0-9a-f]{4}[0-9a-f]{32}$")   # its slot, then 128 bits


def seat(c, secret=None):
    """Ask for c's seat (taking back the seat of secret, if given)."""
    c.send_json({"req": "seat", "secret": secret} if secret else {"req": "seat"})
    reply = c.recv_json()
    expect(reply["resp"] == "seat", "expected a seat, got %r" % reply)
    return reply


def admin(port):
    """An admin on this machine (the loopback rule), watching the users."""
    a = Client(port)
    a.send_json({"req": "get connections"})
    expect(a.recv_json()["resp"] == "get connections", "not admin")
    return a


def texts_until(c, want, timeout=TIMEOUT):
    """Messages c gets until one satisfies want(msg); returns them all."""
    got, deadline = [], time.time() + timeout
    while True:
        got.append(c.recv_json(max(0.01, deadline - time.time())))
        if want(got[-1]):
            return got


def receipts(a, n, timeout=TIMEOUT, others=None):
    """The next n receipts a gets; other replies go to others, if given."""
    got, deadline = [], time.time() + timeout
    while len(got) < n:
        msg = a.recv_json(max(0.01, deadline - time.time()))
        if msg["resp"] == "receipt":
            got.append((msg["ref"], msg["number"], msg["state"]))
        elif others is not None:
            others.append(msg)
    return got


def all_receipts(a, others, quiet=0.5):
    """Every receipt a gets until none comes for `quiet' seconds."""
    got = []
    while True:
        try:
            got += receipts(a, 1, quiet, others)
        except (TimeoutError, OSError):
            return got


def push(a, key, text, ref=None):
    req = {"req": "push a user", "userkey": key, "text": text}
    if ref:
        req["ref"] = ref
    a.send_json(req)


def users(a):
    """Ask for the list (watching) and return the newest one."""
    a.send_json({"req": "watch users"})
    return [m for m in texts_until(a, lambda m: m["resp"] == "users")][-1]["content"]


def seen(c, msg):
    c.send_json({"req": "seen", "id": msg["id"]})


@case("seats: a page gets a seat and a secret of 128 bits, in no log line or trace")
def test_secret():
    with Server("-v", name="seat-secret") as srv:
        c = Client(srv.port)
        mine = seat(c)
        expect(SECRET.match(mine["secret"]) and mine["number"] >= 1 and mine["name"] == "",
               "seat: %r" % mine)
        again = seat(c, mine["secret"])
        expect(again == mine, "asked again, its seat changed: %r" % again)
        other = seat(Client(srv.port))
        expect(other["secret"] != mine["secret"] and other["number"] != mine["number"],
               "two pages, one seat")
        expect(srv.wait_log(r'"secret":"\*\*\*"'), "the request is not logged as expected")
        log = srv.log()
        expect(mine["secret"][5:] not in log and other["secret"][5:] not in log,
               "a secret is in the log or the trace")


@case("seats: back on a new connection, a page takes its seat: same number and name; "
      "the old one is closed (4001); pushes to any key it held reach it")
def test_take_back():
    with Server(name="seat-back") as srv:
        a = admin(srv.port)
        old = Client(srv.port)
        mine = seat(old)
        old.send_json({"req": "set name", "name": "Ann"})
        old.recv_json()
        new = Client(srv.port)
        back = seat(new, mine["secret"])
        expect(back["number"] == mine["number"] and back["name"] == "Ann", "back: %r" % back)
        code, reason = old.expect_close(1.0)
        expect(code == 4001 and "taken by a new connection" in reason, "old: %r" % ((code,
                                                                                    reason),))
        a.send_json({"req": "get connections"})
        roles = a.recv_json()["content"]
        expect(list(roles) == [a.key, new.key] or list(roles) == [new.key, a.key],
               "get connections lists the seat once, by its new key: %r" % roles)
        for key in (old.key, new.key):          # the teacher's pick, and a fresh one
            push(a, key, "to %s" % key)
            expect(a.recv_json() == {"resp": "text", "content": "Already sent."}, "push")
            msg = new.recv_json()
            expect(msg["content"] == "to %s" % key and msg["id"], "pushed: %r" % msg)
        new.close()


@case("seats: away, pushes are queued in order and delivered when the page is back; "
      "receipts say queued, sent, seen")
def test_away():
    with Server(name="seat-away") as srv:
        a = admin(srv.port)
        u = Client(srv.port)
        mine = seat(u)
        u.drop()                                # the Wi-Fi drops: no close frame
        deadline = time.time() + TIMEOUT
        while not [x for x in users(a) if x["number"] == mine["number"] and x.get("away")]:
            expect(time.time() < deadline, "the seat never showed away")
        for i in range(3):
            push(a, u.key, "while away %d" % i, ref="r%d" % i)
        replies = []
        want = [("r%d" % i, mine["number"], "queued") for i in range(3)]
        expect(receipts(a, 3, others=replies) == want, "queued receipts")
        while len(replies) < 3:
            replies.append(a.recv_json())
        expect(all(r["content"].startswith("Queued") for r in replies),
               "the admin is told they are queued: %r" % replies)
        back = Client(srv.port)
        expect(seat(back, mine["secret"])["number"] == mine["number"], "its seat")
        msgs = [back.recv_json() for _ in range(3)]
        expect([m["content"] for m in msgs] == ["while away %d" % i for i in range(3)],
               "in order: %r" % msgs)
        expect(receipts(a, 3) == [(r, n, "sent") for r, n, _ in want], "sent receipts")
        for m in msgs:
            seen(back, m)
        expect(receipts(a, 3) == [(r, n, "seen") for r, n, _ in want], "seen receipts")
        # A push sent but not acknowledged comes again on the next connection.
        push(a, back.key, "not acknowledged", ref="r9")
        first = back.recv_json()
        replies = []
        expect(receipts(a, 1, others=replies) == [("r9", mine["number"], "sent")], "sent")
        again = Client(srv.port)
        seat(again, mine["secret"])
        second = again.recv_json()
        expect(second == first, "sent again, with its id: %r %r" % (first, second))
        seen(again, second)
        expect(receipts(a, 1, others=replies) == [("r9", mine["number"], "seen")], "seen")
        expect(replies == [{"resp": "text", "content": "Already sent."}], "%r" % replies)


@case("seats: a push sent to a page that drops five times before it says seen: the teacher "
      "gets one 'sent' and one 'seen', nothing between; the page gets it each time")
def test_drops():
    with Server(name="seat-drops") as srv:
        a = admin(srv.port)
        u = Client(srv.port)
        mine = seat(u)
        got = []                    # every receipt the teacher gets, in order
        a.send_json({"req": "watch users"})     # a list after each change
        push(a, u.key, "once", ref="d1")
        first = u.recv_json()
        for _ in range(5):
            u.drop()                            # the Wi-Fi drops: no close frame
            deadline = time.time() + TIMEOUT
            while True:
                msg = a.recv_json(max(0.01, deadline - time.time()))
                if msg["resp"] == "receipt":
                    got.append((msg["ref"], msg["number"], msg["state"]))
                elif msg["resp"] == "users" and [x for x in msg["content"] if
                                                 x["number"] == mine["number"] and x.get("away")]:
                    break
            u = Client(srv.port)
            expect(seat(u, mine["secret"])["number"] == mine["number"], "its seat")
            expect(u.recv_json() == first, "sent again on its return, with its id")
        seen(u, first)
        others = []
        while not got or got[-1][2] != "seen":
            got += receipts(a, 1, others=others)
        got += all_receipts(a, others)          # and any after it
        expect(got == [("d1", mine["number"], "sent"), ("d1", mine["number"], "seen")],
               "receipts: %r" % got)


@case("seats: away past -g, a seat is gone; its queued pushes are reported lost")
def test_grace():
    with Server("-g", "1", name="seat-grace") as srv:
        a = admin(srv.port)
        u = Client(srv.port)
        mine = seat(u)
        u.drop()
        t0 = time.time()
        push(a, u.key, "never seen", ref="lost1")
        expect(receipts(a, 1)[0][2] in ("queued", "sent"), "first receipt")
        got = receipts(a, 1, 3)[0]
        took = time.time() - t0
        expect(got == ("lost1", mine["number"], "lost"), "lost: %r" % (got,))
        expect(took < 1.0 + 0.5, "lost after %.2f s with -g 1" % took)
        expect(not [x for x in users(a) if x["number"] == mine["number"]], "the row stays")
        expect(srv.wait_log("Seat #%d is gone" % mine["number"]), "not logged")
        back = Client(srv.port)
        fresh = seat(back, mine["secret"])
        expect(fresh["number"] != mine["number"] and fresh["secret"] != mine["secret"],
               "a seat that is gone gives a new one: %r" % fresh)


@case("seats: an unknown secret (after a restart, say) gets a new seat; the tutorial's way "
      "is kept for connections that never ask")
def test_unknown():
    with Server(name="seat-unknown") as srv:
        c = Client(srv.port)
        got = seat(c, "seat-" + "0" * 32)
        expect(SECRET.match(got["secret"]) and got["secret"] != "seat-" + "0" * 32, "%r" % got)
        a = admin(srv.port)
        plain = Client(srv.port)            # never asks for a seat
        push(a, plain.key, "as ever", ref="t1")
        expect(plain.recv_json() == {"resp": "text", "content": "as ever"}, "no id added")
        expect(receipts(a, 1) == [("t1", 3, "sent")], "its receipt")
        plain.drop()
        deadline = time.time() + TIMEOUT
        while [x for x in users(a) if x["key"] == plain.key]:
            expect(time.time() < deadline, "a page without a seat stays after it left")


@case("seats: at most 64 pushes and -s bytes a seat; past them the oldest are lost, the "
      "admin told")
def test_bounds():
    with Server("-s", "3000", name="seat-bounds") as srv:
        a = admin(srv.port)
        u = Client(srv.port)
        mine = seat(u)
        u.drop()
        deadline = time.time() + TIMEOUT
        while not [x for x in users(a) if x["number"] == mine["number"] and x.get("away")]:
            expect(time.time() < deadline, "never away")
        for i in range(70):
            push(a, u.key, "p%02d" % i, ref="b%02d" % i)
        replies = []
        got = receipts(a, 70 + 6, others=replies)
        lost = [ref for ref, _, state in got if state == "lost"]
        while len(replies) < 70:
            replies.append(a.recv_json())
        expect(all(r["content"].startswith("Queued") for r in replies), "queued")
        expect(lost == ["b%02d" % i for i in range(6)], "64 kept, the 6 oldest lost: %r" % lost)
        for i in range(10):                     # 300 bytes each: -s 3000 keeps 8 or so
            push(a, u.key, "%02d" % i + "x" * 298, ref="c%d" % i)
        got = all_receipts(a, [])
        kept = 10 - len([r for r, _, s in got if s == "lost" and r.startswith("c")])
        expect(1 <= kept <= 3000 // 300, "%d pushes of 300 bytes kept under -s 3000" % kept)
        back = Client(srv.port)
        seat(back, mine["secret"])
        msgs = [back.recv_json() for _ in range(kept)]
        expect([m["content"][:2] for m in msgs] == ["%02d" % i for i in range(10 - kept, 10)],
               "the newest are kept, in order")


@case("seats: 100 seats drop and come back at once with pushes waiting; memory within -M")
def test_hundred():
    budget = 8 << 20
    with Server("-q", "-c", "0", "-M", str(budget), name="seat-hundred") as srv:
        a = admin(srv.port)
        users_ = [Client(srv.port) for _ in range(100)]
        secrets = [seat(u)["secret"] for u in users_]
        keys = [u.key for u in users_]
        base = srv.rss_kb("VmRSS") if not sanitized() else 0
        for u in users_:
            u.drop()
        deadline = time.time() + TIMEOUT
        while len([x for x in users(a) if x.get("away")]) < 100:
            expect(time.time() < deadline, "not all away")
        text = "y" * 20000
        for round_ in range(8):                 # 100 x 8 x 20 KB = 16 MB > -M
            for i, key in enumerate(keys):
                push(a, key, "%d %s" % (round_, text), ref="h%d" % i)
        got, others = [], []
        while len([g for g in got if g[2] == "queued"]) < 800:
            got += receipts(a, 1, 30, others)
        got += all_receipts(a, others)          # and any lost to -M after them
        lost = len([g for g in got if g[2] == "lost"])
        expect(lost > 0 and len(got) == 800 + lost, "%d receipts, %d lost" % (len(got), lost))
        expect(srv.wait_log(r"memory budget \(-M\)"), "not logged")
        if not sanitized():
            expect(srv.rss_kb("VmRSS") - base < budget // 1024 + 4096,
                   "%d KiB over the base with -M %d" % (srv.rss_kb("VmRSS") - base, budget))
        back = [Client(srv.port) for _ in range(100)]
        got_back = [[] for _ in back]

        def read(i, c):                       # each page reads at once, as a browser does
            try:
                got_back[i].append(c.recv_json(20))
                while True:
                    got_back[i].append(c.recv_json(1.0))
            except (TimeoutError, OSError, EOFError):
                pass
        readers = [threading.Thread(target=read, args=(i, c)) for i, c in enumerate(back)]
        for t in readers:
            t.start()
        for c, secret in zip(back, secrets):
            c.send_json({"req": "seat", "secret": secret})
        for t in readers:
            t.join(30)
        delivered = 0
        for msgs in got_back:
            expect(msgs and msgs[0]["resp"] == "seat", "no seat: %r" % msgs[:1])
            rounds = [int(m["content"].split()[0]) for m in msgs[1:]]
            expect(rounds == sorted(rounds) and len(set(rounds)) == len(rounds),
                   "in order, once each: %r" % rounds)
            delivered += len(rounds)
        later = all_receipts(a, others)         # lost or seen while they came back
        lost += len([g for g in later if g[2] == "lost"])
        print("hundred seats: %d of 800 pushes kept within -M %d MiB, delivered in order" %
              (delivered, budget >> 20))
        expect(delivered == 800 - lost, "%d delivered, %d lost of 800" % (delivered, lost))
        expect(delivered * 20000 <= budget, "more kept than -M allows")


def main():
    only = sys.argv[1:]
    for t in (test_secret, test_take_back, test_away, test_drops, test_grace, test_unknown,
              test_bounds, test_hundred):
        if not only or t.__name__ in only:
            t()
    finish()


if __name__ == "__main__":
    main()
