/* 03-handshake.c -- lesson 3: the WebSocket handshake (RFC 6455 §4).
 *
 * New since lesson 2: a browser opens a WebSocket with an HTTP request:
 *   GET / HTTP/1.1
 *   Upgrade: websocket
 *   Connection: Upgrade
 *   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
 *   Sec-WebSocket-Version: 13
 * and the server proves it understood by answering 101 with
 *   Sec-WebSocket-Accept: base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
 * Each client now has a buffer: the request may come in pieces, and is
 * read until its blank line. After the 101 the socket carries frames.
 * Build: cc -o handshake lessons/03-handshake.c sha1.c   Run: ./handshake 8080
 * Try:   in a browser's console, new WebSocket('ws://localhost:8080/'):
 *        it opens, and this server prints how it made the accept value.
 * Exercise: a Sec-WebSocket-Version that is not 13, or none, gets "426
 *        Upgrade Required" with the header Sec-WebSocket-Version: 13, and
 *        is closed (§4.2.2). Check: python3 lessons/check.py 03 FILE
 * Left out: frames (lesson 4); the other checks of §4.2.1, such as the
 *        Upgrade header and a key of base64 (http_check() in wspush.c);
 *        a slow client's deadline (conn_timers()). */
#define _POSIX_C_SOURCE 200809L
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>
#include "../sha1.h"

#define MAX_CLIENTS 16
#define MAX_HEAD    8192        /* a longer request is refused (431) */
#define GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static struct client {
    int fd;                     /* -1: a free place                 */
    int open;                   /* the handshake is done            */
    size_t len;                 /* bytes of the request so far      */
    char head[MAX_HEAD + 1];    /* ... and a NUL after them         */
} clients[MAX_CLIENTS];

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void drop(struct client *c)
{
    printf("[%d] closed\n", c->fd);
    close(c->fd);
    c->fd = -1;
}

/* Answer an HTTP error status and close. */
static void refuse(struct client *c, const char *status)
{
    char answer[256];
    int n = snprintf(answer, sizeof answer, "HTTP/1.1 %s\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n", status);
    printf("[%d] refused: %s\n", c->fd, status);
    write_all(c->fd, answer, (size_t)n);
    drop(c);
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

/* The request head is complete: check it, then answer 101 (§4.2.2). */
static void handshake(struct client *c)
{
    unsigned char digest[SHA1_DIGEST_LEN];
    char accept_key[BASE64_LEN(SHA1_DIGEST_LEN) + 1], answer[256], key[26];
    struct sha1 s;
    int echo;
    if (read_head(c->head, key, &echo) < 0) {
        refuse(c, "400 Bad Request");
        return;
    }
    sha1_init(&s);
    sha1_update(&s, key, strlen(key));
    sha1_update(&s, GUID, strlen(GUID));
    sha1_final(&s, digest);
    base64_encode(accept_key, sizeof accept_key, digest, sizeof digest);
    printf("[%d] key %s + GUID %s\n[%d] SHA-1 = ", c->fd, key, GUID, c->fd);
    for (int i = 0; i < SHA1_DIGEST_LEN; i++)
        printf("%02x", digest[i]);
    printf("; base64 = %s = Sec-WebSocket-Accept\n", accept_key);
    int n = snprintf(answer, sizeof answer, "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept_key,
                     echo ? "Sec-WebSocket-Protocol: echo-protocol\r\n" : "");
    if (write_all(c->fd, answer, (size_t)n) < 0) {
        drop(c);
        return;
    }
    printf("[%d] -> HTTP/1.1 101 Switching Protocols: the WebSocket is open\n", c->fd);
    c->open = 1;
}

/* c's socket is readable: add to its request, or (once open) show what
 * came: frames, which lesson 4 reads. */
static void serve_client(struct client *c)
{
    char frames[4096];
    if (c->open) {
        ssize_t n = read(c->fd, frames, sizeof frames);
        if (n <= 0)
            drop(c);
        else
            printf("[%d] %zd bytes of frames (lesson 4 reads them)\n", c->fd, n);
        return;
    }
    ssize_t n = read(c->fd, c->head + c->len, MAX_HEAD - c->len);
    if (n <= 0) {
        drop(c);
        return;
    }
    c->len += (size_t)n;
    c->head[c->len] = '\0';
    if (strstr(c->head, "\r\n\r\n") != NULL)
        handshake(c);
    else if (c->len == MAX_HEAD)
        refuse(c, "431 Request Header Fields Too Large");
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
            clients[i] = (struct client){ .fd = fd };
            printf("[%d] accepted\n", fd);
            return;
        }
    }
    close(fd);                  /* full: lesson 2 said so; here we just close */
}

int main(int argc, char **argv)
{
    long port = argc > 1 ? strtol(argv[1], NULL, 10) : 8080;
    if (port < 1 || port > 65535) {
        fprintf(stderr, "usage: handshake [PORT]\n");
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
