/* wspush.c -- a WebSocket push server: the tutorial's server, in C.
 * A browser talks to wspush in three steps (RFC 6455):
 *   1. Handshake (§4): an HTTP GET with "Upgrade: websocket" and a random
 *      Sec-WebSocket-Key; we answer 101 with Sec-WebSocket-Accept, that is
 *      base64(SHA-1(key + the GUID of §1.3)).
 *   2. Frames (§5): a 2-byte header, maybe a longer length, a 4-byte mask
 *      (browser to server only), then the data.
 *   3. Close (§5.5.1): a frame with a 2-byte code, echoed; then TCP closes.
 * Each text message is a JSON request. The handshake key is the client's
 * address, so an admin can push to one chosen user:
 *   {"req":"text","text":T}                    -> {"resp":"text","content":T}
 *   {"req":R,"text":T} (any other R)           -> {"resp":R,"content":T}
 *   {"req":"get connections"}                  -> {"resp":"get connections",
 *        "content":{KEY:"user"|"admin",...}}; the sender is admin now, if
 *        it may be (section 16)
 *   {"req":"push a user","userkey":K,"text":T} -> T goes to K only; the
 *        admin hears "Already sent.", or the fresh list if K has gone
 * To these, as its pages send them, the replies are its server's byte for
 * byte (README lists where others differ); section 14 adds requests.
 * Reading it: about 3,800 lines. The six sections marked [first reading],
 * about 1,000 lines, are the tutorial: frames, the table of connections,
 * the handshake, its requests, reading and writing, and the select() loop
 * with socket(), bind(), listen() and accept(). Read them first, in the
 * order TOUR.md gives (the loop, section 21, first); the others make
 * wspush fit for a classroom, and the first reading calls them in one
 * line each: take them on trust from their comments at first.
 * Build: cc -O2 -o wspush wspush.c sha1.c     Run: ./wspush -p 8080 */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700      /* realpath() */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>               /* getifaddrs(): not POSIX, but everywhere */
#include <limits.h>
#include <netdb.h>
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
#include <time.h>
#include <unistd.h>

#include "sha1.h"

#define WSPUSH_VERSION "1.1"

/* ================= 1. Limits and options [second reading] ==================
 * Every number that bounds memory or time; "wspush -h" and README list them. */
#define DEFAULT_PORT         8080
#define MAX_CLIENTS          1000       /* open WebSockets; more -> 503       */
#define MAX_PENDING          8          /* sockets for handshakes beyond them */
#define DEFAULT_MAX_PER_ADDR 64         /* -c: sockets from one address       */
#define MAX_REQUEST_HEAD     8192       /* bytes; more -> 431                 */
#define DEFAULT_MAX_MESSAGE  (1 << 20)  /* -m: bytes; more -> close 1009      */
#define DEFAULT_MAX_QUEUE    (1 << 20)  /* -s: unsent bytes per client        */
#define DEFAULT_MAX_BUFFERED (256 << 20)/* -M: all buffers together           */
#define MAX_FILE_SIZE        (1 << 20)  /* largest file served from www/      */
#define MAX_PATH_LEN         1024       /* bytes of a path under www/         */
#define MAX_JSON_DEPTH       32         /* nested arrays/objects; more: error */
#define MAX_NAME_CHARS       40         /* characters of a display name       */
#define MAX_ORIGINS          16         /* -o may be given this many times    */
#define MAX_PROXIES          8          /* -x may be given this many times    */
#define MAX_ADDRESSES        16         /* of this machine, shown for users   */
#define MIN_TOKEN_CHARS      12         /* shorter -t tokens are refused      */
#define MAX_TOKEN_FAILURES   3          /* wrong tokens close a connection    */
#define MAX_PENALTY_S        60         /* longest wait after wrong tokens    */
#define PENALTY_SLOTS        64         /* addresses whose failures we recall */
#define MAX_NAMES_PER_S      5          /* "set name" a second, per client    */
#define LIST_INTERVAL_MS     250        /* a watcher's lists come this apart  */
#define DEFAULT_GRACE_S      120        /* -g: a seat waits this long, away   */
#define SEAT_KEYS            4          /* keys a seat answers to, newest 1st */
#define MAX_SEAT_PUSHES      64         /* pushes a seat keeps until seen     */
#define MAX_REF_LEN          16         /* bytes of a push's "ref"            */
#define DROPS_KEPT           20         /* a seat's drops counted ...         */
#define DROPS_WINDOW_S       600        /* ... in the last 10 minutes         */
#define DEFAULT_HANDSHAKE_TIMEOUT_S 10  /* -T: slow handshakes are dropped    */
#define DEFAULT_PING_INTERVAL_S     20  /* -i: ping a client silent so long   */
#define DEFAULT_PONG_TIMEOUT_S      10  /* -k: drop it if still silent        */
#define SEND_TIMEOUT_S       10         /* a queue stuck this long: 1008      */
#define CLOSE_TIMEOUT_S      5          /* wait for the peer after a close    */
#define SHUTDOWN_TIMEOUT_S   2          /* SIGTERM: time to say goodbye       */
#define LOG_BURST_S          10         /* one line per burst of refusals     */
#define REFUSAL_SLOTS        16         /* (address, reason) bursts counted   */
#define LOG_BUFFER           (256 << 10)/* log bytes waiting for stdout       */
#define LOG_TABLE_S          1          /* a role table at most this often    */
#define READ_CHUNK           (256 << 10)/* bytes asked of each read()         */
#define MAX_FRAMES_PER_PASS  16         /* one address's frames per wake-up   */
#define ACCEPT_BATCH         64         /* accept() calls per wake-up         */
#define LOG_MESSAGE_MAX      200        /* bytes of a message that are logged */
#define LOG_TABLE_MAX        50         /* roles printed in a logged table    */
#define TRACE_PREVIEW        32         /* payload bytes -v shows per frame   */
#define LOOKUP_BITS          11         /* the key table has 2^11 slots       */
#define LOOKUP_SLOTS         (1 << LOOKUP_BITS)
#define SHARE_SLOTS          2048       /* addresses' shares of a pass        */

#if MAX_CLIENTS + MAX_PENDING + 16 > FD_SETSIZE || LOOKUP_SLOTS < 2 * MAX_CLIENTS || \
    SHARE_SLOTS < 2 * FD_SETSIZE
#error "select() watches fds below FD_SETSIZE; the key and share tables stay half empty"
#endif

static struct options {         /* set from the command line (section 20) */
    int port;                   /* -p; 0 picks a free port              */
    const char *bind_addr;      /* -b; NULL listens on every address    */
    const char *www;            /* -d; NULL serves no files (404)       */
    size_t max_message, max_queue, max_buffered;        /* -m, -s, -M   */
    int max_per_addr;           /* -c; 0: no cap                        */
    int handshake_timeout_s, ping_interval_s, pong_timeout_s;   /* -T -i -k */
    int grace_s;                /* -g: how long an away seat waits      */
    const char *token;          /* -t or WSPUSH_ADMIN_TOKEN             */
    int anyone_admin;           /* -A: the tutorial's open admin role   */
    int raw_echo;               /* -e: echo every message verbatim      */
    int quiet;                  /* -q: no per-message or table lines    */
    int verbose;                /* -v: trace every step                 */
    const char *origins[MAX_ORIGINS];   /* -o: Origins allowed          */
    const char *proxies[MAX_PROXIES];   /* -x: proxies we believe       */
    int n_origins, n_proxies;
} opt = {
    .port = DEFAULT_PORT, .max_per_addr = DEFAULT_MAX_PER_ADDR, .grace_s = DEFAULT_GRACE_S,
    .max_message = DEFAULT_MAX_MESSAGE, .max_queue = DEFAULT_MAX_QUEUE,
    .max_buffered = DEFAULT_MAX_BUFFERED, .handshake_timeout_s = DEFAULT_HANDSHAKE_TIMEOUT_S,
    .ping_interval_s = DEFAULT_PING_INTERVAL_S, .pong_timeout_s = DEFAULT_PONG_TIMEOUT_S,
};

/* ================== 2. Spans and helpers [second reading] ===================
 * Bytes from the network travel as a struct span (pointer and length, no
 * NUL); bytes we own, as a struct buf (section 7). A parser answers enum
 * parse, and on failure a struct failure: an HTTP status or close code, a
 * reason safe to send and log, and for JSON where it went wrong. */
enum parse { PARSE_DONE, PARSE_MORE, PARSE_FAIL };

struct failure {
    int code;
    const char *why;
    size_t at;
};

struct span {
    const unsigned char *p;     /* NULL when the value is absent        */
    size_t len;
    int plain;                  /* JSON text known to need no escapes   */
};

struct buf {
    unsigned char *data;
    size_t len, cap;
};

/* The string members of a request wspush knows, decoded and as sent (section 11). */
enum field { F_REQ, F_TEXT, F_USERKEY, F_TOKEN, F_NAME, F_SECRET, F_ID, F_REF, N_FIELDS };
static const char *const field_name[N_FIELDS] = {
    "req", "text", "userkey", "token", "name", "secret", "id", "ref"
};
struct request {
    struct span field[N_FIELDS];        /* p is NULL if not sent */
    struct span raw[N_FIELDS];
    size_t decoded;             /* scratch bytes: strings with escapes  */
};

#define KEY_TEXT_LEN 24                 /* base64 of 16 bytes */
#define ADDR_LEN     INET6_ADDRSTRLEN

/* Record a failure and return PARSE_FAIL: a check reads as one line. */
static enum parse fail(struct failure *f, int code, const char *why)
{
    *f = (struct failure){ code, why, 0 };
    return PARSE_FAIL;
}

static struct span span_of(const unsigned char *p, size_t len)
{
    return (struct span){ p, len, 0 };
}

static struct span cspan(const char *s)
{
    return span_of((const unsigned char *)s, strlen(s));
}

static int span_is(struct span s, const char *w)
{
    return s.p != NULL && s.len == strlen(w) && memcmp(s.p, w, s.len) == 0;
}

/* True if the C string w, not empty, stands somewhere in s. */
static int span_has(struct span s, const char *w)
{
    size_t n = strlen(w);
    for (size_t i = 0; n > 0 && i + n <= s.len; i++)
        if (s.p[i] == (unsigned char)w[0] && memcmp(s.p + i, w, n) == 0) return 1;
    return 0;
}

/* True if s[0..len) is the lowercase word w, ignoring ASCII case. */
static int span_ieq(const unsigned char *s, size_t len, const char *w)
{
    size_t i = 0;
    while (i < len && w[i] != '\0' &&
           (s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]) == (unsigned char)w[i])
        i++;
    return i == len && w[i] == '\0';
}

/* s without the spaces and tabs around it. */
static struct span span_trim(struct span s)
{
    while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t'))
        s = span_of(s.p + 1, s.len - 1);
    while (s.len > 0 && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* Compare a secret sent with ours in a time that tells nothing of where. */
static int token_matches(struct span sent, const char *token)
{
    size_t n = strlen(token);
    unsigned diff = sent.len != n;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)token[i] ^ (i < sent.len ? sent.p[i] : 0);
    return diff == 0;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Write p[0..n) in hex, two digits a byte, and a NUL, into out. */
static void hex_of(char *out, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* Fill p[0..n) from /dev/urandom: 0, or -1 if it cannot be read. */
static int random_bytes(void *p, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, p, n) : -1;
    if (fd >= 0) close(fd);
    return got == (ssize_t)n ? 0 : -1;
}

/* Milliseconds on a clock that never jumps. */
static int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ==================== 3. Speed [second reading] ============================
 * What wspush does only to be fast, with its gain in "make bench":
 * - Blocks of 32 bytes (below): 60000-byte messages 5x as fast.
 * - A sender's replies are written right after its read (serve_ready()):
 *   pushes 1.85x as fast.
 * Left out, measured (README, "Performance"): polling after traffic cost
 * a classroom's load 10x the CPU; reading a socket again before the next
 * select() made the loop harder to read for 1.3x faster pushes.
 * Unmasking, the UTF-8 check and the JSON string scan first take the bytes
 * in blocks of 32: compilers turn a loop of fixed count into vector
 * instructions. Each returns how many bytes it did; its caller does the
 * rest one by one. */

/* Unmask whole 32-byte blocks of src[0..n) into dst (frame_unmask()). */
static size_t unmask_blocks(unsigned char *dst, const unsigned char *src,
                            size_t n, const unsigned char mask[4], uint64_t at)
{
    unsigned char m[32], block[32];
    size_t i = 0;
    for (int k = 0; k < 32; k++)
        m[k] = mask[(at + (uint64_t)k) % 4];
    for (; i + 32 <= n; i += 32) {
        for (int k = 0; k < 32; k++)
            block[k] = src[i + k] ^ m[k];
        memcpy(dst + i, block, 32);
    }
    return i;
}

/* How many leading 32-byte blocks of p[0..n) are ASCII (json: no escapes). */
static size_t plain_blocks(const unsigned char *p, size_t n, int json)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        unsigned char special = 0;
        for (int k = 0; k < 32; k++)
            special |= json ? (p[i + k] == '"') | (p[i + k] == '\\') | (p[i + k] < 0x20)
                            : p[i + k] >> 7;
        if (special) break;
    }
    return i;
}

/* ================ 4. Frames (RFC 6455 §5.2) [first reading] ================
 *   byte 0: FIN | RSV1 RSV2 RSV3 | opcode(4)
 *   byte 1: MASK | length(7); 126 = 16-bit length follows, 127 = 64-bit
 *   then the 4-byte mask key (browser frames only), then the payload.
 * Payload byte i is unmasked with key[i % 4] (§5.3). frame_decode()
 * (section 17) puts frames together into messages. */
enum opcode {
    OP_CONT = 0x0, OP_TEXT = 0x1, OP_BINARY = 0x2,
    OP_CLOSE = 0x8, OP_PING = 0x9, OP_PONG = 0xA
};

/* Close codes (§7.4.1), and one of ours (4000-4999 are applications'). */
#define CLOSE_GOING_AWAY      1001
#define CLOSE_PROTOCOL_ERROR  1002
#define CLOSE_UNSUPPORTED     1003
#define CLOSE_NO_STATUS       1005  /* never sent: "the frame had no code" */
#define CLOSE_BAD_DATA        1007
#define CLOSE_POLICY          1008
#define CLOSE_TOO_BIG         1009
#define CLOSE_INTERNAL_ERROR  1011
#define CLOSE_KICKED          4000  /* "closed by the teacher"            */
#define CLOSE_REPLACED        4001  /* its seat went to a new connection  */

#define MAX_CONTROL_PAYLOAD   125   /* §5.5 */
#define MAX_FRAME_HEADER      14    /* 2 + 8-byte length + 4-byte mask */

struct frame {
    int fin;                    /* last frame of its message            */
    int opcode;
    unsigned char mask[4];
    uint64_t len;               /* payload length                       */
    size_t head_len;            /* header bytes, 2 to 14                */
};

/* Decode the header at the start of p[0..len) into fr, checking what one
 * header can break: PARSE_MORE until it is all there, or PARSE_DONE, or
 * PARSE_FAIL with the close code. */
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
    /* §5.1: browsers mask every frame they send. */
    if ((p[1] & 0x80) == 0)
        return fail(f, CLOSE_PROTOCOL_ERROR, "client frames must be masked");
    /* §5.5: control frames carry at most 125 bytes and are never split. */
    if (fr->opcode >= OP_CLOSE && (p[1] & 0x7f) > MAX_CONTROL_PAYLOAD)
        return fail(f, CLOSE_PROTOCOL_ERROR, "control frame over 125 bytes");
    if (fr->opcode >= OP_CLOSE && !fr->fin)
        return fail(f, CLOSE_PROTOCOL_ERROR, "control frames must not be fragmented");
    if (len < 2 + ext + 4) return PARSE_MORE;
    /* §5.2: a longer length is big-endian; in 64 bits, its top bit is 0. */
    fr->len = ext == 0 ? p[1] & 0x7f : 0;
    for (size_t i = 0; i < ext; i++)
        fr->len = fr->len << 8 | p[2 + i];
    if (ext == 8 && (p[2] & 0x80))
        return fail(f, CLOSE_PROTOCOL_ERROR, "64-bit length has its top bit set");
    memcpy(fr->mask, p + 2 + ext, 4);
    fr->head_len = 2 + ext + 4;
    return PARSE_DONE;
}

/* XOR n payload bytes with the mask (§5.3), from payload offset `at'. */
static void frame_unmask(unsigned char *dst, const unsigned char *src,
                         size_t n, const unsigned char mask[4], uint64_t at)
{
    size_t i = unmask_blocks(dst, src, n, mask, at);    /* speed: section 3 */
    for (; i < n; i++)
        dst[i] = src[i] ^ mask[(at + i) % 4];
}

/* Write a server frame header (FIN set, no mask: §5.1) for len bytes into
 * out[10]; returns its length. */
static size_t frame_header(unsigned char *out, int opcode, uint64_t len)
{
    size_t ext = len < 126 ? 0 : len <= 0xffff ? 2 : 8;
    out[0] = (unsigned char)(0x80 | opcode);
    out[1] = (unsigned char)(ext == 0 ? len : ext == 2 ? 126 : 127);
    for (size_t i = 0; i < ext; i++)            /* big-endian */
        out[2 + i] = (unsigned char)(len >> (8 * (ext - 1 - i)));
    return 2 + ext;
}

/* What frame_decode() keeps for a connection between reads: a frame's
 * header while its payload comes, a message that comes in pieces, and
 * where its UTF-8 check has got to (section 8). */
struct utf8 {
    unsigned char need;         /* continuation bytes still to come     */
    unsigned char lo, hi;       /* the range allowed for the next one   */
};

struct decoder {
    size_t max_message;         /* -m: longest message accepted         */
    int text_only;              /* binary messages are refused (1003)   */
    int in_frame;               /* header read, payload still arriving  */
    struct frame fr;            /* ... that header                      */
    uint64_t got;               /* payload bytes of fr taken so far     */
    int msg_opcode;             /* OP_TEXT/OP_BINARY while one is open  */
    struct utf8 utf8;           /* the text message's UTF-8 state       */
    struct buf msg;             /* a message that came in pieces        */
    unsigned char ctl[MAX_CONTROL_PAYLOAD];     /* a control payload    */
    const unsigned char *payload;       /* the completed frame's data   */
    size_t payload_len;
    int ready;                  /* a message or control frame is whole: */
    int opcode;                 /* ... its opcode and data              */
    const unsigned char *data;
    size_t data_len;
};

/* ============== 5. The classroom's state [second reading] ==================
 * A seat is one user, however many connections it takes: the tutorial's
 * entry (lookup[key], role[key]), with a number and a name. Every open
 * connection has one. A page that asks for its seat gets a secret, and
 * with it takes the same seat back on a new connection, after its Wi-Fi
 * dropped, say (section 14); meanwhile the seat waits, away, and keeps
 * what is pushed to it. The rest is counted by address (section 16). */
struct push {                   /* a push to a seat, not yet seen       */
    char id[24];                /* what the page acknowledges           */
    char ref[MAX_REF_LEN + 1];  /* the admin's "ref", for its receipts  */
    struct conn *from;          /* the admin that pushed it, while that */
    unsigned long from_accepted;/* ... socket is still the same one     */
    int sent;                   /* written to a connection at least once */
    struct buf json;            /* the message, as it is sent           */
};

#define SECRET_LEN (5 + 4 + 32) /* "seat-", its slot, 128 bits in hex */

struct seat {
    unsigned long number;       /* #1, #2 ... in arrival order; 0: free */
    char name[MAX_NAME_CHARS * 4 + 1];  /* display name, UTF-8          */
    char keys[SEAT_KEYS][KEY_TEXT_LEN + 1]; /* [0] its connection's; older ones after */
    char addr[ADDR_LEN];        /* its latest peer address              */
    unsigned char host[16];     /* ... as addr_host() counts it         */
    time_t since;               /* when it first came                   */
    struct conn *conn;          /* its connection, or NULL while away   */
    int64_t away_ms;            /* since then                           */
    const char *away_why;       /* "closed" by its page, or "lost"      */
    int64_t drops_ms[DROPS_KEPT];       /* its connection's last drops  */
    char secret[SECRET_LEN + 1];/* "" until its page asks for a seat    */
    int kicked;                 /* closed by the teacher: gone for good */
    struct push *pushes;        /* MAX_SEAT_PUSHES of them, oldest first, */
    int n_pushes;               /* ... while it holds any               */
    size_t push_bytes;          /* the bytes they hold: at most -s      */
};

struct penalty {                /* wrong admin tokens from an address   */
    unsigned char host[16];     /* its addr_host()                      */
    int failures;               /* 0: the slot is free                  */
    int64_t until_ms;           /* its admin attempts wait till then    */
};
struct tally {                  /* what one address did, or holds       */
    unsigned char host[16];     /* as addr_host() counts it             */
    unsigned long round;        /* the count it is of; older: slot free */
    int frames, seats;          /* frames handled; seats, here or away  */
    size_t bytes;               /* bytes read, or held                  */
};
struct burst {                  /* refusals of one address, one reason  */
    char addr[ADDR_LEN + 4];    /* as addr_unit() writes it             */
    const char *why;            /* NULL: the slot is free               */
    int status;                 /* HTTP status, or 0: admin refused     */
    int64_t until_ms;           /* the burst's line comes then          */
    unsigned long more;         /* refused since the last line          */
};

