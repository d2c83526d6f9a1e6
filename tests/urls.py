"""What start-up says to open, and "get addresses": the user page on every
address of this machine that others can reach, as `ip -o addr` lists them
(IPv4 but loopback; IPv6 of global scope; on interfaces up with a link),
none with -b 127.0.0.1; the admin page on this machine (127.0.0.2, [::1]
with -b so); the same list for an admin page that asks, with this
machine's addresses as "hosts". With no pages to serve: how the teacher
becomes admin with the pages of another web server, the token -t random
made and ?ws= when wspush is not on port 8080. Tokens counted in
characters.

These servers listen on every address (-b ::), as a classroom's does; the
tests still talk to 127.0.0.1 only. As root, the same in a network
namespace made by tests/lan.sh (a LAN address, an interface down, one
with no link), where the servers also listen on a LAN address (-b).

    python3 urls.py [TEST...]       all tests, or those named (test_lan)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

import wsclient
from wsclient import (ROOT, Client, Server, Skip, binary, case, expect, finish, http_request,
                      report, skipped)

INSTALLED = "/usr/local/share/wspush/www"


def live(interface):
    """True if the interface is up with a link (the kernel's IFF_RUNNING:
    up, and its operstate up or unknown)."""
    base = "/sys/class/net/%s/" % interface
    with open(base + "flags") as f, open(base + "operstate") as g:
        return int(f.read(), 16) & 1 and g.read().strip() in ("up", "unknown")


def machine_addresses():
    """This machine's addresses others can reach, as ip(8) lists them."""
    out = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    found = set()
    for line in out.splitlines():
        m = re.search(r"^\d+: (\S+?)(?:@\S+)?\s+inet6? (\S+?)/\d+ .*scope (\w+)", line)
        if not m or m.group(3) == "host" or not live(m.group(1)):
            continue
        if ":" in m.group(2) and m.group(3) != "global":
            continue                    # link-local IPv6
        found.add(m.group(2))
    return found


def printed(log):
    """The addresses start-up named for students, and the teacher's URL."""
    students = re.findall(r"^(?:Students open:)?\s+http://\[?([0-9a-fA-F.:]+?)\]?:\d+/user\.html$",
                          log, re.M)
    teacher = re.search(r"^The teacher opens: (\S+)$", log, re.M)
    return set(students), teacher.group(1) if teacher else None


def hosts_of(addresses):
    """Addresses as "get addresses" gives them in "hosts": IPv6 in brackets."""
    return {"[%s]" % a if ":" in a else a for a in addresses}


def get_addresses(srv):
    """The reply to "get addresses" for an admin on this machine."""
    a = Client(srv.port)
    a.send_json({"req": "get connections"})
    a.recv_json()
    a.send_json({"req": "get addresses"})
    reply = a.recv_json()
    a.close()
    return reply


def teacher_says(srv):
    """The line start-up writes for the teacher, once it is there."""
    expect(srv.wait_log(r"(?m)^The teacher .*$"), "nothing said for the teacher: %s" % srv.log())
    return re.search(r"(?m)^The teacher .*$", srv.log()).group(0)


@case("start-up: every address others can reach is named for students (as ip -o addr lists them, "
      "on interfaces up with a link); the teacher's page on this machine; get addresses says the "
      "same, with the addresses as hosts (IPv6 in brackets)")
def test_every_address():
    if shutil.which("ip") is None:
        return Skip("needs ip(8) to list this machine's addresses (apt-get install iproute2)")
    want = machine_addresses()
    with Server("-b", "::", name="urls-all") as srv:
        teacher_says(srv)
        students, teacher = printed(srv.log())
        expect(students == want, "named %s; ip lists %s" % (sorted(students), sorted(want)))
        expect(teacher == "http://localhost:%d/admin.html" % srv.port, "teacher: %r" % teacher)
        expect(srv.log().index("Server is listening") < srv.log().index("Students open")
               if want else True, "the tutorial's line comes first")
        reply = get_addresses(srv)
        urls = {"http://%s:%d/user.html" % (h, srv.port) for h in hosts_of(want)}
        expect(reply["resp"] == "addresses" and set(reply["content"]) == urls and
               len(reply["content"]) == len(urls) and set(reply["hosts"]) == hosts_of(want) and
               len(reply["hosts"]) == len(want), "get addresses: %r; ip lists %s" % (reply, want))
        u = Client(srv.port)
        u.send_json({"req": "get addresses"})
        expect(u.recv_json()["resp"] == "error", "a user got the addresses")


