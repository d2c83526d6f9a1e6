#!/usr/bin/env bash
# bench/run.sh -- wspush against the article's Node server and the floor,
# side by side in one run, and the targets checked.
#
#   bench/run.sh           the standard workloads, 3 runs each (RUNS=n):
#                          wspush's JSON mode, and its raw echo (-e)
#   bench/run.sh --smoke   each mode for about a second, wspush and floor
#                          only; PASS/FAIL lines for test.sh
#
# Each server starts fresh for each run, pinned to CPU 0, with the load
# generator on CPU 1. The article's server comes from $WSPUSH_SEED
# (default ../shared/seed), with its npm package installed into a
# temporary folder; without Node or the file, its column says why it is
# empty. With UWS=PATH, a server built from bench/uws-tutorial.cpp (the
# tutorial's requests on uWebSockets; see that file) runs too, and a
# second table compares it. With BASE=PATH, another build of wspush (the
# one before a change, say) runs too, as "wspush (base)", with the same
# flags, taking turns with this one; a third table compares them. Results:
# bench/out/raw.txt, and the tables in bench/out/results.md.
#
# ONLY="tput64 push class40" runs those workloads alone, and
# SERVERS="wspush base" those servers alone (the rest of the tables
# shows "-"): more runs of what a change must not slow down, in the time
# of one full run.
#
# The flood rows: one student floods from 64 sockets, each keeping a deep
# pipeline of small requests in flight, while a classmate makes echo
# round trips one at a time, from another address (127.0.0.2); the
# classmate's round trip is what counts (flood: echo requests; floodseat:
# {"req":"seat","secret":"x"} after the student made 1000 away seats,
# wspush only, with -g 3600). wspush runs them with -c 1000, so that it
# counts the student's 64 sockets as one address, as in a classroom.
set -u
cd "$(dirname "$0")/.." || exit 1
OUT=bench/out
mkdir -p "$OUT"
RUNS=${RUNS:-3}
# The article's server: $WSPUSH_SEED, or shared/seed beside the checkout
# (or one level further up).
SEED=${WSPUSH_SEED:-../shared/seed}
[ -z "${WSPUSH_SEED:-}" ] && [ ! -f "$SEED/server.js" ] && [ -f ../../shared/seed/server.js ] &&
    SEED=../../shared/seed
SMOKE=0
[ "${1:-}" = --smoke ] && SMOKE=1
BASE=${BASE:-}
if [ -n "$BASE" ] && [ ! -x "$BASE" ]; then
    echo "bench/run.sh: BASE=$BASE is not an executable wspush" >&2
    exit 2
fi

say() { printf '%s\n' "$*"; }

# Build everything as a user would: the one cc command, and -O2 for bench/.
cc -O2 -o "$OUT/wspush" wspush.c sha1.c || exit 1
cc -std=c99 -O2 -Wall -Wextra -Werror -o "$OUT/wsbench" bench/wsbench.c || exit 1
cc -std=c99 -O2 -Wall -Wextra -Werror -o "$OUT/floor" bench/floor.c || exit 1

# Pin server and client to different cores where there are two.
if command -v taskset > /dev/null && [ "$(nproc)" -ge 2 ]; then
    ON_SERVER="taskset -c 0"
    ON_CLIENT="taskset -c 1"
else
    ON_SERVER=""
    ON_CLIENT=""
    say "note: not pinning to cores (needs taskset and 2 CPUs)"
fi

# The article's server, in a temporary folder with its npm package.
NODE_DIR=""
NODE_WHY=""
if [ "$SMOKE" = 1 ]; then
    NODE_WHY="not run in --smoke"
elif [ -n "${SERVERS:-}" ] && [[ " $SERVERS " != *" node "* ]]; then
    NODE_WHY="not in SERVERS"
elif ! command -v node > /dev/null; then
    NODE_WHY="node is not installed"
elif [ ! -f "$SEED/server.js" ] || [ ! -f "$SEED/package.json" ]; then
    NODE_WHY="the article's server.js is not at $SEED (set WSPUSH_SEED)"
else
    NODE_DIR=$(mktemp -d)
    cp "$SEED/server.js" "$SEED/package.json" "$NODE_DIR/"
    if ! (cd "$NODE_DIR" && npm install --no-audit --no-fund --silent > npm.log 2>&1); then
        NODE_WHY="npm install websocket failed (see $NODE_DIR/npm.log)"
        NODE_DIR=""
    fi
