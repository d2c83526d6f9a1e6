/* 07-classroom.c -- lesson 7: lesson 6 grown into wspush.c's first reading.
 *
 * New since lesson 6: the four things wspush.c's first reading does that
 * lesson 6 does not. Each is named in a comment where it is taken.
 *   - A table indexed by fd: clients[fd] is the client on socket fd, so
 *     accept() looks for no free place. select()'s two sets are kept
 *     between passes: FD_SET when a socket comes or has bytes to write,
 *     FD_CLR when it goes or its queue is empty; each pass gives select()
 *     copies of them. Lesson 6 built both again on every pass.
 *   - Buffers that grow as bytes arrive (struct buf): what a client sent,
 *     its message and its queue hold what came, never what a length field
 *     claims; each has its limit (MAX_HEAD, MAX_FRAME, MAX_MESSAGE,
 *     MAX_OUT), and gives its memory back once empty. Lesson 6 set aside
 *     854 KB for each of its 16 places, used or not: 100 would take 86 MB.
 *   - Messages in several frames (§5.4): a text frame, continuations, the
 *     last with FIN, gathered in msg; pings and closes may come between.
 *     Frames out of order: 1002; the pieces over MAX_MESSAGE: 1009.
 *   - Timers in milliseconds, on a clock that only goes forward (lesson
 *     6's exercise): every deadline set goes through timer_at(), which
 *     keeps one wake-up time, the soonest; select() sleeps exactly until
 *     then, or, with no deadline at all, until a socket is ready.
 * Replies are lesson 5's: the tutorial's, byte for byte, while "req" and
 * "text" are strings; lesson 5's header and lessons/README.md say where not.
 * Build: cc -o classroom lessons/07-classroom.c sha1.c
 * Run:   ./classroom 8080
 * Try:   open the tutorial's pages in twenty tabs (lesson 6 took 16), then
 *        `ls -l /proc/$(pgrep -n classroom)/fd`: the numbers there are
 *        the places in clients[]. `strace -e trace=select,pselect6
 *        ./classroom 8080` shows each select()'s timeout: the time to the
 *        next deadline, to the millisecond, or NULL while there is none.
 * Exercise: text must be UTF-8 (§8.1; RFC 3629: no overlong form, no
 *        surrogate, nothing past U+10FFFF): close 1007 at the first frame
 *        that holds a byte which cannot be, even when a character is split
 *        between frames, and when a message ends inside one.
 *        Check: python3 lessons/check.py 07 FILE
 * Left out: the UTF-8 check (the exercise; utf8_check() in wspush.c); a
 *        frame waits whole in c->in, then is copied to msg, where wspush.c
 *        unmasks each piece into the message as it comes (frame_decode());
 *        binary messages (1003); a key is found by walking the table, not
 *        by its hash (conn_by_key()); no limit on all buffers together
 *        (shed_load()); a queue's limit is fixed, not -s (queue_frame()),
 *        and one that does not move is dropped only once full
 *        (conn_timers()); reading is not paused while a queue is long
 *        (conn_flush()); a close frame's reason, and a look for the peer's
 *        close among its frames (conn_skip_frames()); anyone may be admin
 *        (may_be_admin()); JSON's fine print (json_value()). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "../sha1.h"

#define MAX_CLIENTS 100                 /* sockets at once: more are closed    */
#define MAX_HEAD    8192                /* a longer request is refused (431)   */
#define MAX_MESSAGE (64 * 1024)         /* a longer message: close 1009        */
#define MAX_FRAME   (14 + MAX_MESSAGE)  /* header (2 + 8 + 4 bytes) + payload  */
#define MAX_REPLY   (6 * MAX_MESSAGE + 64 * MAX_CLIENTS)  /* 6 bytes a byte at most */
#define GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_DEPTH   32                  /* arrays and objects inside each other */
#define MAX_OUT     (2 * MAX_REPLY)       /* a client's queue: more, and it is dropped */
#define HEAD_TIME   10                  /* seconds for the request head         */
#define IDLE_TIME   20                  /* seconds of silence before a ping     */
#define CLOSE_TIME  5                   /* seconds for the peer to close        */
#define READ_CHUNK  16384               /* bytes one read() takes at most       */
#define BASE64      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

