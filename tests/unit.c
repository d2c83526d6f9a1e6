/* unit.c -- wspush's pure parts, called directly: SHA-1, base64, the
 * handshake parser, paths, the frame decoder, UTF-8, close payloads, the
 * JSON scanner and writer, the key table, the admin and log rules.
 *
 * Each group prints "PASS: unit: NAME (N checks)" or one "FAIL:" line per
 * broken check, with its source line. Inputs are copied into buffers of
 * their exact size, so AddressSanitizer catches a one-byte over-read.
 * Build: cc -std=c99 -Wall -Wextra -o unit tests/unit.c sha1.c */
#define WSPUSH_NO_MAIN
#include "../wspush.c"

static const char *group;
static int group_checks, group_failures, total_failures;

static void begin(const char *name)
{
    group = name;
    group_checks = group_failures = 0;
}

static void end(void)
{
    if (group_failures == 0)
        printf("PASS: unit: %s (%d checks)\n", group, group_checks);
    total_failures += group_failures;
}

static void check_at(int ok, const char *what, int line)
{
    group_checks++;
    if (!ok) {
        group_failures++;
        printf("FAIL: unit: %s: %s (tests/unit.c:%d)\n", group, what, line);
    }
}
#define CHECK(ok, what) check_at((ok), (what), __LINE__)

/* A malloc'd copy of p[0..n) with nothing after it. */
static unsigned char *exact(const void *p, size_t n)
{
    unsigned char *q = malloc(n ? n : 1);
    if (q == NULL)
        abort();
    memcpy(q, p, n);
    return q;
}

/* ------------------------------------------------------------ SHA-1 */

static void hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void sha1_hex(const void *p, size_t n, size_t piece, char out[41])
{
    struct sha1 s;
    unsigned char d[SHA1_DIGEST_LEN];
    sha1_init(&s);
    for (size_t i = 0; i < n; i += piece)
        sha1_update(&s, (const unsigned char *)p + i, n - i < piece ? n - i : piece);
    sha1_final(&s, d);
    hex(d, sizeof d, out);
}

static void test_sha1(void)
{
    static const struct { const char *name, *in, *digest; } cases[] = {
        { "empty", "", "da39a3ee5e6b4b0d3255bfef95601890afd80709" },
        { "abc", "abc", "a9993e364706816aba3e25717850c26c9cd0d89d" },
        { "448 bits",
          "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
        { "896 bits",
          "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
          "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
          "a49b2446a02c645bf419f995b67091253a04a259" },
    };
    char out[41];
    begin("sha1 (FIPS 180-4, RFC 3174)");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].in);
        for (size_t piece = 1; piece <= 65; piece += 16) {
            sha1_hex(cases[i].in, n, piece, out);
            CHECK(strcmp(out, cases[i].digest) == 0, cases[i].name);
        }
    }
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    sha1_hex(million, 1000000, 1000000, out);
    CHECK(strcmp(out, "34aa973cd4c4daa4f61eeb2bdbad27316534016f") == 0, "one million a");
    sha1_hex(million, 1000000, 4093, out);
    CHECK(strcmp(out, "34aa973cd4c4daa4f61eeb2bdbad27316534016f") == 0,
          "one million a, in odd pieces");
    free(million);
    /* Lengths around the padding boundary must agree whatever the pieces. */
    unsigned char msg[130];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (unsigned char)(i * 7);
    for (size_t n = 50; n < sizeof msg; n++) {
        char whole[41], bytewise[41];
        sha1_hex(msg, n, n, whole);
        sha1_hex(msg, n, 1, bytewise);
        CHECK(strcmp(whole, bytewise) == 0, "pieces give the same digest");
    }
    end();
}

static void test_base64(void)
{
    static const struct { const char *in, *out; } cases[] = {
        { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    };
    char out[32];
    begin("base64 (RFC 4648 §10)");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = base64_encode(out, sizeof out, cases[i].in, strlen(cases[i].in));
        CHECK(n == strlen(cases[i].out) && strcmp(out, cases[i].out) == 0, cases[i].out);
    }
    CHECK(base64_encode(out, 8, "foobar", 6) == 0, "refuses a short buffer");
    CHECK(base64_encode(out, 9, "foobar", 6) == 8, "exact buffer is enough");
    unsigned char bin[3] = { 0xfb, 0xff, 0xbf };
    base64_encode(out, sizeof out, bin, 3);
    CHECK(strcmp(out, "+/+/") == 0, "uses + and /");
    end();
}

