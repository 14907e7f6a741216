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
