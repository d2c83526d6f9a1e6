#!/usr/bin/env python3
"""tests/mutate.py (make mutate) -- deliberate bugs the tests must catch.

Each mutant is one small change to a copy of wspush.c: a bug the suite
once let through, or one that a careless edit could make. For each, the
copy is built and only the tests that should catch it run against it (the
socket tests through $WSPUSH; the unit tests compiled with the copy). A
mutant that passes them all survives, and that fails this run: the tests
named for it check less than they claim. A mutant whose tests could not
run here (each one SKIPPED: no websockets, not root) is reported SKIPPED,
neither caught nor survived; every mutant names first a test that needs
only cc and Python's standard library, so that none is skipped for want
of a package. Run one: tests/mutate.py NAME; check the verdicts
themselves: tests/mutate.py --self-test."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSPY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"

SCENARIO = ["python3", "tests/scenario.py", "--core"]
UNIT = ["unit"]


def limits(*names):
    return ["python3", "tests/limits.py"] + list(names)


def admin(*names):
    return ["python3", "tests/admin.py"] + list(names)


def seats(*names):
    return ["python3", "tests/seats.py"] + list(names)


def fairness(*names):
    return ["python3", "tests/fairness.py"] + list(names)


# name, [(text in wspush.c, its replacement)], [tests that must catch it]
MUTANTS = [
    ("no share of a pass: one address's frames are handled without bound",
     [("c->backlog = share->frames == MAX_FRAMES_PER_PASS;", "c->backlog = 0;")],
     [fairness("test_echo_flood")]),
    ("seats not counted by address: -c does not bound an address's seats",
     [("if (opt.max_per_addr > 0 && !c->own_page && n >= opt.max_per_addr) return mine;",
       "if (opt.max_per_addr < 0) return mine;")],
     [fairness("test_seat_cap")]),
    ("the teacher's right token from this machine waits like any other",
     [("(guess && c->local && token_matches(token, opt.token)))", "(0))")],
     [fairness("test_teacher_table_full")]),
    ("IPv6 neighbours on this machine's network counted by their /64",
     [("if (addr_bin(addr, host) == 6 && !addr_is_neighbour(host))",
       "if (addr_bin(addr, host) == 6)")],
     [fairness("test_lan_sockets")]),
    ("get connections writes content before resp",
     [('bad = buf_puts(b, "{\\"resp\\":\\"get connections\\",\\"content\\":{") < 0;',
       'bad = buf_puts(b, "{\\"content\\":{") < 0;'),
      ('return reply_queue(c, bad || buf_puts(b, "}}") < 0);',
       'return reply_queue(c, bad || buf_puts(b, "},\\"resp\\":\\"get connections\\"}") < 0);')],
     [SCENARIO]),
    ("\\u001F in upper case", [('snprintf(esc, 7, "\\\\u%04x", c);', 'snprintf(esc, 7, "\\\\u%04X", c);')],
     [SCENARIO]),
    ("no JSON depth check", [("if (++j->depth > MAX_JSON_DEPTH)", "if (++j->depth < 0)")], [SCENARIO]),
    ("SHUTDOWN_TIMEOUT_S 12, not 2", [("#define SHUTDOWN_TIMEOUT_S   2 ", "#define SHUTDOWN_TIMEOUT_S   12")],
     [SCENARIO]),
    ("flow control 16 times past -s",
     [("if (c->out.len > opt.max_queue && !d->in_frame) {",
       "if (c->out.len > opt.max_queue * 16 && !d->in_frame) {")], [limits("test_never_reads")]),
    ("no 1009 for a message over -m",
     [("if (fr->len > d->max_message - d->msg.len)", "if (fr->len > d->max_message * 64)")],
     [limits("test_max_message")]),
    ("any loopback page may be admin (no Origin rule)",
     [("(r->origin.p == NULL || origin_is_local(r->origin))", "(1)")],
     [admin("test_loopback_origin")]),
    ("any address may be admin (no loopback rule)",
     [("c->local = addr_is_loopback(c->addr) && !r->proxied", "c->local = !r->proxied")],
     [UNIT, admin("test_remote")]),
    ("the log written only when the loop waits",
     [("        log_flush(0);           /* the log, before the replies it tells of */\n"
       "        if (c->state != CONN_FREE && c->dirty)",
       "        if (c->state != CONN_FREE && c->dirty)")], [admin("test_log_first")]),
    ("a log that waits for stdout",
     [("fcntl(STDOUT_FILENO, F_SETFL, srv.stdout_flags | O_NONBLOCK);", "(void)0;")],
     [limits("test_slow_log")]),
    ("X-Real-IP believed as well",
     [('    if (xff) r->forwarded = v;',
       '    if (xff || span_ieq(name.p, name.len, "x-real-ip")) r->forwarded = v;')],
     [admin("test_forwarded")]),
    ("a running penalty given to a newcomer",
     [("if (spare == NULL && (p->failures == 0 || stale))", "if (spare == NULL)")],
     [admin("test_penalty_flush")]),
    ("IPv6 counted by the whole address, not its /64",
     [("!addr_is_neighbour(host)) memset(host + 8, 0, 8);", "!addr_is_neighbour(host)) (void)0;")], [admin("test_ipv6_prefix")]),
    ("a role table for every event",
     [("if (srv.table_ms != 0 && srv.now_ms < next) {", "if (0) {")],
     [["python3", "tests/scenario.py"]]),
    ("watchers' lists not spaced",
     [("#define LIST_INTERVAL_MS     250 ", "#define LIST_INTERVAL_MS     0   ")],
     [admin("test_list_rate")]),
    ("a short token accepted",
     [("chars < MIN_TOKEN_CHARS)", "chars < 1)")],
     [["python3", "tests/scenario.py"]]),
    ("a token's length counted in bytes, not characters",
     [("chars += ((unsigned char)*t & 0xC0) != 0x80;", "chars++;")],
     [["python3", "tests/urls.py", "test_token_characters"]]),
    ("addresses of interfaces that are down, or have no link, offered to students",
     [("int live = (a->ifa_flags & IFACE_LIVE) == IFACE_LIVE && a->ifa_addr != NULL;",
       "int live = a->ifa_addr != NULL;")],
     [["python3", "tests/urls.py", "test_lan"]]),
    ("a seat whose connection ends is gone at once, not away",
     [("if (s->secret[0] != '\\0' && !s->kicked && !srv.stopping)", "if (0)")],
     [seats("test_away")]),
    ("the old connection of a seat taken back is left open",
     [('conn_fail(ghost, CLOSE_REPLACED, "this seat was taken by a new connection");', "(void)0;")],
     [seats("test_take_back")]),
    ("a push sent on a connection that dropped is not sent again",
     [("    for (int i = 0; i < s->n_pushes; i++)\n        push_send(s, &s->pushes[i]);\n", "")],
     [seats("test_away")]),
    ("a push to a key the seat held before reaches nobody",
     [("for (int i = 0; k.p != NULL && k.len == KEY_TEXT_LEN && i < MAX_CLIENTS; i++)",
       "for (int i = 0; k.p != NULL && k.len == KEY_TEXT_LEN && i < 0; i++)")],
     [seats("test_take_back")]),
    ("a seat's secret in the log",
     [('    if (len - i >= 5 && memcmp(p + i, "seat-", 5) == 0)\n', '    if (0)\n')],
     [seats("test_secret")]),
    ("link-local addresses offered to students",
     [("IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr)", "0")],
     [["python3", "tests/urls.py"]]),
    ("refusals logged every time",
     [("            s->status = status;\n            return;", "            s->status = status;")],
     [limits("test_per_address")]),
    ("a close is answered with 1000 whatever its code",
     [("conn_send_close(c, code == CLOSE_NO_STATUS ? 0 : code, \"\");",
       "conn_send_close(c, code == CLOSE_NO_STATUS ? 0 : 1000, \"\");")],
     [["python3", "tests/conformance.py", "--quick"], [SYSPY, "tests/interop_websockets.py"]]),
    ("unmasked frames accepted", [("if ((p[1] & 0x80) == 0)", "if (0)")], [UNIT]),
    ("a second connection with a key in use is let in (no 409)",
     [("else if (seat_by_key(r->ws_key) != NULL)", "else if (0)")], [SCENARIO]),
    ("the per-address cap twice as high",
     [("count_from(c->host) > opt.max_per_addr)", "count_from(c->host) > 2 * opt.max_per_addr)")],
     [limits("test_per_address")]),
    ("no flow control: a client's own replies pile up",
     [("if (c->out.len > opt.max_queue && !d->in_frame) {", "if (0) {")],
     [limits("test_never_reads")]),
    ("the handshake timeout twice -T",
     [("c->deadline_ms = srv.now_ms + (int64_t)opt.handshake_timeout_s * 1000;",
       "c->deadline_ms = srv.now_ms + (int64_t)opt.handshake_timeout_s * 2000;")],
     [limits("test_handshake_timeout")]),
    ("\\n escaped as \\u000a", [('static const char named[] = "btn\\0fr";',
                                 'static const char named[] = "bt\\0\\0fr";')], [SCENARIO]),
    ("dot segments served", [("if (c == '.' && (o == 0 || out[o - 1] == '/'))", "if (0)")],
     [["python3", "tests/static.py"]]),
    ("a 65535-byte payload gets a 64-bit length",
     [("size_t ext = len < 126 ? 0 : len <= 0xffff ? 2 : 8;",
       "size_t ext = len < 126 ? 0 : len < 0xffff ? 2 : 8;")], [UNIT]),
    ("UTF-16 surrogates let through in UTF-8",
     [("u->hi = c == 0xed ? 0x9f :", "u->hi = c == 0xed ? 0xbf :")], [UNIT]),
    ("a ping goes unanswered", [("queue_frame(c, OP_PONG, p, len);", "(void)0;")],
     [["python3", "tests/conformance.py", "--quick"]]),
    ("a wrong token costs nothing (no penalty)",
     [("p->until_ms = srv.now_ms + (int64_t)wait_s * 1000;", "p->until_ms = srv.now_ms;")],
     [admin("test_penalty")]),
]


def build(folder, source):
    """Build the copy; returns None or the compiler's complaint."""
    for name in ("sha1.c", "sha1.h"):
        shutil.copy(os.path.join(ROOT, name), folder)
    with open(os.path.join(folder, "wspush.c"), "w") as f:
        f.write(source)
    done = subprocess.run(["cc", "-O2", "-o", "wspush", "wspush.c", "sha1.c"], cwd=folder,
                          capture_output=True, text=True)
    return None if done.returncode == 0 else done.stderr[-400:]


