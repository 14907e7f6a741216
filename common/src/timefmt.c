/*
 * timefmt.c - RFC 3339 formatting of wall-clock time.
 */
#include "qn/timefmt.h"

#include <stdio.h>
#include <time.h>

int64_t qn_time_epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void qn_time_format_rfc3339(int64_t epoch_ms, char out[QN_RFC3339_LEN])
{
    time_t secs = (time_t)(epoch_ms / 1000);
    int ms = (int)(epoch_ms % 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, QN_RFC3339_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100,
             tm.tm_min % 100, tm.tm_sec % 100, ms % 1000);
}

void qn_time_now_rfc3339(char out[QN_RFC3339_LEN])
{
    qn_time_format_rfc3339(qn_time_epoch_ms(), out);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Parses an RFC 3339 / ISO 8601 timestamp ("...Z", "+00:00", 0-7 fraction digits) to epoch ms. */
bool qn_time_parse_rfc3339(const char *s, int64_t *out_ms)
{
    int y, mo, d, h, mi, sec, used = 0;
    if (s == NULL ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
        used < 19 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return false;
    }
    const char *p = s + used;
    int64_t ms = 0;
    if (*p == '.') {
        int64_t scale = 100;
        for (p++; *p >= '0' && *p <= '9'; p++) {
            ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    int64_t offset_min = 0;
    if (*p == '+' || *p == '-') {
        int oh = 0, om = 0;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2) {
            return false;
        }
        offset_min = (*p == '-' ? -1 : 1) * (oh * 60 + om);
    } else if (*p != 'Z' && *p != 'z' && *p != '\0') {
        return false;
    }
    int64_t days = days_from_civil(y, mo, d);
    *out_ms = ((days * 86400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms;
    return true;
}