/* ============= 6. The table of connections [first reading] =================
 * All that wspush knows lives in one struct server, srv. Every socket has a
 * struct conn, srv.conns[fd]. The tutorial keeps lookup[key] = conn, a map
 * from key to connection; srv.lookup is that map in a fixed array: a key
 * is looked for from key_slot(key) on, slot after slot, until it or an
 * empty slot turns up (open addressing). The array is twice as big as the
 * table can get full, so a search is short with 10 users or with 1,000. */
enum conn_state {
    CONN_FREE,                  /* no socket                            */
    CONN_HANDSHAKE,             /* reading the HTTP request             */
    CONN_OPEN,                  /* WebSocket open: frames flow          */
    CONN_CLOSING                /* said goodbye; waiting for the peer   */
};
enum role { ROLE_USER, ROLE_ADMIN };

struct conn {
    int fd;
    enum conn_state state;
    enum role role;             /* USER until "get connections"         */
    char key[KEY_TEXT_LEN + 1]; /* Sec-WebSocket-Key: client's address  */
    struct buf in;              /* bytes not parsed yet                 */
    struct buf out;             /* bytes waiting to be written          */
    struct decoder dec;         /* frames into messages (section 4)     */
    int dirty;                  /* out grew: write it this pass         */
    int paused;                 /* not read until out drains            */
    int backlog;                /* in holds frames for the next pass    */
    int64_t deadline_ms;        /* handshake or goodbye ends by then    */
    int64_t last_heard_ms;      /* when the peer last sent anything     */
    int64_t ping_sent_ms;       /* our unanswered ping, or 0            */
    int close_seen;             /* the peer's close has come (or junk)  */
    uint64_t skip;              /* closing: payload bytes to pass over  */
    int write_shut;             /* shutdown(SHUT_WR) is done            */
    const char *due_why;        /* our 1009 waits for the message's end */
    /* What the classroom keeps for a connection (second reading): */
    char tag[16];               /* "[fd] ", before its trace lines      */
    struct seat *seat;          /* the user it is, while open (14)      */
    char addr[ADDR_LEN];        /* peer address, for logs and limits    */
    unsigned char host[16];     /* addr as addr_host() counts it (16)   */
    int local;                  /* may use the loopback admin rule      */
    int own_page;               /* ... from a page of it: never capped  */
    unsigned long accepted;     /* accept() order, to drop the oldest   */
    struct tally *share;        /* share_of() this pass (share_pass)    */
    unsigned long share_pass;
    int64_t progress_ms;        /* out was last empty, or moved -s/2    */
    size_t drained;             /* bytes written since progress_ms      */
    int token_failures;         /* wrong admin tokens so far            */
    size_t log_credit;          /* log bytes its messages may still cost */
    int64_t names_ms;           /* its last second of "set name" began  */
    int names;                  /* ... and it has set this many since   */
    int watching;               /* sent "watch users"                   */
    int list_due;               /* is owed a fresh user list            */
    int64_t list_ms;            /* a watcher's last list went then      */
};

static struct server {
    struct conn conns[FD_SETSIZE];      /* conns[fd], for every socket  */
    struct conn *lookup[LOOKUP_SLOTS];  /* open WebSockets, by key      */
    uint64_t seed;                      /* makes key_slot() unguessable */
    int n_open;                         /* WebSockets in the table      */
    int n_pending;                      /* sockets in their handshake   */
    fd_set read_fds, write_fds;         /* what select() watches        */
    int max_fd, listen_fd;
    unsigned long pass;                 /* passes of the loop so far    */
    int64_t now_ms;                     /* the clock, read once a pass  */
    int64_t next_timer_ms;              /* a timer is due then, or 0    */
    sigset_t wait_mask;                 /* signals let in while waiting */
    int stopping;                       /* SIGTERM: saying goodbye      */
    unsigned char *scratch;             /* decoded JSON strings         */
    struct buf reply;                   /* a reply before it is queued  */
    unsigned char read_buf[MAX_REQUEST_HEAD + READ_CHUNK];
    /* What the classroom keeps (second reading): */
    struct seat seats[MAX_CLIENTS];     /* the users, here or away (14) */
    unsigned long next_number;          /* the next user's number       */
    unsigned long n_pushes;             /* pushes to seats so far       */
    unsigned long n_accepted;           /* sockets accepted so far      */
    int spare_fd;                       /* given up when out of fds     */
    size_t buffered;                    /* bytes all buffers hold (-M)  */
    struct penalty penalties[PENALTY_SLOTS];
    struct tally shares[SHARE_SLOTS];   /* this pass's work, by address */
    struct tally holdings[2 * (MAX_CLIENTS + FD_SETSIZE)];  /* holder_of_most() */
    unsigned long rounds;               /* holdings counted (16)        */
    struct burst refusals[REFUSAL_SLOTS];
    char log[LOG_BUFFER];               /* log lines stdout has not taken */
    size_t log_start, log_len;          /* ... they are log[start..len) */
    unsigned long log_dropped;          /* lines dropped since the last note */
    int stdout_flags;                   /* to restore at exit           */
    char random_token[2 * 16 + 1];      /* -t random: 128 bits in hex   */
    int table_due;                      /* a role table waits its turn  */
    int64_t table_ms;                   /* when the last one was logged */
} srv = { .max_fd = -1, .listen_fd = -1, .spare_fd = -1, .stdout_flags = -1, .next_number = 1 };

/* Print a trace line for c if -v is on: "[fd] " and the text. */
#define trace(c, ...) do { if (opt.verbose) log_line((c)->tag, __VA_ARGS__); } while (0)

/* The FNV-1a hash of p[0..n), seeded at start-up so that clients, who pick
 * their keys and addresses, cannot make them crowd one slot of a table. */
static uint64_t hash_of(const void *p, size_t n)
{
    uint64_t h = srv.seed;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ULL;
    return h;
}

/* Where the search for key k starts. */
static size_t key_slot(const unsigned char *k)
{
    return (size_t)(hash_of(k, KEY_TEXT_LEN) >> (64 - LOOKUP_BITS));
}

/* The open WebSocket whose key is k, or NULL: the tutorial's lookup[k]. */
static struct conn *conn_by_key(struct span k)
{
    if (k.p == NULL || k.len != KEY_TEXT_LEN) return NULL;
    for (size_t i = key_slot(k.p);; i = (i + 1) % LOOKUP_SLOTS)
        if (srv.lookup[i] == NULL || memcmp(srv.lookup[i]->key, k.p, KEY_TEXT_LEN) == 0)
            return srv.lookup[i];
}

/* Put c, whose key is not there yet, into the table. */
static void lookup_add(struct conn *c)
{
    size_t i = key_slot((const unsigned char *)c->key);
    while (srv.lookup[i] != NULL)
        i = (i + 1) % LOOKUP_SLOTS;
    srv.lookup[i] = c;
}

/* Take c out of the table. A key whose search passed c's slot must still
 * be found, so such keys move back into the gap ("backward shift"). */
static void lookup_remove(struct conn *c)
{
    size_t gap = key_slot((const unsigned char *)c->key);
    while (srv.lookup[gap] != c)
        gap = (gap + 1) % LOOKUP_SLOTS;
    srv.lookup[gap] = NULL;
    for (size_t i = (gap + 1) % LOOKUP_SLOTS; srv.lookup[i] != NULL;
         i = (i + 1) % LOOKUP_SLOTS) {
        size_t home = key_slot((const unsigned char *)srv.lookup[i]->key);
        /* The key at i may move to the gap unless its home is in (gap, i]. */
        if ((i - home + LOOKUP_SLOTS) % LOOKUP_SLOTS >= (i - gap + LOOKUP_SLOTS) % LOOKUP_SLOTS) {
            srv.lookup[gap] = srv.lookup[i];
            srv.lookup[i] = NULL;
            gap = i;
        }
    }
}

/* ===================== 7. Buffers and timers [second reading] ===============
 * A struct buf grows as bytes arrive, never to a size a length field
 * claims; srv.buffered counts what all of them hold (-M bounds it). */
struct http_request;
static int queue_frame(struct conn *c, int opcode, const void *p, size_t len);
static void conn_close(struct conn *c);
static void conn_send_close(struct conn *c, unsigned code, const char *why);
static size_t conn_skip_frames(struct conn *c, const unsigned char *p, size_t len);
static void conn_fail(struct conn *c, int code, const char *why);
static void http_error(struct conn *c, int status, const char *why);
static void serve_file(struct conn *c, const struct http_request *r);
static int may_be_admin(struct conn *c, const struct request *r);
static int shed_pushes(void);
static void parse_header_extra(struct span name, struct span v, struct http_request *r);
static int machine_hosts(char hosts[MAX_ADDRESSES][ADDR_LEN + 2]);

static void timer_at(int64_t ms)
{
    if (ms != 0 && (srv.next_timer_ms == 0 || ms < srv.next_timer_ms))
        srv.next_timer_ms = ms;
}

/* Make room for n more bytes: the free space, or NULL if memory is short. */
static unsigned char *buf_reserve(struct buf *b, size_t n)
{
    if (n > SIZE_MAX / 2 - b->len) return NULL;
    if (b->len + n > b->cap || b->data == NULL) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *data = realloc(b->data, cap);
        if (data == NULL) return NULL;
        srv.buffered += cap - b->cap;
        b->data = data;
        b->cap = cap;
    }
    return b->data + b->len;
}

/* Append p[0..n) to b: 0, or -1 if memory is short. */
static int buf_append(struct buf *b, const void *p, size_t n)
{
    unsigned char *dst = buf_reserve(b, n);
    if (dst == NULL) return -1;
    if (n > 0) memcpy(dst, p, n);
    b->len += n;
    return 0;
}

static int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

static void buf_free(struct buf *b)
{
    srv.buffered -= b->cap;
    free(b->data);
    *b = (struct buf){ NULL, 0, 0 };
}

/* ======= 8. UTF-8 and the message decoder (§5.4, §8.1) [second reading] =====
 * Text must be valid UTF-8 (RFC 3629): no overlong forms, no surrogates,
 * nothing above U+10FFFF; checked as it arrives, failing at the first bad
 * byte. A text or binary frame starts a message, continuation frames
 * extend it, the one with FIN ends it; control frames may come between.
 * frame_decode(), which puts these pieces together, is in section 17. */

/* Check p[0..len) as more of the text in u: 0 if valid so far, else -1. */
static int utf8_check(struct utf8 *u, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (u->need == 0)
            i += plain_blocks(p + i, len - i, 0);       /* speed: section 3 */
        if (i == len) break;
        unsigned char c = p[i];
        if (u->need > 0 && (c < u->lo || c > u->hi)) return -1;
        if (u->need > 0) {
            u->need--;
            u->lo = 0x80;
            u->hi = 0xbf;
            continue;
        }
        if (c < 0x80) continue;
        /* Unicode Table 3-7: the lead byte fixes how many bytes follow
         * and narrows the range of the first of them. */
        u->need = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
                : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
        if (u->need == 0)
            return -1;          /* 80-C1: stray or overlong; F5-FF: never */
        u->lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;   /* overlong  */
        u->hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;   /* surrogate,
                                                                > 10FFFF  */
    }
    return 0;
}

/* True if p[0..len) is whole, valid UTF-8. */
static int utf8_valid(const unsigned char *p, size_t len)
{
    struct utf8 u = { 0, 0, 0 };
    return utf8_check(&u, p, len) == 0 && u.need == 0;
}

/* The length of the character at p (its code point in *cp), or 0 if invalid. */
static size_t utf8_char(const unsigned char *p, size_t len, unsigned *cp)
{
    size_t n = p[0] < 0x80 ? 1 : p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
    if (n > len || !utf8_valid(p, n)) return 0;
    *cp = n == 1 ? p[0] : p[0] & (0x7fu >> n);
    for (size_t i = 1; i < n; i++)
        *cp = *cp << 6 | (p[i] & 0x3f);
    return n;
}

/* Write code point cp as UTF-8 to o; returns its length. */
static size_t utf8_put(unsigned char *o, unsigned cp)
{
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--) {
        o[i] = (unsigned char)(0x80 | (cp & 0x3f));
        cp >>= 6;
    }
    o[0] = (unsigned char)(n == 1 ? cp : (0xf00u >> n & 0xff) | cp);
    return n;
}

/* Characters a log or a name must not show: controls, line separators,
 * and the marks, embeddings, overrides and isolates of text direction. */
