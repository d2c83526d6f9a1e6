/* 05-push.c -- lesson 5: the tutorial's server: users indexed by key.
 *
 * New since lesson 4: what the tutorial's server.js does. Each open
 * WebSocket is found by its handshake key (the tutorial's lookup[key]), and
 * each text message is a JSON request, read by a tiny JSON scanner:
 *   {"req":"get connections"}  -> the sender is admin, and gets each key
 *                                 with its role, "user" or "admin"
 *   {"req":"push a user","userkey":K,"text":T} -> T goes to K; the admin
 *                                 hears "Already sent.", or if K has gone,
 *                                 "Refresh user list complete. Try again!"
 *   {"req":R,"text":T}         -> {"resp":R,"content":T}: the echo
 * Replies are written as JSON.stringify writes them: the tutorial's, byte
 * for byte. Build: cc -o push lessons/05-push.c sha1.c   Run: ./push 8080
 * Try:   the tutorial's own user.html and admin.html (served by XAMPP, say):
 *        open two users and an admin, and push to each user.
 * Left out: anyone may be admin, as in the tutorial (may_be_admin()); a
 *        second connection with the same key is let in (409 in wspush.c); a
 *        lone UTF-16 surrogate is refused; the shortcuts of lesson 4. */
#define _POSIX_C_SOURCE 200809L
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
#define MAX_DEPTH   32                  /* nested arrays and objects           */
#define GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct str {                    /* bytes that may hold a NUL */
    const char *p;
    size_t len;
};

static struct client {
    int fd;                     /* -1: a free place                     */
    int open, admin;            /* the handshake is done; its role      */
    unsigned long number;       /* arrival order, for the role list     */
    char key[26];               /* Sec-WebSocket-Key                    */
    size_t len;                 /* bytes in buf                         */
    unsigned char buf[MAX_FRAME + 1];   /* the request, then frames     */
} clients[MAX_CLIENTS];
static unsigned long arrivals;
static char reply[6 * MAX_MESSAGE + 64 * MAX_CLIENTS];  /* a reply: 6 bytes a byte */
static char scratch[MAX_MESSAGE];                       /* decoded strings       */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Print a dated line, as the tutorial's server does. */
static void log_dated(const char *what, const char *arg)
{
    char when[64];
    time_t t = time(NULL);
    strftime(when, sizeof when, "%a %b %d %Y %H:%M:%S GMT%z", localtime(&t));
    printf("%s %s%s\n", when, what, arg);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *q = p;
    while (n > 0) {
        ssize_t w = write(fd, q, n);
        if (w < 0)
            return -1;
        q += w;
        n -= (size_t)w;
    }
    return 0;
}

static void send_roles(struct client *c, const char *prompt);     /* below */
static void drop(struct client *c)
{
    close(c->fd);
    c->fd = -1;
    if (c->open) {
        log_dated("Peer disconnected. User key: ", c->key);
        send_roles(NULL, "Current active connections (close event)");
    }
}

/* Send one frame: FIN set, no mask (§5.1), the shortest length form. */
static int send_frame(struct client *c, int opcode, const void *p, uint64_t len)
{
    unsigned char head[10];
    size_t ext = len < 126 ? 0 : len <= 0xffff ? 2 : 8;
    head[0] = (unsigned char)(0x80 | opcode);
    head[1] = (unsigned char)(ext == 0 ? len : ext == 2 ? 126 : 127);
    for (size_t i = 0; i < ext; i++)
        head[2 + i] = (unsigned char)(len >> (8 * (ext - 1 - i)));
    return write_all(c->fd, head, 2 + ext) < 0 ? -1 : write_all(c->fd, p, (size_t)len);
}

/* Close c with a close frame that gives the code (lesson 4 gives a reason too). */
static void fail(struct client *c, unsigned code)
{
    unsigned char payload[2] = { (unsigned char)(code >> 8), (unsigned char)code };
    send_frame(c, 8, payload, 2);
    drop(c);
}

/* ---- The JSON scanner: a request is an object; "req", "text" and
 * "userkey" must be strings and are kept, decoded; the rest is checked
 * and skipped. (wspush.c's scanner is section 11.) */