static void test_accept(void)
{
    char accept_key[ACCEPT_LEN + 1];
    unsigned char digest[SHA1_DIGEST_LEN];
    char digest_hex[41];
    begin("Sec-WebSocket-Accept (RFC 6455 §1.3)");
    ws_accept(cspan("dGhlIHNhbXBsZSBub25jZQ=="), accept_key, digest);
    hex(digest, sizeof digest, digest_hex);
    CHECK(strcmp(accept_key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "the RFC's example");
    CHECK(strcmp(digest_hex, "b37a4f2cc0624f1690f64606cf385945b2bec4ea") == 0,
          "the SHA-1 of key + GUID");
    end();
}

/* ------------------------------------------------------- handshake */

/* What the server would answer: 101, 200 (a file), a failure status,
 * or 0 for "needs more bytes". r's spans stay good until the next call. */
static int classify(const char *text, size_t n, struct http_request *r)
{
    static unsigned char *p;
    free(p);
    p = exact(text, n);
    struct failure f;
    enum http_kind kind;
    int status;
    enum parse res = http_parse_head(p, n, r, &f);
    if (res == PARSE_MORE)
        status = 0;
    else if (res == PARSE_FAIL || http_check(r, &kind, &f) != PARSE_DONE)
        status = f.code;
    else
        status = kind == HTTP_UPGRADE ? 101 : 200;
    return status;
}

#define UPGRADE_HEAD "Host: example.com\r\nUpgrade: websocket\r\n" \
    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
#define GOOD_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

static const struct { const char *name, *text; int status; } heads[] = {
    { "the RFC's handshake", "GET /chat HTTP/1.1\r\n" UPGRADE_HEAD GOOD_KEY
      "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, echo-protocol\r\n\r\n", 101 },
    { "bare LF line ends", "GET / HTTP/1.1\nHost: a\nUpgrade: websocket\n"
      "Connection: Upgrade\nSec-WebSocket-Version: 13\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\n\n", 101 },
    { "names in any case, lists", "GET / HTTP/1.1\r\nhost: a\r\nUPGRADE: WebSocket\r\n"
      "connection: keep-alive,  Upgrade \r\nsec-websocket-version: 13\r\n"
      "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n", 101 },
    { "Connection over two lines", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
      "Connection: keep-alive\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\n"
      GOOD_KEY "\r\n", 101 },
    { "HTTP/1.1 later minor", "GET / HTTP/1.2\r\n" UPGRADE_HEAD GOOD_KEY "\r\n", 101 },
    { "proxied", "GET /ws HTTP/1.1\r\n" UPGRADE_HEAD GOOD_KEY
      "X-Forwarded-For: 10.0.0.7\r\n\r\n", 101 },
    { "plain GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200 },
    { "plain HEAD", "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n", 200 },
    { "HTTP/1.0 needs no Host", "GET / HTTP/1.0\r\n\r\n", 200 },
    { "h2c upgrade is just a GET", "GET / HTTP/1.1\r\nHost: a\r\n"
      "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n", 200 },
    { "POST", "POST / HTTP/1.1\r\nHost: a\r\n\r\n", 405 },
    { "no Host", "GET / HTTP/1.1\r\n\r\n", 400 },
    { "upgrade not GET", "POST / HTTP/1.1\r\n" UPGRADE_HEAD GOOD_KEY "\r\n", 400 },
    { "upgrade over HTTP/1.0", "GET / HTTP/1.0\r\n" UPGRADE_HEAD GOOD_KEY "\r\n", 400 },
    { "key without Upgrade", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\n" GOOD_KEY "\r\n", 400 },
    { "no Connection: Upgrade", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
      "Connection: keep-alive\r\nSec-WebSocket-Version: 13\r\n" GOOD_KEY "\r\n", 400 },
    { "version 8", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n" GOOD_KEY "\r\n", 426 },
    { "no version", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\n" GOOD_KEY "\r\n", 426 },
    { "no key", "GET / HTTP/1.1\r\n" UPGRADE_HEAD "\r\n", 400 },
    { "key too short", "GET / HTTP/1.1\r\n" UPGRADE_HEAD
      "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n\r\n", 400 },
    { "key of 17 bytes", "GET / HTTP/1.1\r\n" UPGRADE_HEAD
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZTE=\r\n\r\n", 400 },
    { "key not canonical", "GET / HTTP/1.1\r\n" UPGRADE_HEAD
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n\r\n", 400 },
    { "key with bad letters", "GET / HTTP/1.1\r\n" UPGRADE_HEAD
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSB*b25jZQ==\r\n\r\n", 400 },
    { "two keys", "GET / HTTP/1.1\r\n" UPGRADE_HEAD GOOD_KEY GOOD_KEY "\r\n", 400 },
    { "two Hosts", "GET / HTTP/1.1\r\nHost: b\r\n" UPGRADE_HEAD GOOD_KEY "\r\n", 400 },
    { "two Origins", "GET / HTTP/1.1\r\n" UPGRADE_HEAD GOOD_KEY "Origin: http://a\r\n"
      "Origin: http://b\r\n\r\n", 400 },
    { "folded header", "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400 },
    { "space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400 },
    { "no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400 },
    { "control byte in value", "GET / HTTP/1.1\r\nHost: a\x01" "b\r\n\r\n", 400 },
    { "short request line", "GET /\r\nHost: a\r\n\r\n", 400 },
    { "double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400 },
    { "HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400 },
    { "not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n", 400 },
    { "binary garbage", "\x16\x03\x01\x02\xfc\x03\x03\n\n", 400 },
    { "empty line first", "\r\n\r\n", 400 },
};

static void test_handshake(void)
{
    struct http_request r;
    char what[200];
    begin("handshake parser (RFC 6455 §4.2.1)");
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        size_t n = strlen(heads[i].text);
        int got = classify(heads[i].text, n, &r);
        snprintf(what, sizeof what, "%s: expected %d, got %d", heads[i].name,
                 heads[i].status, got);
        CHECK(got == heads[i].status, what);
        /* Every proper prefix of a complete head asks for more, whatever
         * the answer to the whole head will be. */
        size_t k = 0;
        while (k < n && classify(heads[i].text, k, &r) == 0)
            k++;
        snprintf(what, sizeof what, "%s: the prefix of %zu bytes gave an answer",
                 heads[i].name, k);
        CHECK(k == n, what);
    }
    CHECK(classify("", 0, &r) == 0, "nothing yet asks for more");
    const char *rfc = heads[0].text;
    classify(rfc, strlen(rfc), &r);
    CHECK(r.offers_echo && span_is(r.target, "/chat") && span_is(r.origin, "http://example.com"),
          "finds echo-protocol in a list, the target and Origin");
    const char *x = "GET /chat HTTP/1.1\r\n" UPGRADE_HEAD GOOD_KEY
                    "Sec-WebSocket-Protocol: echo-protocolx, Echo-Protocol\r\n\r\n";
    classify(x, strlen(x), &r);
    CHECK(!r.offers_echo && !r.proxied, "echo-protocolx and Echo-Protocol are other names");
    classify(heads[5].text, strlen(heads[5].text), &r);
    CHECK(r.proxied && span_is(r.forwarded, "10.0.0.7"), "a proxy's header is noted");

    /* The head limit: 8192 bytes pass, one more is 431. */
    static char big[MAX_REQUEST_HEAD + 64];
    const char *start = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    size_t fill = MAX_REQUEST_HEAD - strlen(start) - 4;
    memcpy(big, start, strlen(start));
    memset(big + strlen(start), 'x', fill);
    memcpy(big + strlen(start) + fill, "\r\n\r\n", 4);
    CHECK(classify(big, MAX_REQUEST_HEAD, &r) == 200, "a head of exactly 8192 bytes is fine");
    memset(big + strlen(start), 'x', fill + 1);
    memcpy(big + strlen(start) + fill + 1, "\r\n\r\n", 4);
    CHECK(classify(big, MAX_REQUEST_HEAD + 1, &r) == 431, "8193 bytes get 431");
    CHECK(classify(big, MAX_REQUEST_HEAD, &r) == 431, "8192 bytes and no end get 431");
    end();
}

static void test_paths(void)
{
    static const struct { const char *url, *path; int status; } cases[] = {
        { "/", "index.html", 0 },
        { "/user.html", "user.html", 0 },
        { "/user.html?ws=ws://x:1/&token=a", "user.html", 0 },
        { "/a/b.css", "a/b.css", 0 },
        { "/a/", "a/index.html", 0 },
        { "//user.html", "user.html", 0 },
        { "/a//b", "a/b", 0 },
        { "/%41dmin.html", "Admin.html", 0 },
        { "/a%20b", "a b", 0 },
        { "/../etc/passwd", NULL, 403 },
        { "/a/../../etc/passwd", NULL, 403 },
        { "/%2e%2e/etc/passwd", NULL, 403 },
        { "/%2E%2E/%2e%2e/etc/passwd", NULL, 403 },
        { "/..%2fetc%2fpasswd", NULL, 403 },
        { "/a%2f..%2f..%2fetc", NULL, 403 },
        { "/user.html%00.png", NULL, 403 },
        { "/.git/config", NULL, 403 },
        { "/.", NULL, 403 },
        { "/a/.hidden", NULL, 403 },
        { "/a\\..\\b", NULL, 403 },
        { "/a%5c..%5cb", NULL, 403 },
        { "etc/passwd", NULL, 400 },
        { "http://evil/etc/passwd", NULL, 400 },
        { "/%zz", NULL, 400 },
        { "/%2", NULL, 400 },
    };
    begin("static file paths");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[MAX_PATH_LEN];
        struct failure f;
        size_t n = strlen(cases[i].url);
        unsigned char *p = exact(cases[i].url, n);
        enum parse res = url_to_path(span_of(p, n), out, sizeof out, &f);
        if (cases[i].path != NULL)
            CHECK(res == PARSE_DONE && strcmp(out, cases[i].path) == 0, cases[i].url);
        else
            CHECK(res == PARSE_FAIL && f.code == cases[i].status, cases[i].url);
        free(p);
    }
    char out[8];
    struct failure f;
    CHECK(url_to_path(cspan("/abcdefgh"), out, sizeof out, &f) == PARSE_FAIL &&
          f.code == 404, "a path too long for the buffer");
    CHECK(strcmp(content_type("a/b.css"), "text/css; charset=utf-8") == 0 &&
          strcmp(content_type("x.html"), "text/html; charset=utf-8") == 0 &&
          strcmp(content_type("x.tar"), "application/octet-stream") == 0, "content types");
    end();
}

/* ---------------------------------------------------------- frames */

/* Write a client frame to out (masked if masked); returns its length. */
static size_t mkframe(unsigned char *out, int fin, int opcode, const void *payload,
                      size_t len, int masked)
{
    static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
    size_t h = frame_header(out, opcode, len);
    if (!fin)
        out[0] &= 0x7f;
    if (masked) {
        out[1] |= 0x80;
        memcpy(out + h, mask, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[h + i] = ((const unsigned char *)payload)[i] ^ (masked ? mask[i & 3] : 0);
    return h + len;
}

/* Feed stream[0..len) to a fresh decoder in pieces of `piece' bytes,
 * keeping what is not used as conn_input() does, and describe what came
 * out: "T:text|B:5|P:ping|O:0|C:2|F:1002". */
static void decode(const unsigned char *stream, size_t len, size_t piece,
                   size_t max_message, int text_only, char *log, size_t cap)
{
    struct decoder d;
    memset(&d, 0, sizeof d);
    d.max_message = max_message;
    d.text_only = text_only;
    unsigned char *buf = malloc(len + MAX_FRAME_HEADER + 1);
    size_t have = 0, o = 0;
    log[0] = '\0';
    for (size_t at = 0; at < len; at += piece) {
        size_t n = len - at < piece ? len - at : piece, avail, pos = 0;
        memcpy(buf + have, stream + at, n);
        avail = have + n;
        unsigned char *copy = exact(buf, avail);  /* exact size, for ASan */
        for (;;) {
            struct failure f;
            size_t used;
            enum parse r = frame_decode(&d, copy + pos, avail - pos, &used, &f);
            pos += used;
            if (r == PARSE_MORE)
                break;
            if (r == PARSE_FAIL) {
                o += (size_t)snprintf(log + o, cap - o, "F:%d|", f.code);
                free(copy);
                goto done;
            }
            if (!d.ready)
                continue;
            if (d.opcode == OP_TEXT)
                o += (size_t)snprintf(log + o, cap - o, "T:%.*s|", (int)d.data_len, d.data);
            else if (d.opcode == OP_BINARY)
                o += (size_t)snprintf(log + o, cap - o, "B:%zu|", d.data_len);
            else if (d.opcode == OP_PING)
                o += (size_t)snprintf(log + o, cap - o, "P:%.*s|", (int)d.data_len, d.data);
            else
                o += (size_t)snprintf(log + o, cap - o, "%c:%zu|",
                                      d.opcode == OP_PONG ? 'O' : 'C', d.data_len);
        }
        have = avail - pos;
        if (have >= MAX_FRAME_HEADER) {   /* conn_input() relies on this */
            o += (size_t)snprintf(log + o, cap - o, "LEFTOVER:%zu|", have);
            free(copy);
            goto done;
        }
        memcpy(buf, copy + pos, have);
        free(copy);
    }
done:
    buf_free(&d.msg);
    free(buf);
}

static struct frame_case {
    const char *name;
    unsigned char bytes[400];
    size_t n;
    const char *expect;
    int text_only;
    size_t max;
} frame_cases[40];
static int n_frame_cases;

static void add_case(const char *name, const unsigned char *s, size_t n,
                     const char *expect, int text_only, size_t max)
{
    struct frame_case *fc = &frame_cases[n_frame_cases++];
    fc->name = name;
    memcpy(fc->bytes, s, n);
    fc->n = n;
    fc->expect = expect;
    fc->text_only = text_only;
    fc->max = max;
}
#define CASE(name, expect, text_only, max) add_case(name, s, n, expect, text_only, max)

static void frame_cases_make(void)
{
    unsigned char s[4096], big[300];
    size_t n;
    /* §5.7: a single-frame masked text message "Hello". */
    static const unsigned char hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                           0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    memset(big, 'b', sizeof big);
    n = sizeof hello;
    memcpy(s, hello, n);
    CASE("RFC 6455 §5.7 masked Hello", "T:Hello|", 1, 100);
    n = mkframe(s, 0, OP_TEXT, "Hel", 3, 1);
    n += mkframe(s + n, 1, OP_PING, "hi", 2, 1);
    n += mkframe(s + n, 1, OP_CONT, "lo", 2, 1);
    CASE("fragments with a ping between", "P:hi|T:Hello|", 1, 100);
    n = mkframe(s, 1, OP_TEXT, "", 0, 1);
    n += mkframe(s + n, 1, OP_PONG, "", 0, 1);
    n += mkframe(s + n, 1, OP_CLOSE, "\x03\xe8", 2, 1);
    CASE("empty text, pong, close", "T:|O:0|C:2|", 1, 100);
    n = mkframe(s, 0, OP_TEXT, "", 0, 1);
    n += mkframe(s + n, 0, OP_CONT, "", 0, 1);
    n += mkframe(s + n, 1, OP_CONT, "ok", 2, 1);
    CASE("empty fragments", "T:ok|", 1, 100);
    n = mkframe(s, 1, OP_TEXT, "one", 3, 1);
    n += mkframe(s + n, 0, OP_TEXT, "tw", 2, 1);
    n += mkframe(s + n, 1, OP_CONT, "o", 1, 1);
    n += mkframe(s + n, 1, OP_TEXT, "three", 5, 1);
    CASE("whole, pieces, whole", "T:one|T:two|T:three|", 1, 100);
    n = mkframe(s, 1, OP_BINARY, big, sizeof big, 1);
    CASE("binary with a 16-bit length", "B:300|", 0, 1000);
    n = mkframe(s, 1, OP_BINARY, big, 3, 1);
    CASE("binary refused in JSON mode", "F:1003|", 1, 1000);
    n = mkframe(s, 1, OP_TEXT, "x", 1, 0);
    CASE("unmasked frame", "F:1002|", 1, 100);
    n = mkframe(s, 1, OP_TEXT, "x", 1, 1);
    s[0] |= 0x40;
    CASE("RSV1 set", "F:1002|", 1, 100);
    n = mkframe(s, 1, OP_TEXT, "x", 1, 1);
    s[0] |= 0x10;
    CASE("RSV3 set", "F:1002|", 1, 100);
    n = mkframe(s, 1, 3, "x", 1, 1);
    CASE("opcode 3", "F:1002|", 1, 100);
    n = mkframe(s, 1, 0xb, "x", 1, 1);
    CASE("opcode 11", "F:1002|", 1, 100);
    n = mkframe(s, 1, OP_PING, big, 126, 1);
    CASE("ping of 126 bytes", "F:1002|", 1, 1000);
    n = mkframe(s, 1, OP_PING, big, 125, 1);
    CASE("ping of 125 bytes", "P:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
         "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb|", 1, 1000);
    n = mkframe(s, 0, OP_PING, "x", 1, 1);
    CASE("fragmented ping", "F:1002|", 1, 100);
    n = mkframe(s, 1, OP_CONT, "x", 1, 1);
    CASE("continuation with nothing to continue", "F:1002|", 1, 100);
    n = mkframe(s, 0, OP_TEXT, "a", 1, 1);
    n += mkframe(s + n, 1, OP_TEXT, "b", 1, 1);
    CASE("new message inside a fragmented one", "F:1002|", 1, 100);
    n = mkframe(s, 1, OP_TEXT, big, 101, 1);
    CASE("message over the limit", "F:1009|", 1, 100);
    n = mkframe(s, 1, OP_TEXT, big, 100, 1);
    CASE("message at the limit", "T:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
         "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb|", 1, 100);
    n = mkframe(s, 0, OP_TEXT, big, 60, 1);
    n += mkframe(s + n, 1, OP_CONT, big, 41, 1);
    CASE("fragments adding up over the limit", "F:1009|", 1, 100);
    /* A 64-bit length with the top bit set, and one of 2^40 bytes: both
     * are refused from the header alone, before any payload. */
    static const unsigned char huge[] = { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4 };
    n = sizeof huge;
    memcpy(s, huge, n);
    CASE("64-bit length with top bit", "F:1002|", 0, 100);
    static const unsigned char tera[] = { 0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
    n = sizeof tera;
    memcpy(s, tera, n);
    CASE("length of a terabyte", "F:1009|", 0, 1 << 20);
    n = mkframe(s, 1, OP_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11, 1);
    CASE("valid UTF-8", "T:\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5|", 1, 100);
    n = mkframe(s, 0, OP_TEXT, "\xce", 1, 1);
    n += mkframe(s + n, 0, OP_CONT, "\xba\xe1", 2, 1);
    n += mkframe(s + n, 1, OP_CONT, "\xbd\xb9", 2, 1);
    CASE("UTF-8 split across fragments", "T:\xce\xba\xe1\xbd\xb9|", 1, 100);
    n = mkframe(s, 1, OP_TEXT, "a\xed\xa0\x80", 4, 1);
    CASE("UTF-8 surrogate", "F:1007|", 1, 100);
    n = mkframe(s, 0, OP_TEXT, "a\xce", 2, 1);
    n += mkframe(s + n, 1, OP_CONT, "", 0, 1);
    CASE("text ending inside a character", "F:1007|", 1, 100);
    n = mkframe(s, 1, OP_BINARY, "\xff\xfe", 2, 1);
    CASE("binary is not checked as UTF-8", "B:2|", 0, 100);
}

static void test_frames(void)
{
    char log[512], again[512], what[700];
    begin("frame decoder (RFC 6455 §5)");
    frame_cases_make();
    for (int i = 0; i < n_frame_cases; i++) {
        struct frame_case *fc = &frame_cases[i];
        decode(fc->bytes, fc->n, fc->n, fc->max, fc->text_only, log, sizeof log);
        snprintf(what, sizeof what, "%s: expected %s, got %s", fc->name, fc->expect, log);
        CHECK(strcmp(log, fc->expect) == 0, what);
        /* The same bytes in any pieces give the same result. */
        size_t piece = 1;
        for (; piece < 16; piece++) {
            decode(fc->bytes, fc->n, piece, fc->max, fc->text_only, again, sizeof again);
            if (strcmp(again, log) != 0)
                break;
        }
        snprintf(what, sizeof what, "%s: in %zu-byte pieces gave %s", fc->name, piece, again);
        CHECK(piece == 16, what);
    }

    /* §8.1 fail fast: a frame that claims 1000 bytes fails at the bad
     * byte, before the rest arrives. */
    struct decoder d;
    unsigned char s[1100], pay[1000];
    struct failure f;
    size_t used;
    memset(&d, 0, sizeof d);
    d.max_message = 2000;
    d.text_only = 1;
    memset(pay, 'a', sizeof pay);
    pay[5] = 0xff;
    mkframe(s, 1, OP_TEXT, pay, sizeof pay, 1);
    unsigned char *first = exact(s, 20);
    CHECK(frame_decode(&d, first, 20, &used, &f) == PARSE_FAIL &&
          f.code == CLOSE_BAD_DATA, "invalid UTF-8 fails before the frame ends");
    free(first);
    buf_free(&d.msg);

    /* A header that claims a megabyte allocates nothing until bytes come. */
    memset(&d, 0, sizeof d);
    d.max_message = 1 << 20;
    static const unsigned char meg[] = { 0x81, 0xfe, 0xff, 0xff, 1, 2, 3, 4 };
    unsigned char *m = exact(meg, sizeof meg);
    CHECK(frame_decode(&d, m, sizeof meg, &used, &f) == PARSE_MORE &&
          used == sizeof meg && d.msg.cap == 0, "no allocation for a claimed length");
    free(m);
    /* Each frame of a message is handed out, with its own payload. */
    memset(&d, 0, sizeof d);
    d.max_message = 100;
    size_t n = mkframe(s, 0, OP_TEXT, "ab", 2, 1);
    n += mkframe(s + n, 1, OP_CONT, "cd", 2, 1);
    unsigned char *two = exact(s, n);
    int one = frame_decode(&d, two, n, &used, &f) == PARSE_DONE && !d.ready &&
              d.payload_len == 2 && memcmp(d.payload, "ab", 2) == 0;
    size_t first_used = used;
    one = one && frame_decode(&d, two + first_used, n - first_used, &used, &f) == PARSE_DONE &&
          d.ready && d.payload_len == 2 && memcmp(d.payload, "cd", 2) == 0 &&
          d.data_len == 4 && memcmp(d.data, "abcd", 4) == 0;
    CHECK(one, "a fragmented message is handed out frame by frame");
    free(two);
    buf_free(&d.msg);
    end();
}

static void test_encode(void)
{
    static const struct { uint64_t len; size_t head; } cases[] = {
        { 0, 2 }, { 125, 2 }, { 126, 4 }, { 65535, 4 }, { 65536, 10 },
        { (uint64_t)1 << 32, 10 },
    };
    unsigned char h[10];
    begin("frame encoder");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t got = frame_header(h, OP_TEXT, cases[i].len);
        struct frame fr;
        struct failure f;
        unsigned char masked[14];
        memcpy(masked, h, got);
        masked[1] |= 0x80;      /* the parser wants a client frame */
        memset(masked + got, 0, 4);
        CHECK(got == cases[i].head && h[0] == 0x81 && (h[1] & 0x80) == 0 &&
              frame_parse(masked, got + 4, &fr, &f) == PARSE_DONE &&
              fr.len == cases[i].len, "header length and round trip");
    }
    end();
}

static void test_utf8(void)
{
    static const struct { const char *name, *text; int valid; } cases[] = {
        { "empty", "", 1 },
        { "ASCII", "hello, world", 1 },
        { "Greek", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 1 },
        { "U+007F", "\x7f", 1 },
        { "U+0080", "\xc2\x80", 1 },
        { "U+07FF", "\xdf\xbf", 1 },
        { "U+0800", "\xe0\xa0\x80", 1 },
        { "U+D7FF", "\xed\x9f\xbf", 1 },
        { "U+E000", "\xee\x80\x80", 1 },
        { "U+FFFF", "\xef\xbf\xbf", 1 },
        { "U+10000", "\xf0\x90\x80\x80", 1 },
        { "U+10FFFF", "\xf4\x8f\xbf\xbf", 1 },
        { "emoji", "\xf0\x9f\x98\x80", 1 },
        { "lone continuation", "\x80", 0 },
        { "overlong NUL", "\xc0\x80", 0 },
        { "overlong C1", "\xc1\xbf", 0 },
        { "overlong 3-byte", "\xe0\x80\xaf", 0 },
        { "overlong 4-byte", "\xf0\x80\x80\xaf", 0 },
        { "surrogate D800", "\xed\xa0\x80", 0 },
        { "surrogate DFFF", "\xed\xbf\xbf", 0 },
        { "above U+10FFFF", "\xf4\x90\x80\x80", 0 },
        { "F5 lead", "\xf5\x80\x80\x80", 0 },
        { "FF", "\xff", 0 },
        { "FE", "\xfe", 0 },
        { "truncated then ASCII", "\xce" "a", 0 },
        { "truncated at end", "a\xe1\xbd", 0 },
    };
    begin("UTF-8 check (RFC 3629)");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].text), cut = 0;
        /* Split at every point: the verdict may not change. */
        for (; cut <= n; cut++) {
            struct utf8 u = { 0, 0, 0 };
            unsigned char *a = exact(cases[i].text, cut);
            unsigned char *b = exact(cases[i].text + cut, n - cut);
            int ok = utf8_check(&u, a, cut) == 0 && utf8_check(&u, b, n - cut) == 0 &&
                     u.need == 0;
            free(a);
            free(b);
            if (ok != cases[i].valid)
                break;
        }
        CHECK(cut == n + 1, cases[i].name);
    }
    unsigned cp = 0;
    CHECK(utf8_char((const unsigned char *)"\xe2\x80\xae!", 4, &cp) == 3 && cp == 0x202e,
          "utf8_char decodes U+202E");
    CHECK(utf8_char((const unsigned char *)"\xc2", 1, &cp) == 0, "utf8_char: cut short");
    unsigned char o[4];
    CHECK(utf8_put(o, 0x1f600) == 4 && memcmp(o, "\xf0\x9f\x98\x80", 4) == 0 &&
          utf8_put(o, 0xe9) == 2 && memcmp(o, "\xc3\xa9", 2) == 0, "utf8_put");
    end();
}

static void test_close(void)
{
    static const struct { unsigned code; int ok; } codes[] = {
        { 0, 0 }, { 999, 0 }, { 1000, 1 }, { 1001, 1 }, { 1002, 1 }, { 1003, 1 },
        { 1004, 0 }, { 1005, 0 }, { 1006, 0 }, { 1007, 1 }, { 1011, 1 },
        { 1012, 1 }, { 1014, 1 }, { 1015, 0 }, { 1016, 0 }, { 1100, 0 },
        { 2000, 0 }, { 2999, 0 }, { 3000, 1 }, { 3999, 1 }, { 4000, 1 },
        { 4999, 1 }, { 5000, 0 }, { 65535, 0 },
    };
    struct failure f;
    unsigned code;
    begin("close payloads (RFC 6455 §5.5.1, §7.4)");
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        unsigned char p[2] = { (unsigned char)(codes[i].code >> 8), (unsigned char)codes[i].code };
        char what[40];
        snprintf(what, sizeof what, "code %u", codes[i].code);
        enum parse r = close_parse(p, 2, &code, &f);
        CHECK(codes[i].ok ? r == PARSE_DONE && code == codes[i].code
                          : r == PARSE_FAIL && f.code == CLOSE_PROTOCOL_ERROR, what);
    }
    CHECK(close_parse((const unsigned char *)"", 0, &code, &f) == PARSE_DONE &&
          code == CLOSE_NO_STATUS, "empty payload");
    CHECK(close_parse((const unsigned char *)"\x03", 1, &code, &f) == PARSE_FAIL &&
          f.code == CLOSE_PROTOCOL_ERROR, "1-byte payload");
    CHECK(close_parse((const unsigned char *)"\x03\xe8" "bye \xce\xba", 8, &code, &f) ==
          PARSE_DONE, "UTF-8 reason");
    CHECK(close_parse((const unsigned char *)"\x03\xe8" "\xed\xa0\x80", 5, &code, &f) ==
          PARSE_FAIL && f.code == CLOSE_BAD_DATA, "reason not UTF-8");
    end();
}

/* ------------------------------------------------------------ JSON */

static unsigned char kept[N_FIELDS][512];

/* Scan text as a request, its decoded fields copied to kept[] so they
 * stay readable after the buffers are freed. */
static int parse_json(const char *text, struct request *r, struct failure *f)
{
    size_t n = strlen(text);
    unsigned char *p = exact(text, n);
    unsigned char *s = malloc(n ? n : 1);       /* exactly n bytes of scratch */
    enum parse res = json_parse_request(p, n, r, s, f);
    for (int i = 0; i < N_FIELDS; i++) {
        if (r->field[i].p != NULL && r->field[i].len < sizeof kept[i]) {
            memcpy(kept[i], r->field[i].p, r->field[i].len);
            r->field[i].p = kept[i];
        }
        if (r->raw[i].p != NULL)        /* raw spans as offsets into text */
            r->raw[i].p = (const unsigned char *)text + (r->raw[i].p - p);
    }
    free(p);
    free(s);
    return res;
}

static int span_eq(struct span s, const char *w, size_t n)
{
    return s.p != NULL && s.len == n && memcmp(s.p, w, n) == 0;
}

static void test_json(void)
{
    static const struct { const char *name, *text, *req, *txt; size_t txt_len; } good[] = {
        { "the tutorial's echo", "{\"req\":\"text\",\"text\":\"user message 1\"}",
          "text", "user message 1", 14 },
        { "space everywhere", " \n{ \"req\" :\t\"a\" ,\r\"text\" : \"b\" } \t", "a", "b", 1 },
        { "every escape", "{\"req\":\"x\",\"text\":\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\"}",
          "x", "q\"b\\s/\b\f\n\r\t", 11 },
        { "\\u escapes", "{\"req\":\"x\",\"text\":\"\\u0041\\u00e9\\u20AC\"}",
          "x", "A\xc3\xa9\xe2\x82\xac", 6 },
        { "surrogate pair", "{\"req\":\"x\",\"text\":\"\\ud83d\\ude00!\"}",
          "x", "\xf0\x9f\x98\x80!", 5 },
        { "\\u0000", "{\"req\":\"x\",\"text\":\"a\\u0000b\"}", "x", "a\0b", 3 },
        { "escaped key", "{\"\\u0072eq\":\"text\",\"te\\u0078t\":\"t\"}", "text", "t", 1 },
        { "other values skipped", "{\"a\":[1,-2.5e+3,{\"b\":null,\"c\":[]}],\"req\":\"x\","
          "\"t\":true,\"f\":false,\"z\":0,\"e\":1E-2,\"text\":\"y\"}", "x", "y", 1 },
        { "nested keys are not fields", "{\"o\":{\"req\":5,\"text\":[]},\"req\":\"x\"}",
          "x", NULL, 0 },
        { "last of two keys wins", "{\"req\":\"a\",\"req\":\"b\",\"text\":\"1\"}", "b", "1", 1 },
        { "raw UTF-8", "{\"req\":\"x\",\"text\":\"\xce\xba\"}", "x", "\xce\xba", 2 },
        { "no text", "{\"req\":\"get connections\"}", "get connections", NULL, 0 },
    };
    static const struct { const char *name, *text; int code; } bad[] = {
        { "empty", "", JSON_MALFORMED },
        { "array", "[\"req\"]", JSON_MALFORMED },
        { "string", "\"req\"", JSON_MALFORMED },
        { "unclosed", "{\"req\":\"a\"", JSON_MALFORMED },
        { "unclosed string", "{\"req\":\"a", JSON_MALFORMED },
        { "key without value", "{\"req\"}", JSON_MALFORMED },
        { "missing value", "{\"a\":}", JSON_MALFORMED },
        { "trailing comma", "{\"req\":\"a\",}", JSON_MALFORMED },
        { "trailing comma in array", "{\"a\":[1,]}", JSON_MALFORMED },
        { "text after", "{\"req\":\"a\"} x", JSON_MALFORMED },
        { "two objects", "{}{}", JSON_MALFORMED },
        { "single quotes", "{'req':'a'}", JSON_MALFORMED },
        { "bare key", "{req:\"a\"}", JSON_MALFORMED },
        { "raw control", "{\"req\":\"a\x01\"}", JSON_MALFORMED },
        { "raw newline", "{\"req\":\"a\nb\"}", JSON_MALFORMED },
        { "lone high surrogate", "{\"req\":\"\\ud800\"}", JSON_MALFORMED },
        { "lone low surrogate", "{\"req\":\"\\udc00\"}", JSON_MALFORMED },
        { "high then not low", "{\"req\":\"\\ud800\\u0041\"}", JSON_MALFORMED },
        { "short \\u", "{\"req\":\"\\u12\"}", JSON_MALFORMED },
        { "bad \\u", "{\"req\":\"\\uzzzz\"}", JSON_MALFORMED },
        { "unknown escape", "{\"req\":\"\\q\"}", JSON_MALFORMED },
        { "escape at end", "{\"req\":\"\\", JSON_MALFORMED },
        { "leading zero", "{\"a\":01}", JSON_MALFORMED },
        { "bare dot", "{\"a\":1.}", JSON_MALFORMED },
        { "dot first", "{\"a\":.5}", JSON_MALFORMED },
        { "lone minus", "{\"a\":-}", JSON_MALFORMED },
        { "bare exponent", "{\"a\":1e}", JSON_MALFORMED },
        { "two signs", "{\"a\":1e+-1}", JSON_MALFORMED },
        { "plus sign", "{\"a\":+1}", JSON_MALFORMED },
        { "tru", "{\"a\":tru}", JSON_MALFORMED },
        { "nulll", "{\"a\":nulll}", JSON_MALFORMED },
        { "NaN", "{\"a\":NaN}", JSON_MALFORMED },
        { "unclosed array", "{\"a\":[1,2}", JSON_MALFORMED },
        { "req a number", "{\"req\":5}", JSON_WRONG_TYPE },
        { "text null", "{\"req\":\"x\",\"text\":null}", JSON_WRONG_TYPE },
        { "userkey an object", "{\"userkey\":{}}", JSON_WRONG_TYPE },
        { "token an array", "{\"token\":[\"x\"]}", JSON_WRONG_TYPE },
        { "name true", "{\"name\":true}", JSON_WRONG_TYPE },
    };
    struct request r;
    struct failure f;
    char what[200];
    begin("JSON scanner (RFC 8259)");
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int res = parse_json(good[i].text, &r, &f);
        snprintf(what, sizeof what, "%s: %s", good[i].name,
                 res == PARSE_DONE ? "wrong fields" : f.why);
        CHECK(res == PARSE_DONE && span_eq(r.field[F_REQ], good[i].req, strlen(good[i].req)) &&
              (good[i].txt ? span_eq(r.field[F_TEXT], good[i].txt, good[i].txt_len)
                           : r.field[F_TEXT].p == NULL), what);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int res = parse_json(bad[i].text, &r, &f);
        snprintf(what, sizeof what, "%s: expected failure %d", bad[i].name, bad[i].code);
        CHECK(res == PARSE_FAIL && f.code == bad[i].code && f.why != NULL &&
              f.at <= strlen(bad[i].text), what);
    }
    CHECK(parse_json("{\"name\":5}", &r, &f) == PARSE_FAIL && strcmp(f.why, "name") == 0,
          "a wrong type names its member");
    CHECK(parse_json("{}", &r, &f) == PARSE_DONE && r.field[F_REQ].p == NULL, "empty object");
    CHECK(parse_json("{\"req\":\"push a user\",\"userkey\":\"K\",\"text\":\"T\","
                     "\"token\":\"s3cret\",\"name\":\"N\"}", &r, &f) == PARSE_DONE &&
          span_eq(r.field[F_USERKEY], "K", 1) && span_eq(r.field[F_TOKEN], "s3cret", 6) &&
          span_eq(r.field[F_NAME], "N", 1), "all five fields");
    CHECK(parse_json("{\"req\":\"a\",}", &r, &f) == PARSE_FAIL && f.at == 11,
          "the failure says where");
    /* The token's place in the text, however its key is written, and
     * up to the end when its string never ends. */
    const char *tok = "{\"req\":\"x\",\"\\u0074oken\":\"s\\u0065cret\",\"text\":\"t\"}";
    CHECK(parse_json(tok, &r, &f) == PARSE_DONE && span_eq(r.field[F_TOKEN], "secret", 6) &&
          r.raw[F_TOKEN].p == (const unsigned char *)tok + 24 && r.raw[F_TOKEN].len == 13,
          "an escaped token key, and where its value lies");
    const char *open = "{\"token\":\"abc";
    CHECK(parse_json(open, &r, &f) == PARSE_FAIL && r.raw[F_TOKEN].p != NULL &&
          r.raw[F_TOKEN].p + r.raw[F_TOKEN].len == (const unsigned char *)open + strlen(open),
          "an unterminated token runs to the end");
    /* Nesting: 32 levels in all pass, 33 are refused. */
    char deep[200];
    for (int levels = 32; levels <= 33; levels++) {
        size_t o = (size_t)snprintf(deep, sizeof deep, "{\"a\":");
        for (int i = 1; i < levels; i++)
            deep[o++] = '[';
        for (int i = 1; i < levels; i++)
            deep[o++] = ']';
        deep[o++] = '}';
        deep[o] = '\0';
        int res = parse_json(deep, &r, &f);
        CHECK(levels == 32 ? res == PARSE_DONE
                           : res == PARSE_FAIL && strstr(f.why, "deeply") != NULL,
              levels == 32 ? "32 levels deep" : "33 levels deep");
    }
    char *very = malloc(100001);
    memset(very, '[', 100000);
    very[100000] = '\0';
    very[0] = '{';
    CHECK(parse_json(very, &r, &f) == PARSE_FAIL, "100000 brackets do not recurse");
    free(very);
    end();

    /* The writer matches JSON.stringify byte for byte. */
    static const struct { const char *in; size_t n; const char *out; } put[] = {
        { "plain", 5, "\"plain\"" },
        { "q\"b\\s/", 6, "\"q\\\"b\\\\s/\"" },
        { "\b\f\n\r\t\v", 6, "\"\\b\\f\\n\\r\\t\\u000b\"" },
        { "\0\x01\x1f\x7f", 4, "\"\\u0000\\u0001\\u001f\x7f\"" },
        { "\xce\xba \xe2\x80\xa8", 6, "\"\xce\xba \xe2\x80\xa8\"" },
        { "</script>", 9, "\"</script>\"" },
    };
    begin("JSON writer (JSON.stringify's escapes)");
    for (size_t i = 0; i < sizeof put / sizeof put[0]; i++) {
        struct buf b = { NULL, 0, 0 };
        json_put(&b, span_of((const unsigned char *)put[i].in, put[i].n));
        CHECK(b.len == strlen(put[i].out) && memcmp(b.data, put[i].out, b.len) == 0,
              put[i].out);
        buf_free(&b);
    }
    end();
}

/* ------------------------------------------------- 32 bytes at a time */

static void test_blocks(void)
{
    begin("32 bytes at a time (section Speed)");
    int same = 1;
    for (size_t at = 0; at < 70; at++) {
        unsigned char text[100];
        memset(text, 'a', sizeof text);
        text[at] = 0xe9;
        size_t n = plain_blocks(text, sizeof text, 0);
        same &= n % 32 == 0 && n <= at && at < n + 32;
        text[at] = 'a';
        for (int k = 0; k < 4; k++) {
            text[at] = (unsigned char)"\"\\\n\x01"[k];
            n = plain_blocks(text, sizeof text, 1);
            same &= n % 32 == 0 && n <= at && at < n + 32;
        }
        text[at] = 0x7f;        /* DEL and high bytes are plain in JSON */
        same &= plain_blocks(text, sizeof text, 1) == 96;
    }
    CHECK(same, "the blocks stop before the first byte that matters");
    /* Unmasking at every payload offset and length agrees with XOR. */
    static const unsigned char mask[4] = { 0x12, 0x34, 0x56, 0x78 };
    same = 1;
    for (uint64_t at = 0; at < 8; at++) {
        for (size_t n = 0; n < 100; n++) {
            unsigned char src[100], dst[100];
            for (size_t i = 0; i < n; i++)
                src[i] = (unsigned char)(i * 31 + 7);
            frame_unmask(dst, src, n, mask, at);
            for (size_t i = 0; i < n; i++)
                same &= dst[i] == (src[i] ^ mask[(at + i) % 4]);
            frame_unmask(src, src, n, mask, at);        /* in place */
            same &= memcmp(src, dst, n) == 0;
        }
    }
    CHECK(same, "unmasking at every offset, copied or in place");
    end();
}

/* --------------------------------------------------------- the table */

static struct conn table_conns[MAX_CLIENTS];

/* How far from its home slot c's key sits: the probes a search makes. */
static size_t probes(const struct conn *c)
{
    size_t i = key_slot((const unsigned char *)c->key), n = 1;
    while (srv.lookup[i] != c) {
        i = (i + 1) % LOOKUP_SLOTS;
        n++;
    }
    return n;
}

static void test_table(void)
{
    begin("the key table (open addressing)");
    srv.seed = 0x9e3779b97f4a7c15ULL;
    uint64_t rng = 88172645463325252ULL;
    unsigned char raw[16];
    for (int i = 0; i < MAX_CLIENTS; i++) {
        for (int k = 0; k < 16; k++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            raw[k] = (unsigned char)rng;
        }
        base64_encode(table_conns[i].key, sizeof table_conns[i].key, raw, 16);
    }
    /* 10 users, then 1000: the searches stay short either way. */
    size_t total10 = 0, total = 0, worst = 0;
    for (int i = 0; i < 10; i++)
        lookup_add(&table_conns[i]);
    for (int i = 0; i < 10; i++)
        total10 += probes(&table_conns[i]);
    for (int i = 10; i < MAX_CLIENTS; i++)
        lookup_add(&table_conns[i]);
    int found = 1;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        size_t p = probes(&table_conns[i]);
        total += p;
        worst = p > worst ? p : worst;
        found &= conn_by_key(cspan(table_conns[i].key)) == &table_conns[i];
    }
    char what[160];
    snprintf(what, sizeof what, "1000 keys: %.2f probes on average (10 keys: %.2f), %zu at most",
             (double)total / MAX_CLIENTS, (double)total10 / 10, worst);
    CHECK(found, "every key is found");
    CHECK((double)total / MAX_CLIENTS <= 2.0 && worst <= 24, what);
    printf("unit: %s\n", what);
    /* Take every other key out: the rest are still found, the others not. */
    for (int i = 0; i < MAX_CLIENTS; i += 2)
        lookup_remove(&table_conns[i]);
    found = 1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        found &= conn_by_key(cspan(table_conns[i].key)) == (i % 2 ? &table_conns[i] : NULL);
    CHECK(found, "after half are removed, the rest are found and the others not");
    for (int i = 1; i < MAX_CLIENTS; i += 2)
        lookup_remove(&table_conns[i]);
    int empty = 1;
    for (int i = 0; i < LOOKUP_SLOTS; i++)
        empty &= srv.lookup[i] == NULL;
    CHECK(empty, "the table is empty again");
    CHECK(conn_by_key(cspan("short")) == NULL && conn_by_key(span_of(NULL, 0)) == NULL,
          "a key of the wrong length is never found");
    end();
}

/* Three handshakes accepted in one pass (one clock reading), the last on
 * the lowest descriptor: the table being full drops the first accepted. */
static void test_oldest(void)
{
    begin("a full table drops the handshake accepted first");
    int pairs[3][2];
    for (int i = 0; i < 3; i++)
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]) < 0)
            abort();
    srv.now_ms = 1000;
    int order[3] = { 1, 2, 0 };     /* pairs[0] has the lowest fds */
    for (int i = 0; i < 3; i++)
        conn_open(pairs[order[i]][0], "192.0.2.1");
    drop_oldest_handshake();
    CHECK(srv.conns[pairs[1][0]].state == CONN_FREE, "the first accepted is dropped");
    CHECK(srv.conns[pairs[0][0]].state == CONN_HANDSHAKE &&
          srv.conns[pairs[2][0]].state == CONN_HANDSHAKE, "the later two stay");
    CHECK(srv.n_pending == 2, "two handshakes are counted");
    conn_close(&srv.conns[pairs[0][0]]);
    conn_close(&srv.conns[pairs[2][0]]);
    for (int i = 0; i < 3; i++)
        close(pairs[i][1]);
    end();
}

/* ------------------------------------------------- admin and log rules */

static void test_admin(void)
{
    static const struct { const char *addr; int loopback; } addrs[] = {
        { "127.0.0.1", 1 }, { "127.255.3.4", 1 }, { "126.255.255.255", 0 },
        { "128.0.0.1", 0 }, { "10.0.0.1", 0 }, { "0.0.0.0", 0 },
        { "::1", 1 }, { "::2", 0 }, { "::", 0 }, { "fe80::1", 0 },
        { "::127.0.0.1", 0 }, { "2001:db8::1", 0 }, { "localhost", 0 },
    };
    static const struct { const char *host; int loopback; } hosts[] = {
        { "localhost", 1 }, { "LocalHost:8080", 1 }, { "127.0.0.1:8080", 1 },
        { "127.9.9.9", 1 }, { "[::1]:8080", 1 }, { "[::1]", 1 },
        { "localhost.evil.example", 0 }, { "evil.example:8080", 0 },
        { "10.0.0.1:8080", 0 }, { "[::2]:80", 0 }, { "", 0 }, { "[::1", 0 },
    };
    static const struct { const char *origin; int local; } origins[] = {
        { "http://localhost", 1 }, { "http://localhost:8000", 1 },
        { "https://127.0.0.1:8443", 1 }, { "http://[::1]:8080", 1 },
        { "null", 0 }, { "http://evil.example", 0 }, { "http://localhost.evil.example", 0 },
        { "file://", 0 }, { "http://localhost/x", 0 }, { "ftp://localhost", 0 },
    };
    /* X-Forwarded-For: the last entry, which the proxy added; a client's
     * own entries before it are not believed. Entries that are proxies
     * named with -x (here 192.0.2.8 and ::8) are passed over leftwards. */
    static const struct { const char *header, *addr; } forwarded[] = {
        { "10.0.0.7", "10.0.0.7" }, { "1.2.3.4, 10.0.0.7", "10.0.0.7" },
        { "10.0.0.7, 192.0.2.8", "10.0.0.7" }, { "192.0.2.8,10.0.0.7", "10.0.0.7" },
        { "192.0.2.1, 10.0.0.7 , ::8, 192.0.2.8", "10.0.0.7" }, { "192.0.2.8", "192.0.2.8" },
        { "127.0.0.4, 127.0.0.2", "127.0.0.2" },
        { "2001:db8::1", "2001:db8::1" }, { "unknown", NULL }, { "", NULL },
        { "10.0.0.7, ", NULL }, { "for=192.0.2.60", NULL }, { "10.0.0.7; rm -rf /", NULL },
        { "10.0.0.7evil", NULL }, { "1.2.3.4, unknown", NULL },
    };
    char out[ADDR_LEN];
    begin("admin rules");
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++)
        CHECK(addr_is_loopback(addrs[i].addr) == addrs[i].loopback, addrs[i].addr);
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
        CHECK(host_is_loopback(cspan(hosts[i].host)) == hosts[i].loopback, hosts[i].host);
    for (size_t i = 0; i < sizeof origins / sizeof origins[0]; i++)
        CHECK(origin_is_local(cspan(origins[i].origin)) == origins[i].local, origins[i].origin);
    opt.proxies[0] = "192.0.2.8";
    opt.proxies[1] = "::8";
    opt.n_proxies = 2;
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) {
        int ok = forwarded_addr(cspan(forwarded[i].header), out) == 0;
        CHECK(forwarded[i].addr ? ok && strcmp(out, forwarded[i].addr) == 0 : !ok,
              forwarded[i].header);
    }
    opt.n_proxies = 0;
    /* An IPv4 address written as IPv6 (::ffff:a.b.c.d, as a proxy may name
     * it) is that IPv4 address, for -c and penalties alike. */
    unsigned char v4[16], mapped[16], host4[16], host6[16];
    CHECK(addr_bin("10.1.2.3", v4) == 4 && addr_bin("::ffff:10.1.2.3", mapped) == 4 &&
          memcmp(v4, mapped, 16) == 0, "::ffff:10.1.2.3 is 10.1.2.3");
    addr_host("::ffff:10.1.2.3", host6);
    addr_host("10.1.2.3", host4);
    CHECK(memcmp(host4, host6, 16) == 0, "::ffff:10.1.2.3 counted as 10.1.2.3, not by a /64");
    CHECK(addr_bin("2001:db8::1", mapped) == 6, "2001:db8::1 is IPv6");
    CHECK(token_matches(cspan("s3cret"), "s3cret"), "right token");
    CHECK(!token_matches(cspan("s3creT"), "s3cret"), "last byte differs");
    CHECK(!token_matches(cspan("s3cre"), "s3cret"), "prefix of the token");
    CHECK(!token_matches(cspan("s3crett"), "s3cret"), "token plus a byte");
    CHECK(!token_matches(cspan(""), "s3cret"), "empty");
    CHECK(list_has(cspan("keep-alive, Upgrade"), "upgrade") &&
          !list_has(cspan("keep-alive, Upgraded"), "upgrade") &&
          !list_has(cspan(""), "upgrade"), "Connection lists");
    end();
}

/* Who may use the loopback admin rule: a handshake's peer address, Host
 * and Origin together (handshake_allowed() sets c->local). */
static void test_local(void)
{
    static const struct { const char *addr, *head; int local; } cases[] = {
        { "127.0.0.1", "Host: localhost:8080\r\n", 1 },
        { "::1", "Host: [::1]:8080\r\nOrigin: http://localhost:8080\r\n", 1 },
        { "10.0.0.5", "Host: localhost:8080\r\n", 0 },
        { "192.0.2.9", "Host: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\n", 0 },
        { "127.0.0.1", "Host: evil.example\r\n", 0 },
        { "127.0.0.1", "Host: localhost\r\nOrigin: http://evil.example\r\n", 0 },
        { "127.0.0.1", "Host: localhost\r\nX-Forwarded-For: 127.0.0.1\r\n", 0 },
    };
    begin("the loopback admin rule (address, Host, Origin)");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char head[512];
        int pair[2];
        struct http_request r;
        struct failure f;
        const char *why;
        int n = snprintf(head, sizeof head, "GET / HTTP/1.1\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n%s\r\n",
                         cases[i].head);
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) < 0)
            abort();
        struct conn *c = conn_open(pair[0], cases[i].addr);
        int parsed = http_parse_head((const unsigned char *)head, (size_t)n, &r, &f);
        CHECK(parsed == PARSE_DONE && handshake_allowed(c, &r, &why) != NULL &&
              c->local == cases[i].local, cases[i].head);
        conn_close(c);
        close(pair[1]);
    }
    end();
}

