/*
 * test_server.c - the scripted HTTPS test server (see test_server.h).
 *
 * Threads: one accept thread polls the listening socket and a stop pipe; each accepted
 * connection gets its own thread doing blocking OpenSSL I/O, so a keep-alive connection that
 * curl leaves idle never blocks the others. Shared state (script, recorded requests, connection
 * list) is guarded by one mutex. Stopping sets a flag, wakes the accept thread, shuts every
 * connection down (which unblocks SSL_read) and joins all threads.
 */
#include "test_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define TS_MAX_CONNS  128
#define TS_MAX_SCRIPT 256
#define TS_MAX_HEAD   (64 * 1024)
#define TS_MAX_BODY   (4 * 1024 * 1024)

struct ts_entry {
    struct ts_response r;
    int left; /* -1 forever */
};

struct ts_conn {
    struct test_server *srv;
    pthread_t thread;
    int fd;
    bool started;
};

struct test_server {
    pthread_mutex_t mu;
    SSL_CTX *ctx;
    int listen_fd;
    int stop_pipe[2];
    volatile int stopping;
    pthread_t accept_thread;
    int port;
    char url[64];
    struct ts_entry script[TS_MAX_SCRIPT];
    int nscript;
    struct ts_request *requests[TS_MAX_REQUESTS];
    int nrequests;
    struct ts_conn conns[TS_MAX_CONNS];
    int nconns;
};

static int64_t ts_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *ts_strdup(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (c != NULL) {
        memcpy(c, s, n + 1);
    }
    return c;
}

/* ---- certificates ---- */

static int run_openssl_req(const char *newkey, const char *key, const char *cert)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 %s -nodes -keyout %s -out %s -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1",
             newkey, key, cert);
    return system(cmd) == 0 ? 0 : -1;
}

int ts_certs_make(struct ts_certs *certs, bool with_rsa)
{
    memset(certs, 0, sizeof(*certs));
    snprintf(certs->dir, sizeof(certs->dir), "/tmp/qn-test-XXXXXX");
    if (mkdtemp(certs->dir) == NULL) {
        return -1;
    }
    snprintf(certs->cert, sizeof(certs->cert), "%s/cert.pem", certs->dir);
    snprintf(certs->key, sizeof(certs->key), "%s/key.pem", certs->dir);
    snprintf(certs->other_cert, sizeof(certs->other_cert), "%s/other.pem", certs->dir);
    snprintf(certs->rsa_cert, sizeof(certs->rsa_cert), "%s/rsa-cert.pem", certs->dir);
    snprintf(certs->rsa_key, sizeof(certs->rsa_key), "%s/rsa-key.pem", certs->dir);
    char other_key[128];
    snprintf(other_key, sizeof(other_key), "%s/other-key.pem", certs->dir);
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1";
    if (run_openssl_req(ec, certs->key, certs->cert) != 0 ||
        run_openssl_req(ec, other_key, certs->other_cert) != 0) {
        return -1;
    }
    if (with_rsa && run_openssl_req("-newkey rsa:2048", certs->rsa_key, certs->rsa_cert) != 0) {
        return -1;
    }
    return 0;
}

void ts_certs_remove(const struct ts_certs *certs)
{
    const char *names[] = {"cert.pem",      "key.pem",      "other.pem",
                           "other-key.pem", "rsa-cert.pem", "rsa-key.pem"};
    char path[192];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", certs->dir, names[i]);
        (void)unlink(path);
    }
    (void)rmdir(certs->dir);
}

/* ---- requests ---- */

static void free_request(struct ts_request *r)
{
    if (r == NULL) {
        return;
    }
    free(r->target);
    free(r->headers);
    free(r->body);
    free(r);
}

const char *ts_header(const struct ts_request *req, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    size_t nlen = strlen(name);
    const char *p = req->headers;
    while (p != NULL && *p != '\0') {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (len > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ') {
                v++;
            }
            size_t vlen = len - (size_t)(v - p);
            if (vlen >= size) {
                vlen = size - 1;
            }
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return out;
        }
        p = eol != NULL ? eol + 2 : NULL;
    }
    return out;
}

static bool matches(const struct ts_entry *e, const struct ts_request *req)
{
    if (e->r.method != NULL && strcmp(e->r.method, req->method) != 0) {
        return false;
    }
    if (e->r.path_prefix != NULL &&
        strncmp(req->target, e->r.path_prefix, strlen(e->r.path_prefix)) != 0) {
        return false;
    }
    return true;
}

