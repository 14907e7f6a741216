/*
 * buf.h - a growable byte buffer with a hard maximum size (curl's dynbuf idea).
 *
 * The bytes are always NUL-terminated so they can be used as a C string. A buffer that would grow
 * past its maximum fails with QN_ERR_TOO_BIG and keeps what it had, which bounds memory against
 * hostile input.
 */
#ifndef QN_BUF_H
#define QN_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "qn/err.h"

struct qn_buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
    size_t max; /* hard limit on len */
};

/* Initialises an empty buffer that may hold up to @p max bytes. Cannot fail. */
void qn_buf_init(struct qn_buf *buf, size_t max);

/* Releases the bytes; the buffer can be reused after qn_buf_init. */
void qn_buf_fini(struct qn_buf *buf);

/* Empties the buffer, keeping its memory. */
void qn_buf_reset(struct qn_buf *buf);

QN_NODISCARD qn_err_t qn_buf_append(struct qn_buf *buf, const void *data, size_t len);
QN_NODISCARD qn_err_t qn_buf_append_str(struct qn_buf *buf, const char *s);
QN_NODISCARD qn_err_t qn_buf_append_char(struct qn_buf *buf, char c);
QN_NODISCARD qn_err_t qn_buf_printf(struct qn_buf *buf, const char *fmt, ...) QN_PRINTF(2, 3);

/* Appends @p s as a JSON string literal, quotes included, escaping as RFC 8259 requires. */
QN_NODISCARD qn_err_t qn_buf_append_json_str(struct qn_buf *buf, const char *s, size_t len);

/* @returns the contents as a C string; "" for an empty buffer. Valid until the next change. */
const char *qn_buf_cstr(const struct qn_buf *buf);

/*
 * @brief Takes the bytes out of the buffer. The caller owns the result (free with qn_free);
 *        the buffer is left empty. @returns NULL for an empty buffer.
 */
char *qn_buf_detach(struct qn_buf *buf, size_t *len);

#endif
