/* 04-frames.c -- lesson 4: frames (RFC 6455 §5): a browser's messages echo back.
 *
 * New since lesson 3: after the handshake, both sides send frames:
 *   byte 0: FIN | RSV1 RSV2 RSV3 | opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong)
 *   byte 1: MASK | length; 126: a 16-bit length follows, 127: a 64-bit one
 *   then, from a browser only, a 4-byte mask key; then the payload, whose
 *   byte i the browser XORed with key[i % 4].
 * Each client's bytes gather in its buffer until a whole frame is there.
 * A text message comes back as a text frame from us (no mask); a ping
 * gets a pong; a close is answered with the same code.
 * Build: cc -o frames lessons/04-frames.c sha1.c     Run: ./frames 8080
 * Try:   in a browser's console:
 *          ws = new WebSocket('ws://localhost:8080/');
 *          ws.onmessage = (e) => console.log(e.data);
 *          ws.send('Hello')
 *        and read the frame this server prints for it.
 * Exercise: take a message in several frames (§5.4): a text frame without
 *        FIN, continuation frames (opcode 0), the last with FIN; echo it
 *        whole, in one frame. Pings may come between them. A continuation
 *        with no message begun, a new message before the last one ended, or
 *        a control frame without FIN: 1002; the whole over MAX_MESSAGE: 1009.
 *        Check: python3 lessons/check.py 04 FILE
 * Left out: messages in several frames, and binary ones (refused with 1003:
 *        frame_decode() in wspush.c); the UTF-8 check of text (utf8_check());
 *        waiting for the peer's close before closing the socket
 *        (conn_skip_frames()); the handshake's checks, as in lesson 3. */
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
#include <unistd.h>
#include "../sha1.h"

#define MAX_CLIENTS 16
#define MAX_HEAD    8192                /* a longer request is refused (431)   */
#define MAX_MESSAGE (256 * 1024)        /* a longer message: close 1009        */
#define MAX_FRAME   (14 + MAX_MESSAGE)  /* header (2 + 8 + 4 bytes) + payload  */
#define GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static struct client {
    int fd;                     /* -1: a free place                     */
    int open;                   /* the handshake is done                */
    size_t len;                 /* bytes in buf                         */
    unsigned char buf[MAX_FRAME + 1];   /* the request, then frames     */
} clients[MAX_CLIENTS];

static void die(const char *what)
{
    perror(what);
    exit(1);
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

static void send_text(int fd, const char *s)
{
    if (write_all(fd, s, strlen(s)) < 0)
        perror("write");
}

static void drop(struct client *c)
{
    printf("[%d] closed\n", c->fd);
    close(c->fd);
    c->fd = -1;
}

/* The name of a length form, by the bytes of length after the first two. */
static const char *form(size_t ext)
{
    if (ext == 0)
        return "7-bit";
    if (ext == 2)
        return "16-bit";
    return "64-bit";
}

/* Send one frame: FIN set, no mask (§5.1), the shortest length form. */
static int send_frame(struct client *c, int opcode, const unsigned char *p, uint64_t len)
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
    printf("[%d] -> frame: FIN 1, opcode %d, length %llu (%s)\n", c->fd, opcode,
           (unsigned long long)len, form(ext));
    if (write_all(c->fd, head, 2 + ext) < 0)
        return -1;
    return write_all(c->fd, p, (size_t)len);
}

/* Say goodbye with a close frame (code, and why) and close the socket. */
static void fail(struct client *c, unsigned code, const char *why)
{
    unsigned char payload[125] = { (unsigned char)(code >> 8), (unsigned char)code };
    size_t n = strlen(why) < 123 ? strlen(why) : 123;
    memcpy(payload + 2, why, n);
    printf("[%d] closing: %u %s\n", c->fd, code, why);
    send_frame(c, 8, payload, 2 + n);
    drop(c);
}