/* Picks the scripted answer and copies it into @p out (strings duplicated). */
static bool pick(struct test_server *srv, const struct ts_request *req, struct ts_response *out)
{
    bool found = false;
    pthread_mutex_lock(&srv->mu);
    for (int i = 0; i < srv->nscript; i++) {
        struct ts_entry *e = &srv->script[i];
        if (!matches(e, req)) {
            continue;
        }
        *out = e->r;
        out->headers = ts_strdup(e->r.headers);
        out->body = ts_strdup(e->r.body);
        out->method = NULL;
        out->path_prefix = NULL;
        if (e->left > 0 && --e->left == 0) {
            free((void *)e->r.headers);
            free((void *)e->r.body);
            free((void *)e->r.method);
            free((void *)e->r.path_prefix);
            memmove(e, e + 1, (size_t)(srv->nscript - i - 1) * sizeof(*e));
            srv->nscript--;
        }
        found = true;
        break;
    }
    pthread_mutex_unlock(&srv->mu);
    return found;
}

static void record(struct test_server *srv, struct ts_request *req)
{
    pthread_mutex_lock(&srv->mu);
    if (srv->nrequests < TS_MAX_REQUESTS) {
        srv->requests[srv->nrequests++] = req;
        req = NULL;
    }
    pthread_mutex_unlock(&srv->mu);
    free_request(req);
}

/* ---- connection I/O ---- */

/* One connection's transport: TLS, or plain TCP when the server has no certificate. */
struct ts_io {
    SSL *ssl;
    int fd;
};

static int io_read(struct ts_io *io, char *buf, int len)
{
    if (io->ssl != NULL) {
        return SSL_read(io->ssl, buf, len);
    }
    ssize_t n = recv(io->fd, buf, (size_t)len, 0);
    return n < 0 ? -1 : (int)n;
}

static int io_write(struct ts_io *io, const char *buf, int len)
{
    if (io->ssl != NULL) {
        return SSL_write(io->ssl, buf, len);
    }
    ssize_t n = send(io->fd, buf, (size_t)len, MSG_NOSIGNAL);
    return n < 0 ? -1 : (int)n;
}