struct json {
    const char *p, *end;
    char *out;                  /* where the next decoded string goes */
    struct str req, text, userkey;
};

static void skip_space(struct json *j)
{
    while (j->p < j->end && strchr(" \t\r\n", *j->p) != NULL && *j->p != '\0')
        j->p++;
}

/* Four hex digits into *cp; -1 if they are not there. */
static int hex4(struct json *j, unsigned *cp)
{
    *cp = 0;
    for (int i = 0; i < 4; i++, j->p++) {
        if (j->p == j->end || strchr("0123456789abcdefABCDEF", *j->p) == NULL || *j->p == 0)
            return -1;
        *cp = *cp * 16 + (unsigned)(*j->p <= '9' ? *j->p - '0' : (*j->p | 0x20) - 'a' + 10);
    }
    return 0;
}

/* Read the string at j->p (after its quote) into *s, decoded into j->out. */
static int string(struct json *j, struct str *s)
{
    static const char in[] = "\"\\/bfnrt", out[] = "\"\\/\b\f\n\r\t";
    char *o = j->out;
    unsigned cp, lo;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20)
            return -1;                  /* control characters must be escaped */
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        if (j->p == j->end)
            return -1;
        if (*j->p != 'u' && *j->p != '\0' && strchr(in, *j->p) != NULL) {
            *o++ = out[strchr(in, *j->p++) - in];
            continue;
        }
        if (*j->p++ != 'u' || hex4(j, &cp) < 0)
            return -1;
        if (cp >= 0xd800 && cp <= 0xdbff && j->end - j->p >= 6 && j->p[0] == '\\' &&
            j->p[1] == 'u' && (j->p += 2, hex4(j, &lo) == 0) && lo >= 0xdc00 && lo <= 0xdfff)
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        if (cp >= 0xd800 && cp <= 0xdfff)
            return -1;                  /* a lone surrogate: a shortcut */
        int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        for (int i = n - 1; i > 0; i--, cp >>= 6)       /* UTF-8, last byte first */
            o[i] = (char)(0x80 | (cp & 0x3f));
        o[0] = (char)(n == 1 ? cp : (0xf00u >> n & 0xff) | cp);
        o += n;
    }
    if (j->p == j->end)
        return -1;
    j->p++;                             /* the closing quote */
    *s = (struct str){ j->out, (size_t)(o - j->out) };
    j->out = o;                         /* a decoded string is never longer */
    return 0;
}

/* Check and skip any value; in the request object (depth 1) keep the
 * members we know. Returns 0, or -1 if the JSON is malformed. */
static int value(struct json *j, int depth)
{
    struct str s;
    skip_space(j);
    if (j->p == j->end)
        return -1;
    if (*j->p == '"' && (j->p++, 1))
        return string(j, &s);
    if (*j->p != '{' && *j->p != '[') {         /* a number, true, false, null */
        const char *start = j->p;
        while (j->p < j->end && *j->p != '\0' && strchr("+-.0123456789eEaflnrstu", *j->p))
            j->p++;
        return j->p > start ? 0 : -1;   /* a shortcut: the words are not checked */
    }
    char close = *j->p++ == '{' ? '}' : ']';
    if (depth == MAX_DEPTH)
        return -1;
    skip_space(j);
    for (int n = 0; j->p < j->end && *j->p != close; n++) {
        if (n > 0 && (*j->p++ != ',' || (skip_space(j), j->p == j->end)))
            return -1;
        if (close == ']' && value(j, depth + 1) < 0)
            return -1;
        if (close == '}') {
            struct str key;
            if (*j->p != '"' || (j->p++, string(j, &key)) < 0)
                return -1;
            skip_space(j);
            if (j->p == j->end || *j->p++ != ':')
                return -1;
            skip_space(j);
            struct str *keep = depth > 0 ? NULL : key.len == 3 && !memcmp(key.p, "req", 3) ?
                &j->req : key.len == 4 && !memcmp(key.p, "text", 4) ? &j->text :
                key.len == 7 && !memcmp(key.p, "userkey", 7) ? &j->userkey : NULL;
            if (keep != NULL && (j->p == j->end || *j->p++ != '"' || string(j, keep) < 0))
                return -1;
            if (keep == NULL && value(j, depth + 1) < 0)
                return -1;
        }
        skip_space(j);
    }
    if (j->p == j->end)
        return -1;
    j->p++;
    return 0;
}

