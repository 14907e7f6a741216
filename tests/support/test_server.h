/*
 * test_server.h - a tiny scripted HTTPS/1.1 server on 127.0.0.1:0 for unit tests.
 *
 * The server runs in threads of the test process (one accept thread, one thread per connection),
 * so the code under test can stay single-threaded on its event loop. Tests push scripted
 * responses (status, extra headers such as Retry-After / Azure-AsyncOperation / Location, body,
 * a delay, or a connection reset instead of an answer); each request takes the first scripted
 * entry whose method and path prefix match. Every request is recorded (method, target, headers,
 * body, arrival time) for the test to inspect. Certificates are generated at test start with the
 * openssl command line into a temporary directory (ts_certs_make).
 *
 * The build has no support library, so a test includes test_server.c directly, once.
 * Ownership: strings given to test_server_push are copied; recorded requests stay owned by the
 * server and valid until test_server_stop.
 */
#ifndef QN_TEST_SERVER_H
#define QN_TEST_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TS_MAX_REQUESTS 512

enum ts_action {
    TS_RESPOND = 0, /* send the scripted response */
    TS_RESET,       /* read the request, then close the connection with a TCP RST */
};

struct ts_response {
    int status;
    const char *headers; /* NULL or extra lines, each ending in "\r\n" */
    const char *body;    /* NULL = empty */
    int delay_ms;        /* wait before answering */
    enum ts_action action;
    const char *method;      /* match: NULL = any */
    const char *path_prefix; /* match on the request target: NULL = any */
    int times;               /* requests this entry answers: 0 = 1, -1 = forever */
};

struct ts_request {
    char method[16];
    char *target;  /* path and query */
    char *headers; /* raw header block, lines joined by "\r\n" */
    char *body;
    size_t body_len;
    int64_t at_ms; /* CLOCK_MONOTONIC arrival time */
};

struct ts_certs {
    char dir[64];
    char cert[128]; /* server certificate (EC P-256, SAN IP:127.0.0.1) */
    char key[128];
    char other_cert[128]; /* an unrelated self-signed certificate: an untrusted CA */
    char rsa_cert[128];   /* RSA 2048 certificate + key, for client assertions */
    char rsa_key[128];
};

/* Generates the certificates with `openssl req` into a fresh temporary directory. @returns 0. */
int ts_certs_make(struct ts_certs *certs, bool with_rsa);

/* Removes the files and the directory. */
void ts_certs_remove(const struct ts_certs *certs);

struct test_server;

/* Starts serving TLS with @p cert_file / @p key_file, or plain HTTP if @p cert_file is NULL
 * (an IMDS stand-in). @returns NULL on failure. */
struct test_server *test_server_start(const char *cert_file, const char *key_file);

/* Stops every thread, closes every connection and frees the server. Accepts NULL. */
void test_server_stop(struct test_server *srv);

int test_server_port(const struct test_server *srv);

/* @returns "https://127.0.0.1:<port>" ("http://..." when plain), valid until stop. */
const char *test_server_url(const struct test_server *srv);

/* Appends a scripted response; the strings are copied. */
void test_server_push(struct test_server *srv, const struct ts_response *resp);

/* Drops every scripted response not yet used. */
void test_server_clear(struct test_server *srv);

/* @returns the number of requests received so far. */
int test_server_count(struct test_server *srv);

/* @returns the number of requests whose target starts with @p prefix. */
int test_server_count_prefix(struct test_server *srv, const char *prefix);

/* @returns request number @p idx (0-based) or NULL. Valid until test_server_stop. */
const struct ts_request *test_server_request(struct test_server *srv, int idx);

/* @returns the value of header @p name in @p req (a static copy, "" if absent). */
const char *ts_header(const struct ts_request *req, const char *name, char *out, size_t size);

/* @returns the number of connections accepted so far. */
int test_server_connections(struct test_server *srv);

#endif
