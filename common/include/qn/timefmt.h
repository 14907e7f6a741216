/*
 * timefmt.h - wall-clock time as RFC 3339 text (UTC, milliseconds) for events and logs.
 */
#ifndef QN_TIMEFMT_H
#define QN_TIMEFMT_H

#include <stdbool.h>
#include <stdint.h>

#define QN_RFC3339_LEN 32

/* Writes the current UTC time, e.g. "2026-11-29T12:00:00.123Z", into @p out. */
void qn_time_now_rfc3339(char out[QN_RFC3339_LEN]);

/* Writes @p epoch_ms as RFC 3339 UTC with milliseconds into @p out. */
void qn_time_format_rfc3339(int64_t epoch_ms, char out[QN_RFC3339_LEN]);

/*
 * @brief Parses an RFC 3339 / ISO 8601 timestamp ("...Z" or "+hh:mm", 0-7 fraction digits, as
 *        Azure writes them) into milliseconds since the Unix epoch.
 * @returns true and sets *@p out_ms, or false for anything else (then *@p out_ms is untouched).
 */
bool qn_time_parse_rfc3339(const char *s, int64_t *out_ms);

/* @returns milliseconds since the Unix epoch. */
int64_t qn_time_epoch_ms(void);

#endif
