/*
 * test_support.h - small helpers shared by the worker unit tests: reading fixtures, parsing them,
 * and writing temporary files. Everything is static inline so a test that does not use a helper
 * does not warn about it.
 */
#ifndef QN_TEST_SUPPORT_H
#define QN_TEST_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#ifndef QN_TEST_DATA_DIR
#    error "QN_TEST_DATA_DIR must be defined by the build"
/* Exit codes of ts_fork_run. Sanitizers exit with 1 (errors) or 23 (leaks). */
#    define TS_CHILD_SANITIZER 1
#    define TS_CHILD_LEAK      23
#    define TS_CHILD_SIGNAL    (-1)

/*
 * Runs @p fn(@p arg) in a child process and returns its exit code, or TS_CHILD_SIGNAL (with the
 * signal in *@p sig) if it died of one. The child ends with exit(), so LeakSanitizer checks it.
 * A crash in the code under test therefore fails one iteration instead of the whole test binary.
 */
static inline int ts_fork_run(int (*fn)(void *), void *arg, int *sig)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        return -2;
    }
    if (pid == 0) {
        exit(fn(arg));
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        return -2;
    }
    if (WIFSIGNALED(status)) {
        if (sig != NULL) {
            *sig = WTERMSIG(status);
        }
        return TS_CHILD_SIGNAL;
    }
    return WEXITSTATUS(status);
}

#endif

/* Reads a whole file into a malloc'd, NUL-terminated buffer. @returns NULL if it cannot. */
static inline char *ts_read_path(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096;
    size_t len = 0;
    char *data = malloc(cap);
    while (data != NULL) {
        if (len + 1 >= cap) {
            char *grown = realloc(data, cap * 2);
            if (grown == NULL) {
                free(data);
                data = NULL;
                break;
            }
            data = grown;
            cap *= 2;
        }
        size_t n = fread(data + len, 1, cap - len - 1, f);
        if (n == 0) {
            break;
        }
        len += n;
    }
    fclose(f);
    if (data != NULL) {
        data[len] = '\0';
        if (len_out != NULL) {
            *len_out = len;
        }
    }
    return data;
}

/* Reads QN_TEST_DATA_DIR/@p rel. Aborts the test run if the fixture is missing. */
static inline char *ts_read_fixture(const char *rel, size_t *len_out)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", QN_TEST_DATA_DIR, rel);
    char *data = ts_read_path(path, len_out);
    if (data == NULL) {
        fprintf(stderr, "missing fixture %s\n", path);
        abort();
    }
    return data;
}

/* Parses QN_TEST_DATA_DIR/@p rel with cJSON. Aborts if it is not JSON. */
static inline cJSON *ts_parse_fixture(const char *rel)
{
    size_t len = 0;
    char *data = ts_read_fixture(rel, &len);
    cJSON *json = cJSON_ParseWithLength(data, len);
    free(data);
    if (json == NULL) {
        fprintf(stderr, "fixture %s is not JSON\n", rel);
        abort();
    }
    return json;
}

/* Writes @p text to a fresh temporary file; @p path (at least 64 bytes) receives its name. */
static inline int ts_write_temp(char *path, size_t path_len, const char *text)
{
    snprintf(path, path_len, "/tmp/qn-unit-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        return -1;
    }
    size_t len = strlen(text);
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    close(fd);
    return 0;
}

/* Exit codes of ts_fork_run. Sanitizers exit with 1 (errors) or 23 (leaks). */
#define TS_CHILD_SANITIZER 1
#define TS_CHILD_LEAK      23
#define TS_CHILD_SIGNAL    (-1)

/*
 * Runs @p fn(@p arg) in a child process and returns its exit code, or TS_CHILD_SIGNAL (with the
 * signal in *@p sig) if it died of one. The child ends with exit(), so LeakSanitizer checks it.
 * A crash in the code under test therefore fails one iteration instead of the whole test binary.
 */
static inline int ts_fork_run(int (*fn)(void *), void *arg, int *sig)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        return -2;
    }
    if (pid == 0) {
        exit(fn(arg));
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        return -2;
    }
    if (WIFSIGNALED(status)) {
        if (sig != NULL) {
            *sig = WTERMSIG(status);
        }
        return TS_CHILD_SIGNAL;
    }
    return WEXITSTATUS(status);
}

#endif