def verdict(folder, command):
    """What the tests say of the mutant: "caught" if they fail against it,
    "skipped" if they could not run here (SKIPPED lines and no PASS), else
    "survived". They run without CI=true, so that a test which cannot run
    says SKIPPED rather than failing, and is not taken for a catch."""
    if command == UNIT:
        os.makedirs(os.path.join(folder, "tests"), exist_ok=True)
        shutil.copy(os.path.join(ROOT, "tests", "unit.c"), os.path.join(folder, "tests"))
        built = subprocess.run(["cc", "-std=c99", "-O1", "-Wno-unused-function", "-o", "unit",
                                "tests/unit.c", "sha1.c"], cwd=folder, capture_output=True)
        if built.returncode != 0:
            return "caught"
        command = [os.path.join(folder, "unit")]
    env = dict(os.environ, WSPUSH=os.path.join(folder, "wspush"), WSPUSH_TAG="mutant")
    env.pop("CI", None)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          errors="replace", timeout=600)
    return judge(done.returncode, done.stdout)


def judge(status, output):
    """The verdict on one test run's exit status and output."""
    lines = output.splitlines()
    if status != 0 or any(line.startswith("FAIL: ") for line in lines):
        return "caught"
    ran = any(line.startswith("PASS: ") for line in lines)
    skips = [line for line in lines if line.startswith("SKIPPED: ")]
    return "skipped" if skips and not ran else "survived"