static int char_is_unsafe(unsigned cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x061c || cp == 0x200e ||
           cp == 0x200f || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

/* Read a close payload (§5.5.1): its code into *code (none: CLOSE_NO_STATUS). */
static enum parse close_parse(const unsigned char *p, size_t len, unsigned *code, struct failure *f)
{
    *code = len >= 2 ? (unsigned)p[0] << 8 | p[1] : CLOSE_NO_STATUS;
    /* §7.4.1: 1004 is reserved; 1005, 1006 and 1015 only report, inside
     * an endpoint, a close without a frame; 1016-2999 are unassigned;
     * 5000 and up undefined. None may be sent in a close frame. */
    int valid = (*code >= 1000 && *code <= 1003) || (*code >= 1007 && *code <= 1014) ||
                (*code >= 3000 && *code <= 4999);
    if (len == 1) return fail(f, CLOSE_PROTOCOL_ERROR, "close payload of 1 byte");
    if (len >= 2 && !valid) return fail(f, CLOSE_PROTOCOL_ERROR, "invalid close code");
    if (len >= 2 && !utf8_valid(p + 2, len - 2))
        return fail(f, CLOSE_BAD_DATA, "close reason is not UTF-8");
    return PARSE_DONE;
}

/* Check a data frame against the message in progress (§5.4) and -m. */
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

/* d's frame is complete: hand it out, with the message it completes. */
static enum parse frame_done(struct decoder *d, const unsigned char *payload, struct failure *f)
{
    int control = d->fr.opcode >= OP_CLOSE;
    d->in_frame = 0;
    d->payload = payload;
    d->payload_len = (size_t)d->fr.len;
    d->ready = d->fr.fin;
    d->opcode = control ? d->fr.opcode : d->msg_opcode;
    d->data = control ? d->ctl : d->msg.data;
    d->data_len = control ? (size_t)d->fr.len : d->msg.len;
    if (control || !d->fr.fin) return PARSE_DONE;
    if (d->msg_opcode == OP_TEXT && d->utf8.need != 0)
        return fail(f, CLOSE_BAD_DATA, "text ends inside a UTF-8 character");
    d->msg_opcode = 0;
    return PARSE_DONE;
}

/* =================== 9. HTTP details [second reading] ====================== */
#define WS_GUID      "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_PROTOCOL  "echo-protocol"
#define ACCEPT_LEN   28         /* base64 of a 20-byte SHA-1 */

/* Where the head in p[0..len) ends, past its blank line (CRLF or LF), or 0. */
static size_t head_end(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n' && i + 1 < len && p[i + 1] == '\n') return i + 2;
        if (p[i] == '\n' && i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Take the next line of p[0..end) from *pos; 0 if there is none. */
static int next_line(const unsigned char *p, size_t end, size_t *pos, struct span *line)
{
    const unsigned char *nl = memchr(p + *pos, '\n', end - *pos);
    if (nl == NULL) return 0;
    *line = span_of(p + *pos, (size_t)(nl - p) - *pos);
    if (line->len > 0 && line->p[line->len - 1] == '\r') line->len--;
    *pos = (size_t)(nl - p) + 1;
    return 1;
}

/* RFC 7230 §3.2.6: the characters allowed in a method or header name. */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

/* The next element of the comma-separated list s from *pos, or 0. */
static int list_next(struct span s, size_t *pos, struct span *item)
{
    while (*pos < s.len) {
        size_t start = *pos;
        while (*pos < s.len && s.p[*pos] != ',')
            (*pos)++;
        *item = span_trim(span_of(s.p + start, *pos - start));
        *pos += *pos < s.len;           /* past the comma */
        if (item->len > 0) return 1;
    }
    return 0;
}

static int list_has(struct span s, const char *word)
{
    struct span item;
    for (size_t pos = 0; list_next(s, &pos, &item);)
        if (span_ieq(item.p, item.len, word)) return 1;
    return 0;
}

/* §4.2.1 item 5: the key is base64 of 16 bytes: 22 characters, the last
 * one of A, Q, g, w (it holds 2 bits), and "==". One spelling only. */
static int ws_key_valid(struct span key)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (key.len != KEY_TEXT_LEN || key.p[22] != '=' || key.p[23] != '=') return 0;
    for (int i = 0; i < 22; i++)
        if (key.p[i] == '\0' || strchr(b64, key.p[i]) == NULL) return 0;
    return strchr("AQgw", key.p[21]) != NULL;
}

static const char *http_reason(int status)
{
    static const char *const reasons[] = {
        "101 Switching Protocols", "200 OK", "400 Bad Request", "403 Forbidden",
        "404 Not Found", "405 Method Not Allowed", "409 Conflict", "426 Upgrade Required",
        "431 Request Header Fields Too Large", "500 Internal Server Error",
        "503 Service Unavailable"
    };
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (atoi(reasons[i]) == status) return reasons[i] + 4;
    return "Error";
}
/* ============ 10. HTTP handshake (RFC 6455 §4.2.1-4.2.2) [first reading] ======
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
 * http_check() tells a valid upgrade, a request for a file, or an error. */
struct http_request {
    struct span method, target;
    int minor;                  /* 1 for HTTP/1.1, 0 for HTTP/1.0      */
    struct span host, upgrade, ws_version, ws_key, origin;
    int connection_upgrade;     /* some Connection header has "upgrade" */
    int offers_echo;            /* Sec-WebSocket-Protocol lists ours    */
    size_t head_len;            /* bytes up to and with the blank line  */
    struct span forwarded;      /* (16) X-Forwarded-For: the client    */
    struct span secret;         /* (16) a seat's, as a subprotocol     */
    int proxied;                /* (16) it, X-Real-IP or Forwarded came */
};

enum http_kind { HTTP_UPGRADE, HTTP_FILE };

/* Parse one "Name: value" line into r. A header that may appear once and
 * appears twice is refused: the two could disagree. */
static enum parse parse_header(struct span line, struct http_request *r, struct failure *f)
{
    size_t n = 0;
    struct span item;
    while (n < line.len && is_tchar(line.p[n]))
        n++;
    /* RFC 7230 §3.2.4: no space before the colon, no line folding. */
    if (n == 0 || n == line.len || line.p[n] != ':')
        return fail(f, 400, "expected \"Name: value\" header lines");
    struct span v = span_trim(span_of(line.p + n + 1, line.len - n - 1));
    for (size_t i = 0; i < v.len; i++)
        if ((v.p[i] < 0x20 && v.p[i] != '\t') || v.p[i] == 0x7f)
            return fail(f, 400, "control character in a header value");
    struct span *once = span_ieq(line.p, n, "host") ? &r->host
                      : span_ieq(line.p, n, "upgrade") ? &r->upgrade
                      : span_ieq(line.p, n, "sec-websocket-version") ? &r->ws_version
                      : span_ieq(line.p, n, "sec-websocket-key") ? &r->ws_key
                      : span_ieq(line.p, n, "origin") ? &r->origin : NULL;
    if (once != NULL && once->p != NULL)
        return fail(f, 400, "a header that may appear once appears twice");
    if (once != NULL)
        *once = v;
    if (span_ieq(line.p, n, "connection"))
        r->connection_upgrade |= list_has(v, "upgrade");
    /* §4.2.1 item 8: the subprotocols the client speaks; we speak one. */
    for (size_t pos = 0; span_ieq(line.p, n, "sec-websocket-protocol") &&
         list_next(v, &pos, &item);)
        r->offers_echo |= span_is(item, WS_PROTOCOL);
    parse_header_extra(span_of(line.p, n), v, r);   /* a seat's, a proxy's (section 16) */
    return PARSE_DONE;
}

/* Parse the request head in p[0..len): PARSE_MORE until the blank line
 * has come, PARSE_DONE with r (its spans point into p), or PARSE_FAIL. */
static enum parse http_parse_head(const unsigned char *p, size_t len,
                                  struct http_request *r, struct failure *f)
{
    size_t end = head_end(p, len < MAX_REQUEST_HEAD ? len : MAX_REQUEST_HEAD), pos = 0;
    size_t m = 0, t;
    struct span line, version;
    memset(r, 0, sizeof *r);
    if (end == 0)
        return len < MAX_REQUEST_HEAD ? PARSE_MORE
            : fail(f, 431, "request head is larger than 8192 bytes");
    r->head_len = end;
    /* Request line: METHOD SP TARGET SP HTTP/1.x (RFC 7230 §3.1.1). */
    next_line(p, end, &pos, &line);
    while (m < line.len && is_tchar(line.p[m]))
        m++;
    for (t = m + 1; t < line.len && line.p[t] > ' ' && line.p[t] < 0x7f; t++)
        continue;
    if (m == 0 || m + 1 >= t || t >= line.len || line.p[m] != ' ' || line.p[t] != ' ')
        return fail(f, 400, "expected \"GET /path HTTP/1.1\"");
    r->method = span_of(line.p, m);
    r->target = span_of(line.p + m + 1, t - m - 1);
    version = span_of(line.p + t + 1, line.len - t - 1);
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
 * handshake, HTTP_FILE for a plain GET or HEAD; or PARSE_FAIL. */
static enum parse http_check(const struct http_request *r, enum http_kind *kind, struct failure *f)
{
    /* RFC 7230 §5.4: an HTTP/1.1 request without Host is refused. */
    if (r->minor >= 1 && r->host.p == NULL)
        return fail(f, 400, "missing Host header");
    /* Only a request naming WebSocket is a handshake; any other Upgrade
     * (h2c, say) may be ignored (RFC 7230 §6.7) and the GET served. */
    int websocket = r->upgrade.p != NULL && list_has(r->upgrade, "websocket");
    *kind = websocket || r->ws_key.p != NULL ? HTTP_UPGRADE : HTTP_FILE;
    if (*kind == HTTP_FILE)
        return span_is(r->method, "GET") || span_is(r->method, "HEAD") ? PARSE_DONE
            : fail(f, 405, "only GET and HEAD are served here");
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

/* §4.2.2 item 5.4: base64(SHA-1(key + GUID)) into out; the SHA-1 into digest. */
static void ws_accept(struct span key, char out[ACCEPT_LEN + 1],
                      unsigned char digest[SHA1_DIGEST_LEN])
{
    struct sha1 s;
    sha1_init(&s);
    sha1_update(&s, key.p, key.len);
    sha1_update(&s, WS_GUID, strlen(WS_GUID));
    sha1_final(&s, digest);
    base64_encode(out, ACCEPT_LEN + 1, digest, SHA1_DIGEST_LEN);
}
/* =============== 11. JSON scanner (RFC 8259) [second reading] ===============
 * A request is one JSON object. The scanner walks it once, checking the
 * whole grammar, and keeps the string members wspush knows. A string with
 * escapes is decoded into a scratch buffer as long as the text. */
struct json {                   /* the scanner's place in the text      */
    const unsigned char *p;
    size_t len, pos;
    unsigned char *scratch;     /* decoded strings go here              */
    size_t used;                /* scratch bytes taken                  */
    int depth;
    struct request *r;
};

#define JSON_MALFORMED  1       /* failure codes; for JSON_WRONG_TYPE (a  */
#define JSON_WRONG_TYPE 2       /* known member not a string) f->why is it */
#define JSON_SPACE      " \t\n\r"   /* JSON's white space            */

static enum parse json_fail(struct json *j, struct failure *f, const char *why)
{
    fail(f, JSON_MALFORMED, why);
    f->at = j->pos;
    return PARSE_FAIL;
}

/* Step over one of the characters in set if it comes next. */
static int json_take(struct json *j, const char *set)
{
    int ok = j->pos < j->len && j->p[j->pos] != 0 && strchr(set, j->p[j->pos]);
    j->pos += ok;
    return ok;
}

/* Step over the characters in set that come next; returns how many. */
static size_t json_skip(struct json *j, const char *set)
{
    size_t n = 0;
    while (json_take(j, set))
        n++;
    return n;
}

/* Read the 4 hex digits of a \u escape into *cp; -1 if they are not. */
static int json_hex4(struct json *j, unsigned *cp)
{
    char hex[5] = { 0 };
    for (int i = 0; i < 4 && json_take(j, "0123456789abcdefABCDEF"); i++)
        hex[i] = (char)j->p[j->pos - 1];
    *cp = (unsigned)strtoul(hex, NULL, 16);
    return strlen(hex) == 4 ? 0 : -1;
}

/* Decode the escape after a backslash (§7) at o + *n, adding to *n. */
static enum parse json_escape(struct json *j, unsigned char *o, size_t *n, struct failure *f)
{
    static const char in[] = "\"\\/bfnrt", out[] = "\"\\/\b\f\n\r\t";
    unsigned cp, lo;
    if (json_take(j, in)) {
        o[(*n)++] = (unsigned char)out[strchr(in, j->p[j->pos - 1]) - in];
        return PARSE_DONE;
    }
    if (!json_take(j, "u")) return json_fail(j, f, "unknown escape in a string");
    if (json_hex4(j, &cp) < 0) return json_fail(j, f, "expected 4 hex digits after \\u");
    if (cp >= 0xd800 && cp <= 0xdbff && json_take(j, "\\") && json_take(j, "u") &&
        json_hex4(j, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff)
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    if (cp >= 0xd800 && cp <= 0xdfff)
        return json_fail(j, f, "unpaired surrogate in \\u escape");
    *n += utf8_put(o + *n, cp);
    return PARSE_DONE;
}

/* Scan the string at j->pos into *out: the text itself if it has no
 * escapes (plain: a reply may copy it as it is), else a decoded copy. */
static enum parse json_string(struct json *j, struct span *out, struct failure *f)
{
    if (!json_take(j, "\"")) return json_fail(j, f, "expected a string");
    size_t start = j->pos, n = 0;
    j->pos += plain_blocks(j->p + j->pos, j->len - j->pos, 1);  /* section 3 */
    while (j->pos < j->len && j->p[j->pos] >= 0x20 && j->p[j->pos] != '"' && j->p[j->pos] != '\\')
        j->pos++;
    if (json_take(j, "\"")) {
        *out = (struct span){ j->p + start, j->pos - 1 - start, 1 };
        return PARSE_DONE;
    }
    unsigned char *o = j->scratch + j->used;
    while (start < j->pos)
        o[n++] = j->p[start++];
    while (!json_take(j, "\"")) {
        if (j->pos == j->len) return json_fail(j, f, "unterminated string");
        if (j->p[j->pos] < 0x20) return json_fail(j, f, "control character in a string");
        if (!json_take(j, "\\"))
            o[n++] = j->p[j->pos++];
        else if (json_escape(j, o, &n, f) != PARSE_DONE)
            return PARSE_FAIL;
    }
    j->used += n;
    j->r->decoded = j->used;
    *out = (struct span){ o, n, 0 };
    return PARSE_DONE;
}

/* Skip the word true, false or null, or a number:
 * -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static enum parse json_scalar(struct json *j, struct failure *f)
{
    struct span word = span_of(j->p + j->pos, 0);
    word.len = json_skip(j, "aeflnrstu");
    if (span_is(word, "true") || span_is(word, "false") || span_is(word, "null"))
        return PARSE_DONE;
    json_take(j, "-");
    if (word.len > 0 || (!json_take(j, "0") && json_skip(j, "0123456789") == 0))
        return json_fail(j, f, "expected a value");
    if (json_take(j, ".") && json_skip(j, "0123456789") == 0)
        return json_fail(j, f, "expected a digit");
    if (json_take(j, "eE") && json_skip(j, "+-") < 2 &&   /* one sign at most */
        json_skip(j, "0123456789") == 0)
        return json_fail(j, f, "expected a digit");
    return PARSE_DONE;
}

static enum parse json_value(struct json *j, struct failure *f);

/* One "key": value; the request's own members wspush knows are kept. */
static enum parse json_member(struct json *j, struct failure *f)
{
    struct span key;
    json_skip(j, JSON_SPACE);
    if (json_string(j, &key, f) != PARSE_DONE) return PARSE_FAIL;
    json_skip(j, JSON_SPACE);
    if (!json_take(j, ":")) return json_fail(j, f, "expected ':' after a key");
    int i = 0;
    while (i < N_FIELDS && (j->depth > 1 || !span_is(key, field_name[i])))
        i++;
    if (i == N_FIELDS) return json_value(j, f);
    json_skip(j, JSON_SPACE);
    j->r->raw[i] = span_of(j->p + j->pos, j->len - j->pos);
    if (j->pos == j->len || j->p[j->pos] != '"') {  /* malformed, or not a string */
        enum parse r = json_value(j, f);
        return r != PARSE_DONE ? r : fail(f, JSON_WRONG_TYPE, field_name[i]);
    }
    if (json_string(j, &j->r->field[i], f) != PARSE_DONE) return PARSE_FAIL;
    j->r->raw[i].len = (size_t)(j->p + j->pos - j->r->raw[i].p);
    return PARSE_DONE;
}

/* Scan one value; at most MAX_JSON_DEPTH deep, the recursion is shallow. */
static enum parse json_value(struct json *j, struct failure *f)
{
    struct span ignored;
    json_skip(j, JSON_SPACE);
    if (j->pos < j->len && j->p[j->pos] == '"') return json_string(j, &ignored, f);
    if (!json_take(j, "[{"))
        return json_scalar(j, f);
    int object = j->p[j->pos - 1] == '{';
    if (++j->depth > MAX_JSON_DEPTH) return json_fail(j, f, "nested too deeply");
    json_skip(j, JSON_SPACE);
    for (int n = 0; !json_take(j, object ? "}" : "]"); n++) {
        if (n > 0 && !json_take(j, ","))
            return json_fail(j, f, object ? "expected ',' or '}'" : "expected ',' or ']'");
        if ((object ? json_member(j, f) : json_value(j, f)) != PARSE_DONE)
            return PARSE_FAIL;
        json_skip(j, JSON_SPACE);
    }
    j->depth--;
    return PARSE_DONE;
}

/* Scan the request object in p[0..len) into r (escaped strings decoded
 * into scratch, len bytes); a key given twice keeps its last value. */
static enum parse json_parse_request(const unsigned char *p, size_t len,
                                     struct request *r, unsigned char *scratch,
                                     struct failure *f)
{
    struct json j = { p, len, 0, scratch, 0, 0, r };
    memset(r, 0, sizeof *r);
    json_skip(&j, JSON_SPACE);
    if (j.pos >= len || p[j.pos] != '{')
        return json_fail(&j, f, "a request must be a JSON object");
    if (json_value(&j, f) != PARSE_DONE) return PARSE_FAIL;
    json_skip(&j, JSON_SPACE);
    return j.pos == len ? PARSE_DONE : json_fail(&j, f, "unexpected text after the object");
}

/* ============== 12. The log and the trace (-v) [second reading] =============
 * The log speaks the tutorial server's words; -v traces each step of the
 * protocol after the socket's fd. What a client sent is escaped, so it can
 * neither forge lines nor drive the terminal, and tokens show as *** (-t's,
 * the "token" member, a URL's query). No client may stall the loop through
 * the log: lines wait in srv.log until stdout (non-blocking) takes them,
 * and past LOG_BUFFER are dropped and counted; a client's message lines
 * cost it log credit, 2 bytes for each byte it sends; refusals come once
 * a burst, the role table once a second. */
#define LOG_LINE_MAX (LOG_MESSAGE_MAX * 4 + 128)    /* escaped: 4 per byte */

/* Add n bytes to srv.log, after a note of lines dropped; if full, drop. */
static void log_put(const char *p, size_t n)
{
    char note[64];
    size_t k = 0;
    if (srv.log_dropped > 0)
        k = (size_t)snprintf(note, sizeof note, "... %lu log lines dropped\n", srv.log_dropped);
    if (srv.log_start > 0 && srv.log_len + k + n > LOG_BUFFER) {
        memmove(srv.log, srv.log + srv.log_start, srv.log_len - srv.log_start);
        srv.log_len -= srv.log_start;
        srv.log_start = 0;
    }
    if (srv.log_len + k + n > LOG_BUFFER) {
        srv.log_dropped++;
        return;
    }
    memcpy(srv.log + srv.log_len, note, k);
    memcpy(srv.log + srv.log_len + k, p, n);
    srv.log_len += k + n;
    srv.log_dropped = 0;
    FD_SET(STDOUT_FILENO, &srv.write_fds);
}

/* Log a line after prefix, or after the date (NULL), as the tutorial does. */
static void log_line(const char *prefix, const char *fmt, ...)
{
    char line[LOG_LINE_MAX + 256];
    time_t t = time(NULL);
    struct tm tm;
    va_list ap;
    size_t n = 0;
    if (prefix != NULL)
        n = (size_t)snprintf(line, sizeof line, "%s", prefix);
    else
        n = strftime(line, sizeof line, "%a %b %d %Y %H:%M:%S GMT%z (%Z) ", localtime_r(&t, &tm));
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (m > 0)
        n += (size_t)m < sizeof line - n - 1 ? (size_t)m : sizeof line - n - 2;
    line[n++] = '\n';
    log_put(line, n);
}

/* Log an event (a connection, a seat) unless -q asks for quiet. */
#define log_event(...) do { if (!opt.quiet) log_line(NULL, __VA_ARGS__); } while (0)

/* Make stdout non-blocking (log_flush(1) undoes it): the log never waits. */
static void log_open(void)
{
    srv.stdout_flags = fcntl(STDOUT_FILENO, F_GETFL);
    if (srv.stdout_flags >= 0) fcntl(STDOUT_FILENO, F_SETFL, srv.stdout_flags | O_NONBLOCK);
}

/* Write what stdout takes of the log now; with wait (at exit), all of it. */
static void log_flush(int wait)
{
    if (wait && srv.stdout_flags >= 0) fcntl(STDOUT_FILENO, F_SETFL, srv.stdout_flags);
    while (srv.log_start < srv.log_len) {
        ssize_t n = write(STDOUT_FILENO, srv.log + srv.log_start, srv.log_len - srv.log_start);
        if (n <= 0 && (!wait || errno != EINTR)) break;
        srv.log_start += n > 0 ? (size_t)n : 0;
    }
    if (srv.log_start == srv.log_len) {
        srv.log_start = srv.log_len = 0;
        FD_CLR(STDOUT_FILENO, &srv.write_fds);
    }
}

/* How many bytes of p[0..len) from p[i] on the log hides (0: none): the
 * rest of [hide_from, hide_to), the -t token, or a seat's secret. */
static size_t hidden_run(const unsigned char *p, size_t len, size_t i,
                         size_t hide_from, size_t hide_to)
{
    size_t token_len = opt.token ? strlen(opt.token) : 0;
    if (i >= hide_from && i < hide_to) return hide_to - i;
    if (len - i >= 5 && memcmp(p + i, "seat-", 5) == 0)
        return len - i < SECRET_LEN ? len - i : SECRET_LEN;
    if (token_len > 0 && len - i >= token_len && memcmp(p + i, opt.token, token_len) == 0)
        return token_len;
    return 0;
}

/* Write the first `show' bytes of p[0..len) into out[LOG_LINE_MAX]: what
 * is not UTF-8 or char_is_unsafe() as \xNN or \u{NNNN}, hidden runs as ***,
 * " ..." if p goes on. A token that `show' cuts is hidden too. */
static void text_escape(char *out, const unsigned char *p, size_t len, size_t show,
                        size_t hide_from, size_t hide_to)
{
    size_t o = 0, i = 0, n;
    for (; i < len && i < show; i += n) {
        unsigned cp = 0;
        size_t hidden = hidden_run(p, len, i, hide_from, hide_to);
        n = utf8_char(p + i, len - i, &cp);
        if (hidden > 0)
            o += (size_t)snprintf(out + o, LOG_LINE_MAX - o, "***");
        else if (n == 0 || cp < 0x20 || cp == 0x7f)
            o += (size_t)snprintf(out + o, LOG_LINE_MAX - o, "\\x%02x", p[i]);
        else if (char_is_unsafe(cp))
            o += (size_t)snprintf(out + o, LOG_LINE_MAX - o, "\\u{%04X}", cp);
        else
            o += (size_t)snprintf(out + o, LOG_LINE_MAX - o, "%.*s", (int)n, (const char *)p + i);
        if (hidden > 0)
            n = hidden;
        else if (n == 0)
            n = 1;
    }
    snprintf(out + o, LOG_LINE_MAX - o, "%s", i < len ? " ..." : "");
}

/* Where the query of a URL in t lies: from after the '?' to a space. */
static void query_of(struct span t, size_t *from, size_t *to)
{
    const unsigned char *q = memchr(t.p, '?', t.len);
    *from = q ? (size_t)(q - t.p) + 1 : t.len;
    for (*to = *from; *to < t.len && t.p[*to] != ' '; (*to)++)
        continue;
}

/* Trace the lines of a request head or our answer, after dir (<- or ->). */
static void trace_lines(struct conn *c, const char *dir, const unsigned char *p, size_t len)
{
    char line[LOG_LINE_MAX];
    struct span l;
    size_t from, to;
    for (size_t pos = 0; opt.verbose && next_line(p, len, &pos, &l) && l.len > 0;) {
        query_of(l, &from, &to);
        text_escape(line, l.p, l.len, LOG_MESSAGE_MAX, from, to);
        trace(c, "%s %s", dir, line);
    }
}

/* The meaning of a close code (§7.4.1), for the trace. */
static const char *close_meaning(unsigned code)
{
    static const char *const names[] = {
        "normal closure", "going away", "protocol error", "data it cannot accept",
        "reserved", "no code", "closed abnormally", "data that is not UTF-8",
        "policy violated", "message too big", "extension required", "server error"
    };
    if (code >= 1000 && code <= 1011) return names[code - 1000];
    if (code == CLOSE_REPLACED) return "its seat was taken by a new connection";
    return code == CLOSE_KICKED ? "closed by the teacher" : "an application's code";
}

/* With -v, trace a frame: each field, and its first bytes, what is hidden too. */
static void trace_frame(struct conn *c, const char *dir, const struct frame *fr,
                        const unsigned char *p, size_t hide_from, size_t hide_to)
{
    static const char *const ops[] = { "continuation", "text", "binary", "", "", "",
                                       "", "", "close", "ping", "pong" };
    char key[16] = "", hex[TRACE_PREVIEW * 3 + 1] = "", text[LOG_LINE_MAX];
    size_t shown = fr->len < TRACE_PREVIEW ? (size_t)fr->len : TRACE_PREVIEW, hidden = 0;
    int in = dir[0] == '<';
    size_t head = fr->head_len - (in ? 4 : 0);          /* without the mask */
    if (!opt.verbose)
        return;                 /* nothing is formatted for no one */
    for (size_t i = 0; i < shown; i++) {
        if (hidden == 0) hidden = hidden_run(p, (size_t)fr->len, i, hide_from, hide_to);
        if (hidden > 0)
            snprintf(hex + 3 * i, 4, " **");
        else
            snprintf(hex + 3 * i, 4, " %02x", p[i]);
        hidden -= hidden > 0;
    }
    text_escape(text, p, (size_t)fr->len, TRACE_PREVIEW, hide_from, hide_to);
    if (in)
        snprintf(key, sizeof key, ", key %02x%02x%02x%02x", fr->mask[0], fr->mask[1],
                 fr->mask[2], fr->mask[3]);
    trace(c, "%s frame: FIN %d, RSV 000, %s (0x%x), MASK %d, length %llu (%zu-bit)%s:%s"
          " \"%s\"", dir, fr->fin, ops[fr->opcode], fr->opcode, in,
          (unsigned long long)fr->len, head == 2 ? 7 : head == 4 ? 16 : 64, key, hex, text);
    if (fr->opcode == OP_CLOSE && fr->len >= 2)
        trace(c, "%s close %u: %s", dir, (unsigned)p[0] << 8 | p[1],
              close_meaning((unsigned)p[0] << 8 | p[1]));
}

/* With -v, trace the frame c's decoder has just read, unless it ends a
 * JSON message: log_message() traces that one, knowing where its token is
 * (with a token, the other frames of a message are hidden whole). */
static void trace_frame_in(struct conn *c)
{
    const struct decoder *d = &c->dec;
    int json = !opt.raw_echo && d->fr.opcode < OP_CLOSE;
    if (!d->ready || d->opcode >= OP_CLOSE || opt.raw_echo)
        trace_frame(c, "<-", &d->fr, d->payload, 0, opt.token && json ? d->payload_len : 0);
}

/* Log "Received Message: ..." as the tutorial does, from c's log credit,
 * r's token hidden, and trace its last frame. Only upto bytes are logged:
 * past a JSON error may lie a token the scanner did not reach, and what
 * ends there may be the start of one, so a token's length less a byte
 * is left out before it. */
static void log_message(struct conn *c, const unsigned char *p, size_t len,
                        const struct request *r, size_t upto)
{
    char line[LOG_LINE_MAX];
    const struct decoder *d = &c->dec;
    struct span t = r->raw[F_TOKEN];
    size_t from = t.p ? (size_t)(t.p - p) : len, to = t.p ? from + t.len : len;
    size_t start = len - d->payload_len;    /* where the last frame begins */
    size_t token_len = opt.token ? strlen(opt.token) : 0, show = upto;
    /* A token written with escapes ("\u0063...") is found only decoded:
     * a message that holds it so is hidden whole. */
    if (token_len > 0 && span_has(span_of(srv.scratch, r->decoded), opt.token)) {
        from = 0;
        to = len;
    }
    trace_frame(c, "<-", &d->fr, d->payload, from > start ? from - start : 0,
                to > start ? to - start : 0);
    if (opt.quiet) return;
    if (upto < len && token_len > 0)
        show = upto >= token_len ? upto - (token_len - 1) : 0;
    text_escape(line, p, len, show < LOG_MESSAGE_MAX ? show : LOG_MESSAGE_MAX, from, to);
    size_t n = strlen(line);
    if (upto < len)
        snprintf(line + n, sizeof line - n, " (malformed; %zu bytes)", len);
    else if (len > LOG_MESSAGE_MAX)
        snprintf(line + n, sizeof line - n, " (%zu bytes)", len);
    size_t cost = strlen("Received Message: \n") + strlen(line);
    /* Past half of the buffer, message lines give way to the others'. */
    if (cost > c->log_credit || srv.log_len - srv.log_start > LOG_BUFFER / 2) {
        srv.log_dropped++;
        return;
    }
    c->log_credit -= cost;
    log_line("", "Received Message: %s", line);
}

/* Log burst b's count: in LOG_BURST_S if in_time, else cut short. */
static void log_burst(const struct burst *b, int in_time)
{
    char span[16] = "";
    if (in_time) snprintf(span, sizeof span, " in %d s", LOG_BURST_S);
    if (b->status == 0)
        log_line(NULL, "Admin refused %lu more times for %s%s: %s", b->more, b->addr, span, b->why);
    else
        log_line(NULL, "Request from %s refused %lu more times%s: %d %s", b->addr, b->more, span,
                 b->status, b->why);
}

/* Log that unit (addr_unit()) was refused, with a status (0: admin) and
 * why, once a burst (from c's log credit, if c asked): more refusals of
 * unit within LOG_BURST_S, for any reason, are counted, and the count
 * logged, with the last reason, when the burst ends. */
static void log_refusal(const char *unit, int status, const char *why, struct conn *c)
{
    struct burst *b = NULL;
    size_t cost = 64 + strlen(why);     /* about the line's length */
    for (int i = 0; i < REFUSAL_SLOTS; i++) {
        struct burst *s = &srv.refusals[i];
        if (s->why != NULL && (s->status == 0) == (status == 0) && strcmp(s->addr, unit) == 0) {
            s->more++;
            s->why = why;       /* the last reason, for the count's line */
            s->status = status;
            return;
        }
        if (b == NULL || s->why == NULL || (b->why != NULL && s->until_ms < b->until_ms))
            b = s;
    }
    if (b->why != NULL && b->more > 0)  /* the table is full: end a burst */
        log_burst(b, 0);
    if (c != NULL && c->log_credit < cost)
        srv.log_dropped++;
    else if (status == 0)
        log_line(NULL, "Admin refused for %s from %s: %s", c->key, unit, why);
    else
        log_line(NULL, "Request from %s refused: %d %s", unit, status, why);
    if (c != NULL && c->log_credit >= cost) c->log_credit -= cost;
    *b = (struct burst){ "", why, status, srv.now_ms + LOG_BURST_S * 1000, 0 };
    snprintf(b->addr, sizeof b->addr, "%s", unit);
    timer_at(b->until_ms);
}

/* Bursts that have ended: log their counts, or forget them if none. */
static void refusals_due(void)
{
    for (int i = 0; i < REFUSAL_SLOTS; i++) {
        struct burst *b = &srv.refusals[i];
        if (b->why != NULL && srv.now_ms >= b->until_ms && b->more == 0) b->why = NULL;
        if (b->why != NULL && srv.now_ms >= b->until_ms) {
            log_burst(b, 1);
            b->more = 0;
            b->until_ms = srv.now_ms + LOG_BURST_S * 1000;
        }
        if (b->why != NULL) timer_at(b->until_ms);
    }
}

/* ============== 13. Replies, as JSON.stringify writes them [second reading] ==
 * Written as JavaScript's JSON.stringify writes them, so that they match
 * the tutorial's server byte for byte: built in srv.reply, then queued. */

/* The escape JSON.stringify writes for byte c, in esc; or NULL if none. */
static const char *json_escape_of(unsigned char c, char esc[7])
{
    static const char named[] = "btn\0fr";
    if (c >= 0x20 && c != '"' && c != '\\') return NULL;
    snprintf(esc, 7, "\\%c", c);
    if (c >= 8 && c <= 13 && named[c - 8] != 0)
        esc[1] = named[c - 8];
    else if (c < 0x20)
        snprintf(esc, 7, "\\u%04x", c);
    return esc;
}

/* Append s to b as a JSON string; a span found plain is copied as it is. */
static int json_put(struct buf *b, struct span s)
{
    char esc[7];
    int bad = buf_append(b, "\"", 1);
    for (size_t i = 0, run; i < s.len && bad == 0; i += run + 1) {
        run = s.plain ? s.len : plain_blocks(s.p + i, s.len - i, 1);  /* section 3 */
        while (i + run < s.len && json_escape_of(s.p[i + run], esc) == NULL)
            run++;
        bad = buf_append(b, s.p + i, run);
        if (bad == 0 && i + run < s.len) bad = buf_puts(b, esc);
    }
    return bad < 0 || buf_append(b, "\"", 1) < 0 ? -1 : 0;
}

/* Queue srv.reply for c (bad: memory ran short, so close c). 0, or -1. */
static int reply_queue(struct conn *c, int bad)
{
    if (c->state != CONN_OPEN) return -1;
    if (!bad && queue_frame(c, OP_TEXT, srv.reply.data, srv.reply.len) == 0) return 0;
    conn_fail(c, CLOSE_INTERNAL_ERROR, "out of memory");
    return -1;
}

/* Queue {"resp":RESP,"content":CONTENT}; content.p NULL leaves it out, as
 * JSON.stringify leaves out an undefined value. */
static int reply_json(struct conn *c, struct span resp, struct span content)
{
    struct buf *b = &srv.reply;
    b->len = 0;
    int bad = buf_puts(b, "{\"resp\":") < 0 || json_put(b, resp) < 0;
    if (content.p != NULL && !bad)
        bad = buf_puts(b, ",\"content\":") < 0 || json_put(b, content) < 0;
    return reply_queue(c, bad || buf_puts(b, "}") < 0);
}

static int reply_text(struct conn *c, struct span text)
{
    return reply_json(c, cspan("text"), text);
}

static int reply_error(struct conn *c, const char *why)
{
    return reply_json(c, cspan("error"), cspan(why));
}

/* ================ 14. wspush's own requests [second reading] ================
 * Each cmd_ function's comment gives its request; README's protocol table
 * gives every reply. The tutorial's admin page knows none of these, and
 * gets a list only when it asks. Seats (section 5): a page that comes back
 * names its seat in its handshake and is that user again from its first
 * byte, every push it has not acknowledged sent again (the page shows each
 * id once). A seat with no connection waits -g seconds, away, and queues
 * what is pushed to it; then it is gone, its pushes lost. */

/* 1 if push r has its text and a short "ref" (if any); else c hears why. */
static int may_push(struct conn *c, const struct request *r)
{
    const char *why = NULL;
    if (r->field[F_TEXT].p == NULL)
        why = "a push needs a \"text\" string";
    else if (r->field[F_REF].len > MAX_REF_LEN)
        why = "a \"ref\" is at most 16 bytes";
    if (why != NULL) reply_error(c, why);
    return why == NULL;
}

/* Queue text for a user (0, or -1); one -s bytes behind is closed (1008). */
static int push_text(struct conn *user, struct span text)
{
    if (user->state == CONN_OPEN && user->out.len > opt.max_queue) {
        log_line(NULL, "Peer %s is not reading: %zu bytes queued", user->addr, user->out.len);
        conn_fail(user, CLOSE_POLICY, "client is not reading its messages");
    }
    return reply_text(user, text);
}

/* Tell every watcher the list changed: it is owed a new one. */
static void announce_users(void)
{
    for (int fd = 0; fd <= srv.max_fd && !srv.stopping; fd++) {
        if (srv.conns[fd].state == CONN_OPEN && srv.conns[fd].watching) {
            srv.conns[fd].list_due = 1;
            FD_SET(fd, &srv.write_fds);
        }
    }
}

/* The seat that holds or held key k (lookup[k] first), or NULL. */
static struct seat *seat_by_key(struct span k)
{
    struct conn *c = conn_by_key(k);
    if (c != NULL) return c->seat;
    for (int i = 0; k.p != NULL && k.len == KEY_TEXT_LEN && i < MAX_CLIENTS; i++)
        for (int j = 0; srv.seats[i].number != 0 && j < SEAT_KEYS; j++)
            if (memcmp(srv.seats[i].keys[j], k.p, KEY_TEXT_LEN) == 0) return &srv.seats[i];
    return NULL;
}

/* True if seat s is an admin's (an away seat is a user's). */
static int seat_is_admin(const struct seat *s)
{
    return s->conn != NULL && s->conn->role == ROLE_ADMIN;
}

static int by_number(const void *a, const void *b)
{
    unsigned long x = (*(struct seat *const *)a)->number;
    unsigned long y = (*(struct seat *const *)b)->number;
    return x < y ? -1 : x > y;
}

/* Fill order[] with the seats, here or away, sorted by arrival; how many. */
static int seats_in_order(struct seat *order[MAX_CLIENTS])
{
    int n = 0;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (srv.seats[i].number != 0) order[n++] = &srv.seats[i];
    qsort(order, (size_t)n, sizeof order[0], by_number);
    return n;
}

/* Queue {"resp":"get connections","content":{KEY:ROLE,...}}, seat by seat. */
static int reply_roles(struct conn *c)
{
    struct seat *order[MAX_CLIENTS];
    int n = seats_in_order(order), bad = 0;
    struct buf *b = &srv.reply;
    b->len = 0;
    bad = buf_puts(b, "{\"resp\":\"get connections\",\"content\":{") < 0;
    for (int i = 0; i < n && !bad; i++)
        bad = json_put(b, cspan(order[i]->keys[0])) < 0 ||
              buf_puts(b, seat_is_admin(order[i]) ? ":\"admin\"" : ":\"user\"") < 0 ||
              buf_puts(b, i + 1 < n ? "," : "") < 0;
    return reply_queue(c, bad || buf_puts(b, "}}") < 0);
}

/* Log the prompt and the role table, as the tutorial's display_connections()
 * does. The table comes at most once in LOG_TABLE_S: in a burst of comings
 * and goings, the prompts come at once, the table when its time comes. */
static void log_roles(const char *prompt)
{
    struct seat *order[MAX_CLIENTS];
    int64_t next = srv.table_ms + LOG_TABLE_S * 1000;
    if (opt.quiet) return;
    if (prompt != NULL) log_line("", "%s", prompt);
    if (srv.table_ms != 0 && srv.now_ms < next) {
        srv.table_due = 1;
        timer_at(next);
        return;
    }
    if (prompt == NULL) log_line("", "Current active connections");
    int n = seats_in_order(order);
    log_line("", "{");
    for (int i = 0; i < n && i < LOG_TABLE_MAX; i++)
        log_line("", "  '%s': '%s'%s", order[i]->keys[0], seat_is_admin(order[i]) ? "admin"
                 : "user", i + 1 < n ? "," : "");
    if (n > LOG_TABLE_MAX) log_line("", "  ... %d more", n - LOG_TABLE_MAX);
    log_line("", "}");
    srv.table_due = 0;
    srv.table_ms = srv.now_ms;
}

/* {"resp":"receipt","ref":R,"number":N,"state":S,"why":W}: what became of
 * p for user number, to its admin if it gave a "ref" and is still there. */
static void receipt(unsigned long number, const struct push *p, const char *state, const char *why)
{
    char tail[64];
    struct buf *b = &srv.reply;
    if (p->ref[0] == '\0' || p->from->state != CONN_OPEN || p->from->accepted != p->from_accepted)
        return;
    b->len = 0;
    snprintf(tail, sizeof tail, ",\"number\":%lu,\"state\":\"%s\"", number, state);
    int bad = buf_puts(b, "{\"resp\":\"receipt\",\"ref\":") < 0 || json_put(b, cspan(p->ref)) < 0 ||
              buf_puts(b, tail) < 0;
    if (why != NULL && !bad)
        bad = buf_puts(b, ",\"why\":") < 0 || json_put(b, cspan(why)) < 0;
    reply_queue(p->from, bad || buf_puts(b, "}") < 0);
}

/* Push i of seat s is done with: "seen", or "lost" (why); its admin hears. */
static void push_done(struct seat *s, int i, const char *state, const char *why)
{
    struct push *p = &s->pushes[i];
    receipt(s->number, p, state, why);
    s->push_bytes -= p->json.len;
    buf_free(&p->json);
    memmove(p, p + 1, (size_t)(s->n_pushes - i - 1) * sizeof *p);
    s->n_pushes--;
}

/* Seat s loses every push (why, for their receipts) and all their memory. */
static void seat_drop_pushes(struct seat *s, const char *why)
{
    if (s->n_pushes > 0)
        log_line(NULL, "Seat #%lu: %d pushes not seen are lost: %s", s->number, s->n_pushes, why);
    while (s->n_pushes > 0)
        push_done(s, 0, "lost", why);
    if (s->pushes != NULL) srv.buffered -= MAX_SEAT_PUSHES * sizeof *s->pushes;
    free(s->pushes);
    s->pushes = NULL;
}

/* Free seat s; pushes it has not acknowledged are lost (why). */
static void seat_free(struct seat *s, const char *why)
{
    seat_drop_pushes(s, why);
    memset(s, 0, sizeof *s);
}

/* Count a drop of s's connection (lost, or replaced), for the teacher. */
static void seat_dropped(struct seat *s)
{
    memmove(s->drops_ms + 1, s->drops_ms, (DROPS_KEPT - 1) * sizeof s->drops_ms[0]);
    s->drops_ms[0] = srv.now_ms;
}

/* c's connection ends: its seat waits, away, if its page holds the secret
 * (and was not kicked), else it is gone. It is away because its page
 * "closed" (its close came first) or the connection was "lost". */
static void seat_leave(struct conn *c)
{
    struct seat *s = c->seat;
    c->seat = NULL;
    if (s == NULL) return;
    s->conn = NULL;
    s->away_ms = srv.now_ms;
    s->away_why = c->close_seen ? "closed" : "lost";
    if (!c->close_seen) seat_dropped(s);
    if (s->secret[0] != '\0' && !s->kicked && !srv.stopping)
        timer_at(s->away_ms + (int64_t)opt.grace_s * 1000);
    else
        seat_free(s, s->kicked ? "the teacher kicked that user" : "the page left");
    announce_users();
}

/* Queue push p of seat s on its connection: "sent" (once). */
static void push_send(struct seat *s, struct push *p)
{
    if (queue_frame(s->conn, OP_TEXT, p->json.data, p->json.len) < 0) return;
    if (!p->sent) receipt(s->number, p, "sent", NULL);
    p->sent = 1;
}

/* Start push p of r's text, from admin from, its receipts to go there. */
static void push_start(struct push *p, struct conn *from, const struct request *r)
{
    struct span ref = r->field[F_REF];
    memset(p, 0, sizeof *p);
    snprintf(p->ref, sizeof p->ref, "%.*s", (int)ref.len, ref.p ? (const char *)ref.p : "");
    p->from = from;
    p->from_accepted = from->accepted;
}

/* True if seat s, holding pushes, has no room for one of len bytes more. */
static int seat_full(const struct seat *s, size_t len)
{
    return s->n_pushes > 0 && (s->n_pushes == MAX_SEAT_PUSHES ||
                               s->push_bytes + len > opt.max_queue);
}

/* Keep r's text for seat s as {"resp":"text","content":T,"id":I}, or NULL.
 * Past MAX_SEAT_PUSHES or -s bytes, its page is not keeping up (1008),
 * and a seat away loses its oldest. */
static struct push *push_keep(struct seat *s, struct conn *from, const struct request *r)
{
    char tail[48];
    struct buf *b = &srv.reply;
    size_t len = r->field[F_TEXT].len;
    if (s->conn != NULL && (seat_full(s, len) || s->conn->out.len > opt.max_queue)) {
        log_line(NULL, "Peer %s is not reading: %d pushes not seen", s->conn->addr, s->n_pushes);
        conn_fail(s->conn, CLOSE_POLICY, "client is not reading its messages");
    }
    while (seat_full(s, len))
        push_done(s, 0, "lost", "more pushes waited than a seat keeps (64, or -s bytes)");
    if (s->pushes == NULL && (s->pushes = calloc(MAX_SEAT_PUSHES, sizeof *s->pushes)) != NULL)
        srv.buffered += MAX_SEAT_PUSHES * sizeof *s->pushes;
    if (s->pushes == NULL) return NULL;
    struct push *p = &s->pushes[s->n_pushes];
    push_start(p, from, r);
    snprintf(p->id, sizeof p->id, "%lu", ++srv.n_pushes);
    snprintf(tail, sizeof tail, ",\"id\":\"%s\"}", p->id);
    b->len = 0;
    if (buf_puts(b, "{\"resp\":\"text\",\"content\":") < 0 || json_put(b, r->field[F_TEXT]) < 0 ||
        buf_puts(b, tail) < 0 || buf_append(&p->json, b->data, b->len) < 0)
        return NULL;
    s->n_pushes++;
    s->push_bytes += p->json.len;
    return p;
}

/* Push r's text to seat s for admin from: as the tutorial sends it, or,
 * to a seat with a secret, with an id, kept until seen. Returns "sent"
 * (queued on its connection), "queued" (s is away), "lost" (its page does
 * not read: closed) or "failed" (memory is short; the page reads on). */
static const char *push_to(struct seat *s, struct conn *from, const struct request *r)
{
    struct push tutorial;
    unsigned long number = s->number;
    if (s->secret[0] == '\0') {
        const char *state = push_text(s->conn, r->field[F_TEXT]) == 0 ? "sent" : "lost";
        push_start(&tutorial, from, r);
        receipt(number, &tutorial, state, state[0] == 'l' ? "the page was not reading" : NULL);
        return state;
    }
    struct push *p = push_keep(s, from, r);
    if (p == NULL) {
        push_start(&tutorial, from, r);
        receipt(number, &tutorial, "lost", "out of memory");
        return "failed";        /* its page reads on: it is not "lost" */
    }
    if (s->conn != NULL) push_send(s, p);
    if (!p->sent) receipt(number, p, "queued", NULL);
    return p->sent ? "sent" : "queued";
}

/* The seat whose secret is sent, or NULL: the secret names its slot. */
static struct seat *seat_by_secret(struct span sent)
{
    char slot[5] = "";
    if (sent.p == NULL || sent.len != SECRET_LEN) return NULL;
    memcpy(slot, sent.p + 5, 4);
    unsigned long i = strtoul(slot, NULL, 16);
    struct seat *s = &srv.seats[i < MAX_CLIENTS ? i : 0];
    return s->secret[0] != '\0' && token_matches(sent, s->secret) ? s : NULL;
}

/* c takes seat s, new or back, with the pushes its page has not seen. A
 * connection still holding s (the silent one of a dropped Wi-Fi) is closed
 * with 4001; a seat c held (it asked with "seat" later) is given up. */
static void seat_take(struct conn *c, struct seat *s)
{
    struct seat *fresh = c->seat;
    if (s->conn != NULL) {
        struct conn *ghost = s->conn;
        log_event("Seat #%lu is back: closing its old connection from %s", s->number, ghost->addr);
        ghost->seat = NULL;
        seat_dropped(s);
        conn_fail(ghost, CLOSE_REPLACED, "this seat was taken by a new connection");
    }
    memmove(s->keys[1], s->keys[0], (SEAT_KEYS - 1) * sizeof s->keys[0]);
    memcpy(s->keys[0], c->key, sizeof s->keys[0]);
    snprintf(s->addr, sizeof s->addr, "%s", c->addr);
    memcpy(s->host, c->host, 16);
    s->conn = c;
    c->seat = s;
    if (fresh != NULL) seat_free(fresh, "the page left");
    for (int i = 0; i < s->n_pushes; i++)
        push_send(s, &s->pushes[i]);
    announce_users();
}

/* c takes seat s: back (why NULL), or as a new user, s's holder gone (why). */
static void seat_attach(struct conn *c, struct seat *s, const char *why)
{
    if (why != NULL) {
        if (s->number != 0) log_event("Seat #%lu of %s is given up: %s", s->number, s->addr, why);
        seat_free(s, "its seat was given to a newcomer");       /* if it was someone's */
        s->number = srv.next_number++;
        s->since = time(NULL);
    }
    seat_take(c, s);
}

/* {"req":"seat","secret":S}: the sender takes S's seat back; without S,
 * or an S unknown (after a restart), its own seat gets a secret: "seat-",
 * its slot in 4 hex digits, 128 bits from /dev/urandom. */
static void cmd_seat(struct conn *c, const struct request *r)
{
    unsigned char bits[16];
    char number[32];
    struct seat *s = seat_by_secret(r->field[F_SECRET]);
    if (s == NULL) s = c->seat;
    if (s->secret[0] == '\0' && random_bytes(bits, sizeof bits) < 0) {
        reply_error(c, "no seat: the server cannot read /dev/urandom now");
        return;
    }
    if (s->secret[0] == '\0') {
        snprintf(s->secret, sizeof s->secret, "seat-%04x", (unsigned)(s - srv.seats));
        hex_of(s->secret + 9, bits, sizeof bits);
    }
    struct buf *b = &srv.reply;
    b->len = 0;
    snprintf(number, sizeof number, "%lu,\"name\":", s->number);
    int bad = buf_puts(b, "{\"resp\":\"seat\",\"number\":") < 0 || buf_puts(b, number) < 0 ||
              json_put(b, cspan(s->name)) < 0 || buf_puts(b, ",\"secret\":\"") < 0 ||
              buf_puts(b, s->secret) < 0 || buf_puts(b, "\"}") < 0;
    if (reply_queue(c, bad) == 0 && s != c->seat) seat_take(c, s);
}

/* {"req":"seen","id":I}: the page has shown push I: it is done. */
static void cmd_seen(struct conn *c, const struct request *r)
{
    struct seat *s = c->seat;
    for (int i = 0; i < s->n_pushes; i++) {
        if (span_is(r->field[F_ID], s->pushes[i].id)) {
            push_done(s, i, "seen", NULL);
            return;
        }
    }
}

/* Seats away longer than -g are gone. */
static void seats_due(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct seat *s = &srv.seats[i];
        int64_t end = s->away_ms + (int64_t)opt.grace_s * 1000;
        if (s->number == 0 || s->conn != NULL) continue;
        timer_at(end);          /* if it has passed, timers() comes again: harmless */
        if (srv.now_ms < end) continue;
        log_event("Seat #%lu is gone: away for %d s", s->number, opt.grace_s);
        seat_free(s, "away longer than -g allows");
        announce_users();
    }
}

/* {"req":"push all","text":T}: T goes to every user, here or away. */
static void cmd_push_all(struct conn *c, const struct request *r)
{
    int n[3] = { 0, 0, 0 };     /* sent, queued, lost */
    char note[120];
    if (!may_push(c, r)) return;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct seat *s = &srv.seats[i];
        const char *state = s->number != 0 && !seat_is_admin(s) ? push_to(s, c, r) : "";
        if (srv.buffered - srv.reply.cap > opt.max_buffered) shed_pushes();   /* a copy each */
        n[0] += strcmp(state, "sent") == 0;
        n[1] += strcmp(state, "queued") == 0;
        n[2] += strcmp(state, "lost") == 0 || strcmp(state, "failed") == 0;
    }
    int len = snprintf(note, sizeof note, "Sent to %d user%s", n[0], n[0] == 1 ? "" : "s");
    if (n[1] > 0)
        len += snprintf(note + len, sizeof note - (size_t)len, "; queued for %d away", n[1]);
    if (n[2] > 0)
        len += snprintf(note + len, sizeof note - (size_t)len, "; lost for %d", n[2]);
    snprintf(note + len, sizeof note - (size_t)len, ".");
    reply_text(c, cspan(note));
}

/* {"req":"get addresses"}: this machine's addresses, and wspush's pages. */
static void cmd_get_addresses(struct conn *c, const struct request *r)
{
    char hosts[MAX_ADDRESSES][ADDR_LEN + 2], url[ADDR_LEN + 32];
    int n = machine_hosts(hosts), bad;
    struct buf *b = &srv.reply;
    (void)r;
    b->len = 0;
    bad = buf_puts(b, "{\"resp\":\"addresses\",\"content\":[") < 0;
    for (int i = 0; i < n && opt.www != NULL && !bad; i++)
        bad = snprintf(url, sizeof url, "http://%s:%d/user.html", hosts[i], opt.port) < 0 ||
              buf_puts(b, i > 0 ? "," : "") < 0 || json_put(b, cspan(url)) < 0;
    bad = bad || buf_puts(b, "],\"hosts\":[") < 0;
    for (int i = 0; i < n && !bad; i++)
        bad = buf_puts(b, i > 0 ? "," : "") < 0 || json_put(b, cspan(hosts[i])) < 0;
    reply_queue(c, bad || buf_puts(b, "]}") < 0);
}

/* {"req":"get my key"}: browsers keep the key they made from scripts. */
static void cmd_get_my_key(struct conn *c, const struct request *r)
{
    (void)r;
    reply_json(c, cspan("get my key"), cspan(c->key));
}

/* {"req":"set name","name":N}: plain text, trimmed, 1 to MAX_NAME_CHARS. */
static void cmd_set_name(struct conn *c, const struct request *r)
{
    struct span name = span_trim(r->field[F_NAME]);
    const char *why = name.p ? NULL : "\"set name\" needs a \"name\" string";
    size_t chars = 0, n;
    unsigned cp;
    for (size_t i = 0; why == NULL && i < name.len; i += n, chars++) {
        n = utf8_char(name.p + i, name.len - i, &cp);
        if (n == 0 || char_is_unsafe(cp))
            why = "a name is plain text: no control or direction-changing characters";
    }
    if (why == NULL && (chars == 0 || chars > MAX_NAME_CHARS))
        why = "a name is 1 to 40 characters";
    /* Each name goes to every watcher: MAX_NAMES_PER_S a second at most. */
    if (why == NULL && srv.now_ms >= c->names_ms + 1000) {
        c->names_ms = srv.now_ms;
        c->names = 0;
    }
    if (why == NULL && ++c->names > MAX_NAMES_PER_S)
        why = "too many names: at most 5 a second";
    if (why != NULL) {
        reply_error(c, why);
        return;
    }
    memcpy(c->seat->name, name.p, name.len);
    c->seat->name[name.len] = '\0';
    reply_json(c, cspan("set name"), cspan(c->seat->name));
    announce_users();
}

/* {"req":"watch users"}: the user list now, and after every change. */
static void cmd_watch_users(struct conn *c, const struct request *r)
{
    (void)r;
    c->watching = c->list_due = 1;
    FD_SET(c->fd, &srv.write_fds);
}

/* {"req":"kick","userkey":K}: K is closed with 4000 and its seat is gone. */
static void cmd_kick(struct conn *c, const struct request *r)
{
    struct seat *user = seat_by_key(r->field[F_USERKEY]);
    if (user == NULL) {
        reply_error(c, "no such user: it has gone");
        return;
    }
    user->kicked = 1;
    if (user->conn != NULL) {
        conn_fail(user->conn, CLOSE_KICKED, "closed by the teacher");
    } else {
        seat_free(user, "the teacher kicked that user");
        announce_users();
    }
    reply_text(c, cspan("Closed."));
}

/* Queue {"resp":"users","content":[{"key":K,"number":N,"name":S,"role":R,
 * "address":A,"since":T,"away":T,"why":W,"drops":D},...]}, seat by seat. */
static int reply_users(struct conn *c)
{
    struct seat *order[MAX_CLIENTS];
    int n = seats_in_order(order), bad = 0;
    struct buf *b = &srv.reply;
    b->len = 0;
    bad = buf_puts(b, "{\"resp\":\"users\",\"content\":[") < 0;
    for (int i = 0; i < n && !bad; i++) {
        const struct seat *s = order[i];
        char head[96], tail[240], when[24], away[80] = "", drops[24] = "";
        struct tm tm;
        time_t gone = time(NULL) - (time_t)((srv.now_ms - s->away_ms) / 1000);
        int n_drops = 0;        /* its connection's drops in DROPS_WINDOW_S */
        while (n_drops < DROPS_KEPT && s->drops_ms[n_drops] != 0 &&
               srv.now_ms - s->drops_ms[n_drops] < DROPS_WINDOW_S * 1000)
            n_drops++;
        if (s->conn == NULL)
            strftime(away, 40, ",\"away\":\"%Y-%m-%dT%H:%M:%SZ\"", gmtime_r(&gone, &tm));
        if (s->conn == NULL)
            snprintf(away + strlen(away), 40, ",\"why\":\"%s\"", s->away_why);
        if (n_drops > 0) snprintf(drops, sizeof drops, ",\"drops\":%d", n_drops);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&s->since, &tm));
        snprintf(head, sizeof head, "%s{\"key\":\"%s\",\"number\":%lu,\"name\":",
                 i == 0 ? "" : ",", s->keys[0], s->number);
        snprintf(tail, sizeof tail, ",\"role\":\"%s\",\"address\":\"%s\",\"since\":\"%s\"%s%s}",
                 seat_is_admin(s) ? "admin" : "user", s->addr, when, away, drops);
        bad = buf_puts(b, head) < 0 || json_put(b, cspan(s->name)) < 0 || buf_puts(b, tail) < 0;
    }
    return reply_queue(c, bad || buf_puts(b, "]}") < 0);
}