struct str {                    /* bytes that may hold a NUL */
    const char *p;
    size_t len;
};
#define S(s) ((struct str){ (s), strlen(s) })   /* a C string as a struct str */

struct buf {                    /* bytes that grow as they arrive       */
    unsigned char *data;        /* from malloc(); NULL while empty      */
    size_t len;                 /* bytes in it; data[len] is a NUL      */
    size_t cap;                 /* bytes it has room for                */
};

/* New: a table indexed by fd (wspush.c: srv.conns[fd]). The sets that
 * select() watches are kept from pass to pass: FD_SET and FD_CLR as
 * sockets come and go (accept_client(), drop()), and as queues fill and
 * empty (send_bytes(), flush()). */
static struct client {
    int fd;                     /* -1: no socket has this number        */
    int open;                   /* the handshake is done                */
    int admin;                  /* it sent "get connections"            */
    int closing;                /* our close is queued: read until EOF  */
    int pinged;                 /* it has a ping to answer              */
    int in_message;             /* a message has begun, and not ended   */
    long long deadline;         /* when to act if nothing comes, in ms  */
    unsigned long number;       /* arrival order, for the role list     */
    char key[26];               /* Sec-WebSocket-Key                    */
    struct buf in;              /* the request, then frames: MAX_HEAD,  */
                                /* then MAX_FRAME + READ_CHUNK at most  */
    struct buf msg;             /* a message, frame by frame, until FIN */
    struct buf out;             /* what it has yet to take, in order    */
} clients[FD_SETSIZE];          /* clients[fd]: the client on socket fd */
static fd_set read_fds, write_fds;      /* what select() watches: kept   */
static int max_fd;                      /* the highest fd in read_fds    */
static int n_clients;                   /* sockets in clients[]          */
static long long wake_ms;               /* the soonest deadline; 0: none */
static unsigned long arrivals;
static char reply[MAX_REPLY];           /* a reply as it is written      */
static char scratch[MAX_MESSAGE];       /* strings of a request, decoded */
static unsigned char chunk[READ_CHUNK]; /* what one read() brings        */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* ---- New: buffers that grow as bytes arrive (wspush.c: buf_reserve()).
 * The caller checks its limit first; a buffer then grows to hold the
 * bytes that came, by doubling, never to the size a length field claims. */

static void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Append p[0..n) to b, and a NUL after them, so that a request head can
 * be searched as a string. Returns 0, or -1 if memory is short. */
static int buf_append(struct buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        unsigned char *data = realloc(b->data, cap);
        if (data == NULL)
            return -1;          /* b is as it was */
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* Take the first n bytes (n > 0) off b; once empty, it gives its memory
 * back, so that a client that sent one long message does not keep it. */
static void buf_take(struct buf *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n + 1);      /* and the NUL */
    b->len -= n;
    if (b->len == 0)
        buf_free(b);
}

/* ---- New: timers in milliseconds, one wake-up time for them all
 * (wspush.c: timer_at(), timers()). */

/* Milliseconds on CLOCK_MONOTONIC, which only goes forward: the wall
 * clock may be set back or forward while we wait. */
static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Every deadline is set through here: wake_ms keeps the soonest, and
 * select() sleeps until then (wspush.c: timer_at()). Returns ms. A
 * deadline whose client has gone may still wake the loop, once: timers()
 * then finds nothing due, and the next wake-up time. */
static long long timer_at(long long ms)
{
    if (wake_ms == 0 || ms < wake_ms)
        wake_ms = ms;
    return ms;
}

/* Queue n bytes for c: flush() writes them when c can take them. The
 * queue grows as replies come. A client that lets MAX_OUT bytes pile up
 * is not reading: shutdown() makes its next read() return 0, and it is
 * dropped like any that left (so is one we have no memory for). */