static int write_all(struct ts_io *io, const char *data, size_t len)
{
    while (len > 0) {
        int n = io_write(io, data, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n <= 0) {
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

static void sleep_ms_unless_stopping(struct test_server *srv, int ms)
{
    while (ms > 0 && !srv->stopping) {
        int step = ms > 10 ? 10 : ms;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* Reads one request. @returns 0, or -1 when the connection is done. */
static int read_request(struct ts_io *io, char *buf, size_t *have, struct ts_request **out)
{
    char *end = NULL;
    for (;;) {
        buf[*have] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            break;
        }
        if (*have >= TS_MAX_HEAD) {
            return -1;
        }
        int n = io_read(io, buf + *have, (int)(TS_MAX_HEAD - *have));
        if (n <= 0) {
            return -1;
        }
        *have += (size_t)n;
    }
    size_t head_len = (size_t)(end - buf) + 4;
    struct ts_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        return -1;
    }
    req->at_ms = ts_now_ms();
    char target[8192];
    if (sscanf(buf, "%15s %8191s", req->method, target) != 2) {
        free(req);
        return -1;
    }
    req->target = ts_strdup(target);
    const char *hdr = strstr(buf, "\r\n") + 2;
    size_t hlen = (size_t)(end - hdr);
    req->headers = malloc(hlen + 1);
    if (req->headers == NULL) {
        free_request(req);
        return -1;
    }
    memcpy(req->headers, hdr, hlen);
    req->headers[hlen] = '\0';
    char cl[32];
    ts_header(req, "Content-Length", cl, sizeof(cl));
    size_t body_len = cl[0] != '\0' ? (size_t)strtoul(cl, NULL, 10) : 0;
    if (body_len > TS_MAX_BODY) {
        free_request(req);
        return -1;
    }
    req->body = malloc(body_len + 1);
    if (req->body == NULL || req->target == NULL) {
        free_request(req);
        return -1;
    }
    size_t got = *have - head_len < body_len ? *have - head_len : body_len;
    memcpy(req->body, buf + head_len, got);
    while (got < body_len) {
        int n = io_read(io, req->body + got, (int)(body_len - got));
        if (n <= 0) {
            free_request(req);
            return -1;
        }
        got += (size_t)n;
    }
    req->body[body_len] = '\0';
    req->body_len = body_len;
    /* keep any pipelined bytes after this request */
    size_t used = head_len + (*have - head_len < body_len ? *have - head_len : body_len);
    memmove(buf, buf + used, *have - used);
    *have -= used;
    *out = req;
    return 0;
}

static void close_conn_fd(struct ts_conn *c, bool reset)
{
    struct test_server *srv = c->srv;
    pthread_mutex_lock(&srv->mu);
    int fd = c->fd;
    c->fd = -1;
    pthread_mutex_unlock(&srv->mu);
    if (fd < 0) {
        return;
    }
    if (reset) {
        struct linger lg = {1, 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(fd);
}

static void *conn_main(void *arg)
{
    struct ts_conn *c = arg;
    struct test_server *srv = c->srv;
    struct ts_io io = {.ssl = NULL, .fd = c->fd};
    SSL *ssl = srv->ctx != NULL ? SSL_new(srv->ctx) : NULL;
    io.ssl = ssl;
    char *buf = malloc(TS_MAX_HEAD + 1);
    bool reset = false;
    size_t have = 0;
    bool tls_failed =
        srv->ctx != NULL && (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1 || SSL_accept(ssl) != 1);
    if (buf == NULL || tls_failed) {
        goto out;
    }
    while (!srv->stopping) {
        struct ts_request *req = NULL;
        if (read_request(&io, buf, &have, &req) != 0) {
            break;
        }
        struct ts_response resp;
        bool found = pick(srv, req, &resp);
        record(srv, req); /* req now belongs to the server's list */
        if (!found) {
            memset(&resp, 0, sizeof(resp));
            resp.status = 418;
            resp.body = ts_strdup("{\"error\":{\"code\":\"NoScript\",\"message\":\"nothing "
                                  "scripted for this request\"}}");
        }
        sleep_ms_unless_stopping(srv, resp.delay_ms);
        if (resp.action == TS_RESET) {
            free((void *)resp.headers);
            free((void *)resp.body);
            reset = true;
            break;
        }
        size_t body_len = resp.body != NULL ? strlen(resp.body) : 0;
        char head[8192];
        int n = snprintf(head, sizeof(head),
                         "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: keep-alive\r\n%s%s"
                         "\r\n",
                         resp.status, reason_phrase(resp.status), body_len,
                         body_len > 0 ? "Content-Type: application/json\r\n" : "",
                         resp.headers != NULL ? resp.headers : "");
        int rc = (n > 0 && (size_t)n < sizeof(head)) ? write_all(&io, head, (size_t)n) : -1;
        if (rc == 0 && body_len > 0) {
            rc = write_all(&io, resp.body, body_len);
        }
        free((void *)resp.headers);
        free((void *)resp.body);
        if (rc != 0) {
            break;
        }
    }
out:
    if (ssl != NULL) {
        if (!reset) {
            (void)SSL_shutdown(ssl);
        }
        SSL_free(ssl);
    }
    ERR_clear_error();
    free(buf);
    close_conn_fd(c, reset);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct test_server *srv = arg;
    while (!srv->stopping) {
        struct pollfd pfd[2] = {{srv->listen_fd, POLLIN, 0}, {srv->stop_pipe[0], POLLIN, 0}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (srv->stopping || (pfd[1].revents & POLLIN) != 0) {
            break;
        }
        int fd = accept(srv->listen_fd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        /* Head and body are separate writes: without this, Nagle and delayed ACKs add 40 ms. */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_mutex_lock(&srv->mu);
        if (srv->nconns >= TS_MAX_CONNS) {
            pthread_mutex_unlock(&srv->mu);
            close(fd);
            continue;
        }
        struct ts_conn *c = &srv->conns[srv->nconns++];
        c->srv = srv;
        c->fd = fd;
        c->started = pthread_create(&c->thread, NULL, conn_main, c) == 0;
        if (!c->started) {
            c->fd = -1;
            close(fd);
        }
        pthread_mutex_unlock(&srv->mu);
    }
    return NULL;
}

/* ---- lifecycle ---- */

struct test_server *test_server_start(const char *cert_file, const char *key_file)
{
    signal(SIGPIPE, SIG_IGN);
    struct test_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return NULL;
    }
    pthread_mutex_init(&srv->mu, NULL);
    srv->listen_fd = -1;
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    socklen_t slen = sizeof(sa);
    if (cert_file != NULL) {
        srv->ctx = SSL_CTX_new(TLS_server_method());
        if (srv->ctx == NULL || SSL_CTX_use_certificate_chain_file(srv->ctx, cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(srv->ctx, key_file, SSL_FILETYPE_PEM) != 1) {
            goto fail;
        }
    }
    if (pipe(srv->stop_pipe) != 0) {
        goto fail;
    }
    srv->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (srv->listen_fd < 0 || bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(srv->listen_fd, 64) != 0 ||
        getsockname(srv->listen_fd, (struct sockaddr *)&sa, &slen) != 0) {
        goto fail;
    }
    srv->port = ntohs(sa.sin_port);
    snprintf(srv->url, sizeof(srv->url), "%s://127.0.0.1:%d", srv->ctx != NULL ? "https" : "http",
             srv->port);
    if (pthread_create(&srv->accept_thread, NULL, accept_main, srv) != 0) {
        goto fail;
    }
    return srv;
fail:
    if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
    }
    if (srv->stop_pipe[0] >= 0) {
        close(srv->stop_pipe[0]);
        close(srv->stop_pipe[1]);
    }
    SSL_CTX_free(srv->ctx);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
    return NULL;
}

void test_server_stop(struct test_server *srv)
{
    if (srv == NULL) {
        return;
    }
    srv->stopping = 1;
    ssize_t w = write(srv->stop_pipe[1], "x", 1);
    (void)w;
    pthread_join(srv->accept_thread, NULL);
    pthread_mutex_lock(&srv->mu);
    for (int i = 0; i < srv->nconns; i++) {
        if (srv->conns[i].fd >= 0) {
            (void)shutdown(srv->conns[i].fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&srv->mu);
    for (int i = 0; i < srv->nconns; i++) {
        if (srv->conns[i].started) {
            pthread_join(srv->conns[i].thread, NULL);
        }
    }
    close(srv->listen_fd);
    close(srv->stop_pipe[0]);
    close(srv->stop_pipe[1]);
    test_server_clear(srv);
    for (int i = 0; i < srv->nrequests; i++) {
        free_request(srv->requests[i]);
    }
    SSL_CTX_free(srv->ctx);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

int test_server_port(const struct test_server *srv)
{
    return srv->port;
}

const char *test_server_url(const struct test_server *srv)
{
    return srv->url;
}

void test_server_push(struct test_server *srv, const struct ts_response *resp)
{
    pthread_mutex_lock(&srv->mu);
    if (srv->nscript < TS_MAX_SCRIPT) {
        struct ts_entry *e = &srv->script[srv->nscript++];
        e->r = *resp;
        e->r.headers = ts_strdup(resp->headers);
        e->r.body = ts_strdup(resp->body);
        e->r.method = ts_strdup(resp->method);
        e->r.path_prefix = ts_strdup(resp->path_prefix);
        e->left = resp->times == 0 ? 1 : resp->times;
    }
    pthread_mutex_unlock(&srv->mu);
}

void test_server_clear(struct test_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    for (int i = 0; i < srv->nscript; i++) {
        struct ts_entry *e = &srv->script[i];
        free((void *)e->r.headers);
        free((void *)e->r.body);
        free((void *)e->r.method);
        free((void *)e->r.path_prefix);
    }
    srv->nscript = 0;
    pthread_mutex_unlock(&srv->mu);
}

int test_server_count(struct test_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    int n = srv->nrequests;
    pthread_mutex_unlock(&srv->mu);
    return n;
}

int test_server_count_prefix(struct test_server *srv, const char *prefix)
{
    int n = 0;
    pthread_mutex_lock(&srv->mu);
    for (int i = 0; i < srv->nrequests; i++) {
        if (strncmp(srv->requests[i]->target, prefix, strlen(prefix)) == 0) {
            n++;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return n;
}

const struct ts_request *test_server_request(struct test_server *srv, int idx)
{
    const struct ts_request *r = NULL;
    pthread_mutex_lock(&srv->mu);
    if (idx >= 0 && idx < srv->nrequests) {
        r = srv->requests[idx];
    }
    pthread_mutex_unlock(&srv->mu);
    return r;
}

int test_server_connections(struct test_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    int n = srv->nconns;
    pthread_mutex_unlock(&srv->mu);
    return n;
}