/* Queue the list watcher c is owed, if LIST_INTERVAL_MS have passed and
 * its queue is empty: a burst of changes costs one list. Returns 1 if it
 * may go once the queue empties (c stays in the write set). */
static int list_due(struct conn *c)
{
    int64_t at = c->list_ms + LIST_INTERVAL_MS;
    if (!c->list_due) return 0;
    if (srv.now_ms < at) {
        timer_at(at);           /* conn_timers() puts c back in the set */
        return 0;
    }
    if (c->out.len > 0) return 1;
    c->list_due = 0;
    c->list_ms = srv.now_ms;
    if (c->state == CONN_OPEN && !srv.stopping) reply_users(c);
    return 0;
}
/* ================ 15. The tutorial's requests [first reading] ===============
 * One function per request, all alike: read the request, queue replies
 * (section 13); the loop writes them. on_message() scans each message and
 * hands it to the function for its "req". */

/* {"req":"get connections"}: the sender becomes admin, if it may
 * (section 16), and gets every key with its role. */
static void cmd_get_connections(struct conn *c, const struct request *r)
{
    if (!may_be_admin(c, r)) return;
    int was_user = c->role == ROLE_USER;
    c->role = ROLE_ADMIN;
    reply_roles(c);
    if (was_user) {
        log_roles("Request: get connections");
        announce_users();
    }
}

