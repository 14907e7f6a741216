/*
 * log.c - JSON-lines logger. Formats into a stack buffer and emits with a single write(2).
 */
#include "qn/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile int qn_log_threshold = QN_LOG_LEVEL_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

qn_err_t qn_log_set_level_name(const char *name)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            qn_log_threshold = i;
            return QN_OK;
        }
    }
    return QN_ERR_INVALID;
}

/* Appends @p src JSON-escaped into dst[*pos..cap-1]; truncates silently. */
static void append_escaped(char *dst, size_t cap, size_t *pos, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
        char esc[7];
        size_t n = 0;
        if (*p == '"' || *p == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)*p;
        } else if (*p == '\n') {
            esc[n++] = '\\';
            esc[n++] = 'n';
        } else if (*p < 0x20 || *p == 0x7f) {
            esc[n++] = '\\';
            esc[n++] = 'u';
            esc[n++] = '0';
            esc[n++] = '0';
            esc[n++] = hex[*p >> 4];
            esc[n++] = hex[*p & 0xf];
        } else {
            esc[n++] = (char)*p;
        }
        if (*pos + n >= cap) {
            return;
        }
        memcpy(dst + *pos, esc, n);
        *pos += n;
    }
}

static void append_raw(char *dst, size_t cap, size_t *pos, const char *src)
{
    size_t n = strlen(src);
    if (*pos + n >= cap) {
        n = cap - *pos - 1;
    }
    memcpy(dst + *pos, src, n);
    *pos += n;
}

static void
log_va(enum qn_log_level level, const char *module, const char *fields, const char *fmt, va_list ap)
{
    char msg[2048];
    char line[4096];
    size_t pos = 0;
    struct timespec ts;
    struct tm tm;
    char stamp[96];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    append_raw(line, sizeof(line) - 2, &pos, "{\"ts\":\"");
    append_raw(line, sizeof(line) - 2, &pos, stamp);
    append_raw(line, sizeof(line) - 2, &pos, "\",\"level\":\"");
    append_raw(line, sizeof(line) - 2, &pos, level_names[level]);
    append_raw(line, sizeof(line) - 2, &pos, "\",\"module\":\"");
    append_escaped(line, sizeof(line) - 2, &pos, module);
    append_raw(line, sizeof(line) - 2, &pos, "\",\"msg\":\"");
    append_escaped(line, sizeof(line) - 2, &pos, msg);
    append_raw(line, sizeof(line) - 2, &pos, "\"");
    if (fields != NULL && fields[0] != '\0') {
        append_raw(line, sizeof(line) - 2, &pos, ",");
        append_raw(line, sizeof(line) - 2, &pos, fields);
    }
    line[pos++] = '}';
    line[pos++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, pos);
    (void)w;
}

void qn_log(enum qn_log_level level, const char *module, const char *fmt, ...)
{
    if ((int)level > qn_log_threshold) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    log_va(level, module, NULL, fmt, ap);
    va_end(ap);
}

void qn_log_fields(
    enum qn_log_level level, const char *module, const char *fields, const char *fmt, ...)
{
    if ((int)level > qn_log_threshold) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    log_va(level, module, fields, fmt, ap);
    va_end(ap);
}
