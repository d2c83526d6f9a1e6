/* 06-nonblocking.c -- lesson 6: lesson 5's server, safe for a classroom.
 *
 * New since lesson 5: no client can make the server wait.
 *   - Sockets are O_NONBLOCK: read() and write() take what is there, and
 *     never wait for a client.
 *   - Each client has an output queue. send_bytes() only adds to it;
 *     select()'s second set (write) says when a client can take more, and
 *     flush() writes what the kernel takes: often only part of it.
 *   - Closing: our close frame is queued; once it is written, shutdown()
 *     sends our FIN, and we read until the peer's FIN. A plain close()
 *     would drop what is queued, and (with the peer's bytes unread) send a
 *     reset that can destroy the close frame on its way.
 *   - Deadlines: a request head within HEAD_TIME seconds; a client silent
 *     for IDLE_TIME is pinged, and dropped if silent as long again; a
 *     close within CLOSE_TIME. select() sleeps until the nearest one.
 * Replies are lesson 5's: the tutorial's, byte for byte, while "req" and
 * "text" are strings; lesson 5's header and lessons/README.md say where not.
 * Build: cc -o nonblocking lessons/06-nonblocking.c sha1.c
 * Run:   ./nonblocking 8080
 * Try:   with the tutorial's pages open, run `nc localhost 8080` in a
 *        terminal and wait: HEAD_TIME seconds later it is dropped, and the
 *        pages never knew. Sixteen of them fill lesson 5 for good.
 * Exercise: count deadlines in milliseconds on clock_gettime()'s monotonic
 *        clock: each on time, not up to a second early; select() still
 *        sleeps until the nearest. Check: python3 lessons/check.py 06 FILE
 * Left out: the queue's size is fixed, not -s (queue_frame()); a client
 *        whose queue does not move is dropped only once it is full
 *        (conn_timers() gives it SEND_TIMEOUT_S); reading from a client
 *        with a long queue is not paused (conn_flush()); a close frame's
 *        reason and a look for the peer's close among its frames
 *        (conn_skip_frames()); lesson 5's. */
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

#define MAX_CLIENTS 16
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
#define BASE64      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

struct str {                    /* bytes that may hold a NUL */
    const char *p;
    size_t len;
};
#define S(s) ((struct str){ (s), strlen(s) })   /* a C string as a struct str */

static struct client {
    int fd;                     /* -1: a free place                     */
    int open;                   /* the handshake is done                */
    int admin;                  /* it sent "get connections"            */
    int closing;                /* our close is queued: read until EOF  */
    int pinged;                 /* it has a ping to answer              */
    time_t deadline;            /* when to act if nothing comes         */
    unsigned long number;       /* arrival order, for the role list     */
    char key[26];               /* Sec-WebSocket-Key                    */
    size_t len;                 /* bytes in buf                         */
    unsigned char buf[MAX_FRAME + 1];   /* the request, then frames     */
    size_t out_len;             /* bytes in out                         */
    unsigned char out[MAX_OUT]; /* what it has yet to take, in order    */
} clients[MAX_CLIENTS];
static unsigned long arrivals;
static char reply[MAX_REPLY];           /* a reply as it is written      */
static char scratch[MAX_MESSAGE];       /* strings of a request, decoded */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Queue n bytes for c: flush() writes them when c can take them. A client
 * that lets MAX_OUT bytes pile up is not reading: shutdown() makes its
 * next read() return 0, and it is dropped like any that left. */