/* Look at the frame at the start of c->buf. Returns its length in bytes
 * once it is all there (and acts on it), 0 while it is not, -1 if c
 * was closed. */
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
    if ((p[0] & 0x70) || !(p[1] & 0x80)) {      /* RSV bits set, or no mask */
        fail(c, 1002, "expected a masked frame, no extensions");
        return -1;
    }
    if ((opcode > 2 && opcode < 8) || opcode > 10 || (opcode >= 8 && (p[1] & 0x7f) > 125)) {
        fail(c, 1002, "reserved opcode, or a control frame over 125 bytes");
        return -1;
    }
    if (!fin || opcode == 0 || opcode == 2) {
        fail(c, 1003, "one text frame a message, please");     /* a shortcut */
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
        fail(c, 1009, "message too big");
        return -1;
    }
    unsigned char *mask = p + 2 + ext, *data = mask + 4;
    if (c->len < 2 + ext + 4 + len)
        return 0;
    for (uint64_t i = 0; i < len; i++)
        data[i] ^= mask[i % 4];
    char shown[33] = "";        /* the first bytes, control bytes as '.' */
    for (size_t i = 0; i < len && i < 32; i++)
        shown[i] = data[i] >= 0x20 && data[i] < 0x7f ? (char)data[i] : '.';
    printf("[%d] <- frame: FIN %d, opcode %d, MASK 1, length %llu (%s), key %02x%02x%02x%02x:"
           " \"%s\"\n", c->fd, fin, opcode, (unsigned long long)len, form(ext), mask[0],
           mask[1], mask[2], mask[3], shown);
    int bad = 0;
    if (opcode == 1)                    /* text: echo it */
        bad = send_frame(c, 1, data, len);
    else if (opcode == 9)               /* ping: pong the same payload */
        bad = send_frame(c, 10, data, len);
    else if (opcode == 8) {             /* close: echo the code, then close */
        send_frame(c, 8, data, len >= 2 ? 2 : 0);
        drop(c);
        return -1;
    }
    if (bad) {
        drop(c);
        return -1;
    }
    return (long)(2 + ext + 4 + len);
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

/* The request head c->buf[0..head) is complete: answer 101 (lesson 3). */
static void handshake(struct client *c, size_t head)
{
    unsigned char digest[SHA1_DIGEST_LEN];
    char accept_key[BASE64_LEN(SHA1_DIGEST_LEN) + 1], answer[256], key[26];
    struct sha1 s;
    int echo;
    c->buf[head - 1] = '\0';           /* the head alone: frames may follow */
    if (read_head((char *)c->buf, key, &echo) < 0) {
        send_text(c->fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        drop(c);
        return;
    }
    sha1_init(&s);
    sha1_update(&s, key, strlen(key));
    sha1_update(&s, GUID, strlen(GUID));
    sha1_final(&s, digest);
    base64_encode(accept_key, sizeof accept_key, digest, sizeof digest);
    printf("[%d] key %s: Sec-WebSocket-Accept %s\n", c->fd, key, accept_key);
    int n = snprintf(answer, sizeof answer, "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept_key,
                     echo ? "Sec-WebSocket-Protocol: echo-protocol\r\n" : "");
    if (write_all(c->fd, answer, (size_t)n) < 0) {
        drop(c);
        return;
    }
    c->open = 1;
    memmove(c->buf, c->buf + head, c->len - head);
    c->len -= head;
}

/* c's socket is readable: read, then act on each whole request or frame. */
static void serve_client(struct client *c)
{
    size_t room = (c->open ? MAX_FRAME : MAX_HEAD) - c->len;
    ssize_t n = read(c->fd, c->buf + c->len, room);
    if (n <= 0) {
        drop(c);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    char *end = c->open ? NULL : strstr((char *)c->buf, "\r\n\r\n");
    if (!c->open && end == NULL && c->len == MAX_HEAD) {
        send_text(c->fd, "HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n");
        drop(c);
        return;
    }
    if (end != NULL)
        handshake(c, (size_t)(end + 4 - (char *)c->buf));
    long used;
    while (c->fd != -1 && c->open && (used = one_frame(c)) > 0) {
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
    return sockfd;
}

static void accept_client(int sockfd)
{
    int fd = accept(sockfd, NULL, NULL);                         /* 4. accept() */
    if (fd < 0)
        return;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (clients[i].fd == -1) {
            clients[i].fd = fd;
            clients[i].open = 0;
            clients[i].len = 0;
            printf("[%d] accepted\n", fd);
            return;
        }
    }
    close(fd);
}

int main(int argc, char **argv)
{
    long port = argc > 1 ? strtol(argv[1], NULL, 10) : 8080;
    if (port < 1 || port > 65535) {
        fprintf(stderr, "usage: frames [PORT]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i].fd = -1;
    int sockfd = listen_on(port);
    printf("Server is listening on port %ld\n", port);
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
        if (FD_ISSET(sockfd, &ready))
            accept_client(sockfd);
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (clients[i].fd != -1 && FD_ISSET(clients[i].fd, &ready))
                serve_client(&clients[i]);
    }
}