/* {"req":"push a user","userkey":K,"text":T}: T goes to K's seat alone
 * (section 14): now, or when its user is back. */
static void cmd_push_a_user(struct conn *c, const struct request *r)
{
    if (!may_push(c, r)) return;
    struct seat *user = seat_by_key(r->field[F_USERKEY]);
    const char *state = user ? push_to(user, c, r) : "gone";
    if (strcmp(state, "gone") == 0) {
        /* The user has gone: say so and send the fresh list. */
        reply_text(c, cspan("Refresh user list complete. Try again!"));
        reply_roles(c);
    } else if (strcmp(state, "lost") == 0) {
        reply_error(c, "that user is not reading and was disconnected");
    } else if (strcmp(state, "failed") == 0) {
        reply_error(c, "out of memory: that push could not be kept");
    } else if (strcmp(state, "queued") == 0) {
        reply_text(c, cspan("Queued: that user is away; it goes when they are back."));
    } else {
        reply_text(c, cspan("Already sent."));
    }
}

/* Each "req", the function that answers it, and whether only admins may. */
static const struct command {
    const char *req;
    void (*run)(struct conn *c, const struct request *r);
    int admin_only;
} commands[] = {
    { "get connections", cmd_get_connections, 0 },
    { "push a user",     cmd_push_a_user,     1 },
    { "push all",        cmd_push_all,        1 },      /* wspush's own, */
    { "get my key",      cmd_get_my_key,      0 },      /* section 14    */
    { "set name",        cmd_set_name,        0 },
    { "watch users",     cmd_watch_users,     1 },
    { "kick",            cmd_kick,            1 },
    { "seat",            cmd_seat,            0 },
    { "seen",            cmd_seen,            0 },
    { "get addresses",   cmd_get_addresses,   1 },
};  /* any other "req" is echoed: {"resp":REQ,"content":text} */

/* Handle one text message: a JSON request, or anything in -e mode. */
static void on_message(struct conn *c, int opcode, const unsigned char *p, size_t len)
{
    struct request r;
    struct failure f;
    char why[160];
    if (opt.raw_echo) {
        queue_frame(c, opcode, p, len);
        return;
    }
    enum parse parsed = json_parse_request(p, len, &r, srv.scratch, &f);
    log_message(c, p, len, &r, parsed == PARSE_FAIL && opt.token ? f.at : len);
    if (parsed == PARSE_FAIL && f.code == JSON_WRONG_TYPE)
        snprintf(why, sizeof why, "\"%s\" must be a string", f.why);
    else if (parsed == PARSE_FAIL)
        snprintf(why, sizeof why, "malformed JSON at byte %zu: %s", f.at, f.why);
    if (parsed == PARSE_FAIL || r.field[F_REQ].p == NULL) {
        reply_error(c, parsed == PARSE_FAIL ? why : "a request needs a \"req\" string");
        return;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!span_is(r.field[F_REQ], commands[i].req)) continue;
        if (commands[i].admin_only && c->role != ROLE_ADMIN) {
            snprintf(why, sizeof why, "only an admin may %s; send \"get connections\" first",
                     commands[i].req);
            reply_error(c, why);
        } else {
            commands[i].run(c, &r);
        }
        return;
    }
    reply_json(c, r.field[F_REQ], r.field[F_TEXT]);     /* the echo */
}
/* ======== 16. Admin rules and per-address limits [second reading] ==========
 * Against a student on the same network, and a web page in the teacher's
 * browser (README, "What it guards against"): admin goes to a connection
 * with the -t token, or without one, to a page of this machine talking
 * from this machine, not through a proxy (may_be_admin()). All else is
 * counted by address, as one student's share (addr_host()): sockets and
 * seats (-c), a pass's work (share_of()), memory (-M, shed_load()). */

/* addr as 16 bytes in a (IPv4 as ::ffff:a.b.c.d): 4 or 6, or 0 if neither. */
static int addr_bin(const char *addr, unsigned char a[16])
{
    memset(a, 0, 16);
    if (inet_pton(AF_INET, addr, a + 12) == 1) {
        a[10] = 0xff;
        a[11] = 0xff;
        return 4;
    }
    if (inet_pton(AF_INET6, addr, a) != 1) return 0;
    return memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 ? 4 : 6;  /* ::ffff:a.b.c.d */
}

/* True if the address text names this machine: 127.0.0.0/8 or ::1. */
static int addr_is_loopback(const char *addr)
{
    unsigned char a[16];
    int family = addr_bin(addr, a);
    return (family == 4 && a[12] == 127) || (family == 6 && memcmp(a, &in6addr_loopback, 16) == 0);
}

/* True if a Host (or an Origin's host) is localhost, 127.x.y.z or [::1]. */
static int host_is_loopback(struct span h)
{
    char host[ADDR_LEN];
    size_t start = h.len > 0 && h.p[0] == '[', n = start;
    while (n < h.len && h.p[n] != (start ? ']' : ':'))
        n++;
    if (n - start == 0 || n - start >= sizeof host || (start && n == h.len)) return 0;
    memcpy(host, h.p + start, n - start);
    host[n - start] = '\0';
    return span_ieq((const unsigned char *)host, n - start, "localhost") || addr_is_loopback(host);
}

/* True if an Origin is http(s)://HOST[:PORT] with a loopback HOST. */
static int origin_is_local(struct span o)
{
    size_t skip = o.len > 7 && memcmp(o.p, "http://", 7) == 0 ? 7
                : o.len > 8 && memcmp(o.p, "https://", 8) == 0 ? 8 : 0;
    return skip > 0 && memchr(o.p + skip, '/', o.len - skip) == NULL &&
           host_is_loopback(span_of(o.p + skip, o.len - skip));
}

/* The headers only the classroom reads: a seat's secret among the
 * subprotocols (our user page names its seat before it opens, and no log
 * keeps headers), and a proxy's word on its client: only the last
 * X-Forwarded-For is read; the others just say a proxy was there. */
static void parse_header_extra(struct span name, struct span v, struct http_request *r)
{
    struct span item;
    int xff = span_ieq(name.p, name.len, "x-forwarded-for");
    for (size_t pos = 0; span_ieq(name.p, name.len, "sec-websocket-protocol") &&
         list_next(v, &pos, &item);)
        if (item.len > 5 && memcmp(item.p, "seat-", 5) == 0) r->secret = item;
    if (xff) r->forwarded = v;
    r->proxied |= xff || span_ieq(name.p, name.len, "x-real-ip") ||
                  span_ieq(name.p, name.len, "forwarded");
}

/* True if addr was named with -x: a proxy whose word we take. */
static int addr_is_named_proxy(const char *addr)
{
    unsigned char a[16], x[16];
    for (int i = 0; i < opt.n_proxies && addr_bin(addr, a) != 0; i++)
        if (addr_bin(opt.proxies[i], x) != 0 && memcmp(a, x, 16) == 0) return 1;
    return 0;
}

/* True if a peer at addr is a proxy we believe: this machine, or an -x. */
static int addr_is_proxy(const char *addr)
{
    return addr_is_loopback(addr) || addr_is_named_proxy(addr);
}

/* The client a proxy names in X-Forwarded-For, into out: its last entry,
 * which the proxy added (anyone can write those before it), passing
 * leftwards over -x proxies behind it. 0, or -1 if it is no address. */
static int forwarded_addr(struct span v, char out[ADDR_LEN])
{
    unsigned char bin[16];
    size_t end = v.len;
    for (;;) {
        size_t start = end;
        while (start > 0 && v.p[start - 1] != ',')
            start--;
        struct span item = span_trim(span_of(v.p + start, end - start));
        if (item.len == 0 || item.len >= ADDR_LEN) return -1;
        memcpy(out, item.p, item.len);
        out[item.len] = '\0';
        if (addr_bin(out, bin) == 0) return -1;
        if (start == 0 || !addr_is_named_proxy(out)) return 0;
        end = start - 1;
    }
}

/* True if IPv6 address a is in a prefix of this machine's interfaces: a
 * neighbour. Asked each time (14 µs): a prefix that comes counts at once. */
static int addr_is_neighbour(const unsigned char a[16])
{
    struct ifaddrs *all;
    int found = 0;
    if (getifaddrs(&all) < 0) return 0;
    for (struct ifaddrs *i = all; i != NULL && !found; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_netmask == NULL || i->ifa_addr->sa_family != AF_INET6)
            continue;
        const unsigned char *net = ((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr.s6_addr;
        const unsigned char *mask = ((struct sockaddr_in6 *)i->ifa_netmask)->sin6_addr.s6_addr;
        int differ = 0;
        for (int b = 0; b < 16; b++)
            differ |= (a[b] ^ net[b]) & mask[b];
        found = !differ;
    }
    freeifaddrs(all);
    return found;
}

/* The 16 bytes by which an address is counted and penalised: IPv4 as
 * ::ffff:a.b.c.d; IPv6 whole on this machine's networks (a school's LAN
 * is one /64), else by its /64 (a machine elsewhere may hold a whole one). */
static void addr_host(const char *addr, unsigned char host[16])
{
    if (addr_bin(addr, host) == 6 && !addr_is_neighbour(host)) memset(host + 8, 0, 8);
}

/* What addr_host() counts, as text for the log: addr, or "PREFIX::/64". */
static const char *addr_unit(const char *addr, const unsigned char host[16], char out[ADDR_LEN + 4])
{
    unsigned char a[16];
    snprintf(out, ADDR_LEN + 4, "%s", addr);
    if (addr_bin(addr, a) == 6 && memcmp(a, host, 16) != 0 &&
        inet_ntop(AF_INET6, host, out, ADDR_LEN) != NULL)
        snprintf(out + strlen(out), 4, "/64");
    return out;
}

/* Set c's address, as text and as addr_host() counts it. */
static void conn_set_addr(struct conn *c, const char *addr)
{
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    addr_host(addr, c->host);
}

/* host's entry in table t (n slots) for this round of counting, begun at
 * 0 if it has none: an entry of an older round is free, so a search stops
 * there, as every slot before it was taken in this round. */
static struct tally *tally_of(struct tally *t, size_t n, const unsigned char host[16],
                              unsigned long round)
{
    for (size_t i = (size_t)(hash_of(host, 16) % n);; i = (i + 1) % n) {
        if (t[i].round != round) {
            t[i] = (struct tally){ { 0 }, round, 0, 0, 0 };
            memcpy(t[i].host, host, 16);
        }
        if (memcmp(t[i].host, host, 16) == 0) return &t[i];
    }
}

/* What c's address has done this pass: all its sockets share
 * MAX_FRAMES_PER_PASS frames and READ_CHUNK bytes, so that a student's 64
 * sockets cannot make a classmate wait 64 times as long (with -c 0, each
 * socket has its own share). */
static struct tally *share_of(struct conn *c)
{
    unsigned char key[16] = { 0 };
    if (c->share_pass == srv.pass) return c->share;     /* found once a pass */
    if (opt.max_per_addr > 0 && !c->own_page)
        memcpy(key, c->host, 16);
    else
        memcpy(key, &c->fd, sizeof c->fd);
    c->share_pass = srv.pass;
    return c->share = tally_of(srv.shares, SHARE_SLOTS, key, srv.pass);
}

/* read() from c into p[0..room), within its address's share of this pass:
 * -1 with EAGAIN once the share is spent, as if nothing had come, so that
 * a student sending without pause cannot keep the others waiting. */
static ssize_t read_share(struct conn *c, unsigned char *p, size_t room)
{
    struct tally *share = share_of(c);
    size_t want = READ_CHUNK - share->bytes;
    if (share->frames == MAX_FRAMES_PER_PASS || want == 0) {
        errno = EAGAIN;
        return -1;
    }
    ssize_t n = read(c->fd, p, want < room ? want : room);
    share->bytes += n > 0 ? (size_t)n : 0;
    c->log_credit += n > 0 ? 2 * (size_t)n : 0;     /* its log lines may cost that */
    return n;
}

/* Count a frame of c in its address's share; 0 if spent (c->backlog). */
static int share_frame(struct conn *c)
{
    struct tally *share = share_of(c);
    c->backlog = share->frames == MAX_FRAMES_PER_PASS;
    return c->backlog ? 0 : ++share->frames;
}

/* How many sockets come from host. */
static int count_from(const unsigned char host[16])
{
    int n = 0;
    for (int fd = 0; fd <= srv.max_fd; fd++)
        n += srv.conns[fd].state != CONN_FREE && memcmp(srv.conns[fd].host, host, 16) == 0;
    return n;
}

/* Say 503 in one write to a client just accepted from addr, and close it. */
static void refuse(int fd, const char *addr, const char *why)
{
    char answer[256], unit[ADDR_LEN + 4];
    unsigned char host[16];
    int n = snprintf(answer, sizeof answer, "HTTP/1.1 503 Service Unavailable\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n503: %s\n", strlen(why) + 6, why);
    addr_host(addr, host);
    log_refusal(addr_unit(addr, host, unit), 503, why, NULL);
    if (write(fd, answer, (size_t)n) < 0) {
        /* nothing more to do for this client */
    }
    close(fd);
}

/* Make room for a new handshake: drop the oldest one still waiting. */
static void drop_oldest_handshake(void)
{
    struct conn *oldest = NULL;
    char unit[ADDR_LEN + 4];
    for (int fd = 0; fd <= srv.max_fd; fd++)
        if (srv.conns[fd].state == CONN_HANDSHAKE &&
            (oldest == NULL || srv.conns[fd].accepted < oldest->accepted))
            oldest = &srv.conns[fd];
    if (oldest != NULL) {
        log_refusal(addr_unit(oldest->addr, oldest->host, unit), 503,
                    "handshake dropped for a newer one", NULL);
        conn_close(oldest);
    }
}

/* May a client just accepted from addr stay? Not if its address has -c
 * sockets already (a proxy we believe speaks for many): it hears 503. To
 * make room for its handshake, the oldest one still waiting may go. */
static int accept_allowed(int fd, const char *addr)
{
    unsigned char host[16];
    addr_host(addr, host);
    if (opt.max_per_addr > 0 && !addr_is_proxy(addr) && count_from(host) >= opt.max_per_addr) {
        refuse(fd, addr, "too many connections from your address (-c)");
        return 0;
    }
    if (srv.n_open + srv.n_pending >= MAX_CLIENTS + MAX_PENDING) drop_oldest_handshake();
    return 1;
}

/* The address holding the most seats (by_seats), or else the most bytes;
 * NULL if none. Each seat and socket is added to
 * its address's tally: one step each, however they are spread. */
static struct tally *holder_of_most(int by_seats)
{
    size_t n = sizeof srv.holdings / sizeof srv.holdings[0];
    struct tally *t, *most = NULL;
    srv.rounds++;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        const struct seat *s = &srv.seats[i];
        if (s->number == 0) continue;
        t = tally_of(srv.holdings, n, s->host, srv.rounds);
        t->seats++;
        t->bytes += s->push_bytes + (s->pushes ? MAX_SEAT_PUSHES * sizeof *s->pushes : 0);
    }
    for (int fd = 0; fd <= srv.max_fd; fd++) {
        const struct conn *c = &srv.conns[fd];
        if (c->state != CONN_FREE)
            tally_of(srv.holdings, n, c->host, srv.rounds)->bytes +=
                c->in.cap + c->out.cap + c->dec.msg.cap;
    }
    for (t = srv.holdings; t < srv.holdings + n; t++) {
        if (t->round != srv.rounds) continue;
        if (most == NULL || (by_seats ? t->seats > most->seats : t->bytes > most->bytes))
            most = t;
    }
    return most;
}