static void test_log(void)
{
    static const struct { const char *in, *out; } cases[] = {
        { "plain text", "plain text" },
        { "new\nline\r", "new\\x0aline\\x0d" },
        { "del\x7f esc\x1b[2J", "del\\x7f esc\\x1b[2J" },
        { "C1 \xc2\x85 CSI \xc2\x9b", "C1 \\u{0085} CSI \\u{009B}" },
        { "bidi \xe2\x80\xae ok \xe2\x81\xa6 \xe2\x80\xa8", "bidi \\u{202E} ok \\u{2066} \\u{2028}" },
        { "bad \xff \xc3", "bad \\xff \\xc3" },
        { "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
    };
    char out[LOG_LINE_MAX];
    begin("log escapes and hidden tokens");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i].in);
        unsigned char *p = exact(cases[i].in, n);
        text_escape(out, p, n, LOG_MESSAGE_MAX, n, n);
        CHECK(strcmp(out, cases[i].out) == 0, cases[i].out);
        free(p);
    }
    opt.token = "open sesame";
    text_escape(out, (const unsigned char *)"say open sesame!", 16, LOG_MESSAGE_MAX, 16, 16);
    CHECK(strcmp(out, "say ***!") == 0, "the -t token is masked");
    text_escape(out, (const unsigned char *)"{\"token\":\"guess\"}", 17, LOG_MESSAGE_MAX, 9, 16);
    CHECK(strcmp(out, "{\"token\":***}") == 0, "a range is hidden");
    /* Cut at 8 bytes, the token's start would show: it is found past the cut. */
    text_escape(out, (const unsigned char *)"say open sesame!", 16, 8, 16, 16);
    CHECK(strcmp(out, "say *** ...") == 0, "a token the cut goes through is hidden whole");
    opt.token = NULL;
    /* A URL's query may hold a token: it is hidden whole, to the space. */
    static const struct { const char *url; size_t from, to; } queries[] = {
        { "/admin.html?token=abc", 12, 21 }, { "/admin.html?%74oken=abc", 12, 23 },
        { "/a", 2, 2 }, { "GET /admin.html?token=a%20b HTTP/1.1", 16, 27 },
    };
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        size_t from, to;
        query_of(cspan(queries[i].url), &from, &to);
        CHECK(from == queries[i].from && to == queries[i].to, queries[i].url);
    }
    end();
}

int main(void)
{
    test_sha1();
    test_base64();
    test_accept();
    test_handshake();
    test_paths();
    test_frames();
    test_encode();
    test_utf8();
    test_close();
    test_json();
    test_blocks();
    test_table();
    test_oldest();
    test_admin();
    test_local();
    test_log();
    free(srv.reply.data);
    return total_failures != 0;
}
