/* wspush.c -- a WebSocket push server you can read in one sitting.
 *
 * A browser talks to wspush in three steps (RFC 6455):
 *   1. Handshake (§4): an HTTP GET with "Upgrade: websocket" and a random
 *      Sec-WebSocket-Key. We answer 101 with Sec-WebSocket-Accept, which
 *      is base64(SHA-1(key + the GUID of §1.3)).
 *   2. Frames (§5): a 2-byte header, maybe a longer length, a 4-byte mask
 *      (browser to server only), then the data.
 *   3. Close (§5.5.1): a frame with a 2-byte code, echoed; then TCP closes.
 *
 * Each text message is one JSON request. The handshake key is the
 * client's address, so an admin can push to one chosen user:
 *   {"req":"text","text":T}                    -> {"resp":"text","content":T}
 *   {"req":R,"text":T} (any other R)           -> {"resp":R,"content":T}
 *   {"req":"get connections"}                  -> every KEY with its ROLE:
 *        {"resp":"get connections","content":{KEY:"user"|"admin",...}}
 *   {"req":"push a user","userkey":K,"text":T} -> T goes to K only; the
 *        admin hears "Already sent.", or the fresh list if K has gone
 *   {"req":"push all","text":T}                -> T goes to every user
 *   {"req":"get my key"}                       -> the sender's own KEY
 *   anything malformed                         -> {"resp":"error",...}
 * "get connections" makes the sender an admin, if it may be one: it
 * carries the -t token, or (without one) it comes from this machine, or
 * -A lets anyone. Admins are told the fresh list whenever someone joins
 * or leaves, and only admins may push.
 *
 * One thread runs one select() loop over non-blocking sockets, so no
 * client can stall another. Static pages come from www/ on plain GETs.
 *
 * Build: cc -O2 -o wspush wspush.c sha1.c     Run: ./wspush -p 8080 */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700      /* realpath() */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "sha1.h"

/* ============================== Limits ==================================
 * Every number that bounds memory or time lives here. "wspush -h" prints
 * each one, and README lists each one with its flag. */
#define DEFAULT_PORT         8080
#define MAX_CLIENTS          1000       /* open WebSockets; more -> 503     */
#define MAX_PENDING          8          /* extra slots for handshakes       */
#define MAX_REQUEST_HEAD     8192       /* bytes; more -> 431               */
#define DEFAULT_MAX_MESSAGE  (1 << 20)  /* bytes, -m; more -> close 1009    */
#define DEFAULT_MAX_QUEUE    (1 << 20)  /* bytes unsent, -s; more -> 1008   */
#define MAX_FILE_SIZE        (1 << 20)  /* largest file served from www/    */
#define MAX_JSON_DEPTH       32         /* nested arrays/objects; more -> error */
#define MAX_ORIGINS          16         /* -o may be given this many times  */
#define MAX_TOKEN_FAILURES   3          /* wrong admin tokens -> close 1008 */
#define DEFAULT_HANDSHAKE_TIMEOUT_S 10  /* -T: slow handshakes are dropped  */
#define DEFAULT_PING_INTERVAL_S     20  /* -i: ping a client silent so long */
#define DEFAULT_PONG_TIMEOUT_S      10  /* -k: drop it if still silent      */
#define CLOSE_TIMEOUT_S      5          /* wait for the peer after a close  */
#define SHUTDOWN_TIMEOUT_S   2          /* SIGTERM: time to say goodbye     */
#define READ_CHUNK           65536      /* bytes asked of each read()       */
#define ACCEPT_BATCH         64         /* accept() calls per wake-up       */
#define READ_ROUNDS          8          /* reads of a busy socket per wake-up */
#define BUSY_POLL_MS         1          /* poll without sleeping after traffic */
#define LOG_MESSAGE_MAX      1024       /* bytes of a message that are logged */
#define LOG_TABLE_MAX        50         /* roles printed in a logged table  */

#define TABLE_SLOTS (MAX_CLIENTS + MAX_PENDING)
#if TABLE_SLOTS + 8 > FD_SETSIZE        /* select() cannot watch more */
#error "MAX_CLIENTS + MAX_PENDING must stay well below FD_SETSIZE"
#endif

/* Settings from the command line; main() fills them in. */
static struct options {
    int port;                   /* -p; 0 picks a free port              */
    const char *bind_addr;      /* -b; NULL listens on every address    */
    size_t max_message;         /* -m                                   */
    size_t max_queue;           /* -s                                   */
    int handshake_timeout_s;    /* -T                                   */
    int ping_interval_s;        /* -i                                   */
    int pong_timeout_s;         /* -k                                   */
    const char *www;            /* -d; NULL serves no files (404)       */
    int raw_echo;               /* -e: echo every message verbatim      */
    int quiet;                  /* -q: no per-message or table lines    */
    const char *token;          /* -t or WSPUSH_ADMIN_TOKEN             */
    int anyone_admin;           /* -A: the article's open admin role    */
    const char *origins[MAX_ORIGINS];  /* -o: allowed Origin values     */
    int n_origins;
} opt = {
    DEFAULT_PORT, NULL, DEFAULT_MAX_MESSAGE, DEFAULT_MAX_QUEUE,
    DEFAULT_HANDSHAKE_TIMEOUT_S, DEFAULT_PING_INTERVAL_S,
    DEFAULT_PONG_TIMEOUT_S, NULL, 0, 0, NULL, 0, {NULL}, 0
};

/* ========================= Types, table, helpers ======================== */

/* What a parser says about the bytes it was given. */
enum parse { PARSE_DONE, PARSE_MORE, PARSE_FAIL };

/* Why a parser failed: an HTTP status or close code, a reason that is
 * safe to send and log, and for JSON the byte offset of the problem. */
struct failure {
    int code;
    const char *why;
    size_t at;
};

/* Record a failure and return PARSE_FAIL, so a check reads as one line. */
static enum parse fail(struct failure *f, int code, const char *why)
{
    f->code = code;
    f->why = why;
    f->at = 0;
    return PARSE_FAIL;
}

/* Bytes owned elsewhere: a pointer and a length, never NUL-terminated. */
struct span {
    const unsigned char *p;     /* NULL when the value is absent */
    size_t len;
    int plain;                  /* a JSON string known to need no escapes */
};

/* The span of p[0..len). */
static struct span span_of(const unsigned char *p, size_t len)
{
    struct span s = { p, len, 0 };
    return s;
}

/* A growable byte buffer. Memory is allocated as bytes arrive; a busy
 * connection keeps it between messages, and sweep() frees it once the
 * buffer is empty, so an idle connection holds none. */
struct buf {
    unsigned char *data;
    size_t len, cap;
};

/* Make room for n more bytes. Returns a pointer to the free space, or
 * NULL if memory is short (b is unchanged). */
static unsigned char *buf_reserve(struct buf *b, size_t n)
{
    if (n > SIZE_MAX / 2 - b->len)
        return NULL;
    if (b->len + n > b->cap || b->data == NULL) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *data = realloc(b->data, cap);
        if (data == NULL)
            return NULL;
        b->data = data;
        b->cap = cap;
    }
    return b->data + b->len;
}

/* Append p[0..n) to b. Returns 0, or -1 if memory is short. */
static int buf_append(struct buf *b, const void *p, size_t n)
{
    unsigned char *dst = buf_reserve(b, n);
    if (dst == NULL)
        return -1;
    if (n > 0)
        memcpy(dst, p, n);
    b->len += n;
    return 0;
}

/* Append a NUL-terminated string. Returns 0, or -1 if memory is short. */
static int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

/* Drop the first n bytes of b, keeping its memory for what comes next. */
static void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* Give b's memory back; it must hold nothing that is still needed. */
static void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Eight bytes at a time. Long messages cross three loops byte by byte
 * (unmasking, the UTF-8 check, JSON); testing a 64-bit word at once
 * makes them several times faster. memcpy() reads a word from any
 * address; the compiler turns it into one load. */
#define ONES  0x0101010101010101ULL     /* 0x01 in every byte */
#define HIGHS 0x8080808080808080ULL     /* 0x80 in every byte */

static uint64_t load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* True if no byte of w is a JSON quote, a backslash or below 0x20:
 * bytes that can be copied as they are. (x - ONES) & ~x & HIGHS is
 * nonzero exactly when some byte of x is zero; XOR with a repeated byte
 * finds that byte; subtracting 0x20 from each byte finds those below. */
static int word_is_plain(uint64_t w)
{
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\');
    uint64_t zero_byte = ((quote - ONES) & ~quote) | ((backslash - ONES) & ~backslash);
    uint64_t below = (w - ONES * 0x20) & ~w;
    return ((zero_byte | below) & HIGHS) == 0;
}

/* True if s[0..len) equals the lowercase word w, ignoring ASCII case. */
static int span_ieq(const unsigned char *s, size_t len, const char *w)
{
    size_t i;
    for (i = 0; i < len && w[i] != '\0'; i++) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)w[i])
            return 0;
    }
    return i == len && w[i] == '\0';
}

/* True if the span holds exactly the string w (case matters). */
static int span_is(struct span s, const char *w)
{
    size_t n = strlen(w);
    return s.p != NULL && s.len == n && memcmp(s.p, w, n) == 0;
}

/* Milliseconds on a clock that never jumps; only for timeouts. */
static int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Print a line to stdout, with the date first when dated is set, in the
 * form the article's server logs use. */
