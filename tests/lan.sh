#!/bin/sh
# lan.sh -- inside a network namespace of its own, make the interfaces of
# a teacher's laptop on a school's LAN, then run a command there:
#
#   unshare -n sh tests/lan.sh COMMAND...      (as root)
#
#   lo       127.0.0.1 and ::1, up
#   lan0     192.168.1.20/24 and fd00::2/64: up, with a link (a veth pair
#            whose other end, lan1, stays in the namespace: nothing leaves)
#   down0    10.9.9.9/24, an interface that is down
#   nolink0  10.8.8.8/24, up but without a link (its peer is down), as a
#            laptop's Ethernet port with no cable
#
# The namespace ends with the last of its processes: nothing to undo. If
# an interface cannot be made, it says why on stderr and exits 77.
set -u
fail() {
    echo "lan.sh: cannot $*" >&2
    exit 77
}
# Only in a namespace of our own, which has nothing but lo: never here.
[ "$(ip -o link show | wc -l)" -eq 1 ] || fail "work outside a new namespace: unshare -n sh $0"
ip link set lo up || fail "bring up lo"
ip link add lan0 type veth peer name lan1 || fail "make a veth pair"
ip addr add 192.168.1.20/24 dev lan0 || fail "add 192.168.1.20"
ip -6 addr add fd00::2/64 dev lan0 nodad || fail "add fd00::2"
ip link set lan1 up && ip link set lan0 up || fail "bring up lan0"
ip link add down0 type veth peer name down1 && ip addr add 10.9.9.9/24 dev down0 ||
    fail "make down0"
ip link add nolink0 type veth peer name nolink1 && ip addr add 10.8.8.8/24 dev nolink0 &&
    ip link set nolink0 up || fail "make nolink0"
exec "$@"