fi
trap '[ -n "$NODE_DIR" ] && rm -rf "$NODE_DIR"' EXIT

# A free TCP port for the article's server, which cannot pick its own:
# below the kernel's range for outgoing connections, so that no socket
# the load generator left behind holds it.
free_port() {
    local p low
    low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2> /dev/null || echo 32768)
    for p in $(shuf -i 10000-$((low - 1)) -n 50); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2> /dev/null; then
            echo "$p"
            return
        fi
    done
    echo 0
}

# wait_port PORT: until something listens there (10 s at most).
wait_port() {
    local i
    for i in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
        sleep 0.05
    done
    return 1
}

# port_from_log LOG: the port a server printed ("... port N"), waiting
# for it (10 s at most).
port_from_log() {
    local i p
    for i in $(seq 200); do
        p=$(grep -o 'listening on port [0-9]*' "$1" 2> /dev/null | grep -o '[0-9]*$')
        [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.05
    done
    return 1
}

PID=""
PORT=""
# start TARGET WORKLOAD: start a fresh server; sets PID and PORT. wspush
# and the floor choose a free port themselves (-p 0) and print it.
start() {
    local log="$OUT/server.log"
    : > "$log"
    case $1 in
    wspush|base)
            # -c 0 elsewhere: the benchmark's clients share one address. The
            # flood rows count by address (-c 1000): the student is one.
            case $2 in raw*) mode=-e;; flood) mode="-c 1000";;
                       floodseat) mode="-c 1000 -g 3600";; *) mode=;; esac
            bin=$OUT/wspush
            [ "$1" = base ] && bin=$BASE
            $ON_SERVER "$bin" -q -c 0 -b 127.0.0.1 -p 0 $mode > "$log" 2>&1 & ;;
    node)   PORT=$(free_port)
            (cd "$NODE_DIR" && PORT=$PORT QUIET=1 exec $ON_SERVER node server.js) > "$log" 2>&1 & ;;
    uws)    PORT=$(free_port)
            case $2 in raw*) mode=raw;; *) mode=;; esac
            $ON_SERVER "$UWS" "$PORT" $mode > "$log" 2>&1 & ;;
    floor)  if [ "$2" = push ]; then $ON_SERVER "$OUT/floor" -r 0 > "$log" 2>&1 &
            else $ON_SERVER "$OUT/floor" 0 > "$log" 2>&1 &
            fi ;;
    esac
    PID=$!
    if [ "$1" != node ] && [ "$1" != uws ]; then
        PORT=$(port_from_log "$log") || { say "$1 did not start: $(tail -n 3 "$log")"; return 1; }
    fi
    wait_port "$PORT" || { say "$1 did not start: $(tail -n 3 "$log")"; return 1; }
}

stop() {
    kill "$PID" 2> /dev/null
    wait "$PID" 2> /dev/null
}

# The workloads: name, then wsbench's arguments.
if [ "$SMOKE" = 1 ]; then
    WORKLOADS=("rtt|rtt -n 500 -s 32" "tput64|tput -c 5 -w 4 -s 64 -t 1"
               "tput60k|tput -c 2 -w 2 -s 60000 -t 1" "push|push -c 10 -w 4 -t 1"
               "conns|conns -c 100" "churn|churn -c 2 -t 1"
               "class40|class -c 5 -w 100 -s 64 -t 1" "raw64|tput -c 5 -w 4 -s 64 -t 1 -r"
               "flood|flood -c 8 -w 512 -s 32 -n 2000 -t 1 -B 127.0.0.2"
               "floodseat|flood -c 8 -w 256 -s 32 -n 2000 -t 1 -B 127.0.0.2 -k seat -a 100")
    TARGETS="wspush floor"
    RUNS=1
