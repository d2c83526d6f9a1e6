/* floor.c -- the cost floor for bench/run.sh: the loop of wspush with no
 * protocol at all. One thread, one select() loop, non-blocking sockets;
 * a sender's answer is written right after its read; between wake-ups it
 * sleeps in select(). What wspush spends beyond this is the price of
 * WebSocket and JSON.
 *
 *   floor [PORT]      echo: every byte read is written back
 *   floor -r [PORT]   route, the floor of "push a user": a connection
 *                     says 'U' and a 2-byte index to be user N, or 'A' to
 *                     be the admin; the admin sends records of a 2-byte
 *                     user index, a 2-byte length and that many bytes,
 *                     which go to that user as they are; the admin gets
 *                     the frame {"resp":"text","content":"Already sent."}
 *                     back for each.
 * Clients are trusted to read what they are sent (it is a benchmark). 
 * PORT 0 or none picks a free port; the first line printed names it. */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK     65536
#define MAX_USERS 4096

struct conn {
    int open;
    int role;                   /* route mode: 0 unknown, 'U' or 'A' */
    char *in, *out;             /* unparsed input; output not yet written */
    size_t in_len, out_len, in_cap, out_cap;
};

static struct conn conns[FD_SETSIZE];
static int users[MAX_USERS];    /* route mode: user index -> fd, or 0 */
static int route;

/* Write what fd has waiting, once. */
static void flush(int fd, fd_set *want_write)
{
    struct conn *c = &conns[fd];
    if (c->out_len > 0) {
        ssize_t w = write(fd, c->out, c->out_len);
        if (w > 0) {
            memmove(c->out, c->out + w, c->out_len - (size_t)w);
            c->out_len -= (size_t)w;
        }
    }
    if (c->out_len > 0)
        FD_SET(fd, want_write);
    else
        FD_CLR(fd, want_write);
}

static const char ack[] = "\x81\x29{\"resp\":\"text\",\"content\":\"Already sent.\"}";

static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n > *cap) {
        *cap = (*len + n) * 2;
        *buf = realloc(*buf, *cap);
        if (*buf == NULL) {
            perror("floor");
            exit(1);
        }
    }
    memcpy(*buf + *len, p, n);
    *len += n;
}

static void drop(int fd, fd_set *all)
{
    FD_CLR(fd, all);
    close(fd);
    free(conns[fd].in);
    free(conns[fd].out);
    memset(&conns[fd], 0, sizeof conns[fd]);
    for (int i = 0; i < MAX_USERS; i++)
        if (users[i] == fd)
            users[i] = 0;
}

/* Route mode: act on what fd has sent so far. */
static void route_input(int fd)
{
    struct conn *c = &conns[fd];
    size_t pos = 0;
    if (c->role == 0 && c->in_len >= 1 && c->in[0] == 'A') {
        c->role = 'A';
        pos = 1;
    } else if (c->role == 0 && c->in_len >= 3 && c->in[0] == 'U') {
        int idx = (unsigned char)c->in[1] << 8 | (unsigned char)c->in[2];
        c->role = 'U';
        if (idx < MAX_USERS)
            users[idx] = fd;
        pos = 3;
    }
    while (c->role == 'A' && c->in_len - pos >= 4) {
        const unsigned char *r = (const unsigned char *)c->in + pos;
        size_t idx = (size_t)(r[0] << 8 | r[1]), n = (size_t)(r[2] << 8 | r[3]);
        if (c->in_len - pos - 4 < n)
            break;
        if (idx < MAX_USERS && users[idx] != 0) {
            struct conn *u = &conns[users[idx]];
            append(&u->out, &u->out_len, &u->out_cap, (const char *)r + 4, n);
        }
        append(&c->out, &c->out_len, &c->out_cap, ack, sizeof ack - 1);
        pos += 4 + n;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

int main(int argc, char **argv)
{
    int arg = 1;
    if (argc > 1 && strcmp(argv[1], "-r") == 0) {
        route = 1;
        arg = 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    struct sockaddr_in sa = { 0 };
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)(argc > arg ? atoi(argv[arg]) : 0));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    socklen_t len = sizeof sa;
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, SOMAXCONN) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
        perror("floor");
        return 1;
    }
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    printf("floor listening on port %d\n", ntohs(sa.sin_port));
    fflush(stdout);

    static char buf[CHUNK];
    fd_set all, want_write;
    FD_ZERO(&all);
    FD_ZERO(&want_write);
    FD_SET(lfd, &all);
    int max_fd = lfd;
    for (;;) {
        fd_set rfds = all, wfds = want_write;
        if (select(max_fd + 1, &rfds, &wfds, NULL, NULL) < 0)
            continue;
        if (FD_ISSET(lfd, &rfds)) {
            int fd;
            while ((fd = accept(lfd, NULL, NULL)) >= 0) {
                if (fd >= FD_SETSIZE) {
                    close(fd);
                    continue;
                }
                fcntl(fd, F_SETFL, O_NONBLOCK);
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
                conns[fd].open = 1;
                FD_SET(fd, &all);
                if (fd > max_fd)
                    max_fd = fd;
            }
        }
        for (int fd = 0; fd <= max_fd; fd++) {
            struct conn *c = &conns[fd];
            if (fd == lfd || !c->open || !FD_ISSET(fd, &rfds))
                continue;
            ssize_t n = read(fd, buf, sizeof buf);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                drop(fd, &all);
                FD_CLR(fd, &want_write);
                continue;
            }
            if (n < 0)
                continue;
            if (route) {
                append(&c->in, &c->in_len, &c->in_cap, buf, (size_t)n);
                route_input(fd);
            } else {
                append(&c->out, &c->out_len, &c->out_cap, buf, (size_t)n);
            }
            flush(fd, &want_write);             /* the sender first */
        }
        for (int fd = 0; fd <= max_fd; fd++)        /* then everyone else */
            if (conns[fd].open && conns[fd].out_len > 0)
                flush(fd, &want_write);
    }
}
