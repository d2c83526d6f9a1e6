#!/usr/bin/env bash
# test.sh -- build wspush and run every test; the last line says
# "N passed, M failed", and the exit status is 0 only if M is 0.
#
#   ./test.sh          everything (what CI runs)
#   ./test.sh quick    the builds, unit tests, the tutorial's scenario,
#                      the documents' claims, conformance --quick and the
#                      lessons: two or three minutes, for checking an
#                      exercise or a change (make check)
#
# Each part prints PASS:, FAIL: or SKIPPED: lines. A part that cannot run
# here (no clang, no Chromium) says SKIPPED loudly and is not counted as
# passed; under CI (CI=true) a skip counts as a failure, because .ci/run
# installs everything. FUZZ_SECONDS sets each fuzzer's run (default 60
# under CI, 10 otherwise). Logs and screenshots go to tests/out/.
set -u
cd "$(dirname "$0")" || exit 1
OUT=tests/out
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: > "$RESULTS"
export PYTHONDONTWRITEBYTECODE=1
FUZZ_SECONDS=${FUZZ_SECONDS:-$([ "${CI:-}" = true ] && echo 60 || echo 10)}
QUICK=""
[ "${1:-}" = quick ] && QUICK=yes
STARTED=$(date +%s)

record() { printf '%s\n' "$*" | tee -a "$RESULTS"; }
pass() { record "PASS: $*"; }
fail() { record "FAIL: $*"; }
skip() { record "SKIPPED: $* (NOT counted as passed)"; }

# run NAME SECONDS CMD...: run one test program with a time limit. Its own
# PASS/FAIL/SKIPPED lines count; exiting non-zero without a FAIL line is a
# failure too, so a crashed test cannot pass silently.
run() {
    local name=$1 limit=$2
    shift 2
    local log
    log=$OUT/$(printf '%s' "$name" | tr -c 'a-zA-Z0-9' '-').out
    timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    local status=$?
    grep -aE '^(PASS|FAIL|SKIPPED): ' "$log" | tee -a "$RESULTS"
    if [ "$status" -ne 0 ] && ! grep -aq '^FAIL: ' "$log"; then
        fail "$name: exited with status $status (log: $log)"
        tail -n 20 "$log"
    fi
}

# build NAME CMD...: one compile, one result line.
build() {
    local name=$1
    shift
    if "$@" > "$OUT/build.err" 2>&1; then
        pass "build: $name"
    else
        fail "build: $name"
        head -n 30 "$OUT/build.err"
    fi
}

have() { command -v "$1" > /dev/null 2>&1; }

# What is missing here, said once at the end with the one command that
# installs it all: the packages test.sh found missing, and every package
# a SKIPPED line names ("apt-get install PKG").
MISSING=""
missing() { MISSING="$MISSING $*"; }

# logs_clean TAG WHAT PATTERN: one result for the server logs of the runs
# tagged TAG: passed if there were some and none matches PATTERN.
logs_clean() {
    local runs bad
    runs=$(ls "$OUT/$1"-*.log 2> /dev/null | wc -l)
    bad=$(grep -lE "$3" "$OUT/$1"-*.log 2> /dev/null | tr '\n' ' ')
    if [ "$runs" -gt 0 ] && [ -z "$bad" ]; then
        pass "$2: no errors or leaks in $runs server runs"
    else
        fail "$2: reports in ${bad:-(no logs)}"
    fi
}

STRICT="-std=c99 -Wall -Wextra -Wpedantic -Wshadow -Werror -O2"
SANITIZE="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"

echo "== build"
build "cc -O2 -o wspush wspush.c sha1.c" cc -O2 -o wspush wspush.c sha1.c
build "gcc $STRICT" gcc $STRICT -o "$OUT/wspush-gcc" wspush.c sha1.c
if have clang; then
    build "clang $STRICT" clang $STRICT -o "$OUT/wspush-clang" wspush.c sha1.c
else
    skip "build: clang is not installed"