/* How many seats host holds; *oldest: its seat away the longest, or NULL. */
static int seats_of(const unsigned char host[16], struct seat **oldest)
{
    int n = 0;
    *oldest = NULL;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct seat *s = &srv.seats[i];
        if (s->number == 0 || memcmp(s->host, host, 16) != 0) continue;
        n++;
        if (s->conn == NULL && (*oldest == NULL || s->away_ms < (*oldest)->away_ms))
            *oldest = s;
    }
    return n;
}

/* The seat for a new connection c, or NULL (503): a free one, unless
 * c's address holds -c seats (then its own away the longest). When all
 * are taken, the one away the longest of the address holding the most,
 * if that is more than c's holds and one of its seats is away; else c's
 * own. So no classmate's seat goes while one address holds more. *why:
 * why its holder loses it. */
static struct seat *seat_for(const struct conn *c, const char **why)
{
    struct seat *mine, *theirs;
    int n = seats_of(c->host, &mine);
    *why = "that address holds -c seats";
    if (opt.max_per_addr > 0 && !c->own_page && n >= opt.max_per_addr) return mine;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (srv.seats[i].number == 0) return &srv.seats[i];
    *why = "the table of seats is full";
    struct tally *most = holder_of_most(1);
    if (most != NULL && most->seats > n && seats_of(most->host, &theirs) > 0 && theirs != NULL)
        return theirs;
    return mine;        /* its own seat away, or none: 503 */
}

/* The rules a valid handshake must pass too: -o (403), one connection a
 * key (409), MAX_CLIENTS, -c, a seat (503). Sets c->local, and c's address
 * to the one a proxy we believe names. Returns the seat c is to take, its
 * secret's (*why NULL) or seat_for()'s, or NULL once c is refused. */
static struct seat *handshake_allowed(struct conn *c, const struct http_request *r,
                                      const char **why)
{
    char fwd[ADDR_LEN];
    int listed = opt.n_origins == 0;
    for (int i = 0; i < opt.n_origins && r->origin.p != NULL; i++)
        listed |= span_is(r->origin, opt.origins[i]);
    c->local = addr_is_loopback(c->addr) && !r->proxied && r->host.p != NULL &&
               host_is_loopback(r->host) && (r->origin.p == NULL || origin_is_local(r->origin));
    /* Not counted with other sites' pages in the teacher's browser (-c). */
    c->own_page = c->local && r->origin.p != NULL;
    if (r->forwarded.p != NULL && addr_is_proxy(c->addr) && forwarded_addr(r->forwarded, fwd) == 0)
        conn_set_addr(c, fwd);
    struct seat *s = seat_by_secret(r->secret);
    *why = NULL;
    if (s == NULL) s = seat_for(c, why);
    if (!listed)
        http_error(c, 403, "origin not allowed");
    else if (seat_by_key(r->ws_key) != NULL)
        http_error(c, 409, "Sec-WebSocket-Key is already connected");
    else if (srv.n_open >= MAX_CLIENTS)
        http_error(c, 503, "server is full");
    else if (opt.max_per_addr > 0 && !c->own_page && count_from(c->host) > opt.max_per_addr)
        http_error(c, 503, "too many connections from your address (-c)");
    else if (s == NULL)
        http_error(c, 503, "no seat is free for your address");
    return c->state == CONN_HANDSHAKE ? s : NULL;
}

/* The record of wrong tokens from host, or a free one, or NULL. A record
 * stays MAX_PENALTY_S past its wait: a guesser keeps its count. */
static struct penalty *penalty_of(const unsigned char host[16])
{
    struct penalty *spare = NULL;
    for (int i = 0; i < PENALTY_SLOTS; i++) {
        struct penalty *p = &srv.penalties[i];
        int stale = srv.now_ms >= p->until_ms + MAX_PENALTY_S * 1000;
        if (p->failures > 0 && !stale && memcmp(p->host, host, 16) == 0) return p;
        if (spare == NULL && (p->failures == 0 || stale)) spare = p;
    }
    return spare;
}

/* May c become admin by sending r? 1 if so; else c hears why, and 0. A
 * wrong token makes its address wait 1, 2, 4 ... MAX_PENALTY_S s, and
 * MAX_TOKEN_FAILURES close the connection (1008). While every record is
 * held, a new address's guess is not weighed; the right token from this
 * machine always is: the teacher is never locked out by others' guesses. */
static int may_be_admin(struct conn *c, const struct request *r)
{
    struct span token = r->field[F_TOKEN];
    int guess = opt.token != NULL && token.p != NULL;
    char unit[ADDR_LEN + 4], wait[128];
    if (opt.anyone_admin || (opt.token == NULL && c->local) ||
        (guess && c->local && token_matches(token, opt.token)))
        return 1;
    struct penalty *p = guess ? penalty_of(c->host) : NULL;
    int known = p != NULL && p->failures > 0 && memcmp(p->host, c->host, 16) == 0;
    if (guess && p == NULL) {
        reply_error(c, "wrong admin tokens came from many addresses: wait a minute, "
                    "then try again");
        return 0;
    }
    if (guess && known && srv.now_ms < p->until_ms) {
        snprintf(wait, sizeof wait, "too many wrong admin tokens from your address: wait "
                 "%d s, then try again", (int)((p->until_ms - srv.now_ms + 999) / 1000));
        reply_error(c, wait);
        return 0;
    }
    if (guess && token_matches(token, opt.token)) {
        if (known)
            p->failures = 0;    /* the record is free again */
        return 1;
    }
    const char *why = guess ? "wrong admin token"
        : opt.token ? "admin token required: send \"token\" with \"get connections\""
        : "admins must connect from the machine running wspush, from one of its pages "
          "(or the server must be started with -t TOKEN)";
    log_refusal(addr_unit(c->addr, c->host, unit), 0, why, c);
    reply_error(c, why);
    if (!guess) return 0;
    if (!known) *p = (struct penalty){ { 0 }, 0, 0 };
    memcpy(p->host, c->host, 16);
    int wait_s = p->failures < 6 ? 1 << p->failures : MAX_PENALTY_S;
    p->until_ms = srv.now_ms + (int64_t)wait_s * 1000;
    p->failures++;
    log_line(NULL, "Admin attempts from %s wait %d s after %d wrong tokens", unit, wait_s,
             p->failures);
    if (++c->token_failures >= MAX_TOKEN_FAILURES)
        conn_fail(c, CLOSE_POLICY, "too many wrong admin tokens");
    return 0;
}

/* The seats away of the address holding the most lose their pushes.
 * Returns 1 if any did. Safe in a handler: it closes no connection. */
static int shed_pushes(void)
{
    struct tally *most = holder_of_most(0);
    int dropped = 0;
    for (int i = 0; most != NULL && i < MAX_CLIENTS; i++) {
        struct seat *s = &srv.seats[i];
        if (s->number == 0 || s->conn != NULL || s->pushes == NULL ||
            memcmp(s->host, most->host, 16) != 0)
            continue;
        seat_drop_pushes(s, "the server's memory budget (-M) was spent");     /* logged */
        dropped = 1;
    }
    return dropped;
}

/* Keep all buffers within -M: give back what empty buffers hold (a buffer
 * keeps its size after a big message); while still over, take from the
 * address holding the most: its seats away lose their pushes, or its
 * largest connection goes (1009 for a message too big to keep). */
static void shed_load(void)
{
    for (int fd = 0; fd <= srv.max_fd && srv.buffered - srv.reply.cap > opt.max_buffered; fd++) {
        struct conn *c = &srv.conns[fd];
        if (c->in.len == 0) buf_free(&c->in);
        if (c->out.len == 0) buf_free(&c->out);
        if (c->dec.msg_opcode == 0)     /* no message being put together */
            buf_free(&c->dec.msg);
    }
    while (srv.buffered - srv.reply.cap > opt.max_buffered) {
        if (shed_pushes()) continue;
        struct tally *most = holder_of_most(0);
        struct conn *big = NULL;
        size_t held = 0;
        for (int fd = 0; most != NULL && fd <= srv.max_fd; fd++) {
            struct conn *c = &srv.conns[fd];
            size_t bytes = c->in.cap + c->out.cap + c->dec.msg.cap;
            if (c->state != CONN_FREE && memcmp(c->host, most->host, 16) == 0 && bytes >= held) {
                big = c;
                held = bytes;
            }
        }
        if (big == NULL) return;
        log_line(NULL, "Over the memory budget (-M): dropping %zu bytes of %s", held, big->addr);
        if (big->state == CONN_OPEN && big->out.cap <= big->in.cap + big->dec.msg.cap) {
            buf_free(&big->in);
            buf_free(&big->dec.msg);
            conn_fail(big, CLOSE_TOO_BIG, "the server's memory budget is spent");
        } else {
            conn_close(big);
        }
    }
}
/* ==================== 17. Connection I/O [first reading] ====================
 * A socket's life: conn_open() when accepted; ws_open() when its handshake
 * is good (else an HTTP answer: a file or an error); frames until a close;
 * conn_closing() says goodbye, and conn_close() frees it. Bytes are read
 * into srv.read_buf behind what was left from last time and parsed there;
 * only an unfinished tail is kept, in c->in. Replies wait in c->out until
 * the loop writes them. While c's own replies wait past -s, c is not read:
 * it waits too (flow control, as TCP means it). */

/* Take conns[fd] for a socket just accepted from addr. */
static struct conn *conn_open(int fd, const char *addr)
{
    struct conn *c = &srv.conns[fd];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    snprintf(c->tag, sizeof c->tag, "[%d] ", fd);
    c->state = CONN_HANDSHAKE;
    conn_set_addr(c, addr);
    c->deadline_ms = srv.now_ms + (int64_t)opt.handshake_timeout_s * 1000;
    timer_at(c->deadline_ms);
    c->accepted = ++srv.n_accepted;
    c->dec.max_message = opt.max_message;
    c->dec.text_only = !opt.raw_echo;
    srv.n_pending++;
    srv.max_fd = fd > srv.max_fd ? fd : srv.max_fd;
    FD_SET(fd, &srv.read_fds);
    return c;
}

/* c leaves the table, if it was in it: tell the log and the watchers. */
static void conn_leave(struct conn *c)
{
    srv.n_pending -= c->state == CONN_HANDSHAKE;
    if (c->state != CONN_OPEN) return;
    lookup_remove(c);
    srv.n_open--;
    c->state = CONN_CLOSING;
    seat_leave(c);              /* it waits, or is gone (section 14) */
    log_event("Peer %s disconnected.", c->addr);
    log_roles("Current active connections (close event)");
}

/* Close the socket and free its conn with all it holds. */
static void conn_close(struct conn *c)
{
    conn_leave(c);
    FD_CLR(c->fd, &srv.read_fds);
    FD_CLR(c->fd, &srv.write_fds);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->dec.msg);
    c->state = CONN_FREE;
    while (srv.max_fd > srv.listen_fd && srv.conns[srv.max_fd].state == CONN_FREE)
        srv.max_fd--;
}

/* Queue a frame (FIN set, no mask) of p[0..len) for c: 0, or -1 if not. */
static int queue_frame(struct conn *c, int opcode, const void *p, size_t len)
{
    unsigned char head[10];
    size_t head_len = frame_header(head, opcode, len), start = c->out.len;
    if (len > SIZE_MAX - head_len || buf_reserve(&c->out, head_len + len) == NULL)
        return -1;
    buf_append(&c->out, head, head_len);
    buf_append(&c->out, p, len);
    if (start == 0)             /* the queue's clock runs (section 19) */
        timer_at(srv.now_ms + SEND_TIMEOUT_S * 1000);
    c->dirty = 1;
    FD_SET(c->fd, &srv.write_fds);
    trace_frame(c, "->", &(struct frame){ .fin = 1, .opcode = opcode, .len = len,
                                          .head_len = head_len }, p, 0, 0);
    return 0;
}

/* The head is a valid handshake: unless a rule of section 16 refuses it,
 * answer 101 (§4.2.2); c is a user in the table, on a seat. */
static void ws_open(struct conn *c, const struct http_request *r)
{
    char accept_key[ACCEPT_LEN + 1], answer[256], hex[SHA1_DIGEST_LEN * 2 + 1];
    unsigned char digest[SHA1_DIGEST_LEN];
    const char *why;
    struct seat *seat = handshake_allowed(c, r, &why);  /* section 16 */
    if (seat == NULL) return;
    ws_accept(r->ws_key, accept_key, digest);
    int n = snprintf(answer, sizeof answer,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept_key,
                     r->offers_echo ? "Sec-WebSocket-Protocol: " WS_PROTOCOL "\r\n" : "");
    if (buf_append(&c->out, answer, (size_t)n) < 0) {
        http_error(c, 500, "out of memory");
        return;
    }
    hex_of(hex, digest, SHA1_DIGEST_LEN);
    trace(c, "key %.*s + GUID %s", (int)r->ws_key.len, (const char *)r->ws_key.p, WS_GUID);
    trace(c, "SHA-1 = %s; base64 = %s = Sec-WebSocket-Accept", hex, accept_key);
    trace_lines(c, "->", (const unsigned char *)answer, (size_t)n);
    c->dirty = 1;
    memcpy(c->key, r->ws_key.p, KEY_TEXT_LEN);
    c->state = CONN_OPEN;
    c->last_heard_ms = c->progress_ms = srv.now_ms;
    timer_at(srv.now_ms + (int64_t)opt.ping_interval_s * 1000);
    lookup_add(c);
    srv.n_open++;
    srv.n_pending--;
    log_event("Connection accepted. User key: %s", c->key);
    seat_attach(c, seat, why);  /* a user, new or back (section 14) */
    log_roles("Current active connections");
}

/* Handle a control frame (§5.5) the decoder has put together. */
static void on_control(struct conn *c, int opcode, const unsigned char *p, size_t len)
{
    struct failure f;
    unsigned code;
    if (opcode == OP_PING)              /* §5.5.2: pong the same payload */
        queue_frame(c, OP_PONG, p, len);
    if (opcode != OP_CLOSE)             /* §5.5.3: a pong needs nothing  */
        return;
    c->close_seen = 1;
    if (close_parse(p, len, &code, &f) != PARSE_DONE)
        conn_fail(c, f.code, f.why);
    else                                /* §5.5.1: echo the code         */
        conn_send_close(c, code == CLOSE_NO_STATUS ? 0 : code, "");
}

/* Run p[0..len) through d until a frame is complete; *used says how many
 * bytes it took. Returns PARSE_MORE, PARSE_DONE (d->fr is the frame; if
 * d->ready, d->opcode/data/data_len hold a whole message or control
 * frame), or PARSE_FAIL. A one-frame message all here is unmasked in
 * place; other payload goes to d->msg as it arrives, so memory grows with
 * the bytes received, never with a length a header claims. */
static enum parse frame_decode(struct decoder *d, unsigned char *p, size_t len,
                               size_t *used, struct failure *f)
{
    size_t pos = 0;
    *used = 0;
    if (d->ready && d->opcode < OP_CLOSE)
        d->msg.len = 0;         /* the last message was handed out */
    d->ready = 0;
    if (!d->in_frame) {
        enum parse r = frame_parse(p, len, &d->fr, f);
        if (r != PARSE_DONE) return r;
        if (d->fr.opcode < OP_CLOSE && frame_start_data(d, f) != PARSE_DONE)
            return PARSE_FAIL;
        pos = d->fr.head_len;
        d->in_frame = 1;
        d->got = 0;
    }
    int data = d->fr.opcode < OP_CLOSE;
    size_t n = d->fr.len - d->got < len - pos ? (size_t)(d->fr.len - d->got) : len - pos;
    int whole = data && d->got == 0 && n == d->fr.len && d->fr.fin && d->fr.opcode != OP_CONT;
    unsigned char *src = p + pos, *dst = src;
    if (!data)
        dst = d->ctl + d->got;
    else if (!whole && n > 0 && (dst = buf_reserve(&d->msg, n)) == NULL)
        return fail(f, CLOSE_INTERNAL_ERROR, "out of memory");
    frame_unmask(dst, src, n, d->fr.mask, d->got);
    d->got += n;
    if (data && !whole)
        d->msg.len += n;
    *used = pos + n;
    /* §8.1: fail fast, at the first byte that cannot be UTF-8. */
    if (data && d->msg_opcode == OP_TEXT && utf8_check(&d->utf8, dst, n) < 0)
        return fail(f, CLOSE_BAD_DATA, "text is not valid UTF-8");
    if (d->got < d->fr.len) return PARSE_MORE;
    if (!whole && !data) return frame_done(d, d->ctl, f);
    if (!whole && d->fr.len == 0)
        return frame_done(d, src, f);           /* nothing to point into */
    if (!whole)                                 /* its data ends d->msg */
        return frame_done(d, d->msg.data + d->msg.len - d->fr.len, f);
    enum parse r = frame_done(d, dst, f);
    d->data = dst;              /* the message is where it arrived */
    d->data_len = n;
    return r;
}

/* Run WebSocket bytes p[0..len) through c's decoder, acting on each
 * message and control frame. Returns the bytes used: all, but part of a
 * frame header, or what waits while c is paused or its share is spent. */
static size_t conn_on_frames(struct conn *c, unsigned char *p, size_t len)
{
    size_t pos = 0, used;
    struct failure f;
    struct decoder *d = &c->dec;
    while (c->state == CONN_OPEN) {
        /* Flow control: while our replies to c wait, c waits too. */
        if (c->out.len > opt.max_queue && !d->in_frame) {
            c->paused = 1;
            FD_CLR(c->fd, &srv.read_fds);
            return pos;
        }
        if (pos < len && !share_frame(c))  /* its address's frames this pass */
            return pos;         /* are spent (section 16): the rest waits */
        enum parse r = frame_decode(d, p + pos, len - pos, &used, &f);
        pos += used;
        if (r == PARSE_MORE) return pos;
        if (r == PARSE_FAIL && f.code == CLOSE_TOO_BIG && d->fr.len <= opt.max_message)
            c->due_why = f.why;         /* conn_fail(): 1009 once it ends */
        if (r == PARSE_FAIL)
            conn_fail(c, f.code, f.why);
        else
            trace_frame_in(c);          /* -v (section 12) */
        if (r == PARSE_DONE && d->ready && d->opcode >= OP_CLOSE)
            on_control(c, d->opcode, d->data, d->data_len);
        else if (r == PARSE_DONE && d->ready)
            on_message(c, d->opcode, d->data, d->data_len);
    }
    return pos;                 /* closing: the rest is section 18's */
}

/* Act on srv.read_buf[0..len): c's leftover and what was just read. What
 * is left unparsed is kept in c->in for next time. */
static void conn_input(struct conn *c, size_t len)
{
    unsigned char *p = srv.read_buf;
    size_t pos = 0;
    if (c->state == CONN_HANDSHAKE) {
        struct http_request r;
        struct failure f;
        enum http_kind kind;
        enum parse parsed = http_parse_head(p, len, &r, &f);
        pos = parsed == PARSE_DONE ? r.head_len : len;  /* frames may follow */
        if (parsed != PARSE_MORE)
            trace_lines(c, "<-", p, pos);
        if (parsed == PARSE_MORE)
            pos = 0;                    /* the head is not all here yet */
        else if (parsed == PARSE_FAIL || http_check(&r, &kind, &f) != PARSE_DONE)
            http_error(c, f.code, f.why);
        else if (kind == HTTP_FILE)
            serve_file(c, &r);
        else
            ws_open(c, &r);
    }
    if (c->state == CONN_OPEN)
        pos += conn_on_frames(c, p + pos, len - pos);
    if (c->state == CONN_CLOSING)
        pos += conn_skip_frames(c, p + pos, len - pos);
    c->in.len = 0;
    if (c->state != CONN_OPEN)  /* only now: on_message() read it till it returned */
        buf_free(&c->dec.msg);
    if (pos < len && buf_append(&c->in, p + pos, len - pos) < 0)
        conn_close(c);
}

