/* 02-select.c -- lesson 2: many clients at once, with select().
 *
 * New since lesson 1: a fixed-size array of clients, and one loop that asks
 * select() which sockets are ready: the listening socket (a new client
 * waits for accept()) or a client's socket (it sent something, or closed).
 * Nobody waits for anybody else: while one client thinks, another is served.
 * Build: cc -o select lessons/02-select.c     Run: ./select 8080
 * Try:   open three nc 127.0.0.1 8080 at once; each gets its own lines back.
 *        A seventeenth client is told "server is full" and closed.
 * Exercise: make the seventeenth wait instead, held by the kernel as in
 *        lesson 1, until a place is free; it is then served as any other,
 *        and no CPU is spent meanwhile. Check: python3 lessons/check.py 02 FILE
 * Left out: a client that sends but never reads can block our write()
 *        (wspush.c queues its output in c->out and writes what the socket
 *        takes: conn_flush()); timeouts for silent clients (conn_timers()). */
#define _POSIX_C_SOURCE 200809L
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 16          /* the array's size: more are refused */

static int clients[MAX_CLIENTS];        /* their sockets; -1 is a free place */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Write all n bytes of p: write() may take fewer than asked. */
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

/* Steps 1 to 3 of lesson 1: a socket listening on port. */
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

/* 4. accept() a new client into a free place, or say no and close it. */
static void accept_client(int sockfd)
{
    static const char full[] = "server is full\n";
    int fd = accept(sockfd, NULL, NULL);
    if (fd < 0)
        return;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        if (clients[i] == -1) {
            clients[i] = fd;
            printf("client %d: connected (fd %d)\n", i, fd);
            return;
        }
    }
    if (write_all(fd, full, sizeof full - 1) < 0)
        perror("write");
    close(fd);
}

/* Client i's socket is readable: echo what came, or close on the end. */
static void serve_client(int i)
{
    char buf[4096];
    ssize_t n = read(clients[i], buf, sizeof buf);
    if (n > 0 && write_all(clients[i], buf, (size_t)n) == 0)
        return;
    printf("client %d: %s\n", i, n == 0 ? "closed" : "error, closing");
    close(clients[i]);
    clients[i] = -1;
}

int main(int argc, char **argv)
{
    long port = argc > 1 ? strtol(argv[1], NULL, 10) : 8080;
    if (port < 1 || port > 65535) {
        fprintf(stderr, "usage: select [PORT]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);   /* each line at once, even into a pipe */
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i] = -1;
    int sockfd = listen_on(port);
    printf("Server is listening on port %ld\n", port);
    for (;;) {
        /* Which sockets should select() watch? The listener, and each client. */
        fd_set ready;
        int max_fd = sockfd;
        FD_ZERO(&ready);
        FD_SET(sockfd, &ready);
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (clients[i] != -1) {
                FD_SET(clients[i], &ready);
                max_fd = clients[i] > max_fd ? clients[i] : max_fd;
            }
        }
        /* Sleep until one of them is ready; select() leaves only those set. */
        if (select(max_fd + 1, &ready, NULL, NULL, NULL) < 0)
            die("select");
        if (FD_ISSET(sockfd, &ready))
            accept_client(sockfd);
        for (int i = 0; i < MAX_CLIENTS; i++)
            if (clients[i] != -1 && FD_ISSET(clients[i], &ready))
                serve_client(i);
    }
}
