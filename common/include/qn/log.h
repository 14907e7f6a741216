/*
 * log.h - structured logging: one JSON object per line on stderr.
 *
 * Each record is formatted into a bounded stack buffer and written with one write(2), so lines from
 * librdkafka's threads never interleave. The level is tested before formatting. Never pass a
 * secret.
 */
#ifndef QN_LOG_H
#define QN_LOG_H

#include <stdbool.h>

#include "qn/err.h"

enum qn_log_level {
    QN_LOG_LEVEL_ERROR = 0,
    QN_LOG_LEVEL_WARN = 1,
    QN_LOG_LEVEL_INFO = 2,
    QN_LOG_LEVEL_DEBUG = 3,
    QN_LOG_LEVEL_TRACE = 4,
};

/* The current threshold; records above it are not formatted. */
extern volatile int qn_log_threshold;

/* Sets the threshold from a name (error|warn|info|debug|trace). @returns QN_ERR_INVALID if unknown.
 */
qn_err_t qn_log_set_level_name(const char *name);

/* Writes one record. @p module names the subsystem; @p fmt is the message. Thread-safe. */
void qn_log(enum qn_log_level level, const char *module, const char *fmt, ...) QN_PRINTF(3, 4);

/*
 * Writes one record with extra pre-encoded JSON members: @p fields is either NULL or text such as
 * `"partition":3,"offset":17` (no braces, no leading comma), appended after "msg".
 */
void qn_log_fields(enum qn_log_level level,
                   const char *module,
                   const char *fields,
                   const char *fmt,
                   ...) QN_PRINTF(4, 5);

#define QN_LOG_AT(lvl, module, ...)               \
    do {                                          \
        if ((int)(lvl) <= qn_log_threshold) {     \
            qn_log((lvl), (module), __VA_ARGS__); \
        }                                         \
    } while (0)

#define QN_LOG_ERROR(module, ...) QN_LOG_AT(QN_LOG_LEVEL_ERROR, module, __VA_ARGS__)
#define QN_LOG_WARN(module, ...)  QN_LOG_AT(QN_LOG_LEVEL_WARN, module, __VA_ARGS__)
#define QN_LOG_INFO(module, ...)  QN_LOG_AT(QN_LOG_LEVEL_INFO, module, __VA_ARGS__)
#define QN_LOG_DEBUG(module, ...) QN_LOG_AT(QN_LOG_LEVEL_DEBUG, module, __VA_ARGS__)

#endif
