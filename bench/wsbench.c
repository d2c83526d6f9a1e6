/* wsbench.c -- load generator for wspush, the article's Node server, and
 * the bare TCP echo floor. One file, libc only, sharing no code with the
 * server, so it cannot share its bugs.
 *
 * Clients mask their frames (RFC 6455 §5.3) and check every reply: its
 * bytes, its order, and for pushes that it reached the one user it was
 * meant for. Modes:
 *   rtt    one client, N sequential round trips of S bytes
 *   tput   C clients, each keeping W messages in flight, for T seconds
 *   push   C users and one admin sending "push a user" round-robin with W
 *          in flight; deliveries are counted at the users
 *   conns  open and hold C connections, one echo each; server memory
 *   churn  C loops of connect, handshake, one echo, close, for T seconds
 *   class  a classroom: C clients each sending one S-byte message every
 *          W ms (each from its own random moment), for T seconds; the
 *          server's CPU is reported per second (server_cpu_ms_per_s) as
 *          well as per message
 *   flood  one student floods, a classmate waits: C student sockets each
 *          keep W requests in flight for T seconds (a new one for each
 *          reply, replies read as they come), while one more socket, the
 *          classmate's, makes echo round trips of S bytes one at a time,
 *          at most N, from T/4 (at most 1 s) into the flood to its end.
 *          p50/p99/max are the classmate's round trips; rate is the
 *          student's replies a second. -k echo: the student sends echo
 *          requests of S bytes; -k seat: {"req":"seat","secret":"x"}.
 *          -a A: before all that, the student makes A away seats (in
 *          batches of C: connect, {"req":"seat"}, drop once answered).
 *          -B ADDR: the classmate connects from this local address
 *          (127.0.0.2, say): another machine to a server that counts
 *          its clients by address
 * Every run ends by T + 20 s whatever happens, and prints one line:
 *   RESULT mode=tput target=wspush ... rate=... p50_us=... errors=0
 *
 * usage: wsbench MODE [-h HOST] [-p PORT] [-c C] [-w W] [-s S] [-t T]
 *                [-n N] [-x PID] [-f] [-r] [-l LABEL] [-k echo|seat] [-a A]
 *                [-B ADDR]
 *   -f  the server is the floor (bench/floor.c): no handshake; an echo
 *       is the request bytes themselves, and in push mode the admin
 *       sends each user the very frame wspush would send
 *   -r  the server echoes raw (wspush -e): a reply is the request's own
 *       bytes, after a real handshake
 *   -x  the server's PID, to report its CPU per message and its memory */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PEERS     4096
#define RING          4096          /* send times remembered per stream */
#define HIST_US       1000000       /* latency histogram: 1 µs buckets to 1 s */
#define GRACE_S       20            /* every run ends by T + this */

enum mode { RTT, TPUT, PUSH, CONNS, CHURN, CLASS, FLOOD };
enum state { CONNECTING, HANDSHAKE, OPEN, CLOSING };

struct buf {
    unsigned char *data;
    size_t len, off, cap;
};

struct peer {
    int fd;
    enum state state;
    int admin;                  /* push mode: the one admin             */
    int index;
    char key[25];
    struct buf in, out;
    struct buf msg;             /* a fragmented message, put together   */
    uint64_t sent, received;    /* messages this peer sent / got back   */
    uint64_t next_expected;     /* push: next sequence number for this user */
    int64_t sent_at[RING];      /* send times by sequence number        */
    int64_t next_send;          /* class: when its next message goes    */
    int want_out;               /* EPOLLOUT is armed                    */
    int untimed;                /* flood: a student's; replies not timed */
    char first[256];            /* flood -k seat: the first seat reply  */
    size_t first_len;
};

static struct {
    enum mode mode;
    const char *host, *label, *classmate_from;
    int port, clients, window, size, seconds, count, floor, raw, pid, seat, away;
} opt = { TPUT, "127.0.0.1", "server", NULL, 8080, 1, 1, 64, 5, 20000, 0, 0, 0, 0, 0 };

static struct peer *peers;
static int npeers, epfd;
static uint32_t *hist;
static uint64_t samples, errors, done_msgs, cycles;
static int64_t max_ns;
static int64_t start_ns, stop_ns;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The clock read once per read() of a socket: replies that arrived
 * together are stamped together, and the clock is not the bottleneck. */
static int64_t tick;