def combine(verdicts):
    """One mutant's verdict from its tests': caught by any; skipped if
    none could run; else survived."""
    if "caught" in verdicts:
        return "caught"
    if verdicts and all(v == "skipped" for v in verdicts):
        return "skipped"
    return "survived"


def self_test():
    """Check judge() and combine() on runs made up for the purpose, so a
    skipped test can never again be taken for a catch or a survivor."""
    cases = [
        ("a FAIL line", (0, "PASS: a\nFAIL: b: why\n"), "caught"),
        ("a non-zero exit", (1, "PASS: a\n"), "caught"),
        ("only SKIPPED lines", (0, "SKIPPED: a: no websockets\n"), "skipped"),
        ("a PASS beside a SKIPPED", (0, "PASS: a\nSKIPPED: b: no root\n"), "survived"),
        ("nothing printed", (0, ""), "survived"),
        ("all passed", (0, "PASS: a\nPASS: b\n"), "survived"),
    ]
    bad = [name for name, run, want in cases if judge(*run) != want]
    combos = [(["skipped", "skipped"], "skipped"), (["skipped", "caught"], "caught"),
              (["skipped", "survived"], "survived"), (["survived"], "survived"), ([], "survived")]
    bad += ["combine %s" % v for v, want in combos if combine(v) != want]
    # And end to end: a mutant whose one test skips is reported SKIPPED.
    skipper = [sys.executable, "-c", "print('SKIPPED: x: needs a package')"]
    bad += [] if combine([verdict(ROOT, skipper)]) == "skipped" else ["a skipping test run"]
    if bad:
        print("FAIL: mutants: the verdicts are wrong for: %s" % ", ".join(bad))
        sys.exit(1)
    print("PASS: mutants: a mutant whose tests all skip is SKIPPED, not caught or survived "
          "(%d cases)" % (len(cases) + len(combos) + 1))


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    only = sys.argv[1:]
    with open(os.path.join(ROOT, "wspush.c")) as f:
        original = f.read()
    counts, started = {"caught": 0, "survived": 0, "skipped": 0}, time.time()
    for name, edits, tests in MUTANTS:
        if only and name not in only:
            continue
        source = original
        for old, new in edits:
            if source.count(old) != 1:
                print("FAIL: mutant %r: wspush.c no longer has %r once; update tests/mutate.py"
                      % (name, old))
                counts["survived"] += 1
                break
            source = source.replace(old, new)
        else:
            folder = tempfile.mkdtemp(prefix="wspush-mutant-")
            try:
                why = build(folder, source)
                if why is not None:
                    print("FAIL: mutant %r does not build: %s" % (name, why))
                    counts["survived"] += 1
                    continue
                verdicts = []
                for t in tests:         # stop at the first catch
                    verdicts.append(verdict(folder, t))
                    if verdicts[-1] == "caught":
                        break
                result = combine(verdicts)
                counts[result] += 1
                named = "; ".join(" ".join(t) for t in tests)
                if result == "caught":
                    print("PASS: mutant caught: %s" % name)
                elif result == "skipped":
                    print("SKIPPED: mutant %s: every test that would catch it was skipped "
                          "here (%s)" % (name, named))
                else:
                    print("FAIL: mutant survived: %s (tests: %s)" % (name, named))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        sys.stdout.flush()
    print("mutants: %d caught, %d survived, %d skipped, in %.0f s" % (
        counts["caught"], counts["survived"], counts["skipped"], time.time() - started))
    sys.exit(1 if counts["survived"] else 0)


if __name__ == "__main__":
    main()
