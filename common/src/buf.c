/*
 * buf.c - growable, bounded, always NUL-terminated byte buffer.
 */
#include "qn/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qn/mem.h"

void qn_buf_init(struct qn_buf *buf, size_t max)
{
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    buf->max = max;
}

void qn_buf_fini(struct qn_buf *buf)
{
    qn_free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

void qn_buf_reset(struct qn_buf *buf)
{
    buf->len = 0;
    if (buf->data != NULL) {
        buf->data[0] = '\0';
    }
}

static qn_err_t reserve(struct qn_buf *buf, size_t extra)
{
    if (extra > buf->max || buf->len > buf->max - extra) {
        return QN_ERR_TOO_BIG;
    }
    size_t need = buf->len + extra + 1;
    if (need <= buf->cap) {
        return QN_OK;
    }
    size_t cap = buf->cap == 0 ? 64 : buf->cap;
    while (cap < need) {
        cap *= 2;
    }
    if (cap > buf->max + 1) {
        cap = buf->max + 1;
    }
    char *data = qn_realloc(buf->data, cap);
    if (data == NULL) {
        return QN_ERR_NOMEM;
    }
    buf->data = data;
    buf->cap = cap;
    return QN_OK;
}

qn_err_t qn_buf_append(struct qn_buf *buf, const void *data, size_t len)
{
    qn_err_t rc = reserve(buf, len);
    if (rc != QN_OK) {
        return rc;
    }
    if (len > 0) {
        memcpy(buf->data + buf->len, data, len);
    }
    buf->len += len;
    buf->data[buf->len] = '\0';
    return QN_OK;
}

qn_err_t qn_buf_append_str(struct qn_buf *buf, const char *s)
{
    return qn_buf_append(buf, s, strlen(s));
}

qn_err_t qn_buf_append_char(struct qn_buf *buf, char c)
{
    return qn_buf_append(buf, &c, 1);
}

qn_err_t qn_buf_printf(struct qn_buf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return QN_ERR_INVALID;
    }
    qn_err_t rc = reserve(buf, (size_t)n);
    if (rc != QN_OK) {
        return rc;
    }
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return QN_OK;
}

qn_err_t qn_buf_append_json_str(struct qn_buf *buf, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = buf->len;
    qn_err_t rc = qn_buf_append_char(buf, '"');
    for (size_t i = 0; rc == QN_OK && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            rc = qn_buf_append(buf, "\\\"", 2);
            break;
        case '\\':
            rc = qn_buf_append(buf, "\\\\", 2);
            break;
        case '\n':
            rc = qn_buf_append(buf, "\\n", 2);
            break;
        case '\r':
            rc = qn_buf_append(buf, "\\r", 2);
            break;
        case '\t':
            rc = qn_buf_append(buf, "\\t", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
                rc = qn_buf_append(buf, esc, sizeof(esc));
            } else {
                rc = qn_buf_append_char(buf, (char)c);
            }
            break;
        }
    }
    if (rc == QN_OK) {
        rc = qn_buf_append_char(buf, '"');
    }
    if (rc != QN_OK && buf->data != NULL) {
        /* a failed append keeps what the buffer held before */
        buf->len = start;
        buf->data[start] = '\0';
    }
    return rc;
}

const char *qn_buf_cstr(const struct qn_buf *buf)
{
    return buf->data != NULL ? buf->data : "";
}

char *qn_buf_detach(struct qn_buf *buf, size_t *len)
{
    if (buf->len == 0) {
        qn_buf_fini(buf);
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    char *data = buf->data;
    if (len != NULL) {
        *len = buf->len;
    }
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    return data;
}