@case("start-up: with -b 127.0.0.1, no address for students, and it says only this machine can "
      "connect; with -q too; a -t random token in the teacher's URL")
def test_loopback_only():
    with Server("-b", "127.0.0.1", "-q", "-t", "random", name="urls-lo") as srv:
        teacher_says(srv)
        students, teacher = printed(srv.log())
        expect(not students, "named %s" % students)
        expect("this machine only" in srv.log(), "does not say why")
        expect(re.fullmatch(r"http://localhost:%d/admin\.html\?token=[0-9a-f]{32}" % srv.port,
                            teacher or ""), "teacher: %r" % teacher)


@case("start-up: with -b 127.0.0.2 the teacher's URL says 127.0.0.2 (localhost is 127.0.0.1), "
      "and it answers; with -b ::1, [::1] in brackets")
def test_loopback_names():
    with Server("-b", "127.0.0.2", name="urls-lo2") as srv:
        teacher_says(srv)
        expect(printed(srv.log())[1] == "http://127.0.0.2:%d/admin.html" % srv.port,
               "teacher: %r" % teacher_says(srv))
        status, _, _ = http_request(srv.port, b"GET /admin.html HTTP/1.1\r\nHost: 127.0.0.2\r\n"
                                    b"Connection: close\r\n\r\n", host="127.0.0.2")
        expect(status == 200, "the teacher's URL answers %d" % status)
    try:
        srv = Server("-b", "::1", "-t", "random", name="urls-lo6")
    except RuntimeError as e:
        return Skip("no IPv6 loopback here: %s" % e)
    with srv:
        teacher_says(srv)
        expect(re.fullmatch(r"http://\[::1\]:%d/admin\.html\?token=[0-9a-f]{32}" % srv.port,
                            printed(srv.log())[1] or ""), "teacher: %r" % teacher_says(srv))


@case("-t: a token's 12 characters are counted in characters, not bytes (UTF-8): 11 or 6 "
      "accented letters are refused (exit 2), 12 accepted")