static uint32_t rand32(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static void fatal(const char *what)
{
    fprintf(stderr, "wsbench: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void error_once(const char *fmt, const char *detail)
{
    if (errors++ < 5) {
        fprintf(stderr, "wsbench: ");
        fprintf(stderr, fmt, detail);
        fputc('\n', stderr);
    }
}

/* Flood mode keeps each round trip too: they may last seconds. */
static int64_t *kept;
static uint64_t n_kept, kept_cap;

static void record(int64_t ns)
{
    int64_t us = ns / 1000;
    hist[us < HIST_US ? us : HIST_US - 1]++;
    samples++;
    if (ns > max_ns)
        max_ns = ns;
    if (n_kept < kept_cap)
        kept[n_kept++] = ns;
}

static int by_value(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double percentile(double p)
{
    uint64_t want = (uint64_t)(p * (double)samples), seen = 0;
    if (kept_cap > 0 && n_kept == samples) {
        qsort(kept, (size_t)n_kept, sizeof *kept, by_value);
        return (double)(kept[want < n_kept ? want : n_kept - 1] / 1000);
    }
    for (int i = 0; i < HIST_US; i++) {
        seen += hist[i];
        if (seen > want)
            return i;
    }
    return HIST_US;
}

/* ------------------------------------------------------------ buffers */

static unsigned char *reserve(struct buf *b, size_t n)
{
    if (b->off > 0 && b->off == b->len) {
        b->off = b->len = 0;
    }
    if (b->len + n > b->cap) {
        if (b->off > 0) {
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->data = realloc(b->data, cap);
        if (b->data == NULL)
            fatal("realloc");
        b->cap = cap;
    }
    return b->data + b->len;
}

/* ------------------------------------------------------------- frames */

/* XOR p[0..n) with the 4-byte mask, 8 bytes at a time where it can. */
static void apply_mask(unsigned char *p, size_t n, const unsigned char mask[4])
{
    uint64_t m;
    unsigned char m8[8];
    for (int k = 0; k < 8; k++)
        m8[k] = mask[k & 3];
    memcpy(&m, m8, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= m;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= mask[i & 3];
}

/* Append a masked client frame holding payload[0..n). */
static void put_frame(struct buf *b, int opcode, const void *payload, size_t n)
{
    unsigned char *o = reserve(b, n + 14);
    size_t h = 0;
    o[h++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        o[h++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        o[h++] = 0x80 | 126;
        o[h++] = (unsigned char)(n >> 8);
        o[h++] = (unsigned char)n;
    } else {
        o[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            o[h++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    uint32_t m = rand32();
    unsigned char mask[4] = { (unsigned char)m, (unsigned char)(m >> 8),
                              (unsigned char)(m >> 16), (unsigned char)(m >> 24) };
    memcpy(o + h, mask, 4);
    h += 4;
    memcpy(o + h, payload, n);
    apply_mask(o + h, n, mask);
    b->len += h + n;
}

/* Take one frame from the front of b: sets *op, *fin, *payload, *n
 * (unmasked in place if the frame is masked, as the floor echoes ours).
 * Returns 1, or 0 if the frame is not all there. */
static int take_frame(struct buf *b, int *op, int *fin, unsigned char **payload, size_t *n)
{
    unsigned char *p = b->data + b->off;
    size_t have = b->len - b->off;
    if (have < 2)
        return 0;
    size_t h = 2;
    uint64_t len = p[1] & 0x7f;
    if (len == 126) {
        if (have < 4) return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (len == 127) {
        if (have < 10) return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
    }
    int masked = p[1] & 0x80;
    if (masked)
        h += 4;
    if (have < h || have - h < len)
        return 0;
    if (masked)
        apply_mask(p + h, (size_t)len, p + h - 4);
    *op = p[0] & 0x0f;
    *fin = p[0] >> 7;
    *payload = p + h;
    *n = (size_t)len;
    b->off += h + (size_t)len;
    return 1;
}

/* --------------------------------------------------------- messages */

#define REQ_HEAD  "{\"req\":\"text\",\"text\":\""
#define RESP_HEAD "{\"resp\":\"text\",\"content\":\""

/* The text of echo message seq: 8 hex digits, then 'x' up to a request
 * of opt.size bytes. The padding never changes, so it is written only
 * when `out' is new; the digits every time. */
static size_t echo_text(char *out, uint64_t seq, int fresh)
{
    static const char hex[] = "0123456789abcdef";
    size_t fixed = sizeof REQ_HEAD - 1 + 2;
    size_t n = (size_t)opt.size > fixed + 8 ? (size_t)opt.size - fixed : 8;
    for (int i = 0; i < 8; i++)
        out[i] = hex[(seq >> (28 - 4 * i)) & 15];
    if (fresh)
        memset(out + 8, 'x', n - 8);
    return n;
}

static char *scratch, *expect_buf;

static void send_echo(struct peer *p)
{
    static int fresh = 1;
    size_t n = echo_text(scratch + sizeof REQ_HEAD - 1, p->sent, fresh);
    memcpy(scratch, REQ_HEAD, sizeof REQ_HEAD - 1);
    memcpy(scratch + sizeof REQ_HEAD - 1 + n, "\"}", 2);
    fresh = 0;
    p->sent_at[p->sent % RING] = tick;
    p->sent++;
    put_frame(&p->out, 1, scratch, sizeof REQ_HEAD - 1 + n + 2);
}

/* Check an echo reply against what message p->received must be. */
static void check_echo(struct peer *p, const unsigned char *payload, size_t len)
{
    static int fresh = 1;
    const char *head = opt.floor || opt.raw ? REQ_HEAD : RESP_HEAD;
    size_t hl = strlen(head);
    memcpy(expect_buf, head, hl);
    size_t n = echo_text(expect_buf + hl, p->received, fresh);
    memcpy(expect_buf + hl + n, "\"}", 2);
    fresh = 0;
    if (len != hl + n + 2 || memcmp(payload, expect_buf, len) != 0)
        error_once("wrong or out-of-order echo: %.60s", (const char *)payload);
    if (!p->untimed)
        record(tick - p->sent_at[p->received % RING]);
    p->received++;
}

/* ------------------------------------------------------ connections */

/* Ask epoll for EPOLLOUT exactly while p has bytes waiting to be sent. */
static void watch(struct peer *p)
{
    int want = p->out.len > p->out.off;
    if (want == p->want_out)
        return;
    struct epoll_event ev = { EPOLLIN | (want ? EPOLLOUT : 0), { .ptr = p } };
    epoll_ctl(epfd, EPOLL_CTL_MOD, p->fd, &ev);
    p->want_out = want;
}

static void make_key(char key[25])
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 21; i++)
        key[i] = b64[rand32() & 63];
    key[21] = "AQgw"[rand32() & 3];
    key[22] = key[23] = '=';
    key[24] = '\0';
}

static int opened;      /* connections ready: handshakes done */
static struct sockaddr_storage server;
static socklen_t server_len;

static struct peer *classmate;     /* flood mode: the one who waits */

/* Bind fd to local address addr (any port) before it connects. */
static void bind_from(int fd, const char *addr)
{
    struct sockaddr_storage ss = { 0 };
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    socklen_t len = server.ss_family == AF_INET6 ? sizeof *in6 : sizeof *in4;
    ss.ss_family = server.ss_family;
    void *where = server.ss_family == AF_INET6 ? (void *)&in6->sin6_addr : (void *)&in4->sin_addr;
    if (inet_pton(server.ss_family, addr, where) != 1) {
        fprintf(stderr, "wsbench: -B %s: not an address of the server's family\n", addr);
        exit(2);
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        fatal("bind (-B)");
}

/* Start a non-blocking connect for p; the handshake is queued to go
 * out as soon as the socket is writable. */
static void peer_connect(struct peer *p)
{
    p->fd = socket(server.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (p->fd < 0)
        fatal("socket");
    int on = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    p->in.len = p->in.off = p->out.len = p->out.off = 0;
    p->sent = p->received = p->next_expected = 0;
    p->first_len = 0;
    if (opt.classmate_from != NULL && p == classmate)
        bind_from(p->fd, opt.classmate_from);
    if (connect(p->fd, (struct sockaddr *)&server, server_len) < 0 && errno != EINPROGRESS)
        fatal("connect");
    p->state = opt.floor ? OPEN : HANDSHAKE;
    if (opt.floor) {
        opened++;
        if (opt.mode == PUSH) {     /* tell the floor who we are */
            unsigned char hello[3] = { p->admin ? 'A' : 'U', (unsigned char)(p->index >> 8),
                                       (unsigned char)p->index };
            size_t n = p->admin ? 1 : 3;
            memcpy(reserve(&p->out, n), hello, n);
            p->out.len += n;
        }
    } else {
        make_key(p->key);
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: echo-protocol\r\n\r\n",
                         opt.host, opt.port, p->key);
        memcpy(reserve(&p->out, (size_t)n), req, (size_t)n);
        p->out.len += (size_t)n;
    }
    if (opt.floor && opt.mode == CHURN)
        send_echo(p);               /* no handshake to wait for */
    struct epoll_event ev = { EPOLLIN | EPOLLOUT, { .ptr = p } };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, p->fd, &ev) < 0)
        fatal("epoll_ctl");
    p->want_out = 1;
}

static void peer_close(struct peer *p)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    p->fd = -1;
}


static void on_open(struct peer *p);
static void on_frame(struct peer *p, int op, unsigned char *payload, size_t n);

/* Read what arrived and act on it. Returns -1 if p was closed. */
static int peer_read(struct peer *p)
{
    for (;;) {
        unsigned char *dst = reserve(&p->in, 65536);
        ssize_t n = read(p->fd, dst, 65536);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            if (p->state == CLOSING) {
                peer_close(p);
                return -1;
            }
            error_once("connection lost (%s)", n < 0 ? strerror(errno) : "EOF");
            peer_close(p);
            return -1;
        }
        p->in.len += (size_t)n;
        if ((size_t)n < 65536 || p->untimed)
            break;      /* a student's next 64 KiB: after a look at the classmate */
    }
    tick = now_ns();
    if (p->state == HANDSHAKE) {
        char *start = (char *)p->in.data + p->in.off;
        size_t have = p->in.len - p->in.off;
        char *end = NULL;
        for (size_t i = 3; i < have && end == NULL; i++)
            if (memcmp(start + i - 3, "\r\n\r\n", 4) == 0)
                end = start + i + 1;
        if (end == NULL)
            return 0;
        if (have < 12 || memcmp(start, "HTTP/1.1 101", 12) != 0) {
            error_once("handshake refused: %.40s", start);
            peer_close(p);
            return -1;
        }
        p->in.off += (size_t)(end - start);
        p->state = OPEN;
        opened++;
        on_open(p);
    }
    int op, fin;
    unsigned char *payload;
    size_t n;
    while (p->fd >= 0 && take_frame(&p->in, &op, &fin, &payload, &n)) {
        /* Some servers split long messages into frames: gather them. */
        if (op < 8 && (!fin || p->msg.len > 0)) {
            if (op != 0)
                p->msg.len = p->msg.off = 0;
            memcpy(reserve(&p->msg, n), payload, n);
            p->msg.len += n;
            if (!fin)
                continue;
            payload = p->msg.data;
            n = p->msg.len;
            op = 1;
            p->msg.len = 0;
        }
        on_frame(p, op, payload, n);
    }
    return p->fd >= 0 ? 0 : -1;
}

static void peer_write(struct peer *p)
{
    while (p->out.len > p->out.off) {
        ssize_t n = write(p->fd, p->out.data + p->out.off, p->out.len - p->out.off);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                error_once("write: %s", strerror(errno));
            break;
        }
        p->out.off += (size_t)n;
    }
}

/* ---------------------------------------------------------------- push */

static struct peer *admin_peer;
static uint64_t push_seq, acks;

/* The push message for global sequence g: to user g % users. */
static void send_push(void)
{
    int users = npeers - 1;
    int u = (int)(push_seq % (uint64_t)users);
    char text[64], req[256];
    snprintf(text, sizeof text, "u%05d-%012llx", u, (unsigned long long)(push_seq / (uint64_t)users));
    admin_peer->sent_at[push_seq % RING] = tick;
    push_seq++;
    if (opt.floor) {
        /* the floor's record: user, length, and the frame for the user */
        int n = snprintf(req + 6, sizeof req - 6, RESP_HEAD "%s\"}", text);
        req[0] = (char)(u >> 8);
        req[1] = (char)u;
        req[2] = 0;
        req[3] = (char)(n + 2);
        req[4] = (char)0x81;
        req[5] = (char)n;
        memcpy(reserve(&admin_peer->out, (size_t)n + 6), req, (size_t)n + 6);
        admin_peer->out.len += (size_t)n + 6;
        return;
    }
    int n = snprintf(req, sizeof req,
                     "{\"req\":\"push a user\",\"userkey\":\"%s\",\"text\":\"%s\"}",
                     peers[u].key, text);
    put_frame(&admin_peer->out, 1, req, (size_t)n);
}

static void on_push_delivery(struct peer *p, const unsigned char *payload, size_t n)
{
    char want[128];
    int users = npeers - 1;
    snprintf(want, sizeof want, RESP_HEAD "u%05d-%012llx\"}", p->index,
             (unsigned long long)p->next_expected);
    if (n != strlen(want) || memcmp(payload, want, n) != 0) {
        error_once("push reached the wrong user or out of order: %.60s", (const char *)payload);
        return;
    }
    uint64_t g = p->next_expected * (uint64_t)users + (uint64_t)p->index;
    record(tick - admin_peer->sent_at[g % RING]);
    p->next_expected++;
    if (tick < stop_ns)
        done_msgs++;
}

/* --------------------------------------------------------------- flood */

static int64_t measuring;   /* the clock has started */
#define SEAT_ASK   "{\"req\":\"seat\"}"
#define SEAT_FLOOD "{\"req\":\"seat\",\"secret\":\"x\"}"
#define SEAT_HEAD  "{\"resp\":\"seat\",\"number\":"

static int prepping;            /* -a: away seats are being made */
static uint64_t seats_made;
static int64_t classmate_at;    /* the classmate's first round trip */

/* One more request of the student's on p. */
static void send_flood(struct peer *p)
{
    if (!opt.seat) {
        send_echo(p);
        return;
    }
    p->sent++;
    put_frame(&p->out, 1, SEAT_FLOOD, sizeof SEAT_FLOOD - 1);
}

/* Is the reply a seat, with a number and a secret? */
static int is_seat(const unsigned char *payload, size_t n)
{
    static const char secret[] = ",\"secret\":\"";
    if (n < sizeof SEAT_HEAD - 1 || memcmp(payload, SEAT_HEAD, sizeof SEAT_HEAD - 1) != 0)
        return 0;
    for (size_t i = 0; i + sizeof secret - 1 <= n; i++)
        if (memcmp(payload + i, secret, sizeof secret - 1) == 0)
            return 1;
    return 0;
}

/* A reply to {"req":"seat","secret":"x"}, an unknown secret: the sender's
 * own seat, the same each time on one connection. */
static void check_seat(struct peer *p, const unsigned char *payload, size_t n)
{
    if (p->received == 0 && (n > sizeof p->first || !is_seat(payload, n))) {
        error_once("not a seat: %.60s", (const char *)payload);
    } else if (p->received == 0) {
        memcpy(p->first, payload, n);
        p->first_len = n;
    } else if (n != p->first_len || memcmp(payload, p->first, n) != 0) {
        error_once("the seat changed: %.60s", (const char *)payload);
    }
    p->received++;
}

/* -a: a seat made for the student; its connection is dropped. */
static void got_away_seat(struct peer *p, const unsigned char *payload, size_t n)
{
    if (!is_seat(payload, n))
        error_once("not a seat: %.60s", (const char *)payload);
    else
        seats_made++;
    peer_close(p);
}

/* Flood mode: the classmate's first round trip goes once the flood is
 * under way. Returns the ms until then, at most 50. */
static int flood_due(void)
{
    int64_t now = now_ns();
    if (!measuring || classmate->sent > 0)
        return 50;
    if (now >= classmate_at) {
        tick = now;
        send_echo(classmate);
        return 50;
    }
    return (int)((classmate_at - now + 999999) / 1000000);
}

/* Flood mode, between a student's reads: the classmate's reply, if it
 * came, is read and its next request sent at once, so that its round
 * trips measure the server, not the queue of the students' replies. */
static void flood_classmate(void)
{
    if (classmate->fd < 0 || classmate->received >= classmate->sent)
        return;
    if (peer_read(classmate) == 0) {
        peer_write(classmate);
        watch(classmate);
    }
}

/* ------------------------------------------------------------- events */

static void on_open(struct peer *p)
{
    switch (opt.mode) {
    case RTT:
    case TPUT:
        break;      /* started together once all are open */
    case PUSH:
        break;
    case CONNS:
        break;
    case CHURN:
        send_echo(p);
        break;
    case CLASS:
        break;
    case FLOOD:
        if (prepping)
            put_frame(&p->out, 1, SEAT_ASK, sizeof SEAT_ASK - 1);
        break;
    }
}

static void on_frame(struct peer *p, int op, unsigned char *payload, size_t n)
{
    if (op == 9) {                      /* ping: answer it */
        put_frame(&p->out, 10, payload, n);
        return;
    }
    if (op == 10)
        return;
    if (op == 8) {
        if (p->state != CLOSING) {
            error_once("server closed the connection: %.40s", (const char *)payload + 2);
            put_frame(&p->out, 8, payload, n < 2 ? n : 2);
            p->state = CLOSING;
        } else {
            peer_close(p);              /* our close was answered */
            cycles++;
        }
        return;
    }
    switch (opt.mode) {
    case RTT:
        check_echo(p, payload, n);
        done_msgs++;
        if ((int)p->received < opt.count)
            send_echo(p);
        break;
    case TPUT:
        check_echo(p, payload, n);
        if (measuring && tick < stop_ns) {
            done_msgs++;
            send_echo(p);
        }
        break;
    case CLASS:
        check_echo(p, payload, n);
        done_msgs++;
        break;
    case CONNS:
        check_echo(p, payload, n);
        done_msgs++;
        break;
    case FLOOD:
        if (prepping) {
            got_away_seat(p, payload, n);
        } else if (p == classmate) {
            check_echo(p, payload, n);
            if (measuring && tick < stop_ns && p->received < (uint64_t)opt.count)
                send_echo(p);
        } else {
            if (opt.seat)
                check_seat(p, payload, n);
            else
                check_echo(p, payload, n);
            if (measuring && tick < stop_ns) {
                done_msgs++;
                send_flood(p);
            }
        }
        break;
    case CHURN:
        check_echo(p, payload, n);
        if (opt.floor) {
            peer_close(p);
            cycles++;
        } else {
            unsigned char bye[2] = { 0x03, 0xe8 };
            put_frame(&p->out, 8, bye, 2);
            p->state = CLOSING;
        }
        break;
    case PUSH:
        if (p == admin_peer) {
            if (n > 20 && memcmp(payload, "{\"resp\":\"get connections\"", 25) == 0)
                return;                 /* the list (the start, or presence) */
            static const char ack[] = RESP_HEAD "Already sent.\"}";
            if (n != sizeof ack - 1 || memcmp(payload, ack, n) != 0) {
                error_once("admin got: %.60s", (const char *)payload);
                return;
            }
            acks++;
            if (measuring && tick < stop_ns)
                send_push();
        } else {
            on_push_delivery(p, payload, n);
        }
        break;
    }
}

/* Class mode: send the messages that are due (one each W ms a client,
 * until the run stops); returns the ms until the next one, at most 50. */
static int class_due(void)
{
    int64_t now = now_ns(), next = now + 50000000;
    if (opt.mode != CLASS || !measuring)
        return 50;
    for (int i = 0; i < npeers; i++) {
        struct peer *p = &peers[i];
        if (p->fd >= 0 && now >= p->next_send && now < stop_ns) {
            tick = now;
            send_echo(p);
            p->next_send += (int64_t)opt.window * 1000000;
        }
        if (p->next_send < next)
            next = p->next_send;
    }
    return next > now ? (int)((next - now + 999999) / 1000000) : 0;
}

/* Run epoll until done() says so or the deadline passes. */
static void loop(int (*done)(void), int64_t deadline)
{
    struct epoll_event evs[256];
    while (!done() && now_ns() < deadline) {
        int wait_ms = opt.mode == FLOOD ? flood_due() : class_due();
        for (int i = 0; i < npeers; i++)
            if (peers[i].fd >= 0 && peers[i].out.len > peers[i].out.off)
                peer_write(&peers[i]);
        int n = epoll_wait(epfd, evs, 256, wait_ms);
        for (int i = 0; i < n; i++) {
            struct peer *p = evs[i].data.ptr;
            if (p->fd < 0)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (peer_read(p) < 0) {
                    if (opt.mode == CHURN && measuring && now_ns() < stop_ns)
                        peer_connect(p);
                    continue;
                }
            }
            /* What reading made us want to send goes out now, not after
             * every other event: the server is not kept waiting. */
            if ((evs[i].events & EPOLLOUT) || p->out.len > p->out.off)
                peer_write(p);
            if (p->fd >= 0)
                watch(p);
            if (opt.mode == FLOOD && p != classmate && measuring)
                flood_classmate();
        }
    }
}

static int all_open(void) { return opened >= npeers; }
static int users_open(void) { return opened >= npeers - (admin_peer != NULL); }
static int never(void) { return 0; }
static int rtt_done(void) { return done_msgs >= (uint64_t)opt.count || errors > 0; }
static int conns_done(void) { return done_msgs >= (uint64_t)npeers || errors > 0; }
static int batch;
static int batch_gone(void)
{
    for (int i = 0; i < batch; i++)
        if (peers[i].fd >= 0)
            return 0;
    return 1;
}
static int drained(void)
{
    for (int i = 0; i < npeers; i++)
        if (peers[i].fd >= 0 && peers[i].received < peers[i].sent)
            return 0;
    return admin_peer == NULL || acks >= push_seq;
}

/* -a: the student makes opt.away away seats, opt.clients at a time. */
static void make_away_seats(int64_t deadline)
{
    prepping = 1;
    for (int made = 0; made < opt.away && errors == 0 && now_ns() < deadline; made += batch) {
        batch = opt.away - made < opt.clients ? opt.away - made : opt.clients;
        for (int i = 0; i < batch; i++)
            peer_connect(&peers[i]);
        loop(batch_gone, deadline);
    }
    for (int i = 0; i < npeers; i++) {
        if (peers[i].fd >= 0) {
            error_once("%s", "a seat was not answered in time");
            peer_close(&peers[i]);
        }
    }
    if (seats_made < (uint64_t)opt.away)
        error_once("%s", "fewer away seats made than asked for");
    prepping = 0;
    opened = 0;
}

/* CPU time (user + system) of process pid so far, in nanoseconds: from
 * /proc/PID/schedstat, to the nanosecond, where the kernel keeps it; else
 * from /proc/PID/stat, in clock ticks (10 ms). */
static int64_t cpu_ns(int pid)
{
    char path[64], buf[1024];
    unsigned long long ns;
    snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    FILE *sf = fopen(path, "r");
    int got = sf != NULL && fscanf(sf, "%llu", &ns) == 1;
    if (sf != NULL)
        fclose(sf);
    if (got && ns > 0)
        return (int64_t)ns;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0;
    if (s == NULL || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                            &utime, &stime) != 2)
        return -1;
    return (int64_t)((utime + stime) * (1000000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK)));
}

/* The server's peak resident memory (VmHWM), in KiB. */
static long peak_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static void usage(void)
{
    fprintf(stderr, "usage: wsbench rtt|tput|push|conns|churn|class|flood [-h HOST] [-p PORT] "
                    "[-c C] [-w W] [-s S] [-t T] [-n N] [-x PID] [-f] [-r] [-l LABEL] "
                    "[-k echo|seat] [-a A] [-B ADDR]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *names[] = { "rtt", "tput", "push", "conns", "churn", "class", "flood" };
    int m;
    for (m = 0; m < 7 && strcmp(argv[1], names[m]) != 0; m++) ;
    if (m == 7)
        usage();
    opt.mode = (enum mode)m;
    int ch;
    optind = 2;
    while ((ch = getopt(argc, argv, "h:p:c:w:s:t:n:x:frl:k:a:B:")) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'c': opt.clients = atoi(optarg); break;
        case 'w': opt.window = atoi(optarg); break;
        case 's': opt.size = atoi(optarg); break;
        case 't': opt.seconds = atoi(optarg); break;
        case 'n': opt.count = atoi(optarg); break;
        case 'x': opt.pid = atoi(optarg); break;
        case 'f': opt.floor = 1; break;
        case 'r': opt.raw = 1; break;
        case 'l': opt.label = optarg; break;
        case 'k': opt.seat = strcmp(optarg, "seat") == 0 ? 1 : strcmp(optarg, "echo") == 0 ? 0 : -1;
                  break;
        case 'a': opt.away = atoi(optarg); break;
        case 'B': opt.classmate_from = optarg; break;
        default: usage();
        }
    }
    if (opt.mode == RTT)
        opt.clients = opt.window = 1;
    if (opt.clients < 1 || opt.clients + 1 > MAX_PEERS || opt.window < 1 ||
        (opt.window > RING / 4 && opt.mode != CLASS && opt.mode != FLOOD) ||
        opt.window > 65536 || opt.size < 1 || opt.size > (16 << 20) || opt.seconds < 1 ||
        opt.count < 1 || (opt.mode == FLOOD && opt.count > 1000000) || opt.seat < 0 ||
        opt.away < 0 || opt.away > 100000 ||
        ((opt.seat || opt.away) && (opt.mode != FLOOD || opt.floor || opt.raw)) ||
        (opt.classmate_from != NULL && opt.mode != FLOOD))
        usage();

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
    setrlimit(RLIMIT_NOFILE, &rl);
    struct addrinfo hints = { 0 }, *ai;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof port, "%d", opt.port);
    if (getaddrinfo(opt.host, port, &hints, &ai) != 0) {
        fprintf(stderr, "wsbench: cannot resolve %s\n", opt.host);
        return 2;
    }
    memcpy(&server, ai->ai_addr, ai->ai_addrlen);
    server_len = ai->ai_addrlen;
    freeaddrinfo(ai);

    hist = calloc(HIST_US, sizeof *hist);
    scratch = malloc((size_t)opt.size + 256);
    expect_buf = malloc((size_t)opt.size + 256);
    npeers = opt.clients + (opt.mode == PUSH || opt.mode == FLOOD);
    peers = calloc((size_t)npeers, sizeof *peers);
    epfd = epoll_create1(0);
    if (!hist || !scratch || !expect_buf || !peers || epfd < 0)
        fatal("setup");
    for (int i = 0; i < npeers; i++) {
        peers[i].index = i;
        peers[i].fd = -1;
    }
    if (opt.mode == PUSH) {
        admin_peer = &peers[npeers - 1];
        admin_peer->admin = 1;
    }
    if (opt.mode == FLOOD) {
        kept_cap = (uint64_t)opt.count;
        kept = malloc((size_t)opt.count * sizeof *kept);
        if (kept == NULL)
            fatal("malloc");
        classmate = &peers[npeers - 1];
        for (int i = 0; i < opt.clients; i++)
            peers[i].untimed = 1;
    }

    int64_t t0 = now_ns(), deadline = t0 + (int64_t)(opt.seconds + GRACE_S) * 1000000000;
    if (opt.away > 0)
        make_away_seats(deadline);
    /* Connect everyone (churn connects as it goes). Users before the
     * admin, so the admin's list is complete when it asks. */
    if (opt.mode != CHURN) {
        for (int i = 0; i < npeers; i++) {
            if (&peers[i] == admin_peer)
                continue;
            peer_connect(&peers[i]);
            if (i % 64 == 63)
                loop(never, now_ns() + 1000000);    /* let handshakes go */
        }
        loop(users_open, deadline);
        if (admin_peer) {
            peer_connect(admin_peer);
            loop(all_open, deadline);
            const char get[] = "{\"req\":\"get connections\"}";
            if (!opt.floor)
                put_frame(&admin_peer->out, 1, get, sizeof get - 1);
        }
    }
    if (opened < npeers && opt.mode != CHURN) {
        fprintf(stderr, "wsbench: only %d of %d connections opened\n", opened, npeers);
        errors++;
    }

    int64_t cpu0 = opt.pid ? cpu_ns(opt.pid) : -1, cpu_flood = -1;
    start_ns = tick = now_ns();
    stop_ns = start_ns + (int64_t)opt.seconds * 1000000000;
    measuring = 1;
    switch (opt.mode) {
    case RTT:
        send_echo(&peers[0]);
        loop(rtt_done, deadline);
        break;
    case TPUT:
        for (int i = 0; i < npeers; i++)
            for (int w = 0; w < opt.window; w++)
                send_echo(&peers[i]);
        loop(never, stop_ns);
        loop(drained, deadline);
        break;
    case PUSH:
        for (int w = 0; w < opt.window; w++)
            send_push();
        loop(never, stop_ns);
        loop(drained, deadline);
        break;
    case CONNS:
        for (int i = 0; i < npeers; i++)
            send_echo(&peers[i]);
        loop(conns_done, deadline);
        break;
    case CHURN:
        for (int i = 0; i < npeers; i++)
            peer_connect(&peers[i]);
        loop(never, stop_ns);
        break;
    case CLASS:
        for (int i = 0; i < npeers; i++)    /* each from its own moment */
            peers[i].next_send = start_ns + (int64_t)(rand32() % (uint32_t)opt.window) * 1000000;
        loop(never, stop_ns);
        loop(drained, deadline);
        break;
    case FLOOD:
        classmate_at = start_ns + (opt.seconds < 4 ? (int64_t)opt.seconds * 250000000 : 1000000000);
        for (int i = 0; i < opt.clients; i++)
            for (int w = 0; w < opt.window; w++)
                send_flood(&peers[i]);
        loop(never, stop_ns);
        cpu_flood = opt.pid ? cpu_ns(opt.pid) : -1;    /* not the drain's */
        loop(drained, deadline);
        if (samples == 0)
            error_once("%s", "the classmate got no round trip back");
        break;
    }
    int64_t end_ns = now_ns();
    int64_t cpu1 = opt.mode == FLOOD ? cpu_flood : opt.pid ? cpu_ns(opt.pid) : -1;
    double secs = (double)((opt.mode == TPUT || opt.mode == PUSH || opt.mode == CHURN ||
                            opt.mode == CLASS || opt.mode == FLOOD ? stop_ns : end_ns) -
                           start_ns) / 1e9;
    uint64_t count = opt.mode == CHURN ? cycles : done_msgs;
    if (now_ns() >= deadline) {
        fprintf(stderr, "wsbench: the run did not finish in time\n");
        errors++;
    }

    printf("RESULT mode=%s target=%s clients=%d window=%d size=%d seconds=%.2f count=%llu "
           "rate=%.0f", names[m], opt.label, opt.clients, opt.window, opt.size, secs,
           (unsigned long long)count, (double)count / secs);
    if (samples)
        printf(" p50_us=%.0f p99_us=%.0f max_us=%.0f", percentile(0.50), percentile(0.99),
               (double)max_ns / 1000);
    if (opt.mode == FLOOD)
        printf(" flood=%s round_trips=%llu away_seats=%llu", opt.seat ? "seat" : "echo",
               (unsigned long long)samples, (unsigned long long)seats_made);
    if (cpu0 >= 0 && cpu1 >= 0 && count > 0)
        printf(" server_cpu_ns=%.0f", (double)(cpu1 - cpu0) / (double)count);
    if (cpu0 >= 0 && cpu1 >= 0)
        printf(" server_cpu_ms_per_s=%.2f", (double)(cpu1 - cpu0) / 1e6 / secs);
    if (opt.pid)
        printf(" server_peak_rss_kb=%ld", peak_rss_kb(opt.pid));
    printf(" errors=%llu\n", (unsigned long long)errors);
    return errors ? 1 : 0;
}
