/* answers/01-echo.c -- lesson 1 with its exercise done: ./echo 0 serves on
 * a free port that the kernel picks, and says which.
 *
 * New: the server side of the tutorial's walkthrough, in its order:
 *   socket()  create a socket file descriptor, sockfd;
 *   bind()    bind sockfd with an address and a port;
 *   listen()  listen for connection attempts;
 *   accept()  take a connection from listen()'s queue: its own socket;
 * then read() and write() on that socket until the client closes. The
 * kernel completes the TCP handshake, not accept(): a client may connect,
 * and send, before the server accepts it.
 * Build: cc -o echo lessons/answers/01-echo.c        Run: ./echo 0
 * Try:   nc 127.0.0.1 8080, type a line: it comes back. A second nc waits
 *        until the first quits: the kernel held it until accept().
 * Exercise: make ./echo 0 bind a free port the kernel picks, and print it
 *        (getsockname()). Answer: port 0 is allowed, and a port that is not
 *        a number (strtol() stops short) refused; getsockname() after bind().
 * Left out: more than one client at a time (lesson 2; serve() in wspush.c). */
#define _POSIX_C_SOURCE 200809L
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

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

int main(int argc, char **argv)
{
    long port = 8080;
    char *end = NULL;           /* where strtol() stopped reading the port */
    char buf[4096];
    int on = 1;
    if (argc > 1)
        port = strtol(argv[1], &end, 10);
    if ((end != NULL && (end == argv[1] || *end != '\0')) || port < 0 || port > 65535) {
        fprintf(stderr, "usage: echo [PORT]   (0: any free port)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);   /* a client that left: write() fails, we go on */
    /* 1. socket(): create a socket file descriptor, sockfd. */
    int sockfd = socket(AF_INET, SOCK_STREAM, 0);
    if (sockfd < 0)
        die("socket");
    setsockopt(sockfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);  /* restart at once */
    /* 2. bind(): bind sockfd with an address (any of this machine's) and a port. */
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY),
                                .sin_port = htons((unsigned short)port) };  /* the rest: 0 */
    if (bind(sockfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    /* 3. listen(): listen for connection attempts; 16 may wait in line. */
    if (listen(sockfd, 16) < 0)
        die("listen");
    /* Port 0 asked the kernel for any free port: getsockname() says which. */
    socklen_t addr_len = sizeof addr;
    if (getsockname(sockfd, (struct sockaddr *)&addr, &addr_len) < 0)
        die("getsockname");
    printf("Server is listening on port %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    for (;;) {
        /* 4. accept(): take the next client; it gets a socket of its own. */
        int client = accept(sockfd, NULL, NULL);
        if (client < 0)
            continue;
        ssize_t n;
        /* read() returns 0 when the client closes, -1 on an error. */
        while ((n = read(client, buf, sizeof buf)) > 0 && write_all(client, buf, (size_t)n) == 0)
            continue;
        close(client);
    }
}