/* Act again on what c->in holds, without reading: frames left from the
 * last pass (c->backlog), or held while c was paused. */
static void conn_again(struct conn *c)
{
    c->backlog = share_of(c)->frames == MAX_FRAMES_PER_PASS;
    if (c->backlog) return;     /* its address's share is spent: next pass */
    if (c->in.len > 0)
        memcpy(srv.read_buf, c->in.data, c->in.len);
    conn_input(c, c->in.len);
}

/* Read what c's peer sent, behind what c->in kept, and act on it; the end
 * of the stream means the peer is gone. */
static void conn_read(struct conn *c)
{
    int junk = c->state == CONN_CLOSING && c->close_seen;  /* read on, unused */
    size_t have = junk ? 0 : c->in.len;
    if (c->paused)
        return;                 /* flow control: c waits for its replies */
    /* read(), within its address's share of this pass (section 16) */
    ssize_t n = read_share(c, srv.read_buf + have, sizeof srv.read_buf - have);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;                 /* nothing after all, or not its turn */
    if (n <= 0) {
        conn_close(c);
        return;
    }
    if (have > 0)
        memcpy(srv.read_buf, c->in.data, have);
    c->last_heard_ms = srv.now_ms;
    c->ping_sent_ms = 0;
    if (!junk)
        conn_input(c, have + (size_t)n);
}

/* Write what c has queued, once. A watcher first gets the user list it
 * is owed, if it may (section 14); a paused c is read again once its
 * queue is down to half of -s; a goodbye, all written, shuts our side. */
static void conn_flush(struct conn *c)
{
    c->dirty = 0;
    int owed = list_due(c);     /* a list waits for the queue to empty */
    ssize_t n = c->out.len > 0 ? write(c->fd, c->out.data, c->out.len) : 0;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        conn_close(c);          /* reset by the peer, or broken pipe */
        return;
    }
    if (n > 0) {
        memmove(c->out.data, c->out.data + n, c->out.len - (size_t)n);
        c->out.len -= (size_t)n;
        c->drained += (size_t)n;
    }
    if ((c->out.len == 0 && !c->paused) || c->drained >= opt.max_queue / 2) {
        c->progress_ms = srv.now_ms;    /* caught up, or moving well */
        c->drained = 0;
    }
    if (c->out.len == 0 && !owed)
        FD_CLR(c->fd, &srv.write_fds);
    if (c->state == CONN_CLOSING && c->out.len == 0 && !c->due_why && !c->write_shut) {
        shutdown(c->fd, SHUT_WR);
        c->write_shut = 1;
    }
    if (c->paused && c->state == CONN_OPEN && c->out.len <= opt.max_queue / 2) {
        c->paused = 0;
        FD_SET(c->fd, &srv.read_fds);
        conn_again(c);
    }
}
/* ============== 18. Goodbyes, HTTP answers, files [second reading] ==========
 * Closing (§7.1): queue a close frame; once it is written, shut down our
 * side; read on, looking for the peer's close, until the peer closes its
 * side; then close, within CLOSE_TIMEOUT_S. (Closing a socket with unread
 * data makes the kernel reset the connection: the peer would lose our
 * close.) An HTTP answer ends the same way. A file's path is checked
 * before it comes near the file system, and the real file must lie inside
 * the www folder; pages may be neither framed nor talk to other servers. */
#define PAGE_HEADERS "Cache-Control: no-cache\r\nX-Frame-Options: DENY\r\n" \
    "Content-Security-Policy: connect-src 'self'; frame-ancestors 'none'\r\n"

/* Begin saying goodbye: the socket closes within CLOSE_TIMEOUT_S. */
static void conn_closing(struct conn *c)
{
    conn_leave(c);
    c->state = CONN_CLOSING;
    c->paused = 0;
    c->skip = c->dec.in_frame ? c->dec.fr.len - c->dec.got : 0;
    c->deadline_ms = srv.now_ms + CLOSE_TIMEOUT_S * 1000;
    timer_at(c->deadline_ms);
    buf_free(&c->in);           /* c->dec.msg: at the end of conn_input() */
    FD_SET(c->fd, &srv.read_fds);
    FD_SET(c->fd, &srv.write_fds);
}

/* Queue a close frame (code 0: no payload), even past -s; start closing. */
static void conn_send_close(struct conn *c, unsigned code, const char *why)
{
    unsigned char payload[MAX_CONTROL_PAYLOAD];
    size_t n = code == 0 ? 0 : 2 + strlen(why);
    n = n > MAX_CONTROL_PAYLOAD ? MAX_CONTROL_PAYLOAD : n;
    payload[0] = (unsigned char)(code >> 8);
    payload[1] = (unsigned char)code;
    memcpy(payload + 2, why, n > 2 ? n - 2 : 0);
    queue_frame(c, OP_CLOSE, payload, n);
    if (c->state != CONN_CLOSING) conn_closing(c);
}

/* Send the close 1009 that waited for the end of a message over -m: a
 * browser told to stop while still sending calls the close unclean. */
static void close_when_due(struct conn *c)
{
    if (c->due_why != NULL) conn_send_close(c, CLOSE_TOO_BIG, c->due_why);
    c->due_why = NULL;
}

/* Closing: pass over the peer's frames until its close (or bytes that are
 * no frame). Returns the bytes used: all but part of a frame header. */
static size_t conn_skip_frames(struct conn *c, const unsigned char *p, size_t len)
{
    struct frame fr;
    struct failure f;
    size_t pos = 0;
    while (!c->close_seen) {
        size_t n = c->skip < len - pos ? (size_t)c->skip : len - pos;
        c->skip -= n;
        pos += n;
        if (c->skip == 0 && c->dec.fr.fin && c->dec.fr.opcode < OP_CLOSE)
            close_when_due(c);          /* the message has ended */
        enum parse r = frame_parse(p + pos, len - pos, &fr, &f);
        if (r == PARSE_MORE) return pos;
        c->dec.fr = fr;
        c->close_seen = r == PARSE_FAIL || fr.opcode == OP_CLOSE;
        c->skip = r == PARSE_DONE ? fr.len : 0;
        pos += r == PARSE_DONE ? fr.head_len : 0;
    }
    close_when_due(c);
    return len;
}

/* Fail c if it is open (§7.1.7): log why, and queue the close code (after
 * a message over -m ends, for a 1009); goodbyes take it from there. */
static void conn_fail(struct conn *c, int code, const char *why)
{
    if (c->state != CONN_OPEN) return;
    if (!opt.quiet || code < CLOSE_KICKED)  /* 4000, 4001: events, not faults */
        log_line(NULL, "Closing %s (%s): %d %s", c->key, c->addr, code, why);
    trace(c, "failing: close %d (%s): %s", code, close_meaning((unsigned)code), why);
    if (c->due_why != NULL)
        conn_closing(c);        /* the close goes when the message ends */
    else
        conn_send_close(c, (unsigned)code, why);
}

/* Answer with status, extra headers and body (head_only: HEAD), and close. */
static void http_answer(struct conn *c, int status, const char *headers,
                        const char *type, const void *body, size_t len, int head_only)
{
    char head[1024];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nServer: wspush\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
                     "X-Content-Type-Options: nosniff\r\n%s\r\n",
                     status, http_reason(status), type, len, headers);
    if (n < 0 || (size_t)n >= sizeof head || buf_append(&c->out, head, (size_t)n) < 0 ||
        (!head_only && buf_append(&c->out, body, len) < 0))
        buf_free(&c->out);
    trace(c, "-> HTTP/1.1 %d %s", status, http_reason(status));
    c->dirty = 1;
    c->close_seen = 1;          /* HTTP has no close frame to wait for */
    conn_closing(c);
}

/* Answer an error status with its reason as a one-line text body. */
static void http_error(struct conn *c, int status, const char *why)
{
    char body[160];
    snprintf(body, sizeof body, "%d %s: %s\n", status, http_reason(status), why);
    const char *extra = status == 426 ? "Sec-WebSocket-Version: 13\r\n"
                      : status == 405 ? "Allow: GET, HEAD\r\n" : "";
    char unit[ADDR_LEN + 4];
    log_refusal(addr_unit(c->addr, c->host, unit), status, why, NULL);
    trace(c, "refused: %d %s", status, why);
    http_answer(c, status, extra, "text/plain; charset=utf-8", body, strlen(body), 0);
}

/* The target as a path under www/ in out[0..cap), or 400, 403 or 404. */
static enum parse url_to_path(struct span t, char *out, size_t cap, struct failure *f)
{
    size_t len = 0, o = 0;
    while (len < t.len && t.p[len] != '?' && t.p[len] != '#')
        len++;
    if (len == 0 || t.p[0] != '/') return fail(f, 400, "expected a path starting with /");
    for (size_t i = 1; i < len; i++) {
        int c = t.p[i], encoded = c == '%';
        int hi = encoded && i + 2 < len ? hex_value(t.p[i + 1]) : -1;
        int lo = encoded && i + 2 < len ? hex_value(t.p[i + 2]) : -1;
        if (encoded && (hi < 0 || lo < 0)) return fail(f, 400, "bad %-escape in the path");
        c = encoded ? hi * 16 + lo : c;
        i += encoded ? 2 : 0;
        /* An encoded slash or NUL has no honest use in a file name. */
        if (c == 0 || (encoded && c == '/'))
            return fail(f, 403, "encoded / or NUL in the path");
        if (c == '\\') return fail(f, 403, "backslash in the path");
        if (c == '.' && (o == 0 || out[o - 1] == '/'))     /* ".", ".." and .git */
            return fail(f, 403, "path segments may not start with a dot");
        if (c == '/' && (o == 0 || out[o - 1] == '/')) continue;
        if (o + sizeof "index.html" >= cap) return fail(f, 404, "path too long");
        out[o++] = (char)c;
    }
    if (o == 0 || out[o - 1] == '/')            /* a folder: its index.html */
        o += (size_t)snprintf(out + o, cap - o, "index.html");
    out[o] = '\0';
    return PARSE_DONE;
}

/* Read the regular file at path, which must lie inside the www folder
 * after symlinks, into body: PARSE_DONE, or PARSE_FAIL with 403-500. */
static enum parse file_read(const char *path, struct buf *body, struct failure *f)
{
    char real[PATH_MAX];
    struct stat st;
    size_t root_len = strlen(opt.www);
    if (realpath(path, real) == NULL) return fail(f, 404, "no such page");
    if (strncmp(real, opt.www, root_len) != 0 || real[root_len] != '/')
        return fail(f, 403, "that file lies outside the www folder");
    int fd = open(real, O_RDONLY);
    if (fd < 0) return fail(f, 404, "no such page");
    enum parse r = PARSE_DONE;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        r = fail(f, 404, "no such page");
    else if (st.st_size > MAX_FILE_SIZE)
        r = fail(f, 500, "file is larger than wspush serves");
    else if (buf_reserve(body, (size_t)st.st_size) == NULL)
        r = fail(f, 500, "out of memory");
    while (r == PARSE_DONE && body->len < (size_t)st.st_size) {
        ssize_t n = read(fd, body->data + body->len, (size_t)st.st_size - body->len);
        if (n <= 0)
            r = fail(f, 500, "could not read the file");
        else
            body->len += (size_t)n;
    }
    close(fd);
    return r;
}

/* The Content-Type for a file name, by its extension. */
static const char *content_type(const char *path)
{
    static const char *const types[][2] = {
        { ".html", "text/html; charset=utf-8" }, { ".css", "text/css; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" }, { ".json", "application/json" },
        { ".txt", "text/plain; charset=utf-8" }, { ".svg", "image/svg+xml" },
        { ".png", "image/png" }, { ".ico", "image/x-icon" },
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot != NULL && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i][0]) == 0) return types[i][1];
    return "application/octet-stream";
}

/* Serve a plain GET or HEAD from the www folder. */
static void serve_file(struct conn *c, const struct http_request *r)
{
    struct failure f;
    struct buf body = { NULL, 0, 0 };
    char rel[MAX_PATH_LEN], path[PATH_MAX + MAX_PATH_LEN + 2], line[LOG_LINE_MAX];
    size_t from, to;
    query_of(r->target, &from, &to);
    text_escape(line, r->target.p, r->target.len, LOG_MESSAGE_MAX, from, to);
    if (!opt.quiet) log_line("", "Received request for %s", line);
    enum parse p = opt.www ? url_to_path(r->target, rel, sizeof rel, &f)
                           : fail(&f, 404, "no such page");
    snprintf(path, sizeof path, "%s/%s", opt.www ? opt.www : "", p == PARSE_DONE ? rel : "");
    if (p == PARSE_DONE && file_read(path, &body, &f) == PARSE_DONE)
        http_answer(c, 200, PAGE_HEADERS, content_type(rel), body.data, body.len,
                    span_is(r->method, "HEAD"));
    else
        http_error(c, f.code, f.why);
    buf_free(&body);
}
/* ========================= 19. Timers [second reading] ======================
 * Every deadline is a time on clock_ms(). timer_at() keeps the soonest;
 * select() sleeps until then, and timers() fires what is due and finds
 * the next, so each timeout holds to within a few milliseconds and an
 * idle server sleeps as long as nothing is due. */

/* Fire c's timers that are due; return when its next one is, or 0. A
 * handshake or goodbye past its deadline is dropped; a queue that neither
 * emptied nor moved by -s/2 in SEND_TIMEOUT_S is not read (the kernel may
 * still take a trickle): 1008; a client silent for -i seconds is pinged,
 * and dropped if silent -k seconds more. */
static int64_t conn_timers(struct conn *c)
{
    int64_t now = srv.now_ms, stall = c->progress_ms + SEND_TIMEOUT_S * 1000;
    int64_t ping = c->last_heard_ms + (int64_t)opt.ping_interval_s * 1000;
    int64_t pong = c->ping_sent_ms + (int64_t)opt.pong_timeout_s * 1000;
    if (c->state != CONN_OPEN && now < c->deadline_ms) return c->deadline_ms;
    if (c->due_why != NULL) {           /* the message never ended */
        close_when_due(c);
        c->deadline_ms = now + CLOSE_TIMEOUT_S * 1000;
        return c->deadline_ms;
    }
    if (c->state == CONN_HANDSHAKE) log_line(NULL, "Handshake from %s timed out", c->addr);
    if (c->state != CONN_OPEN) {
        conn_close(c);
        return 0;
    }
    if (c->out.len > 0 && now >= stall) {
        log_line(NULL, "Peer %s is not reading: %zu bytes queued", c->addr, c->out.len);
        conn_fail(c, CLOSE_POLICY, "client is not reading its messages");
        return c->deadline_ms;
    }
    if (c->paused)
        return stall;           /* not read now: the queue's clock rules */
    if (c->ping_sent_ms != 0 && now >= pong) {
        log_line(NULL, "Peer %s did not answer a ping in %d s", c->addr, opt.pong_timeout_s);
        conn_close(c);
        return 0;
    }
    if (c->ping_sent_ms == 0 && now >= ping) {
        c->ping_sent_ms = now;
        pong = now + (int64_t)opt.pong_timeout_s * 1000;
        queue_frame(c, OP_PING, "", 0);
    }
    int64_t next = c->ping_sent_ms != 0 ? pong : ping;
    if (c->out.len > 0 && stall < next) next = stall;
    if (c->list_due && now >= c->list_ms + LIST_INTERVAL_MS)
        FD_SET(c->fd, &srv.write_fds);  /* its list may go (conn_flush()) */
    else if (c->list_due && c->list_ms + LIST_INTERVAL_MS < next)
        next = c->list_ms + LIST_INTERVAL_MS;
    return next;
}

/* Fire the timers that are due, and find when the next one is. */
static void timers(void)
{
    srv.next_timer_ms = 0;
    refusals_due();
    seats_due();
    if (srv.table_due) log_roles(NULL);
    for (int fd = 0; fd <= srv.max_fd; fd++)
        if (srv.conns[fd].state != CONN_FREE) timer_at(conn_timers(&srv.conns[fd]));
}

/* ============== 20. The command line and start-up [second reading] ==========
 * Flags set the fields of opt; a bad one prints the usage and exits 2.
 * Start-up problems end wspush with a message and exit 1; once the loop
 * runs, nothing a client does ends the server. */
#ifndef WWW_INSTALLED           /* "make install" sets it to PREFIX's */
#define WWW_INSTALLED "/usr/local/share/wspush/www"
#endif

/* The flags and every limit (README lists them too). */
static void usage(FILE *out)
{
    fprintf(out,
"usage: wspush [-p PORT] [-b ADDR] [-d DIR] [-m BYTES] [-s BYTES] [-M BYTES]\n"
"              [-c N] [-T SEC] [-i SEC] [-k SEC] [-g SEC] [-t TOKEN]\n"
"              [-o ORIGIN]... [-x ADDR]... [-A] [-e] [-q] [-v] [-h] [--version]\n"
"A WebSocket push server: users are echoed, admins list and push to users.\n"
"  -p PORT    port to listen on (default %d; 0 picks a free one)\n"
"  -b ADDR    listen on this IPv4/IPv6 address only (default: all)\n"
"  -d DIR     serve files from DIR (default: ./www, else\n"
"             %s)\n"
"  -m BYTES   largest message accepted (default %d); more -> close 1009\n"
"  -s BYTES   unsent bytes per client (default %d): past it, its own\n"
"             replies pause its reading, and pushes to it close it (1008)\n"
"  -M BYTES   all buffers and pushes (default %d); past it, the address\n"
"             holding the most loses its seats' pushes, then a connection\n"
"  -c N       sockets (-> 503) and seats from one address (default %d; 0:\n"
"             no cap, each socket its own share of a pass); wspush's pages on\n"
"             this machine uncapped; IPv6 on its networks whole, else by /64\n"
"  -T SEC     a handshake must be done within SEC seconds (default %d)\n"
"  -i SEC     ping a client silent for SEC seconds (default %d)\n"
"  -k SEC     drop it if the ping is unanswered SEC seconds later (default %d)\n"
"  -g SEC     a page's seat (if it asked for one) waits, away, this long\n"
"             after its connection ends (default %d); pushes to it wait\n"
"  -t TOKEN   admins must send this token, %d characters or more (or set\n"
"             WSPUSH_ADMIN_TOKEN); \"random\" makes one, printed once\n"
"  -o ORIGIN  only browsers of this Origin (repeatable, up to %d); no programs\n"
"  -x ADDR    a proxy whose X-Forwarded-For we believe, besides this machine\n"
"             (repeatable, up to %d): its last entry names the client,\n"
"             passing leftwards over entries that are -x proxies\n"
"  -A         anyone may become admin, as in the tutorial (unsafe)\n"
"  -e         raw echo: echo every message verbatim, no JSON\n"
"  -q         quiet: start-up, shutdown, refusals, warnings, errors (no lines\n"
"             for messages, connections, seats, role tables, 4000/4001)\n"
"  -v         trace every step of the protocol\n"
"  -h, --help this help; --version, the version\n"
"Fixed: %d open WebSockets (more -> 503), %d more sockets for handshakes\n"
"(past them, the oldest is dropped); heads of %d bytes (more -> 431); files\n"
"of %d bytes, paths of %d; JSON %d deep; names of %d characters, %d a\n"
"second; a watcher's lists %d ms apart; %d of this machine's addresses\n"
"shown; a seat answers to %d keys, keeps %d pushes not seen (and -s bytes),\n"
"\"ref\"s of %d bytes, and counts its drops (up to %d) over %d s; %d wrong\n"
"tokens close a connection, each makes its address wait 1, 2, 4 ... %d s\n"
"(%d addresses kept, each %d s past its wait); a queue stuck %d s -> 1008;\n"
"%d s to finish a close, %d s to shut down; refusals logged once a burst of\n"
"%d s (%d kept); %d bytes of log wait for stdout (then lines are dropped),\n"
"a role table once in %d s; an address reads %d bytes and handles %d frames\n"
"a pass of the loop (%d shares kept); %d accepts a wake-up; logs show %d\n"
"bytes of a message and %d roles, -v %d bytes of a frame; %d key slots.\n",
            DEFAULT_PORT, WWW_INSTALLED, DEFAULT_MAX_MESSAGE, DEFAULT_MAX_QUEUE,
            DEFAULT_MAX_BUFFERED, DEFAULT_MAX_PER_ADDR, DEFAULT_HANDSHAKE_TIMEOUT_S,
            DEFAULT_PING_INTERVAL_S, DEFAULT_PONG_TIMEOUT_S, DEFAULT_GRACE_S, MIN_TOKEN_CHARS,
            MAX_ORIGINS, MAX_PROXIES, MAX_CLIENTS, MAX_PENDING, MAX_REQUEST_HEAD, MAX_FILE_SIZE,
            MAX_PATH_LEN, MAX_JSON_DEPTH, MAX_NAME_CHARS, MAX_NAMES_PER_S, LIST_INTERVAL_MS,
            MAX_ADDRESSES, SEAT_KEYS, MAX_SEAT_PUSHES, MAX_REF_LEN, DROPS_KEPT, DROPS_WINDOW_S,
            MAX_TOKEN_FAILURES, MAX_PENALTY_S, PENALTY_SLOTS, MAX_PENALTY_S, SEND_TIMEOUT_S,
            CLOSE_TIMEOUT_S, SHUTDOWN_TIMEOUT_S, LOG_BURST_S, REFUSAL_SLOTS, LOG_BUFFER,
            LOG_TABLE_S, READ_CHUNK, MAX_FRAMES_PER_PASS, SHARE_SLOTS, ACCEPT_BATCH,
            LOG_MESSAGE_MAX, LOG_TABLE_MAX, TRACE_PREVIEW, LOOKUP_SLOTS);
}