fi
if [ ! -x wspush ]; then
    fail "no wspush binary: nothing more can run"
    echo "$(grep -c '^PASS' "$RESULTS") passed, $(grep -c '^FAIL' "$RESULTS") failed"
    exit 1
fi

echo "== unit tests (under AddressSanitizer and UBSan)"
if cc -std=c99 -Wall -Wextra -Wno-unused-function -Werror $SANITIZE \
      -o tests/unit tests/unit.c sha1.c 2> "$OUT/unit-build.err"; then
    run "unit" 120 tests/unit
else
    fail "build: tests/unit.c"
    head -n 30 "$OUT/unit-build.err"
fi

echo "== socket tests"
run "scenario" 300 python3 tests/scenario.py
run "claims of README, wspush.1 and -h" 300 python3 tests/claims.py
if [ -n "$QUICK" ]; then
    run "conformance" 600 python3 tests/conformance.py --quick
else
    run "conformance" 600 python3 tests/conformance.py
    run "limits" 300 python3 tests/limits.py
    run "static files" 120 python3 tests/static.py
    run "admin access and presence" 300 python3 tests/admin.py
    run "seats" 300 python3 tests/seats.py
    run "fairness between students" 300 python3 tests/fairness.py
    run "what start-up says to open" 120 python3 tests/urls.py
fi

echo "== the lessons (lessons/01-07): builds, budgets, behaviour, hostile input under ASan"
run "lessons" 300 python3 tests/lessons.py

echo "== the mutants' verdicts (a mutant whose tests all skip is SKIPPED)"
run "mutants self-test" 60 python3 tests/mutate.py --self-test