static int send_bytes(struct client *c, const void *p, size_t n)
{
    if (c->out_len + n > MAX_OUT) {
        shutdown(c->fd, SHUT_RDWR);
        return -1;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

/* select() says c can take more: write what the kernel takes of the
 * queue, often part of it; the rest waits for the next turn. */
static void flush(struct client *c)
{
    ssize_t w = write(c->fd, c->out, c->out_len);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        c->out_len = 0;         /* reset, or a broken pipe: it has gone */
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    if (w > 0) {
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
    }
    if (c->out_len == 0 && c->closing)
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
        for (int i = 0; i < MAX_CLIENTS; i++)
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

static void drop(struct client *c)
{
    leave(c);
    close(c->fd);
    c->fd = -1;
}

/* What c is sent last is queued: c leaves the table, and the socket closes
 * once the peer has too (see the top), CLOSE_TIME at most. Till then, what
 * comes is read into buf, emptied: read() into a full one (a 431) returns 0. */
static void start_close(struct client *c)
{
    leave(c);
    c->closing = 1;
    c->len = 0;
    c->deadline = time(NULL) + CLOSE_TIME;
}

/* Say goodbye with a close frame that gives the code (lesson 4: a reason too). */
static void fail(struct client *c, unsigned code)
{
    unsigned char payload[2] = { (unsigned char)(code >> 8), (unsigned char)code };
    send_frame(c, 8, payload, 2);
    start_close(c);
}

/* The open WebSocket whose key is k: lookup[k] (wspush.c: conn_by_key()). */
static struct client *lookup(struct str k)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
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

/* Look at the frame at the start of c->buf. Returns its length once it is
 * all there (and acts on it), 0 while it is not, -1 if c is now closing. */
static long one_frame(struct client *c)
{
    unsigned char *p = c->buf;
    if (c->len < 2)
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
    if (!fin || opcode == 0 || opcode == 2) {
        fail(c, 1003);          /* a shortcut: one text frame a message */
        return -1;
    }
    if (c->len < 2 + ext + 4)
        return 0;
    uint64_t len = 0;
    if (ext == 0)
        len = p[1] & 0x7f;
    for (size_t i = 0; i < ext; i++)            /* big-endian */
        len = len << 8 | p[2 + i];
    if (len > MAX_MESSAGE) {    /* checked before any of it is waited for */
        fail(c, 1009);
        return -1;
    }
    unsigned char *mask = p + 2 + ext, *data = mask + 4;
    if (c->len < 2 + ext + 4 + len)
        return 0;
    for (uint64_t i = 0; i < len; i++)
        data[i] ^= mask[i % 4];
    if (opcode == 1)                    /* text: a request */
        on_message(c, (const char *)data, (size_t)len);
    else if (opcode == 9)               /* ping: pong the same payload */
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

/* The request head c->buf[0..head) is complete: answer 101 (lesson 3),
 * and c takes its place in the table, as a user. */
static void handshake(struct client *c, size_t head)
{
    unsigned char digest[SHA1_DIGEST_LEN];
    char accept_key[BASE64_LEN(SHA1_DIGEST_LEN) + 1], answer[256];
    struct sha1 s;
    int echo;
    c->buf[head - 1] = '\0';           /* the head alone: frames may follow */
    if (read_head((char *)c->buf, c->key, &echo) < 0) {
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
    c->deadline = time(NULL) + IDLE_TIME;
    log_dated("Connection accepted. User key: ", c->key);
    send_roles(NULL, "Current active connections");
    memmove(c->buf, c->buf + head, c->len - head);
    c->len -= head;
}

/* c's socket is readable: read, then act on each whole request or frame. */
static void serve_client(struct client *c)
{
    size_t room = (c->open ? MAX_FRAME : MAX_HEAD) - c->len;
    ssize_t n = read(c->fd, c->buf + c->len, room);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;                         /* nothing after all */
    if (n <= 0) {
        drop(c);
        return;
    }
    if (c->closing)
        return;                         /* read until EOF, and forget it */
    if (c->open) {
        c->deadline = time(NULL) + IDLE_TIME;   /* it is alive */
        c->pinged = 0;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    char *end = c->open ? NULL : strstr((char *)c->buf, "\r\n\r\n");
    if (!c->open && end == NULL && c->len == MAX_HEAD) {
        const char *no = "HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n";
        send_bytes(c, no, strlen(no));
        start_close(c);
        return;
    }
    if (end != NULL)
        handshake(c, (size_t)(end + 4 - (char *)c->buf));
    long used;
    while (c->open && (used = one_frame(c)) > 0) {
        memmove(c->buf, c->buf + used, c->len - (size_t)used);
        c->len -= (size_t)used;
    }
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

static void accept_client(int sockfd)
{
    int fd = accept(sockfd, NULL, NULL);                         /* 4. accept() */
    if (fd < 0)
        return;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (clients[i].fd == -1) {
            clients[i].fd = fd;
            clients[i].open = 0;
            clients[i].len = 0;
            clients[i].out_len = 0;
            clients[i].closing = 0;
            clients[i].pinged = 0;
            clients[i].deadline = time(NULL) + HEAD_TIME;
            return;
        }
    }
    close(fd);
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
    c->deadline = time(NULL) + IDLE_TIME;
}

int main(int argc, char **argv)
{
    long port = argc > 1 ? strtol(argv[1], NULL, 10) : 8080;
    if (port < 1 || port > 65535) {
        fprintf(stderr, "usage: nonblocking [PORT]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i].fd = -1;
    int sockfd = listen_on(port);
    log_dated("Server is listening on port ", argc > 1 ? argv[1] : "8080");
    for (;;) {
        fd_set ready, writable;
        int max_fd = sockfd;
        time_t now = time(NULL), next = now + IDLE_TIME;
        FD_ZERO(&ready);
        FD_ZERO(&writable);
        FD_SET(sockfd, &ready);
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (clients[i].fd != -1) {
                FD_SET(clients[i].fd, &ready);
                if (clients[i].out_len > 0)
                    FD_SET(clients[i].fd, &writable);
                if (clients[i].fd > max_fd)
                    max_fd = clients[i].fd;
                if (clients[i].deadline < next)
                    next = clients[i].deadline;
            }
        }
        struct timeval wait = { 0, 0 };         /* until the nearest deadline */
        if (next > now)
            wait.tv_sec = next - now;
        if (select(max_fd + 1, &ready, &writable, NULL, &wait) < 0)
            die("select");
        if (FD_ISSET(sockfd, &ready))
            accept_client(sockfd);
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            if (c->fd != -1 && FD_ISSET(c->fd, &writable))
                flush(c);
            if (c->fd != -1 && FD_ISSET(c->fd, &ready))
                serve_client(c);
            if (c->fd != -1 && time(NULL) >= c->deadline)
                tick(c);
        }
    }
}
