/*
 * err.c - names for error codes, the error-detail setter and the classification of failures.
 */
#include "qn/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *const err_names[QN_ERR__COUNT] = {
    [QN_OK] = "ok",
    [QN_ERR_NOMEM] = "out of memory",
    [QN_ERR_INVALID] = "invalid argument",
    [QN_ERR_PARSE] = "parse error",
    [QN_ERR_CONFIG] = "configuration error",
    [QN_ERR_IO] = "i/o error",
    [QN_ERR_TIMEOUT] = "timed out",
    [QN_ERR_AUTH] = "authentication failed",
    [QN_ERR_HTTP_TRANSIENT] = "transient http error",
    [QN_ERR_HTTP_PERMANENT] = "permanent http error",
    [QN_ERR_KAFKA] = "kafka error",
    [QN_ERR_KAFKA_FATAL] = "fatal kafka error",
    [QN_ERR_TOO_BIG] = "too big",
    [QN_ERR_NOT_FOUND] = "not found",
};

const char *qn_err_str(qn_err_t code)
{
    if ((int)code < 0 || code >= QN_ERR__COUNT || err_names[code] == NULL) {
        return "unknown error";
    }
    return err_names[code];
}

qn_err_t qn_error_set(struct qn_error *err, qn_err_t code, const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        err->msg[0] = '\0';
    }
    return code;
}

int qn_err_is_retriable(qn_err_t code)
{
    return code == QN_ERR_TIMEOUT || code == QN_ERR_HTTP_TRANSIENT || code == QN_ERR_IO ||
           code == QN_ERR_KAFKA;
}

int qn_err_is_fatal(qn_err_t code)
{
    return code == QN_ERR_KAFKA_FATAL || code == QN_ERR_NOMEM;
}

void qn_assert_fail(const char *expr, const char *file, int line)
{
    char line_buf[512];
    int n = snprintf(line_buf, sizeof(line_buf),
                     "{\"level\":\"fatal\",\"module\":\"assert\",\"msg\":\"assertion failed: %s\","
                     "\"file\":\"%s\",\"line\":%d}\n",
                     expr, file, line);
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, line_buf,
                          (size_t)n < sizeof(line_buf) ? (size_t)n : sizeof(line_buf) - 1);
        (void)w;
    }
    abort();
}