static void log_line(int dated, const char *fmt, ...)
{
    if (dated) {
        char when[80];
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(when, sizeof when, "%a %b %d %Y %H:%M:%S GMT%z (%Z)", &tm);
        printf("%s ", when);
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* Print a message on stderr and exit: for start-up problems only. */
static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("wspush: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ================= HTTP handshake (RFC 6455 §4.2.1-4.2.2) ================
 *   GET /chat HTTP/1.1
 *   Host: server.example.com
 *   Upgrade: websocket
 *   Connection: Upgrade
 *   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
 *   Sec-WebSocket-Version: 13
 *   Sec-WebSocket-Protocol: echo-protocol        (optional)
 *   Origin: http://example.com                   (browsers only)
 *   <blank line>
 * http_parse_head() checks the syntax and picks out these fields;
 * http_check() decides whether it is a valid upgrade, a plain request
 * for a file, or an error with its status. Both only read bytes. */
#define WS_GUID      "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_PROTOCOL  "echo-protocol"
#define KEY_TEXT_LEN 24         /* base64 of 16 bytes */
#define ACCEPT_LEN   28         /* base64 of a 20-byte SHA-1 */

/* The parts of a request head wspush looks at; spans point into it. */
struct http_request {
    struct span method, target;
    int minor;                  /* 1 for HTTP/1.1, 0 for HTTP/1.0      */
    struct span host, upgrade, ws_version, ws_key, origin;
    int connection_upgrade;     /* some Connection header has "upgrade" */
    int offers_protocol;        /* Sec-WebSocket-Protocol was sent      */
    int offers_echo;            /* ... and lists echo-protocol          */
    size_t head_len;            /* bytes up to and with the blank line  */
};

enum http_kind { HTTP_UPGRADE, HTTP_FILE };

/* The index just past the blank line that ends the head in p[0..len),
 * or 0 if it has not arrived. Lines may end in CRLF or a bare LF. */
static size_t head_end(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '\n')
            continue;
        if (i + 1 < len && p[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Take the next line of p[0..end) starting at *pos, without its line
 * ending. Returns 0 when there is no complete line left. */
static int next_line(const unsigned char *p, size_t end, size_t *pos,
                     struct span *line)
{
    size_t i = *pos;
    while (i < end && p[i] != '\n')
        i++;
    if (i == end)
        return 0;
    line->p = p + *pos;
    line->len = i - *pos;
    if (line->len > 0 && line->p[line->len - 1] == '\r')
        line->len--;
    *pos = i + 1;
    return 1;
}

/* RFC 7230 §3.2.6: the characters allowed in a method or header name. */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

/* True if the comma-separated list s has the element word, ignoring
 * case and the spaces around elements (Connection: keep-alive, Upgrade). */
static int list_has(struct span s, const char *word)
{
    size_t i = 0;
    while (i < s.len) {
        while (i < s.len && (s.p[i] == ' ' || s.p[i] == '\t' || s.p[i] == ','))
            i++;
        size_t start = i;
        while (i < s.len && s.p[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (s.p[end - 1] == ' ' || s.p[end - 1] == '\t'))
            end--;
        if (end > start && span_ieq(s.p + start, end - start, word))
            return 1;
    }
    return 0;
}

/* §4.2.1 item 5: the key must be base64 of exactly 16 bytes. That is 22
 * characters and "==", and the 22nd holds only 2 data bits, so it is one
 * of A, Q, g, w. Only this canonical form is accepted, so one 16-byte
 * nonce has exactly one spelling and one address in the table. */
static int ws_key_valid(struct span key)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (key.len != KEY_TEXT_LEN || key.p[22] != '=' || key.p[23] != '=')
        return 0;
    for (int i = 0; i < 22; i++)
        if (key.p[i] == '\0' || strchr(b64, key.p[i]) == NULL)
            return 0;
    return strchr("AQgw", key.p[21]) != NULL;
}

/* Keep a header's value; a second copy of a header that must be single
 * is an error, since the two could disagree. */
static enum parse keep_header(struct span *field, struct span value,
                              struct failure *f, const char *why)
{
    if (field->p != NULL)
        return fail(f, 400, why);
    *field = value;
    return PARSE_DONE;
}

/* Parse one "Name: value" line into r. */
static enum parse parse_header(struct span line, struct http_request *r,
                               struct failure *f)
{
    /* RFC 7230 §3.2.4: obsolete line folding is refused. */
    if (line.p[0] == ' ' || line.p[0] == '\t')
        return fail(f, 400, "header lines must not start with a space");
    size_t colon = 0;
    while (colon < line.len && is_tchar(line.p[colon]))
        colon++;
    if (colon == 0 || colon == line.len || line.p[colon] != ':')
        return fail(f, 400, "expected \"Name: value\" header lines");

    struct span value = span_of(line.p + colon + 1, line.len - colon - 1);
    while (value.len > 0 && (value.p[0] == ' ' || value.p[0] == '\t'))
        value.p++, value.len--;
    while (value.len > 0 &&
           (value.p[value.len - 1] == ' ' || value.p[value.len - 1] == '\t'))
        value.len--;
    for (size_t i = 0; i < value.len; i++)
        if ((value.p[i] < 0x20 && value.p[i] != '\t') || value.p[i] == 0x7f)
            return fail(f, 400, "control character in a header value");

    const unsigned char *name = line.p;
    if (span_ieq(name, colon, "host"))
        return keep_header(&r->host, value, f, "more than one Host header");
    if (span_ieq(name, colon, "upgrade"))
        return keep_header(&r->upgrade, value, f,
                           "more than one Upgrade header");
    if (span_ieq(name, colon, "sec-websocket-version"))
        return keep_header(&r->ws_version, value, f,
                           "more than one Sec-WebSocket-Version header");
    if (span_ieq(name, colon, "sec-websocket-key"))
        return keep_header(&r->ws_key, value, f,
                           "more than one Sec-WebSocket-Key header");
    if (span_ieq(name, colon, "origin"))
        return keep_header(&r->origin, value, f, "more than one Origin header");
    if (span_ieq(name, colon, "connection")) {
        r->connection_upgrade |= list_has(value, "upgrade");
    } else if (span_ieq(name, colon, "sec-websocket-protocol")) {
        /* §4.2.1 item 8: the client's subprotocols, most wanted first.
         * We speak only echo-protocol; names compare case-sensitively. */
        r->offers_protocol = 1;
        for (size_t i = 0; i < value.len;) {
            while (i < value.len && (value.p[i] == ' ' || value.p[i] == ','))
                i++;
            size_t start = i;
            while (i < value.len && value.p[i] != ',' && value.p[i] != ' ')
                i++;
            if (span_is(span_of(value.p + start, i - start), WS_PROTOCOL))
                r->offers_echo = 1;
        }
    }
    return PARSE_DONE;
}

/* Parse the request head at the start of p[0..len). Returns PARSE_MORE
 * until the blank line has arrived, PARSE_DONE with r filled in (spans
 * point into p), or PARSE_FAIL with status 400 or 431. */
static enum parse http_parse_head(const unsigned char *p, size_t len,
                                  struct http_request *r, struct failure *f)
{
    memset(r, 0, sizeof *r);
    size_t end = head_end(p, len < MAX_REQUEST_HEAD ? len : MAX_REQUEST_HEAD);
    if (end == 0)
        return len < MAX_REQUEST_HEAD ? PARSE_MORE
            : fail(f, 431, "request head is larger than 8192 bytes");
    r->head_len = end;

    /* Request line: METHOD SP TARGET SP HTTP/1.x (RFC 7230 §3.1.1). */
    size_t pos = 0;
    struct span line;
    next_line(p, end, &pos, &line);
    size_t i = 0;
    while (i < line.len && is_tchar(line.p[i]))
        i++;
    if (i == 0 || i == line.len || line.p[i] != ' ')
        return fail(f, 400, "expected \"GET /path HTTP/1.1\"");
    r->method = span_of(line.p, i);
    size_t t = ++i;
    while (i < line.len && line.p[i] > ' ' && line.p[i] < 0x7f)
        i++;
    if (i == t || i == line.len || line.p[i] != ' ')
        return fail(f, 400, "expected \"GET /path HTTP/1.1\"");
    r->target = span_of(line.p + t, i - t);
    struct span version = span_of(line.p + i + 1, line.len - i - 1);
    if (version.len != 8 || memcmp(version.p, "HTTP/1.", 7) != 0 ||
        version.p[7] < '0' || version.p[7] > '9')
        return fail(f, 400, "expected HTTP/1.1 after the path");
    r->minor = version.p[7] - '0';

    while (next_line(p, end, &pos, &line) && line.len > 0)
        if (parse_header(line, r, f) != PARSE_DONE)
            return PARSE_FAIL;
    return PARSE_DONE;
}

/* Decide what a parsed head asks for: *kind is HTTP_UPGRADE for a valid
 * WebSocket handshake, HTTP_FILE for a plain GET or HEAD. Returns
 * PARSE_DONE, or PARSE_FAIL with the status to answer. */
static enum parse http_check(const struct http_request *r, enum http_kind *kind,
                             struct failure *f)
{
    /* RFC 7230 §5.4: an HTTP/1.1 request without Host is refused. */
    if (r->minor >= 1 && r->host.p == NULL)
        return fail(f, 400, "missing Host header");
    /* Only a request naming WebSocket is a handshake; any other Upgrade
     * (h2c, say) may be ignored (RFC 7230 §6.7) and the GET served. */
    int websocket = r->upgrade.p != NULL && list_has(r->upgrade, "websocket");
    if (!websocket && r->ws_key.p == NULL) {
        *kind = HTTP_FILE;
        if (span_is(r->method, "GET") || span_is(r->method, "HEAD"))
            return PARSE_DONE;
        return fail(f, 405, "only GET and HEAD are served here");
    }
    *kind = HTTP_UPGRADE;
    /* §4.2.1 items 1-4: a GET over HTTP/1.1 with Host, Upgrade: websocket
     * and a Connection header that lists "Upgrade". */
    if (!span_is(r->method, "GET"))
        return fail(f, 400, "a WebSocket handshake must be a GET");
    if (r->minor < 1)
        return fail(f, 400, "a WebSocket handshake needs HTTP/1.1");
    if (!websocket)
        return fail(f, 400, "expected \"Upgrade: websocket\"");
    if (!r->connection_upgrade)
        return fail(f, 400, "expected \"Connection: Upgrade\"");
    /* §4.2.2: any version but 13 gets 426 naming the one we speak. */
    if (!span_is(r->ws_version, "13"))
        return fail(f, 426, "Sec-WebSocket-Version must be 13");
    if (r->ws_key.p == NULL)
        return fail(f, 400, "missing Sec-WebSocket-Key header");
    if (!ws_key_valid(r->ws_key))
        return fail(f, 400, "Sec-WebSocket-Key must be base64 of 16 bytes");
    return PARSE_DONE;
}

/* §4.2.2 item 5.4: write base64(SHA-1(key + GUID)) and a NUL to accept. */
static void ws_accept(struct span key, char accept[ACCEPT_LEN + 1])
{
    struct sha1 s;
    unsigned char digest[SHA1_DIGEST_LEN];
    sha1_init(&s);
    sha1_update(&s, key.p, key.len);
    sha1_update(&s, WS_GUID, strlen(WS_GUID));
    sha1_final(&s, digest);
    base64_encode(accept, ACCEPT_LEN + 1, digest, sizeof digest);
}

/* The reason phrase for each status wspush sends. */
static const char *http_reason(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default:  return "Error";
    }
}

/* ============================= Static files =============================
 * A plain GET for /user.html is answered with www/user.html. The path
 * comes from the network, so url_to_path() decodes and checks it before
 * it goes near the file system: no "..", no hidden names, no encoded
 * slashes, no NUL. serve_file() then makes sure the real file, after
 * symlinks, still lies inside the www folder. */
#define MAX_PATH_LEN 1024

/* Value of one hex digit, or -1. */
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Turn the request target into a path relative to www/, NUL-terminated
 * in out[0..cap). "/" becomes "index.html", "/a/" becomes "a/index.html".
 * Returns PARSE_DONE, or PARSE_FAIL with 400, 403 or 404. */
static enum parse url_to_path(struct span target, char *out, size_t cap,
                              struct failure *f)
{
    size_t len = 0;
    while (len < target.len && target.p[len] != '?' && target.p[len] != '#')
        len++;
    if (len == 0 || target.p[0] != '/')
        return fail(f, 400, "expected a path starting with /");

    size_t o = 0, seg = 0;      /* seg: where the current segment starts */
    for (size_t i = 1; i <= len; i++) {
        unsigned char c = i < len ? target.p[i] : '/';
        if (c == '%') {
            int hi = i + 2 < len ? hex_value(target.p[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(target.p[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return fail(f, 400, "bad %-escape in the path");
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
            /* An encoded slash or NUL has no honest use in a file name. */
            if (c == '/' || c == '\0')
                return fail(f, 403, "encoded / or NUL in the path");
        } else if (c == '/') {
            if (o == seg) {     /* empty segment: "//" */
                if (i < len)
                    continue;
                break;
            }
            /* Refuse ".", ".." and hidden files such as .git. */
            if (out[seg] == '.')
                return fail(f, 403, "path segments may not start with a dot");
            if (i == len)
                break;
            if (o + 1 >= cap)
                return fail(f, 404, "path too long");
            out[o++] = '/';
            seg = o;
            continue;
        }
        if (c == '\\')
            return fail(f, 403, "backslash in the path");
        if (o + 1 >= cap)
            return fail(f, 404, "path too long");
        out[o++] = (char)c;
    }
    /* "/" or a path ending in "/" names a folder: serve its index.html. */
    if (o == 0 || out[o - 1] == '/') {
        if (o + sizeof "index.html" > cap)
            return fail(f, 404, "path too long");
        memcpy(out + o, "index.html", sizeof "index.html" - 1);
        o += sizeof "index.html" - 1;
    }
    out[o] = '\0';
    return PARSE_DONE;
}

/* The Content-Type for a file name, by its extension. */
static const char *content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html; charset=utf-8" },
        { ".css",  "text/css; charset=utf-8" },
        { ".js",   "text/javascript; charset=utf-8" },
        { ".json", "application/json" },
        { ".txt",  "text/plain; charset=utf-8" },
        { ".svg",  "image/svg+xml" },
        { ".png",  "image/png" },
        { ".ico",  "image/x-icon" },
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot != NULL && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* ==================== Frame codec (RFC 6455 §5.2) ========================
 *   byte 0: FIN | RSV1 RSV2 RSV3 | opcode(4)
 *   byte 1: MASK | length(7); 126 = 16-bit length follows, 127 = 64-bit
 *   then the 4-byte mask key (browser frames only), then the payload.
 * Payload byte i is unmasked with key[i % 4] (§5.3). frame_parse() reads
 * one header; frame_decode() runs a connection's byte stream through
 * headers, unmasking, reassembly of fragments and UTF-8 checks, and hands
 * back whole messages and control frames. Neither touches a socket. */
enum opcode {
    OP_CONT = 0x0, OP_TEXT = 0x1, OP_BINARY = 0x2,
    OP_CLOSE = 0x8, OP_PING = 0x9, OP_PONG = 0xA
};

/* Close codes, §7.4.1. */
#define CLOSE_NORMAL          1000
#define CLOSE_GOING_AWAY      1001
#define CLOSE_PROTOCOL_ERROR  1002
#define CLOSE_UNSUPPORTED     1003
#define CLOSE_NO_STATUS       1005  /* never sent: "the frame had no code" */
#define CLOSE_BAD_DATA        1007
#define CLOSE_POLICY          1008
#define CLOSE_TOO_BIG         1009
#define CLOSE_INTERNAL_ERROR  1011

#define MAX_CONTROL_PAYLOAD   125   /* §5.5 */
#define MAX_FRAME_HEADER      14    /* 2 + 8-byte length + 4-byte mask */

/* One decoded frame header. */
struct frame {
    int fin;                    /* last frame of its message            */
    int opcode;
    unsigned char mask[4];
    uint64_t len;               /* payload length                       */
    size_t head_len;            /* header bytes, 2 to 14                */
};

/* Decode the header at the start of p[0..len) into fr, checking the
 * rules that one header can break. Returns PARSE_MORE until the whole
 * header is there, PARSE_DONE, or PARSE_FAIL with the close code. */
static enum parse frame_parse(const unsigned char *p, size_t len,
                              struct frame *fr, struct failure *f)
{
    if (len < 2) return PARSE_MORE;
    fr->fin = p[0] >> 7;
    fr->opcode = p[0] & 0x0f;
    size_t ext = (p[1] & 0x7f) == 126 ? 2 : (p[1] & 0x7f) == 127 ? 8 : 0;

    /* §5.2: RSV1-3 are for extensions, and we negotiate none. */
    if (p[0] & 0x70)
        return fail(f, CLOSE_PROTOCOL_ERROR, "reserved bits must be 0");
    /* §5.2: opcodes 3-7 and 11-15 are reserved. */
    if ((fr->opcode > OP_BINARY && fr->opcode < OP_CLOSE) || fr->opcode > OP_PONG)
        return fail(f, CLOSE_PROTOCOL_ERROR, "reserved opcode");
    /* §5.1: browsers mask every frame they send. An unmasked frame means
     * the peer is not a browser speaking WebSocket. */
    if ((p[1] & 0x80) == 0)
        return fail(f, CLOSE_PROTOCOL_ERROR, "client frames must be masked");
    /* §5.5: control frames carry at most 125 bytes and are never split. */
    if (fr->opcode >= OP_CLOSE && (p[1] & 0x7f) > MAX_CONTROL_PAYLOAD)
        return fail(f, CLOSE_PROTOCOL_ERROR, "control frame over 125 bytes");
    if (fr->opcode >= OP_CLOSE && !fr->fin)
        return fail(f, CLOSE_PROTOCOL_ERROR, "control frames must not be fragmented");

    if (len < 2 + ext + 4) return PARSE_MORE;
    if (ext == 0) {
        fr->len = p[1] & 0x7f;
    } else {
        /* §5.2: the length is big-endian; in 64 bits its top bit is 0. */
        fr->len = 0;
        for (size_t i = 0; i < ext; i++)
            fr->len = fr->len << 8 | p[2 + i];
        if (ext == 8 && (p[2] & 0x80))
            return fail(f, CLOSE_PROTOCOL_ERROR, "64-bit length has its top bit set");
    }
    memcpy(fr->mask, p + 2 + ext, 4);
    fr->head_len = 2 + ext + 4;
    return PARSE_DONE;
}

/* XOR n payload bytes with the mask, starting at payload offset `at'.
 * src and dst may be the same buffer. The mask repeats every 4 bytes, so
 * 8 bytes of it, starting in the right place, unmask a whole word. */
static void frame_unmask(unsigned char *dst, const unsigned char *src,
                         size_t n, const unsigned char mask[4], uint64_t at)
{
    unsigned char m8[8];
    for (int k = 0; k < 8; k++)
        m8[k] = mask[(at + (uint64_t)k) & 3];
    uint64_t m = load64(m8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = load64(src + i) ^ m;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ mask[(at + i) & 3];
}

/* Write a server frame header (FIN set, no mask: §5.1) for a payload of
 * len bytes into out, which has room for 10. Returns its length. */
static size_t frame_header(unsigned char *out, int opcode, uint64_t len)
{
    out[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}

/* The header size frame_header() writes for a payload of len bytes. */
static size_t frame_header_len(uint64_t len)
{
    return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

/* Start a frame at the end of b for a payload of about `hint' bytes:
 * reserve room for its header and return where the frame starts. The
 * caller appends the payload, then calls frame_end(). */
static size_t frame_begin(struct buf *b, size_t hint)
{
    size_t start = b->len, room = frame_header_len(hint);
    if (buf_reserve(b, room) == NULL)
        return SIZE_MAX;
    memset(b->data + start, 0, room);
    b->len += room;
    return start;
}

/* Finish the frame begun at start: write its header. If the payload came
 * out another size than the hint, so that the header needs more or less
 * room, the payload is moved. Returns 0, or -1 if memory is short (the
 * frame is then dropped from b). */
static int frame_end(struct buf *b, size_t start, size_t hint, int opcode)
{
    size_t room = frame_header_len(hint), len = b->len - start - room;
    unsigned char head[10];
    size_t head_len = frame_header(head, opcode, len);
    if (head_len != room) {
        if (head_len > room && buf_reserve(b, head_len - room) == NULL) {
            b->len = start;
            return -1;
        }
        memmove(b->data + start + head_len, b->data + start + room, len);
        b->len = start + head_len + len;
    }
    memcpy(b->data + start, head, head_len);
    return 0;
}

/* ====================== UTF-8 check (RFC 6455 §8.1) ======================
 * Text messages must be valid UTF-8 (RFC 3629): no overlong forms, no
 * surrogates (U+D800-DFFF), nothing above U+10FFFF. The check keeps its
 * place in struct utf8, so a character may be split across reads and
 * fragments, and it fails on the first bad byte, not at the end. */
struct utf8 {
    unsigned char need;         /* continuation bytes still to come     */
    unsigned char lo, hi;       /* the range allowed for the next one   */
};

/* Check p[0..len) as the continuation of the text in u. Returns 0 if it
 * is valid so far, -1 at the first byte that makes it invalid. */
static int utf8_check(struct utf8 *u, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        /* Plain ASCII, 8 bytes at a time: no byte has its top bit set. */
        while (u->need == 0 && i + 8 <= len && (load64(p + i) & HIGHS) == 0)
            i += 8;
        if (i == len)
            break;
        unsigned char c = p[i];
        if (u->need > 0) {
            if (c < u->lo || c > u->hi)
                return -1;
            u->need--;
            u->lo = 0x80;
            u->hi = 0xbf;
            continue;
        }
        if (c < 0x80)
            continue;
        /* Unicode Table 3-7: the lead byte fixes how many bytes follow
         * and narrows the range of the first of them. */
        u->lo = 0x80;
        u->hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) {
            u->need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            u->need = 2;
            if (c == 0xe0) u->lo = 0xa0;        /* no overlong forms */
            if (c == 0xed) u->hi = 0x9f;        /* no surrogates     */
        } else if (c >= 0xf0 && c <= 0xf4) {
            u->need = 3;
            if (c == 0xf0) u->lo = 0x90;        /* no overlong forms */
            if (c == 0xf4) u->hi = 0x8f;        /* nothing > 10FFFF  */
        } else {
            return -1;          /* 80-C1: stray or overlong; F5-FF: never */
        }
    }
    return 0;
}

/* True if the text checked so far does not end inside a character. */
static int utf8_complete(const struct utf8 *u)
{
    return u->need == 0;
}

/* §7.4: codes a peer may send. 1004-1006 and 1015 are reserved for
 * reports, not frames; 1016-2999 are unassigned; 5000 and up undefined. */
static int close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* Read a close frame's payload (§5.5.1): empty, or a 2-byte code and a
 * UTF-8 reason. Sets *code (CLOSE_NO_STATUS if empty). Returns PARSE_DONE,
 * or PARSE_FAIL with 1002 (bad length or code) or 1007 (bad reason). */
static enum parse close_parse(const unsigned char *p, size_t len, unsigned *code,
                              struct failure *f)
{
    struct utf8 u = { 0, 0, 0 };
    *code = CLOSE_NO_STATUS;
    if (len == 0)
        return PARSE_DONE;
    if (len == 1)
        return fail(f, CLOSE_PROTOCOL_ERROR, "close payload of 1 byte");
    *code = (unsigned)p[0] << 8 | p[1];
    if (!close_code_valid(*code))
        return fail(f, CLOSE_PROTOCOL_ERROR, "invalid close code");
    if (utf8_check(&u, p + 2, len - 2) < 0 || !utf8_complete(&u))
        return fail(f, CLOSE_BAD_DATA, "close reason is not UTF-8");
    return PARSE_DONE;
}

/* ================ Message decoder (RFC 6455 §5.4, §5.6) ==================
 * Frames become messages: a text or binary frame starts one, continuation
 * frames extend it, and the frame with FIN ends it. Control frames may
 * come between the pieces and are handed out at once. The decoder keeps
 * its state between reads, so bytes may arrive in any pieces. */

/* A connection's frame decoder: where it is in the byte stream, and the
 * message being put together. */
struct decoder {
    size_t max_message;         /* -m: longest message accepted         */
    int text_only;              /* binary messages are refused (1003)   */
    int in_frame;               /* header read, payload still arriving  */
    struct frame fr;            /* ... that header                      */
    uint64_t got;               /* payload bytes of fr seen so far      */
    int msg_opcode;             /* OP_TEXT/OP_BINARY while a message is open */
    struct utf8 utf8;           /* the text message's UTF-8 state       */
    struct buf msg;             /* the unmasked payload so far          */
    int delivered;              /* msg was handed out; clear it next    */
    unsigned char ctl[MAX_CONTROL_PAYLOAD];  /* a control frame's payload */
    /* The result of PARSE_DONE: a message or a control frame. */
    int opcode;
    const unsigned char *data;
    size_t data_len;
};

/* Check a data frame against the message in progress (§5.4) and the
 * size limit (§7.4.1, 1009); then open the message if it starts one. */
static enum parse frame_start_data(struct decoder *d, struct failure *f)
{
    const struct frame *fr = &d->fr;
    if (fr->opcode == OP_CONT && d->msg_opcode == 0)
        return fail(f, CLOSE_PROTOCOL_ERROR, "continuation frame with no message to continue");
    if (fr->opcode != OP_CONT && d->msg_opcode != 0)
        return fail(f, CLOSE_PROTOCOL_ERROR, "new message before the last one finished");
    if (fr->opcode == OP_BINARY && d->text_only)
        return fail(f, CLOSE_UNSUPPORTED, "binary messages are not accepted; send JSON text");
    /* msg.len <= max_message always holds, so this cannot wrap. */
    if (fr->len > d->max_message - d->msg.len)
        return fail(f, CLOSE_TOO_BIG, "message is larger than the server allows");
    if (fr->opcode != OP_CONT) {
        d->msg_opcode = fr->opcode;
        d->utf8 = (struct utf8){ 0, 0, 0 };
    }
    return PARSE_DONE;
}

/* Run the bytes p[0..len) through the decoder. Sets *used to the bytes
 * consumed and returns PARSE_MORE when they are all taken without
 * finishing anything, PARSE_DONE when d->opcode/data/data_len hold a
 * whole message or control frame (call again for the rest), or
 * PARSE_FAIL with the close code. A frame that is all there and not
 * fragmented is unmasked in place in p and handed out without copying;
 * other payload is unmasked into d->msg as it arrives, so memory grows
 * with the bytes received, never with a length the header claims. */
static enum parse frame_decode(struct decoder *d, unsigned char *p, size_t len,
                               size_t *used, struct failure *f)
{
    size_t pos = 0;
    *used = 0;
    if (d->delivered) {
        d->msg.len = 0;
        d->delivered = 0;
    }
    for (;;) {
        if (!d->in_frame) {
            enum parse r = frame_parse(p + pos, len - pos, &d->fr, f);
            *used = pos;
            if (r != PARSE_DONE)
                return r;
            int control = d->fr.opcode >= OP_CLOSE;
            if (!control && frame_start_data(d, f) != PARSE_DONE)
                return PARSE_FAIL;
            pos += d->fr.head_len;
            d->in_frame = 1;
            d->got = 0;
            /* The common case: a whole one-frame message is here. */
            if (!control && d->fr.fin && d->fr.opcode != OP_CONT &&
                d->fr.len <= len - pos) {
                unsigned char *payload = p + pos;
                size_t n = (size_t)d->fr.len;
                frame_unmask(payload, payload, n, d->fr.mask, 0);
                if (d->msg_opcode == OP_TEXT &&
                    (utf8_check(&d->utf8, payload, n) < 0 ||
                     !utf8_complete(&d->utf8)))
                    return fail(f, CLOSE_BAD_DATA, "text is not valid UTF-8");
                d->in_frame = 0;
                d->opcode = d->msg_opcode;
                d->msg_opcode = 0;
                d->data = payload;
                d->data_len = n;
                *used = pos + n;
                return PARSE_DONE;
            }
        }

        /* Take what has arrived of the payload. */
        uint64_t want = d->fr.len - d->got;
        size_t n = want < len - pos ? (size_t)want : len - pos;
        if (d->fr.opcode >= OP_CLOSE) {
            frame_unmask(d->ctl + d->got, p + pos, n, d->fr.mask, d->got);
        } else if (n > 0) {
            unsigned char *dst = buf_reserve(&d->msg, n);
            if (dst == NULL)
                return fail(f, CLOSE_INTERNAL_ERROR, "out of memory");
            frame_unmask(dst, p + pos, n, d->fr.mask, d->got);
            d->msg.len += n;
            /* §8.1: fail fast, at the first byte that cannot be UTF-8. */
            if (d->msg_opcode == OP_TEXT && utf8_check(&d->utf8, dst, n) < 0)
                return fail(f, CLOSE_BAD_DATA, "text is not valid UTF-8");
        }
        d->got += n;
        pos += n;
        *used = pos;
        if (d->got < d->fr.len)
            return PARSE_MORE;

        /* The frame is complete. */
        d->in_frame = 0;
        if (d->fr.opcode >= OP_CLOSE) {
            d->opcode = d->fr.opcode;
            d->data = d->ctl;
            d->data_len = (size_t)d->fr.len;
            return PARSE_DONE;
        }
        if (d->fr.fin) {
            if (d->msg_opcode == OP_TEXT && !utf8_complete(&d->utf8))
                return fail(f, CLOSE_BAD_DATA, "text ends inside a UTF-8 character");
            d->opcode = d->msg_opcode;
            d->msg_opcode = 0;
            d->data = d->msg.data;
            d->data_len = d->msg.len;
            d->delivered = 1;
            return PARSE_DONE;
        }
    }
}

/* ================== JSON scanner and writer (RFC 8259) ===================
 * A request is one JSON object. The scanner walks it once, checking the
 * grammar, and keeps the four string fields wspush knows; other keys
 * and values are checked and skipped. A string with escapes is decoded
 * into the caller's scratch buffer, which must hold len bytes: decoding
 * never makes text longer. The writer escapes what it emits exactly as
 * JavaScript's JSON.stringify does, so replies match the article's
 * server byte for byte. */

/* The fields of a request; p is NULL for a field that was not sent. */
struct request {
    struct span req, text, userkey, token;
};

/* The scanner's place in the text. */
struct json {
    const unsigned char *p;
    size_t len, pos;
    unsigned char *scratch;     /* decoded strings go here              */
    size_t used;                /* scratch bytes taken                  */
    int depth;
};

/* The failure codes of the scanner: bad grammar, or a known field whose
 * value is not a string. */
#define JSON_MALFORMED  1
#define JSON_WRONG_TYPE 2

/* Fail at the current position. */
static enum parse json_fail(struct json *j, struct failure *f, const char *why)
{
    fail(f, JSON_MALFORMED, why);
    f->at = j->pos;
    return PARSE_FAIL;
}

static void json_skip_space(struct json *j)
{
    while (j->pos < j->len && (j->p[j->pos] == ' ' || j->p[j->pos] == '\t' ||
                               j->p[j->pos] == '\n' || j->p[j->pos] == '\r'))
        j->pos++;
}

/* Read 4 hex digits of a \u escape at j->pos into *cp. */
static int json_hex4(struct json *j, unsigned *cp)
{
    if (j->len - j->pos < 4)
        return -1;
    *cp = 0;
    for (int i = 0; i < 4; i++) {
        int v = hex_value(j->p[j->pos + i]);
        if (v < 0)
            return -1;
        *cp = *cp << 4 | (unsigned)v;
    }
    j->pos += 4;
    return 0;
}

/* Write code point cp as UTF-8 to out; returns the bytes written. */
static size_t utf8_put(unsigned char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Scan the string at j->pos (RFC 8259 §7) into *out. Without escapes,
 * out points into the text; with them, into scratch. */
static enum parse json_string(struct json *j, struct span *out, struct failure *f)
{
    if (j->pos >= j->len || j->p[j->pos] != '"')
        return json_fail(j, f, "expected a string");
    size_t start = ++j->pos;
    while (j->pos + 16 <= j->len && word_is_plain(load64(j->p + j->pos)) &&
           word_is_plain(load64(j->p + j->pos + 8)))
        j->pos += 16;
    while (j->pos < j->len && j->p[j->pos] != '"' && j->p[j->pos] != '\\') {
        if (j->p[j->pos] < 0x20)
            return json_fail(j, f, "control character in a string");
        j->pos++;
    }
    if (j->pos < j->len && j->p[j->pos] == '"') {
        /* No escapes: the text holds no quote, backslash or control
         * byte, so a reply can copy it without looking again. */
        *out = (struct span){ j->p + start, j->pos - start, 1 };
        j->pos++;
        return PARSE_DONE;
    }

    /* There are escapes: copy what came before them, then decode. */
    unsigned char *o = j->scratch + j->used;
    size_t n = j->pos - start;
    memcpy(o, j->p + start, n);
    while (j->pos < j->len && j->p[j->pos] != '"') {
        unsigned char c = j->p[j->pos++];
        if (c < 0x20)
            return json_fail(j, f, "control character in a string");
        if (c != '\\') {
            o[n++] = c;
            continue;
        }
        if (j->pos >= j->len)
            break;
        c = j->p[j->pos++];
        const char *simple = strchr("\"\\/bfnrt", c);
        if (c != 0 && simple != NULL) {
            o[n++] = (unsigned char)"\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        if (c != 'u')
            return json_fail(j, f, "unknown escape in a string");
        unsigned cp, lo;
        if (json_hex4(j, &cp) < 0)
            return json_fail(j, f, "expected 4 hex digits after \\u");
        /* UTF-16 surrogate pairs encode code points above U+FFFF. */
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return json_fail(j, f, "unpaired surrogate in \\u escape");
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (j->len - j->pos < 2 || j->p[j->pos] != '\\' ||
                j->p[j->pos + 1] != 'u')
                return json_fail(j, f, "unpaired surrogate in \\u escape");
            j->pos += 2;
            if (json_hex4(j, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                return json_fail(j, f, "unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        n += utf8_put(o + n, cp);
    }
    if (j->pos >= j->len)
        return json_fail(j, f, "unterminated string");
    j->pos++;
    j->used += n;
    *out = (struct span){ o, n, 0 };
    return PARSE_DONE;
}

/* Skip the literal word at j->pos. */
static enum parse json_word(struct json *j, const char *word, struct failure *f)
{
    size_t n = strlen(word);
    if (j->len - j->pos < n || memcmp(j->p + j->pos, word, n) != 0)
        return json_fail(j, f, "expected a value");
    j->pos += n;
    return PARSE_DONE;
}

/* Skip a number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static enum parse json_number(struct json *j, struct failure *f)
{
    const unsigned char *p = j->p;
    size_t i = j->pos;
#define DIGIT(k) ((k) < j->len && p[k] >= '0' && p[k] <= '9')
    if (i < j->len && p[i] == '-')
        i++;
    if (i < j->len && p[i] == '0')
        i++;
    else if (DIGIT(i))
        while (DIGIT(i)) i++;
    else
        return json_fail(j, f, "expected a value");
    if (i < j->len && p[i] == '.') {
        if (!DIGIT(i + 1)) { j->pos = i + 1; return json_fail(j, f, "expected a digit"); }
        for (i++; DIGIT(i); i++) ;
    }
    if (i < j->len && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < j->len && (p[i] == '+' || p[i] == '-'))
            i++;
        if (!DIGIT(i)) { j->pos = i; return json_fail(j, f, "expected a digit"); }
        while (DIGIT(i)) i++;
    }
#undef DIGIT
    j->pos = i;
    return PARSE_DONE;
}

static enum parse json_value(struct json *j, struct failure *f);

/* Skip an array or object whose opening bracket is at j->pos. Nesting
 * deeper than MAX_JSON_DEPTH is refused, so recursion stays shallow. */
static enum parse json_container(struct json *j, struct failure *f)
{
    unsigned char close = j->p[j->pos] == '[' ? ']' : '}';
    if (++j->depth > MAX_JSON_DEPTH)
        return json_fail(j, f, "nested too deeply");
    j->pos++;
    json_skip_space(j);
    if (j->pos < j->len && j->p[j->pos] == close) {
        j->pos++;
        j->depth--;
        return PARSE_DONE;
    }
    for (;;) {
        if (close == '}') {
            struct span key;
            if (json_string(j, &key, f) != PARSE_DONE)
                return PARSE_FAIL;
            json_skip_space(j);
            if (j->pos >= j->len || j->p[j->pos] != ':')
                return json_fail(j, f, "expected ':' after a key");
            j->pos++;
        }
        if (json_value(j, f) != PARSE_DONE)
            return PARSE_FAIL;
        json_skip_space(j);
        if (j->pos < j->len && j->p[j->pos] == ',') {
            j->pos++;
            json_skip_space(j);
            continue;
        }
        if (j->pos < j->len && j->p[j->pos] == close) {
            j->pos++;
            j->depth--;
            return PARSE_DONE;
        }
        return json_fail(j, f, close == '}' ? "expected ',' or '}'"
                                            : "expected ',' or ']'");
    }
}

/* Skip any one value, with the space before it. */
static enum parse json_value(struct json *j, struct failure *f)
{
    json_skip_space(j);
    if (j->pos >= j->len)
        return json_fail(j, f, "expected a value");
    struct span ignored;
    switch (j->p[j->pos]) {
    case '"': return json_string(j, &ignored, f);
    case '{': case '[': return json_container(j, f);
    case 't': return json_word(j, "true", f);
    case 'f': return json_word(j, "false", f);
    case 'n': return json_word(j, "null", f);
    default:  return json_number(j, f);
    }
}

/* Scan the request object in p[0..len) into r. Strings with escapes are
 * decoded into scratch, which must hold len bytes. Returns PARSE_DONE,
 * or PARSE_FAIL with f->why and f->at saying what went wrong where. A
 * key given twice keeps its last value, as in JavaScript. */
static enum parse json_parse_request(const unsigned char *p, size_t len,
                                     struct request *r, unsigned char *scratch,
                                     struct failure *f)
{
    struct json j = { p, len, 0, scratch, 0, 1 };
    memset(r, 0, sizeof *r);
    json_skip_space(&j);
    if (j.pos >= len || p[j.pos] != '{')
        return json_fail(&j, f, "a request must be a JSON object");
    j.pos++;
    json_skip_space(&j);
    if (j.pos < len && p[j.pos] == '}') {
        j.pos++;
    } else {
        for (;;) {
            struct span key, *field = NULL;
            if (json_string(&j, &key, f) != PARSE_DONE)
                return PARSE_FAIL;
            if (span_is(key, "req")) field = &r->req;
            else if (span_is(key, "text")) field = &r->text;
            else if (span_is(key, "userkey")) field = &r->userkey;
            else if (span_is(key, "token")) field = &r->token;
            json_skip_space(&j);
            if (j.pos >= len || p[j.pos] != ':')
                return json_fail(&j, f, "expected ':' after a key");
            j.pos++;
            json_skip_space(&j);
            if (field != NULL) {
                if (j.pos >= len || p[j.pos] != '"')
                    return fail(f, JSON_WRONG_TYPE,
                        field == &r->req ? "\"req\" must be a string"
                        : field == &r->text ? "\"text\" must be a string"
                        : field == &r->userkey ? "\"userkey\" must be a string"
                        : "\"token\" must be a string");
                if (json_string(&j, field, f) != PARSE_DONE)
                    return PARSE_FAIL;
            } else if (json_value(&j, f) != PARSE_DONE) {
                return PARSE_FAIL;
            }
            json_skip_space(&j);
            if (j.pos < len && p[j.pos] == ',') {
                j.pos++;
                json_skip_space(&j);
                continue;
            }
            if (j.pos < len && p[j.pos] == '}') {
                j.pos++;
                break;
            }
            return json_fail(&j, f, "expected ',' or '}'");
        }
    }
    json_skip_space(&j);
    if (j.pos != len)
        return json_fail(&j, f, "unexpected text after the object");
    return PARSE_DONE;
}

/* Append s[0..len) to b as a JSON string, escaping quote, backslash and
 * bytes below 0x20 the way JSON.stringify does (RFC 8259 §7). Returns
 * 0, or -1 if memory is short; b then holds part of the string, and the
 * caller drops the frame it was writing. */
static int json_put_string(struct buf *b, const unsigned char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (buf_append(b, "\"", 1) < 0)
        return -1;
    size_t i = 0;
    while (i < len) {
        /* Copy the run of bytes that need no escape in one go. */
        size_t end = i;
        while (end + 16 <= len && word_is_plain(load64(s + end)) &&
               word_is_plain(load64(s + end + 8)))
            end += 16;
        while (end < len && s[end] >= 0x20 && s[end] != '"' && s[end] != '\\')
            end++;
        if (buf_append(b, s + i, end - i) < 0)
            return -1;
        if (end == len)
            break;
        unsigned char c = s[end], esc[6] = { '\\', 0, 0, 0, 0, 0 };
        size_t n = 2;
        switch (c) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:                        /* other control bytes: \u00XX */
            memcpy(esc + 1, "u00", 3);
            esc[4] = (unsigned char)hex[c >> 4];
            esc[5] = (unsigned char)hex[c & 15];
            n = 6;
        }
        if (buf_append(b, esc, n) < 0)
            return -1;
        i = end + 1;
    }
    return buf_append(b, "\"", 1);
}

/* Append a span as a JSON string; one the scanner found plain is copied
 * as it is. Returns 0, or -1 as json_put_string() does. */
static int json_put_span(struct buf *b, struct span s)
{
    if (!s.plain)
        return json_put_string(b, s.p, s.len);
    unsigned char *o = buf_reserve(b, s.len + 2);
    if (o == NULL)
        return -1;
    o[0] = '"';
    memcpy(o + 1, s.p, s.len);
    o[s.len + 1] = '"';
    b->len += s.len + 2;
    return 0;
}

/* Append the C string s as a JSON string. */
static int json_put_cstring(struct buf *b, const char *s)
{
    return json_put_string(b, (const unsigned char *)s, strlen(s));
}

/* ============================ The connection table =======================
 * Every socket wspush serves has a slot in conns[]. Open WebSockets are
 * also linked in arrival order, which is the order of the role list the
 * article's server prints and sends; a slot is found by its key. */
enum conn_state {
    CONN_FREE,                  /* slot unused                          */
    CONN_HANDSHAKE,             /* reading the HTTP request             */
    CONN_OPEN,                  /* WebSocket open: frames flow          */
    CONN_CLOSING                /* saying goodbye; closed soon          */
};
enum role { ROLE_USER, ROLE_ADMIN };

struct conn {
    int fd;                     /* socket, or -1 when the slot is free  */
    enum conn_state state;
    enum role role;             /* USER until "get connections"         */
    char key[KEY_TEXT_LEN + 1]; /* Sec-WebSocket-Key: client's address  */
    char addr[INET6_ADDRSTRLEN];/* peer address, for logs               */
    int loopback;               /* peer is on this machine              */
    struct conn *prev, *next;   /* open connections in arrival order    */
    struct buf in;              /* bytes not parsed yet                 */
    struct buf out;             /* bytes waiting to be written          */
    int dirty;                  /* out grew since the last write        */
    int spoke;                  /* bytes came in this pass of the loop  */
    struct decoder dec;
    int64_t deadline_ms;        /* handshake or goodbye must end by now */
    int64_t last_heard_ms;      /* when the peer last sent anything     */
    int64_t ping_sent_ms;       /* our unanswered ping, or 0            */
    int token_failures;         /* wrong admin tokens so far            */
    int http_only;              /* closing after an HTTP answer         */
    int close_received;         /* the peer's close frame has come      */
    int write_shut;             /* shutdown(SHUT_WR) done               */
};

static struct conn conns[TABLE_SLOTS];
static int slots_used;                  /* slots below this may be in use */
static struct conn *oldest, *newest;    /* the arrival-order list        */
static int n_open;                      /* connections on the list       */
static fd_set read_fds, write_fds;      /* what select() should watch    */
static int max_fd = -1;
static int64_t now_ms;                  /* the clock, read once per pass */
static unsigned char *scratch;          /* JSON strings, max_message bytes */

/* The open connection whose key is k, or NULL. */
static struct conn *conn_find(struct span k)
{
    for (struct conn *c = oldest; c != NULL; c = c->next)
        if (k.len == KEY_TEXT_LEN && memcmp(c->key, k.p, KEY_TEXT_LEN) == 0)
            return c;
    return NULL;
}

/* ============================ Logging =============================== */

/* Log prefix, then p[0..len) with control characters escaped as \xNN
 * so a client cannot forge log lines, and at most LOG_MESSAGE_MAX bytes
 * of it. Admin tokens stay out of the log: the text is cut at a "token"
 * key (a mistyped token is nearly the real one), and the configured
 * token is masked wherever else it appears. */
static void log_text(const char *prefix, const unsigned char *p, size_t len)
{
    static const char key[] = "\"token\"";
    char line[LOG_MESSAGE_MAX * 4 + 64];
    size_t o = 0, n = len < LOG_MESSAGE_MAX ? len : LOG_MESSAGE_MAX;
    size_t token_len = opt.token ? strlen(opt.token) : 0;
    const char *tail = n < len ? " ..." : "";
    for (size_t i = 0; i + sizeof key - 1 <= n; i++) {
        if (memcmp(p + i, key, sizeof key - 1) == 0) {
            n = i + sizeof key - 1;
            tail = " ... (the rest holds a token and is not logged)";
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (token_len > 0 && token_len <= n - i &&
            memcmp(p + i, opt.token, token_len) == 0) {
            memcpy(line + o, "***", 3);
            o += 3;
            i += token_len - 1;
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            o += (size_t)snprintf(line + o, sizeof line - o, "\\x%02x", p[i]);
        } else {
            line[o++] = (char)p[i];
        }
    }
    line[o] = '\0';
    log_line(0, "%s%s%s", prefix, line, tail);
}

/* Log the role table the way the article's server prints it:
 * { 'KEY': 'user', ... } on one line when short, else one per line. */
static void log_roles(const char *prompt)
{
    if (opt.quiet)
        return;
    log_line(0, "%s", prompt);
    /* Node's rule: one line if 2 per entry + 11 + the entries fit 80. */
    size_t width = 11;
    for (struct conn *c = oldest; c != NULL; c = c->next)
        width += 2 + strlen(c->key) + 6 + (c->role == ROLE_ADMIN ? 5 : 4);
    if (n_open == 0) {
        log_line(0, "{}");
        return;
    }
    int one_line = width <= 80;
    int shown = 0;
    printf(one_line ? "{ " : "{\n");
    for (struct conn *c = oldest; c != NULL && shown < LOG_TABLE_MAX; c = c->next) {
        const char *role = c->role == ROLE_ADMIN ? "admin" : "user";
        const char *sep = c->next != NULL && shown + 1 < LOG_TABLE_MAX ? "," : "";
        if (one_line)
            printf("'%s': '%s'%s ", c->key, role, sep);
        else
            printf("  '%s': '%s'%s\n", c->key, role, sep);
        shown++;
    }
    if (shown < n_open)
        printf("  ... %d more\n", n_open - shown);
    printf("}\n");
}

/* ========================= Protocol handlers ============================
 * One function per request of the article's protocol, all alike: they
 * read the request and queue replies with reply_text() and friends.
 * Replies to other connections go to their queues; the loop writes them. */

static int conn_send_frame(struct conn *c, int opcode, const void *p, size_t len);
static void conn_fail(struct conn *c, int code, const char *why);
static int queue_ok(struct conn *c);

/* Queue {"resp":RESP,"content":CONTENT} for c; content may be absent
 * (p == NULL), and is then left out, as JSON.stringify leaves out an
 * undefined value. Returns 0, or -1 if c could not take it. */
static int reply_json(struct conn *c, struct span resp, struct span content)
{
    if (!queue_ok(c))
        return -1;
    /* The reply is at least this long; escapes only add to it. */
    size_t hint = resp.len + (content.p ? content.len : 0) + 24;
    size_t start = frame_begin(&c->out, hint);
    if (start == SIZE_MAX ||
        buf_puts(&c->out, "{\"resp\":") < 0 || json_put_span(&c->out, resp) < 0 ||
        (content.p != NULL &&
         (buf_puts(&c->out, ",\"content\":") < 0 || json_put_span(&c->out, content) < 0)) ||
        buf_puts(&c->out, "}") < 0 || frame_end(&c->out, start, hint, OP_TEXT) < 0) {
        if (start != SIZE_MAX)
            c->out.len = start;
        conn_fail(c, CLOSE_INTERNAL_ERROR, "out of memory");
        return -1;
    }
    c->dirty = 1;
    return 0;
}

/* A span over a C string. */
static struct span cspan(const char *s)
{
    return span_of((const unsigned char *)s, strlen(s));
}

/* Queue {"resp":"text","content":TEXT}. */
static int reply_text(struct conn *c, struct span text)
{
    return reply_json(c, cspan("text"), text);
}

/* Queue {"resp":"error","content":WHY}. */
static int reply_error(struct conn *c, const char *why)
{
    return reply_json(c, cspan("error"), cspan(why));
}

/* Queue the role list: {"resp":"get connections","content":{KEY:ROLE,...}}
 * with every open connection in the order it arrived. */
static int reply_roles(struct conn *c)
{
    if (!queue_ok(c))
        return -1;
    struct buf *b = &c->out;
    size_t hint = 40 + (size_t)n_open * (KEY_TEXT_LEN + 10);
    size_t start = frame_begin(b, hint);
    int bad = start == SIZE_MAX ||
              buf_puts(b, "{\"resp\":\"get connections\",\"content\":{") < 0;
    for (struct conn *o = oldest; o != NULL && !bad; o = o->next) {
        bad = json_put_cstring(b, o->key) < 0 || buf_puts(b, ":") < 0 ||
              json_put_cstring(b, o->role == ROLE_ADMIN ? "admin" : "user") < 0 ||
              (o->next != NULL && buf_puts(b, ",") < 0);
    }
    if (bad || buf_puts(b, "}}") < 0 || frame_end(b, start, hint, OP_TEXT) < 0) {
        if (start != SIZE_MAX)
            b->len = start;
        conn_fail(c, CLOSE_INTERNAL_ERROR, "out of memory");
        return -1;
    }
    c->dirty = 1;
    return 0;
}

/* Presence: send the fresh list to every admin but `except'. */
static void announce_roles(struct conn *except)
{
    for (struct conn *o = oldest; o != NULL; o = o->next)
        if (o->role == ROLE_ADMIN && o != except)
            reply_roles(o);
}

/* Compare the sent token with ours in time that does not depend on
 * where they differ, so timing cannot reveal it byte by byte. */
static int token_matches(struct span sent, const char *token)
{
    size_t n = strlen(token);
    unsigned diff = sent.len != n;
    for (size_t i = 0; i < n; i++)
        diff |= token[i] ^ (i < sent.len ? sent.p[i] : 0);
    return diff == 0;
}

/* True if the peer address sa is this machine: 127.0.0.0/8, ::1, or
 * 127.x.y.z seen through an IPv6 socket as ::ffff:127.x.y.z. */
static int addr_is_loopback(const struct sockaddr_storage *sa)
{
    static const unsigned char mapped[12] = { 0,0,0,0,0,0,0,0,0,0,0xff,0xff };
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        return (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const unsigned char *a = in6->sin6_addr.s6_addr;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (memcmp(a, mapped, 12) == 0 && a[12] == 127);
    }
    return 0;
}

/* May c become admin? Returns NULL if so, else the reason it may not. */
static const char *admin_refusal(struct conn *c, const struct request *r)
{
    if (opt.anyone_admin)
        return NULL;
    if (opt.token != NULL) {
        if (r->token.p != NULL && token_matches(r->token, opt.token))
            return NULL;
        return r->token.p == NULL
            ? "admin token required: send \"token\" with \"get connections\""
            : "wrong admin token";
    }
    if (c->loopback)
        return NULL;
    return "admins must connect from the machine running wspush "
           "(or the server must be started with -t TOKEN)";
}

/* {"req":"get connections"}: the sender becomes admin and gets the list. */
static void cmd_get_connections(struct conn *c, const struct request *r)
{
    const char *why = admin_refusal(c, r);
    if (why != NULL) {
        log_line(1, "Admin refused for %s from %s: %s", c->key, c->addr, why);
        reply_error(c, why);
        if (opt.token != NULL && ++c->token_failures >= MAX_TOKEN_FAILURES)
            conn_fail(c, CLOSE_POLICY, "too many wrong admin tokens");
        return;
    }
    int was_user = c->role == ROLE_USER;
    c->role = ROLE_ADMIN;
    reply_roles(c);
    if (was_user) {
        log_roles("Request: get connections");
        announce_roles(c);
    }
}

/* Only admins push, and a push needs its text. Returns 1 if c may send
 * r, else answers with the reason (nothing is sent) and returns 0. */
static int may_push(struct conn *c, const struct request *r)
{
    if (c->role != ROLE_ADMIN) {
        reply_error(c, "only an admin may push; send \"get connections\" first");
        return 0;
    }
    if (r->text.p == NULL) {
        reply_error(c, "a push needs a \"text\" string");
        return 0;
    }
    return 1;
}

/* {"req":"push a user","userkey":K,"text":T}: T goes to K alone. */
static void cmd_push_a_user(struct conn *c, const struct request *r)
{
    if (!may_push(c, r))
        return;
    struct conn *target = conn_find(r->userkey);
    if (target == NULL) {
        /* The user has gone: say so and send the fresh list. */
        reply_text(c, cspan("Refresh user list complete. Try again!"));
        reply_roles(c);
        return;
    }
    if (reply_text(target, r->text) < 0) {
        reply_error(c, "that user is not reading and was disconnected");
        return;
    }
    reply_text(c, cspan("Already sent."));
}

/* {"req":"push all","text":T}: T goes to every user. */
static void cmd_push_all(struct conn *c, const struct request *r)
{
    if (!may_push(c, r))
        return;
    int sent = 0;
    for (struct conn *o = oldest; o != NULL; o = o->next)
        if (o->role == ROLE_USER && o->state == CONN_OPEN &&
            reply_text(o, r->text) == 0)
            sent++;
    char note[64];
    snprintf(note, sizeof note, "Sent to %d user%s.", sent, sent == 1 ? "" : "s");
    reply_text(c, cspan(note));
}

/* {"req":"get my key"}: the sender's own key. Browsers make the key up
 * and keep it from scripts, so a page asks to be able to show it. */
static void cmd_get_my_key(struct conn *c, const struct request *r)
{
    (void)r;
    reply_json(c, cspan("get my key"), cspan(c->key));
}

static const struct command {
    const char *req;    /* value of "req" in the JSON request */
    void (*run)(struct conn *c, const struct request *r);
} commands[] = {
    { "get connections", cmd_get_connections },
    { "push a user",     cmd_push_a_user },
    { "push all",        cmd_push_all },
    { "get my key",      cmd_get_my_key },
};  /* any other "req" is echoed: {"resp":REQ,"content":text} */

/* Handle one text message: a JSON request, or anything in -e mode. */
static void on_message(struct conn *c, int opcode, const unsigned char *p,
                       size_t len)
{
    if (opt.raw_echo) {
        if (queue_ok(c))
            conn_send_frame(c, opcode, p, len);
        return;
    }
    if (!opt.quiet)
        log_text("Received Message: ", p, len);

    struct request r;
    struct failure f;
    if (json_parse_request(p, len, &r, scratch, &f) != PARSE_DONE) {
        char why[160];
        if (f.code == JSON_WRONG_TYPE)
            snprintf(why, sizeof why, "%s", f.why);
        else
            snprintf(why, sizeof why, "malformed JSON at byte %zu: %s", f.at, f.why);
        reply_error(c, why);
        return;
    }
    if (r.req.p == NULL) {
        reply_error(c, "a request needs a \"req\" string");
        return;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (span_is(r.req, commands[i].req)) {
            commands[i].run(c, &r);
            return;
        }
    }
    reply_json(c, r.req, r.text);
}

/* ============================ Connection I/O =============================
 * Reading: bytes are read into one shared buffer behind whatever the
 * connection had left over, parsed there, and only an unfinished tail
 * (a partial request head or frame header) is kept per connection.
 * Writing: replies are queued in c->out and written when the socket
 * takes them; one write per wake-up carries every reply queued since.
 * Closing (§7.1): queue a close frame, stop sending, wait a bounded time
 * for the peer's close or end of stream, then close the socket. */

static unsigned char read_buf[MAX_REQUEST_HEAD + READ_CHUNK];

/* Watch fd for reading or writing in the next select(). */
static void watch(int fd, fd_set *set, int on)
{
    if (on)
        FD_SET(fd, set);
    else
        FD_CLR(fd, set);
}

/* Take a free slot for the new socket fd. Returns it, or NULL when the
 * table is full. */
static struct conn *conn_open(int fd, const struct sockaddr_storage *sa)
{
    int i;
    for (i = 0; i < TABLE_SLOTS && conns[i].state != CONN_FREE; i++) ;
    if (i == TABLE_SLOTS)
        return NULL;
    struct conn *c = &conns[i];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->state = CONN_HANDSHAKE;
    c->deadline_ms = now_ms + (int64_t)opt.handshake_timeout_s * 1000;
    c->dec.max_message = opt.max_message;
    c->dec.text_only = !opt.raw_echo;
    if (sa->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
                  c->addr, sizeof c->addr);
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                  c->addr, sizeof c->addr);
    c->loopback = addr_is_loopback(sa);
    if (i >= slots_used)
        slots_used = i + 1;
    if (fd > max_fd)
        max_fd = fd;
    watch(fd, &read_fds, 1);
    return c;
}

/* Take c off the list of open connections, tell the log and the admins.
 * c keeps its own next pointer, so a loop that is walking the list and
 * standing on c (push all, presence) carries on to the rest. */
static void conn_leave(struct conn *c)
{
    if (c->state != CONN_OPEN)
        return;
    if (c->prev) c->prev->next = c->next; else oldest = c->next;
    if (c->next) c->next->prev = c->prev; else newest = c->prev;
    n_open--;
    c->state = CONN_CLOSING;
    log_line(1, "Peer %s disconnected.", c->addr);
    log_roles("Current active connections (close event)");
    announce_roles(NULL);
}

/* Close the socket and free the slot with all it holds. */
static void conn_close(struct conn *c)
{
    conn_leave(c);
    watch(c->fd, &read_fds, 0);
    watch(c->fd, &write_fds, 0);
    close(c->fd);
    if (c->fd == max_fd)
        while (max_fd >= 0 && !FD_ISSET(max_fd, &read_fds))
            max_fd--;
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->dec.msg);
    c->fd = -1;
    c->state = CONN_FREE;
    while (slots_used > 0 && conns[slots_used - 1].state == CONN_FREE)
        slots_used--;
}

/* Begin saying goodbye: no more reading requests; close within
 * CLOSE_TIMEOUT_S whatever the peer does. */
static void conn_closing(struct conn *c)
{
    conn_leave(c);
    c->state = CONN_CLOSING;
    c->deadline_ms = now_ms + CLOSE_TIMEOUT_S * 1000;
}

/* Is there room in c's queue? A client that lets more than max_queue
 * bytes pile up is not reading; it is closed (1008) rather than allowed
 * to grow our memory. */
static int queue_ok(struct conn *c)
{
    if (c->state != CONN_OPEN)
        return 0;
    if (c->out.len <= opt.max_queue)
        return 1;
    log_line(1, "Peer %s is not reading: %zu bytes queued", c->addr, c->out.len);
    conn_fail(c, CLOSE_POLICY, "client is not reading its messages");
    return 0;
}

/* Append one unfragmented frame to c's queue. Returns 0, or -1 if
 * memory is short (nothing is queued). */
static int queue_frame(struct conn *c, int opcode, const void *p, size_t len)
{
    unsigned char head[10];
    size_t head_len = frame_header(head, opcode, len);
    if (len > SIZE_MAX - head_len || buf_reserve(&c->out, head_len + len) == NULL)
        return -1;
    buf_append(&c->out, head, head_len);
    buf_append(&c->out, p, len);
    c->dirty = 1;
    return 0;
}

/* Queue one frame, failing the connection (1011) if memory is short. */
static int conn_send_frame(struct conn *c, int opcode, const void *p, size_t len)
{
    if (queue_frame(c, opcode, p, len) == 0)
        return 0;
    conn_fail(c, CLOSE_INTERNAL_ERROR, "out of memory");
    return -1;
}

/* Queue a close frame with code and reason (§5.5.1) and start closing.
 * code 0 sends an empty close payload. */
static void conn_send_close(struct conn *c, unsigned code, const char *why)
{
    unsigned char payload[MAX_CONTROL_PAYLOAD];
    size_t n = 0;
    if (code != 0) {
        size_t why_len = strlen(why);
        if (why_len > MAX_CONTROL_PAYLOAD - 2)
            why_len = MAX_CONTROL_PAYLOAD - 2;
        payload[0] = (unsigned char)(code >> 8);
        payload[1] = (unsigned char)code;
        memcpy(payload + 2, why, why_len);
        n = 2 + why_len;
    }
    /* The close frame goes out even past the queue limit: it is small,
     * and the deadline ends the connection if the peer never reads it.
     * Without memory for it, the connection just closes: dirty makes
     * conn_flush() stop sending and finish the goodbye either way. */
    queue_frame(c, OP_CLOSE, payload, n);
    c->dirty = 1;
    conn_closing(c);
}

/* Fail the connection (§7.1.7): log why, send the close code, close. */
static void conn_fail(struct conn *c, int code, const char *why)
{
    if (c->state != CONN_OPEN)
        return;
    log_line(1, "Closing %s (%s): %d %s", c->key, c->addr, code, why);
    conn_send_close(c, (unsigned)code, why);
}

/* Answer an HTTP request with status, extra header lines and body, then
 * close. A HEAD request gets the head alone. */
static void http_answer(struct conn *c, int status, const char *headers,
                        const char *type, const void *body, size_t body_len,
                        int head_only)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nServer: wspush\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n"
                     "X-Content-Type-Options: nosniff\r\n%s\r\n",
                     status, http_reason(status), type, body_len, headers);
    if (n < 0 || (size_t)n >= sizeof head ||
        buf_append(&c->out, head, (size_t)n) < 0 ||
        (!head_only && buf_append(&c->out, body, body_len) < 0))
        buf_free(&c->out);
    c->dirty = 1;
    c->http_only = 1;
    conn_closing(c);
}

/* Answer an error status with its reason as a one-line text body. */
static void http_error(struct conn *c, int status, const char *why)
{
    char body[160];
    snprintf(body, sizeof body, "%d %s: %s\n", status, http_reason(status), why);
    const char *extra = status == 426 ? "Sec-WebSocket-Version: 13\r\n"
                      : status == 405 ? "Allow: GET, HEAD\r\n" : "";
    log_line(1, "Request from %s refused: %d %s", c->addr, status, why);
    http_answer(c, status, extra, "text/plain; charset=utf-8", body,
                strlen(body), 0);
}

/* Serve a plain GET or HEAD from the www folder. */
static void serve_file(struct conn *c, const struct http_request *r)
{
    struct failure f;
    char rel[MAX_PATH_LEN], path[PATH_MAX + MAX_PATH_LEN + 2], real[PATH_MAX];
    int head_only = span_is(r->method, "HEAD");

    if (!opt.quiet)
        log_text("Received request for ", r->target.p, r->target.len);
    if (opt.www == NULL) {
        http_error(c, 404, "no such page");
        return;
    }
    if (url_to_path(r->target, rel, sizeof rel, &f) != PARSE_DONE) {
        http_error(c, f.code, f.why);
        return;
    }
    int n = snprintf(path, sizeof path, "%s/%s", opt.www, rel);
    if (n < 0 || (size_t)n >= sizeof path) {
        http_error(c, 404, "path too long");
        return;
    }
    /* After symlinks, the file must still lie inside the www folder. */
    size_t root_len = strlen(opt.www);
    if (realpath(path, real) == NULL) {
        http_error(c, 404, "no such page");
        return;
    }
    if (strncmp(real, opt.www, root_len) != 0 || real[root_len] != '/') {
        http_error(c, 403, "that file lies outside the www folder");
        return;
    }
    int fd = open(real, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        http_error(c, 404, "no such page");
        return;
    }
    if (st.st_size > MAX_FILE_SIZE) {
        close(fd);
        http_error(c, 500, "file is larger than wspush serves");
        return;
    }
    size_t size = (size_t)st.st_size;
    unsigned char *body = malloc(size ? size : 1);
    size_t got = 0;
    while (body != NULL && got < size) {
        ssize_t n = read(fd, body + got, size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (body == NULL || got != size) {
        free(body);
        http_error(c, 500, "could not read the file");
        return;
    }
    http_answer(c, 200, "Cache-Control: no-cache\r\n", content_type(rel),
                body, size, head_only);
    free(body);
}

/* The head is valid: refuse what policy forbids, or answer 101 and open
 * the WebSocket (§4.2.2). */
static void ws_open(struct conn *c, const struct http_request *r)
{
    int allowed = opt.n_origins == 0;
    for (int i = 0; i < opt.n_origins && r->origin.p != NULL; i++)
        allowed |= span_is(r->origin, opt.origins[i]);
    if (!allowed) {
        http_error(c, 403, "origin not allowed");
        return;
    }
    if (conn_find(r->ws_key) != NULL) {
        http_error(c, 409, "Sec-WebSocket-Key is already connected");
        return;
    }
    if (n_open >= MAX_CLIENTS) {
        http_error(c, 503, "server is full");
        return;
    }

    char accept[ACCEPT_LEN + 1], head[256];
    ws_accept(r->ws_key, accept);
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept,
                     r->offers_echo ? "Sec-WebSocket-Protocol: " WS_PROTOCOL "\r\n" : "");
    if (buf_append(&c->out, head, (size_t)n) < 0) {
        http_error(c, 500, "out of memory");
        return;
    }
    c->dirty = 1;
    memcpy(c->key, r->ws_key.p, KEY_TEXT_LEN);
    c->key[KEY_TEXT_LEN] = '\0';
    c->state = CONN_OPEN;
    c->role = ROLE_USER;
    c->last_heard_ms = now_ms;
    c->prev = newest;
    if (newest) newest->next = c; else oldest = c;
    newest = c;
    n_open++;
    log_line(1, "Connection accepted. User key: %s", c->key);
    log_roles("Current active connections");
    announce_roles(NULL);
}

/* Handle a control frame (§5.5) that the decoder has put together. */
static void on_control(struct conn *c, int opcode, const unsigned char *p,
                       size_t len)
{
    struct failure f;
    unsigned code;
    switch (opcode) {
    case OP_PING:               /* §5.5.2: answer with the same payload */
        if (queue_ok(c))
            conn_send_frame(c, OP_PONG, p, len);
        break;
    case OP_PONG:               /* §5.5.3: it answers our heartbeat     */
        break;
    case OP_CLOSE:
        c->close_received = 1;
        c->dirty = 1;           /* conn_flush() closes once all is sent */
        if (c->state != CONN_OPEN)
            break;              /* it answers ours: we are done         */
        if (close_parse(p, len, &code, &f) != PARSE_DONE) {
            conn_fail(c, f.code, f.why);
            break;
        }
        /* §5.5.1: echo the code; an empty close is answered empty. */
        conn_send_close(c, code == CLOSE_NO_STATUS ? 0 : code, "");
        break;
    }
}

/* Run newly read WebSocket bytes through c's decoder and act on each
 * message and control frame. Returns how many bytes were used; the rest
 * (part of a frame header) waits for the next read. While we wait for
 * the peer's close, frames are still decoded to find it; whatever else
 * comes after a close is ignored (§5.5.1). */
static size_t conn_on_frames(struct conn *c, unsigned char *p, size_t len)
{
    size_t pos = 0;
    for (;;) {
        if (c->state != CONN_OPEN && (c->state != CONN_CLOSING || c->close_received))
            return len;
        struct failure f;
        size_t used;
        enum parse r = frame_decode(&c->dec, p + pos, len - pos, &used, &f);
        pos += used;
        if (r == PARSE_MORE)
            return pos;
        if (r == PARSE_FAIL) {
            if (c->state == CONN_OPEN)
                conn_fail(c, f.code, f.why);
            else
                c->close_received = 1;  /* garbage while closing: stop */
            c->dirty = 1;
            return len;
        }
        if (c->dec.opcode >= OP_CLOSE)
            on_control(c, c->dec.opcode, c->dec.data, c->dec.data_len);
        else if (c->state == CONN_OPEN)
            on_message(c, c->dec.opcode, c->dec.data, c->dec.data_len);
    }
}

/* Read what the peer sent and act on it. Returns 1 if bytes came, 0 if
 * none were waiting or the connection ended. */
static int conn_read(struct conn *c)
{
    size_t have = c->in.len;
    if (have > 0)
        memcpy(read_buf, c->in.data, have);
    ssize_t n = read(c->fd, read_buf + have, READ_CHUNK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {               /* end of stream, or reset: peer is gone */
        conn_close(c);
        return 0;
    }
    size_t len = have + (size_t)n, pos = 0;
    c->last_heard_ms = now_ms;
    c->ping_sent_ms = 0;

    if (c->state == CONN_HANDSHAKE) {
        struct http_request r;
        struct failure f;
        enum http_kind kind;
        enum parse p = http_parse_head(read_buf, len, &r, &f);
        if (p == PARSE_MORE) {
            c->in.len = 0;
            if (buf_append(&c->in, read_buf, len) < 0)
                conn_close(c);
            return 1;
        }
        if (p == PARSE_FAIL || http_check(&r, &kind, &f) != PARSE_DONE)
            http_error(c, f.code, f.why);
        else if (kind == HTTP_FILE)
            serve_file(c, &r);
        else
            ws_open(c, &r);
        pos = r.head_len;       /* frames may follow in the same read */
    }
    if (c->state == CONN_CLOSING && c->http_only)
        pos = len;              /* after an HTTP answer, input is ignored */
    else
        pos += conn_on_frames(c, read_buf + pos, len - pos);

    c->in.len = 0;
    if (pos < len && buf_append(&c->in, read_buf + pos, len - pos) < 0)
        conn_close(c);
    return 1;
}

/* Write what c has queued. When a goodbye has been written, stop sending
 * (FIN) and close once the peer has had its say. */
static void conn_flush(struct conn *c)
{
    c->dirty = 0;
    if (c->out.len > 0) {
        ssize_t n = write(c->fd, c->out.data, c->out.len);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_close(c);      /* reset by the peer, or broken pipe */
            return;
        }
        if (n > 0)
            buf_consume(&c->out, (size_t)n);
    }
    watch(c->fd, &write_fds, c->out.len > 0);
    if (c->state == CONN_CLOSING && c->out.len == 0 && !c->write_shut) {
        shutdown(c->fd, SHUT_WR);
        c->write_shut = 1;
    }
    /* We answered the peer's close, or it answered ours: done. */
    if (c->state == CONN_CLOSING && c->write_shut && c->close_received)
        conn_close(c);
}

/* Once a second: drop handshakes and goodbyes past their deadline, ping
 * the silent (the heartbeat of the article's Node library), and give
 * back the memory of buffers that are empty. */
static void sweep(void)
{
    for (int i = 0; i < slots_used; i++) {
        struct conn *c = &conns[i];
        if (c->state == CONN_FREE)
            continue;
        if (c->in.len == 0)
            buf_free(&c->in);
        if (c->out.len == 0)
            buf_free(&c->out);
        if (c->dec.msg.len == 0 || c->dec.delivered) {
            buf_free(&c->dec.msg);
            c->dec.delivered = 0;
        }
        if (c->state == CONN_HANDSHAKE || c->state == CONN_CLOSING) {
            if (now_ms >= c->deadline_ms) {
                if (c->state == CONN_HANDSHAKE)
                    log_line(1, "Handshake from %s timed out", c->addr);
                conn_close(c);
            }
        } else if (c->state == CONN_OPEN && c->ping_sent_ms != 0) {
            if (now_ms - c->ping_sent_ms >= (int64_t)opt.pong_timeout_s * 1000) {
                log_line(1, "Peer %s did not answer a ping in %d s",
                         c->addr, opt.pong_timeout_s);
                conn_close(c);
            }
        } else if (c->state == CONN_OPEN &&
                   now_ms - c->last_heard_ms >= (int64_t)opt.ping_interval_s * 1000) {
            c->ping_sent_ms = now_ms;
            conn_send_frame(c, OP_PING, "", 0);
        }
    }
}

/* ===================== The select() loop and main ======================= */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* socket(), bind(), listen() on the configured address and port; the
 * article's walkthrough, in C. Dies with a clear message if it cannot. */
static int listen_on(void)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    memset(&ss, 0, sizeof ss);

    /* Without -b, one IPv6 socket takes IPv4 too (as ::ffff:a.b.c.d);
     * where IPv6 is missing, fall back to IPv4 alone. */
    int fd = -1;
    if (opt.bind_addr == NULL || strchr(opt.bind_addr, ':') != NULL) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)opt.port);
        in6->sin6_addr = in6addr_any;
        if (opt.bind_addr && inet_pton(AF_INET6, opt.bind_addr, &in6->sin6_addr) != 1)
            die("-b %s: not an IPv4 or IPv6 address", opt.bind_addr);
        sslen = sizeof *in6;
        fd = socket(AF_INET6, SOCK_STREAM, 0);
        if (fd >= 0 && opt.bind_addr == NULL) {
            int off = 0;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
        }
    }
    if (fd < 0) {
        if (opt.bind_addr != NULL && strchr(opt.bind_addr, ':') != NULL)
            die("socket: %s", strerror(errno));
        memset(&ss, 0, sizeof ss);
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)opt.port);
        in4->sin_addr.s_addr = htonl(INADDR_ANY);
        if (opt.bind_addr && inet_pton(AF_INET, opt.bind_addr, &in4->sin_addr) != 1)
            die("-b %s: not an IPv4 or IPv6 address", opt.bind_addr);
        sslen = sizeof *in4;
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            die("socket: %s", strerror(errno));
    }
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0)
        die("cannot listen on port %d: %s%s", opt.port, strerror(errno),
            errno == EADDRINUSE ? " (another server runs there; try -p PORT)" : "");
    if (listen(fd, SOMAXCONN) < 0)
        die("listen: %s", strerror(errno));
    if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
        die("fcntl: %s", strerror(errno));
    /* With -p 0 the kernel picked the port: read it back to print it. */
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
        opt.port = ntohs(ss.ss_family == AF_INET6 ? in6->sin6_port : in4->sin_port);
    return fd;
}

static int spare_fd = -1;       /* kept open to be given up on EMFILE */

/* accept() the clients waiting on the listening socket. */
static void accept_clients(int lfd)
{
    static const char full[] = "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 21\r\n"
        "Connection: close\r\n\r\n503: server is full\r\n";
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        int fd = accept(lfd, (struct sockaddr *)&sa, &salen);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: free the spare to take the client
                 * off the queue and shut it, rather than spin on it. */
                log_line(1, "accept: %s; refusing a client", strerror(errno));
                close(spare_fd);
                fd = accept(lfd, NULL, NULL);
                if (fd >= 0)
                    close(fd);
                spare_fd = open("/dev/null", O_RDONLY);
            }
            return;             /* EAGAIN: no more waiting */
        }
        struct conn *c = NULL;
        if (fd < FD_SETSIZE && fcntl(fd, F_SETFL, O_NONBLOCK) == 0)
            c = conn_open(fd, &sa);
        if (c == NULL) {
            /* No slot (or an fd select() cannot watch): say so, briefly. */
            if (write(fd, full, sizeof full - 1) < 0) {
                /* nothing more to do for this client */
            }
            close(fd);
            continue;
        }
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
}

/* SIGINT or SIGTERM: every open client gets close 1001 and a moment to
 * answer; handshakes are dropped. */
static void begin_shutdown(void)
{
    log_line(1, "Shutting down: closing %d connection%s", n_open,
             n_open == 1 ? "" : "s");
    for (int i = 0; i < slots_used; i++) {
        struct conn *c = &conns[i];
        if (c->state == CONN_OPEN)
            conn_send_close(c, CLOSE_GOING_AWAY, "server is shutting down");
        else if (c->state == CONN_HANDSHAKE)
            conn_close(c);
    }
}

/* The loop: wait for sockets, read, act, write, repeat; check timers
 * once a second. Returns when a signal asks to stop and all are gone. */
static void serve(int lfd)
{
    int64_t last_sweep = 0, stop_by = 0, busy_until = 0;
    now_ms = clock_ms();
    watch(lfd, &read_fds, 1);
    max_fd = lfd;
    for (;;) {
        if (stop_signal && stop_by == 0) {
            watch(lfd, &read_fds, 0);
            close(lfd);
            begin_shutdown();
            stop_by = now_ms + SHUTDOWN_TIMEOUT_S * 1000;
        }
        if (stop_by != 0 && (slots_used == 0 || now_ms >= stop_by))
            break;

        /* After traffic, poll without sleeping for up to BUSY_POLL_MS: a
         * busy client's next message is then read at once, not after the
         * scheduler wakes us (tens of microseconds on a loaded machine).
         * Once quiet, the loop sleeps in select() for up to 250 ms. */
        fd_set rfds = read_fds, wfds = write_fds;
        struct timeval tv = { 0, now_ms < busy_until ? 0 : 250000 };
        int ready = select(max_fd + 1, &rfds, &wfds, NULL, &tv);
        now_ms = clock_ms();
        if (ready > 0)
            busy_until = now_ms + BUSY_POLL_MS;
        if (ready < 0) {            /* a signal (EINTR), or a real error */
            if (errno != EINTR)
                log_line(1, "select: %s", strerror(errno));
            FD_ZERO(&rfds);
            FD_ZERO(&wfds);
        }
        if (stop_by == 0 && FD_ISSET(lfd, &rfds))
            accept_clients(lfd);
        /* Round 0 reads the sockets select() found readable. Later rounds
         * read again those that had something to say: a busy client has
         * often sent more by then. That pays while the speakers are few,
         * at most one socket in eight (one admin among many users): a
         * read() that finds nothing costs far less than a select() over
         * every socket. When many speak, select() is shared among them
         * anyway. READ_ROUNDS bounds how long the quiet ones wait. */
        int again = 1;
        for (int round = 0; round < READ_ROUNDS && again; round++) {
            int speakers = 0;
            for (int i = 0; i < slots_used; i++) {
                struct conn *c = &conns[i];
                if (c->state == CONN_FREE)
                    continue;
                if (round == 0 && !FD_ISSET(c->fd, &rfds))
                    c->spoke = 0;       /* not heard this time round */
                if (round == 0 ? FD_ISSET(c->fd, &rfds) : c->spoke) {
                    c->spoke = conn_read(c);
                    speakers += c->spoke;
                    /* The sender's replies go out first: an admin hears
                     * "Already sent." and sends its next push while the
                     * users' copies are still being written. */
                    if (c->state != CONN_FREE && c->dirty)
                        conn_flush(c);
                }
            }
            for (int i = 0; i < slots_used; i++)
                if (conns[i].state != CONN_FREE &&
                    (conns[i].dirty || (round == 0 && FD_ISSET(conns[i].fd, &wfds))))
                    conn_flush(&conns[i]);
            again = speakers > 0 && speakers * 8 <= slots_used;
        }
        if (now_ms - last_sweep >= 1000) {
            sweep();
            last_sweep = now_ms;
        }
        fflush(stdout);
    }
    for (int i = 0; i < slots_used; i++)
        if (conns[i].state != CONN_FREE)
            conn_close(&conns[i]);
}

static void usage(FILE *out)
{
    fprintf(out,
"usage: wspush [-p PORT] [-b ADDR] [-d DIR] [-m BYTES] [-s BYTES]\n"
"              [-T SEC] [-i SEC] [-k SEC] [-t TOKEN] [-o ORIGIN]... [-A] [-e] [-q]\n"
"A WebSocket push server: users are echoed, admins list and push to users.\n"
"  -p PORT    port to listen on (default %d; 0 picks a free one)\n"
"  -b ADDR    listen on this IPv4/IPv6 address only (default: all)\n"
"  -d DIR     serve static files from DIR (default ./www if it exists)\n"
"  -m BYTES   largest message accepted (default %d); more -> close 1009\n"
"  -s BYTES   unsent bytes a client may pile up (default %d); more -> 1008\n"
"  -T SEC     handshake must finish within SEC seconds (default %d)\n"
"  -i SEC     ping a client silent for SEC seconds (default %d)\n"
"  -k SEC     drop it if the ping is unanswered after SEC more (default %d)\n"
"  -t TOKEN   admins must send this token (or set WSPUSH_ADMIN_TOKEN)\n"
"  -o ORIGIN  accept browsers from this Origin only (repeatable, up to %d)\n"
"  -A         anyone may become admin, as in the article (unsafe)\n"
"  -e         raw echo: echo every message verbatim, no JSON\n"
"  -q         quiet: no per-message lines or role tables\n"
"  -h         this help\n"
"Fixed limits: %d open WebSockets (more -> 503); request head %d bytes\n"
"(more -> 431); files up to %d bytes; JSON nesting %d deep; %d wrong\n"
"admin tokens -> close 1008; %d s to finish a close; %d s to shut down;\n"
"%d extra handshake slots; reads of %d bytes, %d rounds per wake-up;\n"
"%d accepts per wake-up; %d ms of polling after traffic; logs show %d\n"
"bytes of a message and %d entries of the role table.\n",
            DEFAULT_PORT, DEFAULT_MAX_MESSAGE, DEFAULT_MAX_QUEUE,
            DEFAULT_HANDSHAKE_TIMEOUT_S, DEFAULT_PING_INTERVAL_S,
            DEFAULT_PONG_TIMEOUT_S, MAX_ORIGINS, MAX_CLIENTS, MAX_REQUEST_HEAD,
            MAX_FILE_SIZE, MAX_JSON_DEPTH, MAX_TOKEN_FAILURES, CLOSE_TIMEOUT_S,
            SHUTDOWN_TIMEOUT_S, MAX_PENDING, READ_CHUNK, READ_ROUNDS, ACCEPT_BATCH,
            BUSY_POLL_MS, LOG_MESSAGE_MAX, LOG_TABLE_MAX);
}

/* Parse a whole number in [lo, hi] for flag `flag', or exit 2. */
static long number_arg(int flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "wspush: -%c %s: expected a number from %ld to %ld\n",
                flag, s, lo, hi);
        exit(2);
    }
    return v;
}