/* Say why, and exit: 2 (and the usage) for a bad command line, else 1. */
static void die(int status, const char *fmt, ...)
{
    va_list ap;
    fputs("wspush: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (status == 2) usage(stderr);
    exit(status);
}

/* Parse a whole number in [lo, hi] for flag `flag', or exit 2. */
static long number_arg(int flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        die(2, "-%c %s: expected a number from %ld to %ld", flag, s, lo, hi);
    return v;
}

/* The IPv4 or IPv6 address of flag `flag', or exit 2. */
static const char *address_arg(int flag, const char *s)
{
    unsigned char bin[16];
    if (addr_bin(s, bin) == 0) die(2, "-%c %s: expected an IPv4 or IPv6 address", flag, s);
    return s;
}

/* Add a value of -o or -x to its list, or exit 2. */
static void list_arg(const char **list, int *n, int max, const char *value)
{
    if (*n == max) die(2, "too many -o or -x values: %s", value);
    list[(*n)++] = value;
}

/* -t random: a token of 128 random bits, in hex. */
static const char *make_token(void)
{
    unsigned char bits[16];
    if (random_bytes(bits, sizeof bits) < 0) die(1, "-t random: cannot read /dev/urandom");
    hex_of(srv.random_token, bits, sizeof bits);
    return srv.random_token;
}

/* Set opt from the command line and the environment. */
static void parse_options(int argc, char **argv)
{
    static const char flags[] = "p:b:d:m:s:M:c:T:i:k:g:t:o:x:Aeqvh";
    int ch;
    size_t chars = 0;
    opt.token = getenv("WSPUSH_ADMIN_TOKEN");
    /* --version and --help, wherever they stand (but as a flag's value). */
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i][0] == '-' && argv[i][1] != '\0' ? strchr(flags, argv[i][1]) : NULL;
        if (f != NULL && f[1] == ':' && argv[i][2] == '\0') {
            i++;                /* -t VALUE: the value is not a flag */
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("wspush %s\n", WSPUSH_VERSION);
            exit(0);
        } else if (strcmp(argv[i], "--help") == 0) {
            argv[i] = "-h";
        }
    }
    while ((ch = getopt(argc, argv, flags)) != -1) {
        switch (ch) {
        case 'p': opt.port = (int)number_arg(ch, optarg, 0, 65535); break;
        case 'b': opt.bind_addr = address_arg(ch, optarg); break;
        case 'd': opt.www = optarg; break;
        case 'm': opt.max_message = (size_t)number_arg(ch, optarg, 1, INT_MAX); break;
        case 's': opt.max_queue = (size_t)number_arg(ch, optarg, 1, INT_MAX); break;
        case 'M': opt.max_buffered = (size_t)number_arg(ch, optarg, 1 << 16, LONG_MAX); break;
        case 'c': opt.max_per_addr = (int)number_arg(ch, optarg, 0, MAX_CLIENTS); break;
        case 'T': opt.handshake_timeout_s = (int)number_arg(ch, optarg, 1, 3600); break;
        case 'i': opt.ping_interval_s = (int)number_arg(ch, optarg, 1, 3600); break;
        case 'k': opt.pong_timeout_s = (int)number_arg(ch, optarg, 1, 3600); break;
        case 'g': opt.grace_s = (int)number_arg(ch, optarg, 1, 86400); break;
        case 't': opt.token = optarg; break;
        case 'o': list_arg(opt.origins, &opt.n_origins, MAX_ORIGINS, optarg); break;
        case 'x': list_arg(opt.proxies, &opt.n_proxies, MAX_PROXIES, address_arg(ch, optarg));
            break;
        case 'A': opt.anyone_admin = 1; break;
        case 'e': opt.raw_echo = 1; break;
        case 'q': opt.quiet = 1; break;
        case 'v': opt.verbose = 1; break;
        case 'h': usage(stdout); exit(0);
        default:  usage(stderr); exit(2);
        }
    }
    if (optind < argc) die(2, "unexpected argument: %s", argv[optind]);
    if (opt.token != NULL && strcmp(opt.token, "random") == 0) opt.token = make_token();
    for (const char *t = opt.token; t != NULL && *t != '\0'; t++)
        chars += ((unsigned char)*t & 0xC0) != 0x80;   /* characters: UTF-8's first bytes */
    /* Not a bad command line if it came from the environment: exit 1. */
    if (opt.token != NULL && chars < MIN_TOKEN_CHARS && opt.token == getenv("WSPUSH_ADMIN_TOKEN"))
        die(1, "WSPUSH_ADMIN_TOKEN must be at least %d characters: a short token can be "
            "guessed. Set it to random to have one made", MIN_TOKEN_CHARS);
    if (opt.token != NULL && chars < MIN_TOKEN_CHARS)
        die(2, "the admin token must be at least %d characters: a short one can be guessed. "
            "Use -t random to have one made", MIN_TOKEN_CHARS);
}

/* The www folder (-d, ./www, or the installed pages), as a real path. */
static void find_www(void)
{
    static char real[PATH_MAX];
    struct stat st;
    const char *www = opt.www;
    if (www == NULL && stat("www", &st) == 0 && S_ISDIR(st.st_mode)) www = "www";
    if (www == NULL && stat(WWW_INSTALLED, &st) == 0 && S_ISDIR(st.st_mode))
        www = WWW_INSTALLED;
    if (www != NULL && (realpath(www, real) == NULL || stat(real, &st) < 0 ||
                        !S_ISDIR(st.st_mode)))
        die(1, "-d %s: not a folder", www);
    opt.www = www != NULL ? real : NULL;
}

/* True if -b names no one address: wspush listens on every address. */
static int on_every_address(void)
{
    return opt.bind_addr == NULL || strcmp(opt.bind_addr, "::") == 0 ||
           strcmp(opt.bind_addr, "0.0.0.0") == 0;
}

/* Fill hosts with this machine's addresses that others can reach, as URLs
 * write them (IPv6 in brackets): the -b one, or each interface's that is
 * up with a link, but loopback and IPv6 link-local. Returns how many. */
#define IFACE_LIVE (0x1 | 0x40) /* IFF_UP|IFF_RUNNING (<net/if.h> hides them under POSIX) */
static int machine_hosts(char hosts[MAX_ADDRESSES][ADDR_LEN + 2])
{
    struct ifaddrs *all = NULL;
    char addr[ADDR_LEN];
    int n = 0;
    if (!on_every_address() && !addr_is_loopback(opt.bind_addr))
        snprintf(hosts[n++], sizeof hosts[0], strchr(opt.bind_addr, ':') ? "[%s]" : "%s",
                 opt.bind_addr);
    if (!on_every_address() || getifaddrs(&all) < 0) return n;
    for (struct ifaddrs *a = all; a != NULL && n < MAX_ADDRESSES; a = a->ifa_next) {
        int live = (a->ifa_flags & IFACE_LIVE) == IFACE_LIVE && a->ifa_addr != NULL;
        int v6 = live && a->ifa_addr->sa_family == AF_INET6;
        int v4 = live && a->ifa_addr->sa_family == AF_INET;
        if (!v4 && (!v6 || (opt.bind_addr != NULL && strcmp(opt.bind_addr, "0.0.0.0") == 0) ||
                    IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr)))
            continue;
        if (getnameinfo(a->ifa_addr, v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
                        addr, sizeof addr, NULL, 0, NI_NUMERICHOST) != 0 || addr_is_loopback(addr))
            continue;
        snprintf(hosts[n], sizeof hosts[0], v6 ? "[%s]" : "%s", addr);
        n += n == 0 || strcmp(hosts[n], hosts[n - 1]) != 0;   /* one address, two interfaces */
    }
    freeifaddrs(all);
    return n;
}

/* Tell the teacher what to open (with -q too): the students' page; the
 * admin page, here or on the web server with the pages, with -t random's
 * token (shown once) and ?ws= if wspush is not on port 8080; warn of -A. */
static void print_urls(void)
{
    char hosts[MAX_ADDRESSES][ADDR_LEN + 2], host[ADDR_LEN + 2] = "localhost", query[160] = "";
    int n = machine_hosts(hosts), made = opt.token == srv.random_token;
    if (!on_every_address() && strcmp(opt.bind_addr, "127.0.0.1") != 0)
        snprintf(host, sizeof host, strchr(opt.bind_addr, ':') ? "[%s]" : "%s", opt.bind_addr);
    if (made) snprintf(query, sizeof query, "?token=%s", opt.token);
    if (opt.www == NULL && opt.port != DEFAULT_PORT)
        snprintf(query + strlen(query), sizeof query - strlen(query), "%sws=ws://%s:%d/",
                 made ? "&" : "?", host, opt.port);
    if (opt.www == NULL)
        log_line("", "No pages are served here (no ./www, none installed): copy the files of "
                 "www/ into your web server's folder (XAMPP: htdocs) and open user.html and "
                 "admin.html from there.");
    for (int i = 0; i < n && opt.www != NULL; i++)
        log_line("", "%shttp://%s:%d/user.html", i == 0 ? "Students open:     " :
                 "                   ", hosts[i], opt.port);
    if (n == 0 && !on_every_address())
        log_line("", "Students: none can connect; -b %s lets in this machine only.", opt.bind_addr);
    if (opt.token == NULL && !opt.anyone_admin && !on_every_address() &&
        !addr_is_loopback(opt.bind_addr))
        log_line("", "The teacher needs -t: without a token only this machine (127.0.0.1, ::1) "
                 "may be admin, and -b %s shuts it out. Add -t random.", opt.bind_addr);
    else if (opt.www != NULL)
        log_line("", "The teacher opens: http://%s:%d/admin.html%s", host, opt.port, query);
    else
        log_line("", "The teacher opens admin.html from your web server%s: "
                 "http://localhost/.../admin.html%s%s", opt.token || opt.anyone_admin ? "" :
                 " on this machine (without -t, only it may be admin)", query,
                 opt.token && !made ? ", and types the token of -t" : "");
    if (opt.anyone_admin)
        log_line(NULL, "WARNING: -A: anyone who connects may become admin and push to every user");
    if (opt.www != NULL) log_line(NULL, "Serving files from %s", opt.www);
}

/* sa's address (::ffff:a.b.c.d as a.b.c.d) and port as text. */
static void peer_of(const struct sockaddr_storage *sa, socklen_t len,
                    char out[ADDR_LEN], char port[8])
{
    if (getnameinfo((const struct sockaddr *)sa, len, out, ADDR_LEN, port, 8,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        snprintf(out, ADDR_LEN, "unknown");
    if (strncmp(out, "::ffff:", 7) == 0 && strchr(out, '.') != NULL)
        memmove(out, out + 7, strlen(out + 7) + 1);
}

/* Out of fds: the spare one takes the waiting client off the queue to
 * close it, rather than spin on it. */
static void shed_client(void)
{
    log_line(NULL, "accept: %s; refusing a client", strerror(errno));
    close(srv.spare_fd);
    int fd = accept(srv.listen_fd, NULL, NULL);
    if (fd >= 0) close(fd);
    srv.spare_fd = open("/dev/null", O_RDONLY);
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* SIGINT or SIGTERM: stop listening; open clients get close 1001. */
static void begin_shutdown(void)
{
    log_line(NULL, "Shutting down: closing %d connection%s", srv.n_open,
             srv.n_open == 1 ? "" : "s");
    srv.stopping = 1;
    FD_CLR(srv.listen_fd, &srv.read_fds);
    close(srv.listen_fd);
    srv.listen_fd = -1;
    for (int fd = 0; fd <= srv.max_fd; fd++) {
        if (srv.conns[fd].state == CONN_OPEN)
            conn_send_close(&srv.conns[fd], CLOSE_GOING_AWAY, "server is shutting down");
        else if (srv.conns[fd].state == CONN_HANDSHAKE)
            conn_close(&srv.conns[fd]);
    }
    while (srv.max_fd >= 0 && srv.conns[srv.max_fd].state == CONN_FREE)
        srv.max_fd--;
}

/* All main() does before listening: options, the www folder, a seed for
 * key_slot(), memory for JSON strings, file descriptors, signals. */
static void start_up(int argc, char **argv)
{
    struct sigaction sa;
    sigset_t stop;
    struct rlimit rl;
    int fd;
    /* fds 0-2 open (to /dev/null if need be), so no socket can become
     * the log's stdout. */
    while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= STDERR_FILENO)
        continue;
    srv.spare_fd = fd;
    parse_options(argc, argv);
    find_www();
    if (random_bytes(&srv.seed, sizeof srv.seed) < 0)
        srv.seed = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid() ^ (uint64_t)clock_ms();
    srv.scratch = malloc(opt.max_message);
    if (srv.scratch == NULL) die(1, "out of memory for -m %zu", opt.max_message);
    /* select() watches fds below FD_SETSIZE: make sure we may open that
     * many, and keep one spare to shed clients when we run out. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < FD_SETSIZE) {
        rl.rlim_cur = rl.rlim_max < FD_SETSIZE ? rl.rlim_max : FD_SETSIZE;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);      /* a vanished peer is an error */
    sa.sa_handler = on_signal;          /* select() returns; we stop   */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigemptyset(&stop);                 /* held back but in wait_ready() */
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &srv.wait_mask);
}
/* =============== 21. The select() loop and main [first reading] ==============
 * The tutorial's walkthrough, in C: 1. socket(), 2. bind(), 3. listen(),
 * then 4. accept() each client. One loop waits in pselect() (select(),
 * with signals let in only while it waits: wait_ready()) until some
 * socket is readable (a new client, a request, a frame) or writable (room
 * for our replies), or a timer is due; handles what is ready; and goes
 * round again. No client can stall another: every socket is non-blocking. */

/* A socket for the -b address, or for every address: IPv6, which takes
 * IPv4 clients too (as ::ffff:a.b.c.d), or IPv4 where the system has no
 * IPv6. Sets *ai to the address to bind (freeaddrinfo() it). */
static int open_socket(struct addrinfo **ai)
{
    struct addrinfo hints = { 0 };
    char port[8];
    int fd = -1;
    snprintf(port, sizeof port, "%d", opt.port);
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    for (int family = opt.bind_addr ? AF_UNSPEC : AF_INET6; fd < 0; family = AF_INET) {
        hints.ai_family = family;
        if (getaddrinfo(opt.bind_addr, port, &hints, ai) != 0)
            die(1, "no address to listen on (-b %s)", opt.bind_addr ? opt.bind_addr : "none");
        fd = socket((*ai)->ai_family, SOCK_STREAM, 0);
        if (fd < 0 && (family != AF_INET6 || opt.bind_addr != NULL))
            die(1, "socket: %s", strerror(errno));
        if (fd < 0)
            freeaddrinfo(*ai);
    }
    return fd;
}

/* Wait in pselect() until a socket is ready or wake_ms (0: no timer), and
 * read the clock. 0, or -1 if the wait failed (a signal, say). */
static int wait_ready(int64_t wake_ms, fd_set *rfds, fd_set *wfds)
{
    int64_t ms = wake_ms > srv.now_ms ? wake_ms - srv.now_ms : 0;
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000 * 1000000) };
    *rfds = srv.read_fds;
    *wfds = srv.write_fds;
    /* SIGINT and SIGTERM come in only here, and end the wait at once: with
     * select(), one just before the wait would wait for a client to speak. */
    int ready = pselect(srv.max_fd + 1, rfds, wfds, NULL, wake_ms ? &ts : NULL, &srv.wait_mask);
    srv.now_ms = clock_ms();
    if (ready < 0 && errno != EINTR)
        log_line(NULL, "pselect: %s", strerror(errno));
    return ready < 0 ? -1 : 0;
}

/* Steps 1-3: a socket listening on -b's address (or all) and -p's port. */
static int listen_on(void)
{
    struct addrinfo *ai;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int on = 1, off = 0;
    /* 1. socket(): create a socket file descriptor. */
    int fd = open_socket(&ai);
    if (ai->ai_family == AF_INET6 && opt.bind_addr == NULL)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    /* 2. bind(): bind the socket to an address and a port. */
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die(1, "cannot listen on port %d: %s%s", opt.port, strerror(errno),
            errno == EADDRINUSE ? " (another server runs there; try -p PORT)" : "");
    freeaddrinfo(ai);
    /* 3. listen(): wait for clients' connection attempts. */
    if (listen(fd, SOMAXCONN) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
        die(1, "listen: %s", strerror(errno));
    /* With -p 0 the kernel picked the port: read it back to print it. */
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        opt.port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* Step 4: accept() the clients waiting, ACCEPT_BATCH at most. One whose
 * fd select() cannot watch, or whose address has -c sockets (but for a
 * proxy's: counted at the handshake), hears 503 and is closed at once. */
static void accept_clients(void)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        char addr[ADDR_LEN], port[8];
        int on = 1;
        /* 4. accept(): the next client, on a socket of its own. */
        int fd = accept(srv.listen_fd, (struct sockaddr *)&sa, &salen);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE))
            shed_client();      /* out of descriptors */
        if (fd < 0)
            return;             /* EAGAIN: nobody else is waiting */
        peer_of(&sa, salen, addr, port);
        if (fd >= FD_SETSIZE || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
            refuse(fd, addr, "server is full");     /* select() cannot watch it */
        } else if (accept_allowed(fd, addr)) {      /* -c (section 16) */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
            struct conn *c = conn_open(fd, addr);
            trace(c, "accept() from %s port %s", addr, port);
        }
    }
}

/* Read and act on the sockets select() found readable, and those with
 * frames left from the last pass; then write what waits where there is
 * room. A sender's replies go at once (section 3). Returns 1 if frames
 * are left for the next pass: it must come without waiting. */
static int serve_ready(const fd_set *rfds, const fd_set *wfds)
{
    int more = 0, n = srv.max_fd + 1;
    srv.pass++;                 /* every address's share is whole again */
    for (int k = 0; k < n; k++) {
        /* one socket further on each pass: an address's share goes round */
        int fd = (int)((srv.pass + (unsigned long)k) % (unsigned long)n);
        struct conn *c = &srv.conns[fd];
        if (c->state == CONN_FREE || (!FD_ISSET(fd, rfds) && !c->backlog))
            continue;
        if (c->backlog && !c->paused)
            conn_again(c);      /* frames left from the last pass */
        else
            conn_read(c);
        shed_load();
        log_flush(0);           /* the log, before the replies it tells of */
        if (c->state != CONN_FREE && c->dirty)
            conn_flush(c);
    }
    for (int fd = 0; fd <= srv.max_fd; fd++) {
        struct conn *c = &srv.conns[fd];
        if (c->state != CONN_FREE && (c->dirty || FD_ISSET(fd, wfds)))
            conn_flush(c);
        more |= c->state != CONN_FREE && c->backlog && !c->paused;
    }
    return more;
}

/* The loop: wait, accept, read and act, write, repeat. Returns when a
 * signal asked to stop and every client is gone (or had its time). */
static void serve(void)
{
    int64_t stop_by = 0;
    int more = 0;               /* frames wait: poll, do not sleep */
    fd_set rfds, wfds;
    FD_SET(srv.listen_fd, &srv.read_fds);
    srv.max_fd = srv.listen_fd;
    for (;;) {
        srv.now_ms = clock_ms();
        if (stop_signal && !srv.stopping) {
            begin_shutdown();
            stop_by = srv.now_ms + SHUTDOWN_TIMEOUT_S * 1000;
        }
        if (srv.stopping && (srv.max_fd < 0 || srv.now_ms >= stop_by))
            return;
        if (srv.next_timer_ms != 0 && srv.now_ms >= srv.next_timer_ms)
            timers();
        int64_t wake = more ? srv.now_ms : srv.next_timer_ms;
        if (srv.stopping && (wake == 0 || stop_by < wake))
            wake = stop_by;
        log_flush(0);           /* the log, before the replies it tells of */
        if (wait_ready(wake, &rfds, &wfds) < 0) continue;
        if (FD_ISSET(STDOUT_FILENO, &wfds))
            log_flush(0);
        if (srv.listen_fd >= 0 && FD_ISSET(srv.listen_fd, &rfds))
            accept_clients();
        more = serve_ready(&rfds, &wfds);
    }
}

/* Left out when tests/unit.c or a fuzzer includes this file. */
#ifndef WSPUSH_NO_MAIN
int main(int argc, char **argv)
{
    start_up(argc, argv);
    srv.listen_fd = listen_on();
    log_open();
    log_line(NULL, "Server is listening on port %d", opt.port);
    if (opt.verbose)
        log_line("", "[%d] listen() on %s port %d", srv.listen_fd,
                 opt.bind_addr ? opt.bind_addr : "every address", opt.port);
    print_urls();               /* what to open, for the teacher (section 20) */
    serve();
    log_line(NULL, "Server stopped");
    log_flush(1);
    free(srv.scratch);
    return 0;
}
#endif