# The rest is the full run's.
full() {
    echo "== interop with independent clients"
    # The npm peers install themselves from the lock file when npm is here.
    if have npm && { [ ! -d tests/node_modules/playwright-core ] ||
                     [ ! -d tests/node_modules/puppeteer-core ]; }; then
        echo "installing the npm peers: (cd tests && npm ci)"
        (cd tests && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund > ../"$OUT/npm-ci.out" 2>&1) ||
            tail -n 5 "$OUT/npm-ci.out"
    fi
    NODE_OK=""
    if have node; then
        node_major=$(node -p 'process.versions.node.split(".")[0]')
        if [ "$node_major" -ge 20 ]; then
            NODE_OK=yes
        else
            fail "node $(node --version) is too old: playwright-core needs Node 20 or later (Debian 12 ships 18: install Node 20 from NodeSource, or with nvm)"
        fi
    else
        missing nodejs npm
    fi
    # Debian's python3-websockets lives with Debian's /usr/bin/python3.
    SYSPY=python3
    [ -x /usr/bin/python3 ] && SYSPY=/usr/bin/python3
    "$SYSPY" -c 'import websockets' > /dev/null 2>&1 || missing python3-websockets
    run "interop: python websockets" 300 "$SYSPY" tests/interop_websockets.py
    if [ -n "$NODE_OK" ] && [ -d tests/node_modules/ws ] && [ -d tests/node_modules/websocket ]; then
        run "interop: npm ws and websocket" 300 node tests/interop.js
    else
        skip "interop: npm ws and websocket need node and 'cd tests && npm ci'"
    fi

    echo "== the pages in headless Chromium"
    if [ -z "$NODE_OK" ] || [ ! -d tests/node_modules/playwright-core ]; then
        skip "browser: needs node and 'cd tests && npm ci' (playwright-core)"
    elif [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
        missing chromium
        skip "browser: no Chromium at ${CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)"
    else
        run "browser" 300 node tests/browser.js
        run "seats in Chromium" 480 node tests/seats.js 2
        have zbarimg || missing zbar-tools
        run "QR code in Chromium" 120 node tests/qr.js
        echo "screenshots: $OUT/screenshots"
    fi

    echo "== the pages in a second engine: Firefox ESR"
    if [ -z "$NODE_OK" ] || [ ! -d tests/node_modules/puppeteer-core ]; then
        skip "pages in Firefox: needs node and 'cd tests && npm ci' (puppeteer-core)"
    elif [ ! -x "${FIREFOX:-/usr/bin/firefox-esr}" ]; then
        missing firefox-esr
        skip "pages in Firefox: no Firefox at ${FIREFOX:-/usr/bin/firefox-esr} (apt-get install firefox-esr)"
    else
        run "pages in Firefox" 120 node tests/firefox.js
    fi

    echo "== wss:// through nginx and Apache (contrib/), with a throwaway certificate"
    have nginx || missing nginx
    have apache2 || { [ -x /usr/sbin/apache2 ] || missing apache2; }
    have openssl || missing openssl
    run "proxies" 300 "$SYSPY" tests/proxies.py

    echo "== next to XAMPP: the pages from Apache httpd's htdocs, wspush beside it (a LAN in a namespace, as root)"
    if [ -z "$NODE_OK" ] || [ ! -d tests/node_modules/playwright-core ]; then
        skip "xampp: needs node and 'cd tests && npm ci' (playwright-core)"
    else
        run "wspush beside Apache (XAMPP)" 300 node tests/xampp.js
    fi

    echo "== make install, make uninstall, the man page"
    have mandoc || missing mandoc
    run "install" 120 python3 tests/install.py

    echo "== musl libc: a static build, and the socket tests against it"
    if have musl-gcc; then
        build "musl-gcc -static $STRICT" musl-gcc -static $STRICT -o wspush-musl wspush.c sha1.c
        if [ -x wspush-musl ]; then
            WSPUSH=./wspush-musl WSPUSH_TAG=musl run "scenario (musl)" 300 python3 tests/scenario.py --core
            WSPUSH=./wspush-musl WSPUSH_TAG=musl run "static files (musl)" 120 python3 tests/static.py
            WSPUSH=./wspush-musl WSPUSH_TAG=musl run "limits (musl)" 300 python3 tests/limits.py
        fi
    else
        missing musl-tools
        skip "musl: musl-gcc is not installed (apt-get install musl-tools)"
    fi

    echo "== the socket tests again, against wspush built with sanitizers"
    if cc -std=c99 $SANITIZE -o wspush-asan wspush.c sha1.c 2> "$OUT/asan-build.err"; then
        rm -f "$OUT"/asan-*.log
        export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
        WSPUSH=./wspush-asan WSPUSH_TAG=asan run "scenario (sanitizers)" 300 python3 tests/scenario.py --core
        WSPUSH=./wspush-asan WSPUSH_TAG=asan run "conformance (sanitizers)" 600 python3 tests/conformance.py
        WSPUSH=./wspush-asan WSPUSH_TAG=asan run "limits (sanitizers)" 600 python3 tests/limits.py
        WSPUSH=./wspush-asan WSPUSH_TAG=asan run "admin (sanitizers)" 300 python3 tests/admin.py
        WSPUSH=./wspush-asan WSPUSH_TAG=asan run "seats (sanitizers)" 300 python3 tests/seats.py
        WSPUSH=./wspush-asan WSPUSH_TAG=asan run "fairness (sanitizers)" 900 python3 tests/fairness.py
        unset ASAN_OPTIONS UBSAN_OPTIONS
        logs_clean asan sanitizers 'ERROR: (Address|Leak)Sanitizer|runtime error:'
    else
        fail "build: wspush with -fsanitize=address,undefined"
    fi

    echo "== the scenario under valgrind"
    if have valgrind; then
        rm -f "$OUT"/valgrind-*.log
        WSPUSH="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible ./wspush" \
            WSPUSH_TAG=valgrind run "scenario (valgrind)" 600 python3 tests/scenario.py --core
        logs_clean valgrind valgrind '^==[0-9]+== '
    else
        missing valgrind
        skip "valgrind is not installed"
    fi

    echo "== fuzzing the parsers with libFuzzer, $FUZZ_SECONDS s each"
    if have clang && echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; return (int)n * 0; }' \
            | clang -x c -fsanitize=fuzzer -o "$OUT/fuzz-probe" - > /dev/null 2>&1; then
        for h in handshake frame json; do
            if clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                   -Wno-unused-function \
                   -o "$OUT/fuzz_$h" "tests/fuzz/fuzz_$h.c" sha1.c 2> "$OUT/fuzz-build.err"; then
                # New inputs go to a scratch corpus in tests/out; the seeds stay as they are.
                mkdir -p "$OUT/corpus-$h"
                if timeout $((FUZZ_SECONDS + 60)) "$OUT/fuzz_$h" -max_total_time="$FUZZ_SECONDS" \
                       -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$OUT/crash-$h-" \
                       "$OUT/corpus-$h" "tests/fuzz/corpus/$h" > "$OUT/fuzz-$h.out" 2>&1; then
                    pass "fuzz $h: $(grep -o 'Done [0-9]* runs' "$OUT/fuzz-$h.out") in $FUZZ_SECONDS s, no crash"
                else
                    fail "fuzz $h: crash or error, see $OUT/fuzz-$h.out and $OUT/crash-$h-*"
                    grep -E 'ERROR|SUMMARY' "$OUT/fuzz-$h.out" | head -n 5
                fi
            else
                fail "build: tests/fuzz/fuzz_$h.c"
                head -n 20 "$OUT/fuzz-build.err"
            fi
        done
    else
        missing clang libclang-rt-14-dev
        skip "fuzzing: clang with libFuzzer (Debian clang, libclang-rt-14-dev) is not installed"
    fi

    echo "== mutants: deliberate bugs in a copy of wspush.c that the tests must catch"
    run "mutants" 900 python3 tests/mutate.py

    echo "== benchmark smoke test (each mode for about a second; no timing is checked)"
    run "bench smoke" 180 bench/run.sh --smoke

    echo "== static analysis"
    if have cppcheck; then
        if cppcheck --quiet --error-exitcode=1 --std=c99 --enable=warning,portability,performance \
               --inline-suppr wspush.c sha1.c > "$OUT/cppcheck.out" 2>&1; then
            pass "cppcheck: wspush.c and sha1.c are clean"
        else
            fail "cppcheck: see $OUT/cppcheck.out"
            head -n 20 "$OUT/cppcheck.out"
        fi
    else
        missing cppcheck
        skip "cppcheck is not installed"
    fi

}
[ -n "$QUICK" ] || full