/* Left out when tests/unit.c or a fuzzer includes this file to call the
 * parsers above. */
#ifndef WSPUSH_NO_MAIN
int main(int argc, char **argv)
{
    static char www_real[PATH_MAX];
    const char *www = NULL;
    int ch;
    opt.token = getenv("WSPUSH_ADMIN_TOKEN");
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    }
    while ((ch = getopt(argc, argv, "p:b:d:m:s:T:i:k:t:o:Aeqh")) != -1) {
        switch (ch) {
        case 'p': opt.port = (int)number_arg(ch, optarg, 0, 65535); break;
        case 'b': opt.bind_addr = optarg; break;
        case 'd': www = optarg; break;
        case 'm': opt.max_message = (size_t)number_arg(ch, optarg, 1, INT_MAX); break;
        case 's': opt.max_queue = (size_t)number_arg(ch, optarg, 1, INT_MAX); break;
        case 'T': opt.handshake_timeout_s = (int)number_arg(ch, optarg, 1, 3600); break;
        case 'i': opt.ping_interval_s = (int)number_arg(ch, optarg, 1, 3600); break;
        case 'k': opt.pong_timeout_s = (int)number_arg(ch, optarg, 1, 3600); break;
        case 't': opt.token = optarg; break;
        case 'o':
            if (opt.n_origins == MAX_ORIGINS) {
                fprintf(stderr, "wspush: at most %d -o origins\n", MAX_ORIGINS);
                return 2;
            }
            opt.origins[opt.n_origins++] = optarg;
            break;
        case 'A': opt.anyone_admin = 1; break;
        case 'e': opt.raw_echo = 1; break;
        case 'q': opt.quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default:  usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "wspush: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (opt.token != NULL && opt.token[0] == '\0')
        die("the admin token must not be empty");

    /* The www folder, resolved once, so serve_file() can check that
     * every file it opens lies inside it. */
    struct stat st;
    if (www == NULL && stat("www", &st) == 0 && S_ISDIR(st.st_mode))
        www = "www";
    if (www != NULL) {
        if (realpath(www, www_real) == NULL || stat(www_real, &st) < 0 ||
            !S_ISDIR(st.st_mode))
            die("-d %s: not a folder", www);
        opt.www = www_real;
    }

    scratch = malloc(opt.max_message);
    if (scratch == NULL)
        die("out of memory for -m %zu", opt.max_message);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);

    /* select() watches fds below FD_SETSIZE; make sure we may open that
     * many, and keep one spare to shed clients when we run out. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < FD_SETSIZE) {
        rl.rlim_cur = rl.rlim_max < FD_SETSIZE ? rl.rlim_max : FD_SETSIZE;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    spare_fd = open("/dev/null", O_RDONLY);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);      /* a vanished peer is an error   */
    sa.sa_handler = on_signal;          /* return, not die               */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int lfd = listen_on();
    log_line(1, "Server is listening on port %d", opt.port);
    if (opt.anyone_admin)
        log_line(1, "WARNING: -A: anyone who connects may become admin and "
                 "push to every user");
    if (opt.www != NULL)
        log_line(1, "Serving files from %s", opt.www);
    fflush(stdout);
    serve(lfd);
    log_line(1, "Server stopped");
    free(scratch);
    return 0;
}
#endif
