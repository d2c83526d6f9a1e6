"""What start-up says to open, and "get addresses": the user page on every
address of this machine that others can reach, as `ip -o addr` lists them
(IPv4 but loopback; IPv6 of global scope), none with -b 127.0.0.1; the
admin page on this machine; the same list for an admin page that asks.

These servers listen on every address (-b ::), as a classroom's does; the
tests still talk to 127.0.0.1 only.

    python3 urls.py
"""
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse

from wsclient import ROOT, Client, Server, Skip, case, expect, finish


def machine_addresses():
    """This machine's addresses others can reach, as ip(8) lists them."""
    out = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    found = set()
    for line in out.splitlines():
        m = re.search(r"\binet6? (\S+?)/\d+ .*scope (\w+)", line)
        if not m or m.group(2) == "host":
            continue
        if ":" in m.group(1) and m.group(2) != "global":
            continue                    # link-local IPv6
        found.add(m.group(1))
    return found


def printed(log):
    """The addresses start-up named for students, and the teacher's URL."""
    students = re.findall(r"^(?:Students open:)?\s+http://\[?([0-9a-fA-F.:]+?)\]?:\d+/user\.html$",
                          log, re.M)
    teacher = re.search(r"^The teacher opens: (\S+)$", log, re.M)
    return set(students), teacher.group(1) if teacher else None


@case("start-up: every address others can reach is named for students (as ip -o addr lists them); "
      "the teacher's page on this machine")
def test_every_address():
    if shutil.which("ip") is None:
        return Skip("needs ip(8) to list this machine's addresses (apt-get install iproute2)")
    want = machine_addresses()
    with Server("-b", "::", name="urls-all") as srv:
        expect(srv.wait_log("The teacher opens"), "nothing said about what to open")
        students, teacher = printed(srv.log())
        expect(students == want, "named %s; ip lists %s" % (sorted(students), sorted(want)))
        expect(teacher == "http://localhost:%d/admin.html" % srv.port, "teacher: %r" % teacher)
        expect(srv.log().index("Server is listening") < srv.log().index("Students open")
               if want else True, "the tutorial's line comes first")
        a = Client(srv.port)
        a.send_json({"req": "get connections"})
        a.recv_json()
        a.send_json({"req": "get addresses"})
        reply = a.recv_json()
        got = {urllib.parse.urlsplit(u).hostname for u in reply["content"]}
        expect(reply["resp"] == "addresses" and got == want, "get addresses: %r" % reply)
        u = Client(srv.port)
        u.send_json({"req": "get addresses"})
        expect(u.recv_json()["resp"] == "error", "a user got the addresses")


@case("start-up: with -b 127.0.0.1, no address for students, and it says only this machine can "
      "connect; with -q too; a -t random token in the teacher's URL")
def test_loopback_only():
    with Server("-b", "127.0.0.1", "-q", "-t", "random", name="urls-lo") as srv:
        expect(srv.wait_log("The teacher opens"), "nothing said")
        students, teacher = printed(srv.log())
        expect(not students, "named %s" % students)
        expect("this machine only" in srv.log(), "does not say why")
        expect(re.fullmatch(r"http://localhost:%d/admin\.html\?token=[0-9a-f]{32}" % srv.port,
                            teacher or ""), "teacher: %r" % teacher)


@case("start-up: with no pages to serve, it says where the pages go instead (XAMPP's htdocs)")
def test_no_pages():
    folder = tempfile.mkdtemp(prefix="wspush-nowww-")
    try:
        if os.path.isdir("/usr/local/share/wspush/www"):
            return Skip("an installed wspush serves /usr/local/share/wspush/www here")
        with Server(cwd=folder, name="urls-nowww") as srv:
            expect(srv.wait_log("htdocs"), "no word on where the pages go: %s" % srv.log())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main():
    test_every_address()
    test_loopback_only()
    test_no_pages()
    finish()


if __name__ == "__main__":
    main()