static int send_bytes(struct client *c, const void *p, size_t n)
{
    if (c->out.len + n > MAX_OUT || buf_append(&c->out, p, n) < 0) {
        shutdown(c->fd, SHUT_RDWR);
        return -1;
    }
    FD_SET(c->fd, &write_fds);  /* select(): say when it can take them */
    return 0;
}

/* select() says c can take more: write what the kernel takes of the
 * queue, often part of it; the rest waits for the next turn. */
static void flush(struct client *c)
{
    ssize_t w = write(c->fd, c->out.data, c->out.len);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        buf_free(&c->out);      /* reset, or a broken pipe: it has gone */
        FD_CLR(c->fd, &write_fds);
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    if (w > 0)
        buf_take(&c->out, (size_t)w);
    if (c->out.len == 0)
        FD_CLR(c->fd, &write_fds);      /* all written: ask no more */
    if (c->out.len == 0 && c->closing)
        shutdown(c->fd, SHUT_WR);       /* all written: our FIN */
}

/* Print p[0..len) after what, with bytes that could drive a terminal or
 * forge a line (below space, and DEL) as \xNN, at most 200 of them. */
static void print_escaped(const char *what, const char *p, size_t len)
{
    printf("%s", what);
    for (size_t i = 0; i < len && i < 200; i++) {
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            printf("\\x%02x", (unsigned char)p[i]);
        else
            putchar(p[i]);
    }
    putchar('\n');
}

/* Print a dated line, as the tutorial's server does. */
static void log_dated(const char *what, const char *arg)
{
    char when[64];
    time_t t = time(NULL);
    strftime(when, sizeof when, "%a %b %d %Y %H:%M:%S GMT%z", localtime(&t));
    printf("%s %s%s\n", when, what, arg);
}

/* Send one frame: FIN set, no mask (§5.1), the shortest length form. */
static int send_frame(struct client *c, int opcode, const void *p, uint64_t len)
{
    unsigned char head[10];
    size_t ext = 0;                     /* the length fits in 7 bits */
    head[0] = (unsigned char)(0x80 | opcode);
    head[1] = (unsigned char)len;
    if (len > 0xffff) {
        ext = 8;                        /* 127, then 8 bytes of length */
        head[1] = 127;
    } else if (len >= 126) {
        ext = 2;                        /* 126, then 2 bytes of length */
        head[1] = 126;
    }
    for (size_t i = 0; i < ext; i++)                    /* big-endian */
        head[2 + i] = (unsigned char)(len >> (8 * (ext - 1 - i)));
    if (send_bytes(c, head, 2 + ext) < 0)
        return -1;
    return send_bytes(c, p, (size_t)len);
}

/* ---- The JSON scanner (wspush.c's is section 11). strchr(set, c) finds
 * the NUL that ends set too, so a NUL in a message would pass for one of
 * the set: each use checks c != '\0' first. */
struct json {
    const char *p, *end;
    char *out;                  /* where the next decoded string goes */
    struct str req, text, userkey;
};

static void skip_space(struct json *j)
{
    while (j->p < j->end && *j->p != '\0' && strchr(" \t\r\n", *j->p) != NULL)
        j->p++;
}

/* Skip spaces, then take the character c if it comes next: 1 if it did. */
static int eat(struct json *j, char c)
{
    skip_space(j);
    if (j->p == j->end || *j->p != c)
        return 0;
    j->p++;
    return 1;
}

/* "u" and four hex digits at j->p, into *cp; -1 if they are not there. */
static int hex4(struct json *j, unsigned *cp)
{
    char digits[5] = { 0 };
    if (j->end - j->p < 5 || *j->p != 'u')
        return -1;
    memcpy(digits, j->p + 1, 4);
    if (strspn(digits, "0123456789abcdefABCDEF") != 4)
        return -1;
    *cp = (unsigned)strtoul(digits, NULL, 16);
    j->p += 5;
    return 0;
}