/* Append s to the reply at *o as a JSON string, as JSON.stringify does. */
static void put_string(char **o, struct str s)
{
    *(*o)++ = '"';
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        const char *named = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t" : NULL;
        if (named != NULL)
            *o += sprintf(*o, "%s", named);
        else if (c < 0x20)
            *o += sprintf(*o, "\\u%04x", c);
        else
            *(*o)++ = (char)c;
    }
    *(*o)++ = '"';
}

static struct str S(const char *s) { return (struct str){ s, strlen(s) }; }

/* Send {"resp":RESP,"content":TEXT} to c; no "content" if text.p is NULL. */
static void send_reply(struct client *c, struct str resp, struct str text)
{
    char *o = reply;
    o += sprintf(o, "{\"resp\":");
    put_string(&o, resp);
    if (text.p != NULL) {
        o += sprintf(o, ",\"content\":");
        put_string(&o, text);
    }
    *o++ = '}';
    send_frame(c, 1, reply, (size_t)(o - reply));
}

/* Send c every key with its role, in the order they came, as the tutorial
 * does; and print the table. */
static void send_roles(struct client *c, const char *prompt)
{
    char *o = reply + sprintf(reply, "{\"resp\":\"get connections\",\"content\":{");
    printf("%s\n{", prompt);
    for (unsigned long last = 0;;) {        /* the next one to arrive after last */
        struct client *next = NULL;
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (clients[i].fd != -1 && clients[i].open && clients[i].number > last &&
                (next == NULL || clients[i].number < next->number))
                next = &clients[i];
        if (next == NULL)
            break;
        const char *role = next->admin ? "admin" : "user";
        o += sprintf(o, "%s\"%s\":\"%s\"", last ? "," : "", next->key, role);
        printf("%s\n  '%s': '%s'", last ? "," : "", next->key, role);
        last = next->number;
    }
    printf("\n}\n");
    o += sprintf(o, "}}");
    if (c != NULL)
        send_frame(c, 1, reply, (size_t)(o - reply));
}

/* The open WebSocket whose key is k: the tutorial's lookup[k]. (wspush.c
 * hashes the key, conn_by_key(), so the search stays short for 1,000.) */
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
    printf("Received Message: ");
    for (size_t i = 0; i < len && i < 200; i++)     /* control bytes as \xNN */
        printf((unsigned char)p[i] < 0x20 || p[i] == 0x7f ? "\\x%02x" : "%c", (unsigned char)p[i]);
    printf("\n");
    skip_space(&j);
    if (j.p == j.end || *j.p != '{' || value(&j, 0) < 0 || (skip_space(&j), j.p != j.end) ||
        j.req.p == NULL) {
        send_reply(c, S("error"), S("malformed request"));
        return;
    }
    struct client *user = lookup(j.userkey);
    int push = j.req.len == 11 && memcmp(j.req.p, "push a user", 11) == 0;
    if (j.req.len == 15 && memcmp(j.req.p, "get connections", 15) == 0) {
        c->admin = 1;
        send_roles(c, "Request: get connections");
    } else if (push && user != NULL) {
        send_reply(user, S("text"), j.text);
        send_reply(c, S("text"), S("Already sent."));
    } else if (push) {
        send_reply(c, S("text"), S("Refresh user list complete. Try again!"));
        send_roles(c, "Request: push a user");
    } else {
        send_reply(c, j.req, j.text);           /* the echo */
    }
}

/* Act on the frame at the start of c->buf, as lesson 4 does. Returns its
 * length once it is all there, 0 while it is not, -1 if c was closed. */
