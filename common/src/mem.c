/*
 * mem.c - allocation wrappers with an optional "fail the Nth allocation" hook for tests.
 * The process is single-threaded except librdkafka's internal threads, which never allocate
 * through these functions, so the counter needs no lock.
 */
#include "qn/mem.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

static long fail_countdown = -1;

static int should_fail(void)
{
    if (fail_countdown < 0) {
        return 0;
    }
    if (fail_countdown == 0) {
        fail_countdown = -1; /* one failure, then allocations work again */
        return 1;
    }
    fail_countdown--;
    return 0;
}

void qn_mem_fail_after(long n)
{
    fail_countdown = n;
}

void *qn_malloc(size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return malloc(size == 0 ? 1 : size);
}

void *qn_calloc(size_t count, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
}

void *qn_realloc(void *ptr, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return realloc(ptr, size == 0 ? 1 : size);
}

void qn_free(void *ptr)
{
    free(ptr);
}

char *qn_strndup(const char *s, size_t len)
{
    if (s == NULL) {
        return NULL;
    }
    char *copy = qn_malloc(len + 1);
    if (copy == NULL) {
        return NULL;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

char *qn_strdup(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    return qn_strndup(s, strlen(s));
}

void qn_free_secret(char *s)
{
    if (s == NULL) {
        return;
    }
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static void *cjson_malloc(size_t size)
{
    return qn_malloc(size);
}

void qn_mem_install_cjson_hooks(void)
{
    cJSON_Hooks hooks = {.malloc_fn = cjson_malloc, .free_fn = qn_free};
    cJSON_InitHooks(&hooks);
}