def test_token_characters():
    for token in ("é" * 11, "é" * 6):
        what = "%d bytes, %d characters" % (len(token.encode()), len(token))
        p = subprocess.Popen([binary(), "-p", "0", "-b", "127.0.0.1", "-t", token],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            err = p.communicate(timeout=5)[1]       # refused at once, or it runs
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise AssertionError("%s: accepted" % what)
        expect(p.returncode == 2 and b"at least 12 characters" in err,
               "%s: exit %d, %r" % (what, p.returncode, err[:200]))
    with Server("-t", "é" * 12, name="urls-token12") as srv:
        expect(srv.proc.poll() is None, "12 characters were refused")


@case("start-up: with no pages to serve, it says where the pages go (XAMPP's htdocs) and how the "
      "teacher becomes admin: the -t random token to add, once, with -q too, and ?ws= when not "
      "on port 8080; with -t TOKEN, to type it (not shown); without -t, admin.html on this "
      "machine; get addresses has no URL of wspush's, and this machine's hosts")
def test_no_pages():
    folder = tempfile.mkdtemp(prefix="wspush-nowww-")
    try:
        if os.path.isdir(INSTALLED):
            return Skip("an installed wspush serves %s here" % INSTALLED)
        with Server("-t", "random", "-q", cwd=folder, name="urls-nowww") as srv:
            said = teacher_says(srv)
            expect(srv.wait_log("htdocs"), "no word on where the pages go: %s" % srv.log())
            m = re.fullmatch(r"The teacher opens admin\.html from your web server: http://"
                             r"localhost/\.\.\./admin\.html\?token=([0-9a-f]{32})&ws=ws://"
                             r"localhost:%d/" % srv.port, said)
            expect(m, "the teacher is told: %r" % said)
            expect(srv.log().count(m.group(1)) == 1, "the token is shown more than once")
            expect("Students open" not in srv.log(), "a URL of pages not served: %s" % srv.log())
        with Server("-t", "a token of our own", cwd=folder, name="urls-nowww-own") as srv:
            said = teacher_says(srv)
            expect(said.endswith("/admin.html?ws=ws://localhost:%d/, and types the token of -t"
                                 % srv.port) and "of our own" not in srv.log(),
                   "the teacher is told: %r" % said)
        with Server("-b", "::", cwd=folder, name="urls-nowww-lo") as srv:
            said = teacher_says(srv)
            expect("server on this machine (without -t" in said and "token" not in said and
                   said.endswith("/admin.html?ws=ws://localhost:%d/" % srv.port),
                   "the teacher is told: %r" % said)
            reply = get_addresses(srv)
            expect(reply["content"] == [] and set(reply["hosts"]) == hosts_of(machine_addresses()),
                   "get addresses: %r" % reply)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@case("LAN (tests/lan.sh): only interfaces up with a link are offered, at start-up and in get "
      "addresses (not down0's 10.9.9.9, nor nolink0's 10.8.8.8)")
def test_lan_interfaces():
    with Server("-b", "::", name="urls-lan") as srv:
        teacher_says(srv)
        students, _ = printed(srv.log())
        expect(students == {"192.168.1.20", "fd00::2"}, "named %s" % sorted(students))
        reply = get_addresses(srv)
        expect(reply["hosts"] == ["192.168.1.20", "[fd00::2]"] and reply["content"] ==
               ["http://192.168.1.20:%d/user.html" % srv.port,
                "http://[fd00::2]:%d/user.html" % srv.port], "get addresses: %r" % reply)


@case("LAN (tests/lan.sh): with -b fd00::2 -t random, the URLs have brackets, and answer")
def test_lan_ipv6():
    with Server("-b", "fd00::2", "-t", "random", name="urls-lan6") as srv:
        teacher_says(srv)
        students, teacher = printed(srv.log())
        expect(students == {"fd00::2"} and "http://[fd00::2]:%d/user.html" % srv.port in srv.log(),
               "students: %s" % srv.log())
        expect(re.fullmatch(r"http://\[fd00::2\]:%d/admin\.html\?token=[0-9a-f]{32}" % srv.port,
                            teacher or ""), "teacher: %r" % teacher)
        status, _, _ = http_request(srv.port, b"GET /admin.html HTTP/1.1\r\nHost: [fd00::2]\r\n"
                                    b"Connection: close\r\n\r\n", host="fd00::2")
        expect(status == 200, "the teacher's URL answers %d" % status)


@case("LAN (tests/lan.sh): with -b 192.168.1.20 and no -t, start-up says the teacher needs -t "
      "(only this machine may be admin without it), and gives no admin URL that cannot work")
def test_lan_needs_token():
    with Server("-b", "192.168.1.20", name="urls-lan-token") as srv:
        said = teacher_says(srv)
        expect(said.startswith("The teacher needs -t") and "-b 192.168.1.20" in said and
               "admin.html" not in srv.log(), "the teacher is told: %s" % srv.log())


def test_lan():
    """The LAN tests, in a network namespace that tests/lan.sh makes."""
    name = "start-up on a LAN (a network namespace, tests/lan.sh)"
    if os.geteuid() != 0:
        skipped(name, "needs root for a network namespace (run the tests with sudo)")
        return
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        skipped(name, "needs unshare(1) and ip(8) (apt-get install util-linux iproute2)")
        return
    out = subprocess.run(["unshare", "-n", "sh", os.path.join(ROOT, "tests", "lan.sh"),
                          sys.executable, os.path.abspath(__file__), "--inside"],
                         capture_output=True, text=True, timeout=120)
    sys.stdout.write(out.stdout)
    if out.returncode == 77 or (out.returncode != 0 and out.stderr.startswith("unshare:")):
        skipped(name, out.stderr.strip())
    elif out.returncode != 0:
        wsclient.failures += 1
        if "FAIL: " not in out.stdout:
            report(name, False, "exit %d: %s" % (out.returncode, out.stderr[-800:]))


def main():
    if sys.argv[1:] == ["--inside"]:
        tests = [test_lan_interfaces, test_lan_ipv6, test_lan_needs_token]
    else:
        tests = [test_every_address, test_loopback_only, test_loopback_names,
                 test_token_characters, test_no_pages, test_lan]
    for t in tests:
        if not sys.argv[1:] or sys.argv[1] == "--inside" or t.__name__ in sys.argv[1:]:
            t()
    finish()


if __name__ == "__main__":
    main()