static long one_frame(struct client *c)
{
    unsigned char *p = c->buf;
    if (c->len < 2)
        return 0;
    int fin = p[0] >> 7, opcode = p[0] & 0x0f;
    size_t ext = (p[1] & 0x7f) == 126 ? 2 : (p[1] & 0x7f) == 127 ? 8 : 0;
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
    uint64_t len = ext == 0 ? p[1] & 0x7f : 0;
    for (size_t i = 0; i < ext; i++)
        len = len << 8 | p[2 + i];
    if (len > MAX_MESSAGE) {
        fail(c, 1009);
        return -1;
    }
    unsigned char *mask = p + 2 + ext, *data = mask + 4;
    if (c->len < 2 + ext + 4 + len)
        return 0;
    for (uint64_t i = 0; i < len; i++)
        data[i] ^= mask[i % 4];
    if (opcode == 1)
        on_message(c, (const char *)data, (size_t)len);
    else if (opcode == 9)
        send_frame(c, 10, data, len);
    else if (opcode == 8) {
        send_frame(c, 8, data, len >= 2 ? 2 : 0);
        drop(c);
    }
    return c->fd == -1 ? -1 : (long)(2 + ext + 4 + len);
}

/* Pick the key and the subprotocol out of the request head, line by line
 * (strtok_r() cuts it into lines); header names ignore case. Returns 0 if
 * it is a GET with a key of 24 characters. */
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
    return get && strlen(key) == 24 ? 0 : -1;
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
        write_all(c->fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 47);
        drop(c);
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
    if (write_all(c->fd, answer, (size_t)n) < 0) {
        drop(c);
        return;
    }
    c->open = 1;
    c->admin = 0;
    c->number = ++arrivals;
    log_dated("Connection accepted. User key: ", c->key);
    send_roles(NULL, "Current active connections");
    memmove(c->buf, c->buf + head, c->len - head);
    c->len -= head;
}

static void serve_client(struct client *c)
{
    /* A request head that fills MAX_HEAD leaves no room: read() gives 0,
     * as at the end, and c is dropped (lesson 3 answers 431). */
    ssize_t n = read(c->fd, c->buf + c->len, (c->open ? MAX_FRAME : MAX_HEAD) - c->len);
    if (n <= 0) {
        drop(c);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    char *end = c->open ? NULL : strstr((char *)c->buf, "\r\n\r\n");
    if (end != NULL)
        handshake(c, (size_t)(end + 4 - (char *)c->buf));
    long used;
    while (c->fd != -1 && c->open && (used = one_frame(c)) > 0) {
        memmove(c->buf, c->buf + used, c->len - (size_t)used);
        c->len -= (size_t)used;
    }
}

int main(int argc, char **argv)
{
    long port = argc > 1 ? strtol(argv[1], NULL, 10) : 8080;
    if (port < 1 || port > 65535) {
        fprintf(stderr, "usage: push [PORT]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i].fd = -1;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    int on = 1;
    /* 1. socket(), 2. bind() to any address of this machine, 3. listen(). */
    int sockfd = socket(AF_INET, SOCK_STREAM, 0);
    if (sockfd < 0)
        die("socket");
    setsockopt(sockfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(sockfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(sockfd, 16) < 0)
        die("bind or listen");
    log_dated("Server is listening on port ", argc > 1 ? argv[1] : "8080");
    for (;;) {
        fd_set ready;
        int max_fd = sockfd;
        FD_ZERO(&ready);
        FD_SET(sockfd, &ready);
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (clients[i].fd != -1) {
                FD_SET(clients[i].fd, &ready);
                max_fd = clients[i].fd > max_fd ? clients[i].fd : max_fd;
            }
        }
        if (select(max_fd + 1, &ready, NULL, NULL, NULL) < 0)
            die("select");
        int fd = FD_ISSET(sockfd, &ready) ? accept(sockfd, NULL, NULL) : -1;  /* 4. accept() */
        int i = 0;
        while (fd >= 0 && i < MAX_CLIENTS && clients[i].fd != -1)
            i++;                                /* a free place, if any */
        if (fd >= 0 && i == MAX_CLIENTS)
            close(fd);
        else if (fd >= 0)
            clients[i] = (struct client){ .fd = fd };
        for (i = 0; i < MAX_CLIENTS; i++)
            if (clients[i].fd != -1 && FD_ISSET(clients[i].fd, &ready))
                serve_client(&clients[i]);
    }
}