else
    WORKLOADS=("rtt|rtt -n 20000 -s 32" "tput64|tput -c 50 -w 8 -s 64 -t 5"
               "tput60k|tput -c 10 -w 4 -s 60000 -t 5" "push|push -c 100 -w 16 -t 5"
               "conns|conns -c 1000" "churn|churn -c 8 -t 5"
               "class40|class -c 40 -w 200 -s 64 -t 10" "class30|class -c 30 -w 1000 -s 64 -t 10"
               "raw64|tput -c 50 -w 8 -s 64 -t 5 -r"
               "flood|flood -c 64 -w 8192 -s 32 -n 20000 -t 10 -B 127.0.0.2"
               "floodseat|flood -c 64 -w 1024 -s 32 -n 20000 -t 10 -B 127.0.0.2 -k seat -a 1000")
    TARGETS="wspush node floor"
    [ -n "${UWS:-}" ] && TARGETS="wspush node uws floor"
fi
[ -n "$BASE" ] && TARGETS="wspush base ${TARGETS#wspush }"


RAW=$OUT/raw.txt
: > "$RAW"
status=0
# Runs take turns (run 1 of each server, then run 2 ...), so that a slow
# spell of the machine falls on all the servers compared, not on one.
for w in "${WORKLOADS[@]}"; do
    name=${w%%|*}
    args=${w#*|}
    [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]] && continue
    for run in $(seq "$RUNS"); do
        for target in $TARGETS; do
            [ -n "${SERVERS:-}" ] && [[ " $SERVERS " != *" $target "* ]] && continue
            [ "$target" = node ] && [ -z "$NODE_DIR" ] && continue
            # The floor holds no state per client and has no close handshake:
            # in churn its clients close first and fill up with TIME_WAIT.
            [ "$target" = floor ] && { [ "$name" = conns ] || [ "$name" = churn ]; } && continue
            # The article's server has no raw echo.
            [ "$target" = node ] && [ "$name" = raw64 ] && continue
            # Seats are wspush's own.
            [ "$name" = floodseat ] && [ "$target" != wspush ] && [ "$target" != base ] && continue
            start "$target" "$name" || { status=1; continue; }
            floor_flag=""
            these=$args
            [ "$target" = floor ] && floor_flag=-f
            # The floor echoes raw anyway: -r is for wspush -e and uws only.
            [ "$target" = floor ] && these=${args% -r}
            # The uWebSockets server lists no roles: conns asks for them.
            [ "$target" = uws ] && [ "$name" = conns ] && continue
            # shellcheck disable=SC2086
            line=$($ON_CLIENT "$OUT/wsbench" $these -p "$PORT" -x "$PID" -l "$target" $floor_flag 2> "$OUT/client.err")
            rc=$?
            stop
            say "$name run $run: $line"
            echo "$name $run $line" >> "$RAW"
            if [ $rc -ne 0 ] || ! [[ $line == *" errors=0"* ]]; then
                status=1
                [ "$SMOKE" = 1 ] || say "  errors: $(head -n 3 "$OUT/client.err")"
            fi
            if [ "$SMOKE" = 1 ]; then
                if [ $rc -eq 0 ] && [[ $line == *" errors=0"* ]]; then
                    say "PASS: bench smoke: $name against $target (${line#*rate=})"
                else
                    say "FAIL: bench smoke: $name against $target: $(head -n 2 "$OUT/client.err") $line"
                fi
            fi
        done
    done
done
[ "$SMOKE" = 1 ] && exit $status

# median WORKLOAD TARGET FIELD: the median of that field over the runs.
median() {
    grep "^$1 " "$RAW" | grep " target=$2 " | grep -o " $3=[0-9.]*" | cut -d= -f2 | sort -n |
        awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2); else print "" }'
}

# figure WORKLOAD TARGET FIELD: the field as the tables show it: the median
# of the runs, but for max_us the largest; a flood row's times in ms.
figure() {
    local v
    if [ "$3" = max_us ]; then
        v=$(grep "^$1 " "$RAW" | grep " target=$2 " | grep -o " $3=[0-9.]*" | cut -d= -f2 |
            sort -n | tail -n 1)
    else
        v=$(median "$1" "$2" "$3")
    fi
    case $1/$3 in
    flood*_us) awk -v v="$v" 'BEGIN { if (v != "") printf (v < 1000 ? "%.2f" : "%.1f"), v / 1000 }' ;;
    *) echo "$v" ;;
    esac
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }

# check VALUE OP LIMIT: "met" or "MISSED".
check() { awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
    if (v == "-" || v == "") { print "n/a"; exit }
    ok = (op == ">=") ? v >= l : v <= l; print ok ? "met" : "MISSED" }'; }