passed=$(grep -c '^PASS: ' "$RESULTS")
failed=$(grep -c '^FAIL: ' "$RESULTS")
skipped=$(grep -c '^SKIPPED: ' "$RESULTS")
took=$(( $(date +%s) - STARTED ))
if [ -n "$QUICK" ]; then
    echo "quick run: $took s. The full run (./test.sh) also runs limits, static files, admin,"
    echo "interop, the browser, proxies, install, musl, sanitizers, valgrind, fuzzers, mutants."
fi
if [ "$skipped" -gt 0 ]; then
    # Every package named by a SKIPPED line, and those found missing above.
    named=$(grep '^SKIPPED: ' "$RESULTS" | grep -o 'apt-get install [a-z0-9.+ -]*' |
            sed 's/apt-get install //' | tr ' ' '\n')
    packages=$(printf '%s\n' $MISSING $named | grep -v '^$' | sort -u | tr '\n' ' ')
    npm=""
    [ -d tests/node_modules/playwright-core ] && [ -d tests/node_modules/puppeteer-core ] ||
        npm=" && (cd tests && npm ci)"
    echo "!! $skipped part(s) SKIPPED on this machine (see above); not counted as passed."
    echo "!! To install what the tests need: sudo .ci/run (Debian 12, with NodeSource's nodejs 20), or"
    if [ -n "$packages" ]; then
        echo "!!   sudo apt-get install -y ${packages% }$npm"
    elif [ -n "$npm" ]; then
        echo "!!   (cd tests && npm ci)"
    fi
    grep '^SKIPPED: ' "$RESULTS" | grep -v 'apt-get install' | sed 's/^SKIPPED: /!!   also: /'
    if [ "${CI:-}" = true ]; then
        echo "!! Under CI nothing may be skipped: each skip counts as a failure."
        failed=$((failed + skipped))
    fi
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
