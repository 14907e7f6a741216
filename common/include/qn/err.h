/*
 * err.h - the error codes and the caller-owned error detail every quench function reports through.
 *
 * Functions return qn_err_t (QN_OK == 0) and, when the caller passes one, fill a struct qn_error
 * with a human-readable message. A NULL struct qn_error * is always allowed.
 */
#ifndef QN_ERR_H
#define QN_ERR_H

#include <stddef.h>

#define QN_NODISCARD                __attribute__((warn_unused_result))
#define QN_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))

typedef enum {
    QN_OK = 0,
    QN_ERR_NOMEM,
    QN_ERR_INVALID,
    QN_ERR_PARSE,
    QN_ERR_CONFIG,
    QN_ERR_IO,
    QN_ERR_TIMEOUT,
    QN_ERR_AUTH,
    QN_ERR_HTTP_TRANSIENT,
    QN_ERR_HTTP_PERMANENT,
    QN_ERR_KAFKA,
    QN_ERR_KAFKA_FATAL,
    QN_ERR_TOO_BIG,
    QN_ERR_NOT_FOUND,
    QN_ERR__COUNT
} qn_err_t;

/* Detail for one failure. Owned by the caller, usually on the stack. */
struct qn_error {
    qn_err_t code;
    int sys_errno;
    char msg[256];
};

/* @returns a static, never-NULL name for @p code. */
const char *qn_err_str(qn_err_t code);

/*
 * @brief Records @p code and a formatted message in @p err (which may be NULL).
 * @returns @p code, so callers can write `return qn_error_set(err, QN_ERR_PARSE, "...")`.
 */
qn_err_t qn_error_set(struct qn_error *err, qn_err_t code, const char *fmt, ...) QN_PRINTF(3, 4);

/* @returns true for failures worth retrying with backoff. */
int qn_err_is_retriable(qn_err_t code);

/* @returns true for failures after which the process must stop and be restarted. */
int qn_err_is_fatal(qn_err_t code);

/* Invariant check for programmer errors, active in every build type. */
#define QN_ASSERT(expr)                                \
    do {                                               \
        if (!(expr)) {                                 \
            qn_assert_fail(#expr, __FILE__, __LINE__); \
        }                                              \
    } while (0)

_Noreturn void qn_assert_fail(const char *expr, const char *file, int line);

#endif