/* Write code point cp as UTF-8 at o, in 1 to 4 bytes; returns how many. */
static int put_utf8(char *o, unsigned cp)
{
    static const unsigned char lead[5] = { 0, 0x00, 0xc0, 0xe0, 0xf0 };
    static const unsigned below[4] = { 0x80, 0x800, 0x10000, 0x110000 };
    int n = 1;
    while (cp >= below[n - 1])
        n++;
    for (int i = n - 1; i > 0; i--) {   /* 6 bits a byte, the last byte first */
        o[i] = (char)(0x80 | (cp & 0x3f));
        cp >>= 6;
    }
    o[0] = (char)(lead[n] | cp);
    return n;
}

/* The escape after a backslash, at j->p: its character, decoded at *o. */
static int escape(struct json *j, char **o)
{
    static const char in[] = "\"\\/bfnrt", out[] = "\"\\/\b\f\n\r\t";
    unsigned cp, lo;
    if (j->p < j->end && *j->p != '\0' && strchr(in, *j->p) != NULL) {
        *(*o)++ = out[strchr(in, *j->p) - in];
        j->p++;
        return 0;
    }
    if (hex4(j, &cp) < 0)
        return -1;
    /* A pair of \u escapes (UTF-16) may stand for one character past U+FFFF. */
    if (cp >= 0xd800 && cp <= 0xdbff && j->p < j->end && *j->p == '\\') {
        j->p++;
        if (hex4(j, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
            return -1;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    if (cp >= 0xd800 && cp <= 0xdfff)
        return -1;                      /* a lone surrogate: a shortcut */
    *o += put_utf8(*o, cp);
    return 0;
}

/* Read the string at j->p (after its quote) into *s, decoded into j->out. */
static int string(struct json *j, struct str *s)
{
    char *o = j->out;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p;
        j->p++;
        if (c < 0x20)
            return -1;                  /* control characters must be escaped */
        if (c != '\\')
            *o++ = (char)c;
        else if (escape(j, &o) < 0)
            return -1;
    }
    if (!eat(j, '"'))                  /* the closing quote */
        return -1;
    s->p = j->out;
    s->len = (size_t)(o - j->out);
    j->out = o;                         /* a decoded string is never longer */
    return 0;
}

/* True if s is the word w. */
static int is(struct str s, const char *w)
{
    return s.p != NULL && s.len == strlen(w) && memcmp(s.p, w, s.len) == 0;
}

/* The value at j->p: a string (decoded into *s); a number, true, false or
 * null (a shortcut: their letters are not checked closely); or an array or
 * object, whose items are read in turn, at most MAX_DEPTH deep. Of the
 * request itself (depth 1), the strings "req", "text", "userkey" are kept. */
static int value(struct json *j, int depth, struct str *s)
{
    char close = '}';
    skip_space(j);
    const char *start = j->p;
    if (depth > MAX_DEPTH)
        return -1;
    if (eat(j, '"'))
        return string(j, s);
    if (eat(j, '['))
        close = ']';
    else if (!eat(j, '{')) {
        while (j->p < j->end && *j->p != '\0' && strchr("+-.0123456789Eaeflnrstu", *j->p) != NULL)
            j->p++;
        return j->p > start ? 0 : -1;   /* at least one letter */
    }
    for (int n = 0; !eat(j, close); n++) {
        struct str name = { NULL, 0 }, v = { NULL, 0 };
        if (n > 0 && !eat(j, ','))
            return -1;
        if (close == '}' && (!eat(j, '"') || string(j, &name) < 0 || !eat(j, ':')))
            return -1;
        if (value(j, depth + 1, &v) < 0)
            return -1;
        if (depth == 1 && is(name, "req"))
            j->req = v;
        else if (depth == 1 && is(name, "text"))
            j->text = v;
        else if (depth == 1 && is(name, "userkey"))
            j->userkey = v;
    }
    return 0;
}

/* Scan the request: an object, and nothing after it. */
static int request(struct json *j)
{
    struct str ignored;
    skip_space(j);
    if (j->p == j->end || *j->p != '{' || value(j, 1, &ignored) < 0)
        return -1;
    skip_space(j);
    return j->p == j->end ? 0 : -1;
}

/* Append s at *o as a JSON string, as JSON.stringify does: \" \\ \b \f \n
 * \r \t for those, \u00XX for other bytes below space. */
static void put_string(char **o, struct str s)
{
    static const char named[] = "\"\\\b\f\n\r\t", letter[] = "\"\\bfnrt";
    *(*o)++ = '"';
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        const char *n = NULL;
        if (c != '\0')
            n = strchr(named, c);
        if (n != NULL)
            *o += sprintf(*o, "\\%c", letter[n - named]);
        else if (c < 0x20)
            *o += sprintf(*o, "\\u%04x", c);
        else
            *(*o)++ = (char)c;
    }
    *(*o)++ = '"';
}

/* Send {"resp":RESP,"content":TEXT} to c; no "content" if text.p is NULL. */
static void send_reply(struct client *c, struct str resp, struct str text)
{
    char *o = reply + sprintf(reply, "{\"resp\":");
    put_string(&o, resp);
    if (text.p != NULL) {
        o += sprintf(o, ",\"content\":");
        put_string(&o, text);
    }
    *o++ = '}';
    send_frame(c, 1, reply, (size_t)(o - reply));
}

/* Print every key with its role, in the order they came, and send them to c
 * (if not NULL). A key needs no escaping: read_head() let in base64 only. */
static void send_roles(struct client *c, const char *prompt)
{
    char *o = reply + sprintf(reply, "{\"resp\":\"get connections\",\"content\":{");
    printf("%s\n{", prompt);
    for (unsigned long last = 0;;) {
        struct client *u = NULL;        /* the next to arrive after last */
        for (int i = 0; i <= max_fd; i++)
            if (clients[i].fd != -1 && clients[i].open && clients[i].number > last &&
                (u == NULL || clients[i].number < u->number))
                u = &clients[i];
        if (u == NULL)
            break;
        if (last > 0) {
            *o++ = ',';
            putchar(',');
        }
        o += sprintf(o, "\"%s\":\"%s\"", u->key, u->admin ? "admin" : "user");
        printf("\n  '%s': '%s'", u->key, u->admin ? "admin" : "user");
        last = u->number;
    }
    printf("\n}\n");
    o += sprintf(o, "}}");
    if (c != NULL)
        send_frame(c, 1, reply, (size_t)(o - reply));
}

/* c leaves the table (if it was in it), logged by its key, not its address. */
static void leave(struct client *c)
{
    if (c->open) {
        c->open = 0;
        log_dated("Peer disconnected. User key: ", c->key);
        send_roles(NULL, "Current active connections (close event)");
    }
}

/* Close c's socket: select() watches it no more, and its memory goes. */
static void drop(struct client *c)
{
    leave(c);
    FD_CLR(c->fd, &read_fds);
    FD_CLR(c->fd, &write_fds);
    close(c->fd);
    c->fd = -1;
    buf_free(&c->in);
    buf_free(&c->msg);
    buf_free(&c->out);
    n_clients--;
    while (!FD_ISSET(max_fd, &read_fds))        /* the listening socket stays */
        max_fd--;
}

/* What c is sent last is queued: c leaves the table, and the socket closes
 * once the peer has too (see the top), CLOSE_TIME at most. Till then, what
 * comes is read into chunk, and forgotten. */
static void start_close(struct client *c)
{
    leave(c);
    c->closing = 1;
    buf_free(&c->in);
    buf_free(&c->msg);
    c->deadline = timer_at(now_ms() + CLOSE_TIME * 1000);
}

/* Say goodbye with a close frame that gives the code (wspush.c: conn_fail()). */
static void fail(struct client *c, unsigned code)
{
    unsigned char payload[2] = { (unsigned char)(code >> 8), (unsigned char)code };
    send_frame(c, 8, payload, 2);
    start_close(c);
}

/* The open WebSocket whose key is k: lookup[k] (wspush.c: conn_by_key()). */
static struct client *lookup(struct str k)
{
    for (int i = 0; i <= max_fd; i++)
        if (clients[i].fd != -1 && clients[i].open && strlen(clients[i].key) == k.len &&
            memcmp(clients[i].key, k.p, k.len) == 0)
            return &clients[i];
    return NULL;
}

/* A text message from c: one request. */
static void on_message(struct client *c, const char *p, size_t len)
{
    struct json j = { p, p + len, scratch, { NULL, 0 }, { NULL, 0 }, { NULL, 0 } };
    print_escaped("Received Message: ", p, len);
    if (request(&j) < 0 || j.req.p == NULL) {
        send_reply(c, S("error"), S("malformed request"));
        return;
    }
    if (is(j.req, "get connections")) {
        c->admin = 1;
        send_roles(c, "Request: get connections");
    } else if (is(j.req, "push a user") && lookup(j.userkey) != NULL) {
        send_reply(lookup(j.userkey), S("text"), j.text);
        send_reply(c, S("text"), S("Already sent."));
    } else if (is(j.req, "push a user")) {
        send_reply(c, S("text"), S("Refresh user list complete. Try again!"));
        send_roles(c, "Request: push a user");
    } else {
        send_reply(c, j.req, j.text);           /* the echo */
    }
}

/* Look at the frame at the start of c->in. Returns its length once it is
 * all there (and acts on it), 0 while it is not, -1 if c is now closing. */
static long one_frame(struct client *c)
{
    unsigned char *p = c->in.data;
    if (c->in.len < 2)
        return 0;
    int fin = p[0] >> 7;
    int opcode = p[0] & 0x0f;
    size_t ext = 0;                             /* bytes of length after two */
    if ((p[1] & 0x7f) == 126)
        ext = 2;
    else if ((p[1] & 0x7f) == 127)
        ext = 8;
    /* RSV bits set, no mask, a reserved opcode, a control frame over 125
     * bytes: each is a protocol error, as lesson 4 says. */
    if ((p[0] & 0x70) || !(p[1] & 0x80) || (opcode > 2 && opcode < 8) || opcode > 10 ||
        (opcode >= 8 && (p[1] & 0x7f) > 125)) {
        fail(c, 1002);
        return -1;
    }
    /* New, §5.4: a message is a text frame, then continuations (opcode 0),
     * the last with FIN; control frames may come between, each in one piece. */
    if ((opcode >= 8 && !fin) || (opcode == 0 && !c->in_message) ||
        ((opcode == 1 || opcode == 2) && c->in_message)) {
        fail(c, 1002);
        return -1;
    }
    if (opcode == 2) {
        fail(c, 1003);          /* a shortcut: the tutorial's are text */
        return -1;
    }
    if (c->in.len < 2 + ext + 4)
        return 0;
    uint64_t len = 0;
    if (ext == 0)
        len = p[1] & 0x7f;
    for (size_t i = 0; i < ext; i++)            /* big-endian */
        len = len << 8 | p[2 + i];
    /* The message so far and this frame, checked before any of it is
     * waited for, so c->in never grows past a frame that may be taken;
     * msg.len <= MAX_MESSAGE always holds, so this cannot wrap. */
    if (opcode < 8 && len > MAX_MESSAGE - c->msg.len) {
        fail(c, 1009);
        return -1;
    }
    unsigned char *mask = p + 2 + ext, *data = mask + 4;
    if (c->in.len < 2 + ext + 4 + len)
        return 0;
    for (uint64_t i = 0; i < len; i++)
        data[i] ^= mask[i % 4];
    if (opcode <= 1 && buf_append(&c->msg, data, (size_t)len) < 0) {
        fail(c, 1011);          /* no memory for it: an internal error */
        return -1;
    }
    if (opcode <= 1)                    /* a piece of a text message */
        c->in_message = !fin;
    if (opcode <= 1 && fin) {           /* its last piece: a request */
        on_message(c, (const char *)c->msg.data, c->msg.len);
        buf_free(&c->msg);
    } else if (opcode == 9)             /* ping: pong the same payload */
        send_frame(c, 10, data, len);
    else if (opcode == 8) {             /* close: echo the code, then close */
        send_frame(c, 8, data, len >= 2 ? 2 : 0);
        start_close(c);
        return -1;
    }
    return (long)(2 + ext + 4 + len);
}

/* Pick the key and the subprotocol out of the request head, line by line
 * (strtok_r() cuts it into lines); header names ignore case. Returns 0 if
 * it is a GET with a key of base64, 22 characters and "==": any other key
 * (a quote, a control byte) could break the JSON and the log it goes in. */
static int read_head(char *head, char key[26], int *echo)
{
    char *save, *line;
    int get = strncmp(head, "GET ", 4) == 0;
    key[0] = '\0';
    *echo = 0;
    for (line = strtok_r(head, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        if (strncasecmp(line, "Sec-WebSocket-Key:", 18) == 0)
            sscanf(line + 18, " %25s", key);
        if (strncasecmp(line, "Sec-WebSocket-Protocol:", 23) == 0)
            *echo |= strstr(line, "echo-protocol") != NULL;
    }
    if (!get || strspn(key, BASE64) != 22 || strcmp(key + 22, "==") != 0)
        return -1;
    return 0;
}

/* The request head c->in[0..head) is complete: answer 101 (lesson 3),
 * and c takes its place in the table, as a user. */
static void handshake(struct client *c, size_t head)
{
    unsigned char digest[SHA1_DIGEST_LEN];
    char accept_key[BASE64_LEN(SHA1_DIGEST_LEN) + 1], answer[256];
    struct sha1 s;
    int echo;
    c->in.data[head - 1] = '\0';       /* the head alone: frames may follow */
    if (read_head((char *)c->in.data, c->key, &echo) < 0) {
        const char *no = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        send_bytes(c, no, strlen(no));
        start_close(c);
        return;
    }
    sha1_init(&s);
    sha1_update(&s, c->key, strlen(c->key));
    sha1_update(&s, GUID, strlen(GUID));
    sha1_final(&s, digest);
    base64_encode(accept_key, sizeof accept_key, digest, sizeof digest);
    int n = snprintf(answer, sizeof answer, "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept_key,
                     echo ? "Sec-WebSocket-Protocol: echo-protocol\r\n" : "");
    send_bytes(c, answer, (size_t)n);
    c->open = 1;
    c->admin = 0;
    c->number = ++arrivals;
    c->deadline = timer_at(now_ms() + IDLE_TIME * 1000);
    log_dated("Connection accepted. User key: ", c->key);
    send_roles(NULL, "Current active connections");
    buf_take(&c->in, head);
}

/* c's socket is readable: read what came, READ_CHUNK at most, onto the
 * end of c->in, then act on each whole request or frame. A head may fill
 * c->in to MAX_HEAD; frames to one that one_frame() let in, and a read. */
static void serve_client(struct client *c)
{
    size_t room = READ_CHUNK;
    if (!c->open && MAX_HEAD - c->in.len < room)
        room = MAX_HEAD - c->in.len;
    ssize_t n = read(c->fd, chunk, room);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;                         /* nothing after all */
    if (n <= 0) {
        drop(c);
        return;
    }
    if (c->closing)
        return;                         /* read until EOF, and forget it */
    if (c->open) {
        c->deadline = timer_at(now_ms() + IDLE_TIME * 1000);  /* it is alive */
        c->pinged = 0;
    }
    if (buf_append(&c->in, chunk, (size_t)n) < 0) {
        drop(c);                /* no memory: a shortcut (wspush.c: 1011) */
        return;
    }
    char *end = c->open ? NULL : strstr((char *)c->in.data, "\r\n\r\n");
    if (!c->open && end == NULL && c->in.len == MAX_HEAD) {
        const char *no = "HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n";
        send_bytes(c, no, strlen(no));
        start_close(c);
        return;
    }
    if (end != NULL)
        handshake(c, (size_t)(end + 4 - (char *)c->in.data));
    long used;
    while (c->open && (used = one_frame(c)) > 0)
        buf_take(&c->in, (size_t)used);
}

static int listen_on(long port)
{
    int on = 1;
    int sockfd = socket(AF_INET, SOCK_STREAM, 0);               /* 1. socket() */
    if (sockfd < 0)
        die("socket");
    setsockopt(sockfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY),
                                .sin_port = htons((unsigned short)port) };  /* the rest: 0 */
    if (bind(sockfd, (struct sockaddr *)&addr, sizeof addr) < 0)  /* 2. bind() */
        die("bind");
    if (listen(sockfd, 16) < 0)                                  /* 3. listen() */
        die("listen");
    fcntl(sockfd, F_SETFL, O_NONBLOCK); /* a client gone before accept(): no wait */
    return sockfd;
}

/* Place a new client at clients[fd]: its socket's number is its place,
 * so there is none to look for; select() watches it from now on. */
static void accept_client(int sockfd)
{
    int fd = accept(sockfd, NULL, NULL);                         /* 4. accept() */
    if (fd < 0)
        return;
    /* FD_SET() with an fd at FD_SETSIZE or past it would write past the
     * set, and clients[] has no place for it: closed, as when we are full. */
    if (fd >= FD_SETSIZE || n_clients == MAX_CLIENTS) {
        close(fd);
        return;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    struct client *c = &clients[fd];
    c->fd = fd;
    c->open = 0;
    c->closing = 0;
    c->pinged = 0;
    c->in_message = 0;
    c->deadline = timer_at(now_ms() + HEAD_TIME * 1000);
    FD_SET(fd, &read_fds);
    if (fd > max_fd)
        max_fd = fd;
    n_clients++;
}

/* c's deadline has come: a handshake or a goodbye that took too long is
 * dropped; an open client gets a ping, and if it is still silent at the
 * next deadline, it has gone without a word (Wi-Fi, a dead battery). */
static void tick(struct client *c)
{
    if (!c->open || c->pinged) {
        drop(c);
        return;
    }
    send_frame(c, 9, "", 0);
    c->pinged = 1;
    c->deadline = timer_at(now_ms() + IDLE_TIME * 1000);
}

/* The wake-up time has come: tick() each client whose deadline has, and
 * find the next wake-up time, the soonest deadline left (wspush.c: timers()). */
static void timers(long long now)
{
    wake_ms = 0;
    for (int fd = 0; fd <= max_fd; fd++) {
        if (clients[fd].fd != -1 && now >= clients[fd].deadline)
            tick(&clients[fd]);
        if (clients[fd].fd != -1)
            timer_at(clients[fd].deadline);
    }
}

int main(int argc, char **argv)
{
    long port = argc > 1 ? strtol(argv[1], NULL, 10) : 8080;
    if (port < 1 || port > 65535) {
        fprintf(stderr, "usage: classroom [PORT]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int fd = 0; fd < FD_SETSIZE; fd++)
        clients[fd].fd = -1;
    int sockfd = listen_on(port);
    FD_SET(sockfd, &read_fds);          /* watched from now on, for good */
    max_fd = sockfd;
    log_dated("Server is listening on port ", argc > 1 ? argv[1] : "8080");
    for (;;) {
        long long now = now_ms();
        if (wake_ms != 0 && now >= wake_ms)
            timers(now);
        /* select() writes into the sets it is given: it gets copies. */
        fd_set ready = read_fds, writable = write_fds;
        struct timeval wait, *until = NULL;     /* NULL: no deadline, no timeout */
        if (wake_ms != 0) {                     /* until the soonest deadline */
            wait.tv_sec = (time_t)((wake_ms - now) / 1000);
            wait.tv_usec = (suseconds_t)((wake_ms - now) % 1000 * 1000);
            until = &wait;
        }
        if (select(max_fd + 1, &ready, &writable, NULL, until) < 0)
            die("select");
        if (FD_ISSET(sockfd, &ready))
            accept_client(sockfd);
        for (int fd = 0; fd <= max_fd; fd++) {
            struct client *c = &clients[fd];
            if (c->fd != -1 && FD_ISSET(fd, &writable))
                flush(c);
            if (c->fd != -1 && FD_ISSET(fd, &ready))
                serve_client(c);
        }
    }
}