MD=$OUT/results.md
{
    say "| workload | metric | wspush | article's server | floor | wspush / article's | target | |"
    say "|---|---|---:|---:|---:|---:|---|---|"
    row() {   # workload metric field label target-op target-value floor-too
        local w=$1 f=$2 label=$3 op=$4 lim=$5
        local a b c r
        a=$(median "$w" wspush "$f")
        b=$(median "$w" node "$f")
        c=$(median "$w" floor "$f")
        r=$(ratio "$a" "$b")
        say "| $w | $label | ${a:--} | ${b:-${NODE_WHY:+n/a}} | ${c:--} | $r | $op $lim x | $(check "$r" "$op" "$lim") |"
    }
    row rtt p50_us "round trip p50, µs" "<=" 0.5
    row rtt p99_us "round trip p99, µs" "<=" 0.5
    row tput64 rate "64 B messages/s" ">=" 10
    row tput60k rate "60000 B messages/s" ">=" 5
    row push rate "deliveries/s" ">=" 5
    row churn rate "connect-echo-close cycles/s" ">=" 3
    a=$(median conns wspush server_peak_rss_kb)
    b=$(median conns node server_peak_rss_kb)
    r=$(ratio "$a" "$b")
    say "| conns | peak RSS with 1000 clients, KiB | ${a:--} | ${b:--} | - | $r | <= 0.2 x | $(check "$r" "<=" 0.2) |"
    a=$(median tput64 wspush server_cpu_ns)
    c=$(median tput64 floor server_cpu_ns)
    r=$(ratio "$a" "$c")
    say "| tput64 | server CPU per message, ns | ${a:--} | $(median tput64 node server_cpu_ns) | ${c:--} | (vs floor) $r | <= 1.5 x floor | $(check "$r" "<=" 1.5) |"
    a=$(median push wspush server_cpu_ns)
    c=$(median push floor server_cpu_ns)
    say "| push | server CPU per delivery, ns | ${a:--} | $(median push node server_cpu_ns) | ${c:--} | (vs floor) $(ratio "$a" "$c") | | |"
    a=$(median churn wspush server_cpu_ns)
    say "| churn | server CPU per cycle, ns | ${a:--} | $(median churn node server_cpu_ns) | - | - | | |"
    for w in class40 class30; do
        case $w in class40) what="40 clients, a message each 200 ms";; *) what="30 clients, a message each second";; esac
        a=$(median $w wspush server_cpu_ms_per_s)
        b=$(median $w node server_cpu_ms_per_s)
        c=$(median $w floor server_cpu_ms_per_s)
        say "| $w | $what: server CPU, ms per second | ${a:--} | ${b:--} | ${c:--} | $(ratio "$a" "$b") | <= 1 x | $(check "$(ratio "$a" "$b")" "<=" 1) |"
        a=$(median $w wspush server_cpu_ns)
        c=$(median $w floor server_cpu_ns)
        say "| $w | ... per message, µs | $(awk -v v="$a" 'BEGIN { if (v != "") printf "%.0f", v / 1000 }') | $(awk -v v="$(median $w node server_cpu_ns)" 'BEGIN { if (v != "") printf "%.0f", v / 1000 }') | $(awk -v v="$c" 'BEGIN { if (v != "") printf "%.0f", v / 1000 }') | (vs floor) $(ratio "$a" "$c") | | |"
    done
    a=$(median raw64 wspush rate)
    c=$(median raw64 floor rate)
    say "| raw64 | wspush -e: 64 B messages/s (echoed verbatim) | ${a:--} | - | ${c:--} | (vs floor) $(ratio "$a" "$c") | | |"
    a=$(median raw64 wspush server_cpu_ns)
    c=$(median raw64 floor server_cpu_ns)
    say "| raw64 | ... server CPU per message, ns | ${a:--} | - | ${c:--} | (vs floor) $(ratio "$a" "$c") | | |"
    flood_row() {   # workload field label [limit, ms]
        local a b c t="| |"
        a=$(figure "$1" wspush "$2")
        b=$(figure "$1" node "$2")
        c=$(figure "$1" floor "$2")
        [ -n "${4:-}" ] && t="| <= $4 ms | $(check "${a:--}" "<=" "$4")"
        say "| $1 | $3 | ${a:--} | ${b:--} | ${c:--} | $(ratio "$a" "$b") $t |"
    }
    flood_row flood p50_us "a classmate's round trip while one student floods (64 sockets of echo): median, ms" 10
    flood_row flood p99_us "... p99, ms"
    flood_row flood max_us "... at its worst (of all runs), ms" 100
    flood_row flood rate "... the student's requests answered a second"
    flood_row floodseat p50_us "... while the student floods {\"req\":\"seat\",\"secret\":\"x\"} after making 1000 away seats: median, ms" 10
    flood_row floodseat p99_us "... p99, ms"
    flood_row floodseat max_us "... at its worst (of all runs), ms" 100
    flood_row floodseat rate "... the student's requests answered a second"
    if [ -n "${UWS:-}" ]; then
        say ""
        say "| workload | metric | wspush | uWebSockets | wspush / uWebSockets |"
        say "|---|---|---:|---:|---:|"
        versus() {   # workload field label
            a=$(figure "$1" wspush "$2")
            b=$(figure "$1" uws "$2")
            say "| $1 | $3 | ${a:--} | ${b:--} | $(ratio "$a" "$b") |"
        }
        versus rtt p50_us "round trip p50, µs"
        for w in tput64 tput60k push churn raw64; do
            versus $w rate "per second"
            versus $w server_cpu_ns "server CPU per operation, ns"
        done
        versus class40 server_cpu_ms_per_s "server CPU, ms per second"
        versus class30 server_cpu_ms_per_s "server CPU, ms per second"
        versus flood p50_us "a classmate's round trip while one student floods: median, ms"
        versus flood max_us "... at its worst (of all runs), ms"
        versus flood rate "... the student's requests answered a second"
    fi
    if [ -n "$BASE" ]; then
        say ""
        say "| workload | metric | wspush | wspush (base) | wspush / base | target | |"
        say "|---|---|---:|---:|---:|---|---|"
        against() {   # workload field label [op limit]: this build against the base
            a=$(figure "$1" wspush "$2")
            b=$(figure "$1" base "$2")
            r=$(ratio "$a" "$b")
            if [ -n "${4:-}" ]; then
                say "| $1 | $3 | ${a:--} | ${b:--} | $r | $4 $5 x | $(check "$r" "$4" "$5") |"
            else
                say "| $1 | $3 | ${a:--} | ${b:--} | $r | | |"
            fi
        }
        against rtt p50_us "round trip p50, µs"
        against tput64 rate "64 B messages/s" ">=" 0.95
        against tput64 server_cpu_ns "server CPU per message, ns" "<=" 1.05
        against tput60k rate "60000 B messages/s"
        against push rate "deliveries/s" ">=" 0.95
        against push server_cpu_ns "server CPU per delivery, ns" "<=" 1.05
        against churn rate "connect-echo-close cycles/s"
        against conns server_peak_rss_kb "peak RSS with 1000 clients, KiB"
        against class40 server_cpu_ms_per_s "server CPU, ms per second" "<=" 1.05
        against class30 server_cpu_ms_per_s "server CPU, ms per second"
        against raw64 rate "wspush -e: 64 B messages/s"
        against raw64 server_cpu_ns "... server CPU per message, ns"
        for w in flood floodseat; do
            against $w p50_us "a classmate's round trip while one student floods: median, ms"
            against $w max_us "... at its worst (of all runs), ms"
            against $w rate "... the student's requests answered a second"
        done
    fi
    say ""
    say "Medians of $RUNS runs; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -sr), $(date -u +%Y-%m-%d)."
    [ -n "$NODE_WHY" ] && say "The article's server was not run: $NODE_WHY."
    [ -n "$BASE" ] && say "wspush (base): $BASE, with the same flags."
    # tput64 and flood keep a quiet machine's server busy (over 900 ms of
    # CPU a second): less means others took its core.
    for w in tput64 flood; do
        for t in wspush base; do
            v=$(median $w $t server_cpu_ms_per_s)
            [ -n "$v" ] && awk -v v="$v" 'BEGIN { exit !(v < 800) }' &&
                say "Busy machine: in $w, $t had $v ms of CPU a second (median), where it could" \
                    "use 1000; its rates say little, its CPU per message more."
        done
    done
} > "$MD"
cat "$MD"
say ""
say "raw results: $RAW; table: $MD"
exit $status
