/*
 * backoff.h - retry delays: exponential backoff with full jitter, and Retry-After parsing.
 *
 * Full jitter (the AWS architecture blog's "Exponential Backoff And Jitter"): the delay before
 * retry n (n = 0 for the first retry) is uniform in [0, min(cap, base * 2^n)]. The randomness
 * comes from getrandom(2). A server's Retry-After, when present, takes precedence over the
 * computed delay: sending earlier only earns another 429.
 *
 * Retry-After is accepted as delta-seconds ("120"), as fractional seconds ("2.128", which
 * Microsoft Graph sends), or as an HTTP-date (IMF-fixdate, RFC 850 or asctime form, RFC 9110
 * §5.6.7). Everything here is pure except qn_random_bytes and qn_backoff_delay_ms.
 */
#ifndef QN_BACKOFF_H
#define QN_BACKOFF_H

#include <stddef.h>
#include <stdint.h>

#include "qn/err.h"

/* Longest delay a Retry-After may ask for; larger values are clamped to it (one day). */
#define QN_RETRY_AFTER_MAX_MS (86400LL * 1000)

/* A backoff policy; plain values, usually embedded in a caller's options. */
struct qn_backoff {
    int64_t base_ms; /* ceiling of the first retry's delay; must be > 0 */
    int64_t cap_ms;  /* ceiling of every delay; must be >= base_ms */
};

/*
 * @brief Fills @p buf with @p len bytes from getrandom(2).
 * @returns QN_OK, or QN_ERR_IO if the kernel cannot provide randomness.
 */
QN_NODISCARD qn_err_t qn_random_bytes(void *buf, size_t len);

/*
 * @brief The full-jitter delay for retry number @p attempt (0 = first retry) given the random
 *        value @p rnd. Pure: the same inputs always give the same delay.
 * @returns a delay in [0, min(cap, base * 2^attempt)] milliseconds.
 */
int64_t qn_backoff_delay_with(const struct qn_backoff *backoff, unsigned attempt, uint64_t rnd);

/*
 * @brief The full-jitter delay for retry number @p attempt, drawing the random value from
 *        getrandom. If randomness is unavailable the ceiling itself is returned (no jitter).
 */
int64_t qn_backoff_delay_ms(const struct qn_backoff *backoff, unsigned attempt);

/*
 * @brief The delay before retry @p attempt: @p retry_after_ms when it is >= 0 (the server's word
 *        wins), otherwise the full-jitter delay.
 */
int64_t
qn_backoff_next_ms(const struct qn_backoff *backoff, unsigned attempt, int64_t retry_after_ms);

/*
 * @brief Parses a Retry-After header value.
 * @param value the header value; surrounding blanks are ignored.
 * @param now_epoch_ms wall-clock now in milliseconds since the epoch (for HTTP-dates).
 * @param delay_ms out: the delay in milliseconds, >= 0, clamped to QN_RETRY_AFTER_MAX_MS. A date
 *        in the past gives 0. Fractional seconds are rounded up to the next millisecond.
 * @returns QN_OK, or QN_ERR_PARSE (then @p delay_ms is not written).
 */
QN_NODISCARD qn_err_t qn_retry_after_parse(const char *value,
                                           int64_t now_epoch_ms,
                                           int64_t *delay_ms);

/*
 * @brief Parses an HTTP-date (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850
 *        "Sunday, 06-Nov-94 08:49:37 GMT" or asctime "Sun Nov  6 08:49:37 1994").
 * @param epoch_s out: seconds since the Unix epoch, written only on success.
 * @returns QN_OK or QN_ERR_PARSE.
 */
QN_NODISCARD qn_err_t qn_http_date_parse(const char *value, int64_t *epoch_s);

#endif
