/*
 * backoff.c - full-jitter exponential backoff, getrandom(2) randomness, and the Retry-After and
 * HTTP-date parsers. The parsers are strict (whole input consumed, fields range-checked) because
 * their input comes from the network; they never call the locale-dependent or non-reentrant
 * libc time functions.
 */
#include "qn/backoff.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

qn_err_t qn_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return QN_ERR_IO;
        }
        p += n;
        len -= (size_t)n;
    }
    return QN_OK;
}

/* min(cap, base * 2^attempt) without overflow. */
static int64_t ceiling_ms(const struct qn_backoff *backoff, unsigned attempt)
{
    int64_t base = backoff->base_ms > 0 ? backoff->base_ms : 1;
    int64_t cap = backoff->cap_ms >= base ? backoff->cap_ms : base;
    int64_t ceil = base;
    for (unsigned i = 0; i < attempt && ceil < cap; i++) {
        ceil = ceil > cap / 2 ? cap : ceil * 2;
    }
    return ceil < cap ? ceil : cap;
}

int64_t qn_backoff_delay_with(const struct qn_backoff *backoff, unsigned attempt, uint64_t rnd)
{
    int64_t ceil = ceiling_ms(backoff, attempt);
    return (int64_t)(rnd % ((uint64_t)ceil + 1));
}

int64_t qn_backoff_delay_ms(const struct qn_backoff *backoff, unsigned attempt)
{
    uint64_t rnd = 0;
    if (qn_random_bytes(&rnd, sizeof(rnd)) != QN_OK) {
        return ceiling_ms(backoff, attempt);
    }
    return qn_backoff_delay_with(backoff, attempt, rnd);
}

int64_t
qn_backoff_next_ms(const struct qn_backoff *backoff, unsigned attempt, int64_t retry_after_ms)
{
    if (retry_after_ms >= 0) {
        return retry_after_ms;
    }
    return qn_backoff_delay_ms(backoff, attempt);
}

/* ---- parsing helpers ---- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads exactly @p n digits at *p. */
static bool read_fixed(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i])) {
            return false;
        }
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* Reads one or two digits (asctime pads the day with a space). */
static bool read_1or2(const char **p, int *out)
{
    if (!is_digit(**p)) {
        return false;
    }
    int v = **p - '0';
    (*p)++;
    if (is_digit(**p)) {
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return true;
}

static bool expect(const char **p, char c)
{
    if (**p != c) {
        return false;
    }
    (*p)++;
    return true;
}

static bool read_month(const char **p, int *mon)
{
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++) {
        if (strncmp(*p, months[i], 3) == 0) {
            *p += 3;
            *mon = i + 1;
            return true;
        }
    }
    return false;
}

static bool read_time(const char **p, int *h, int *m, int *s)
{
    return read_fixed(p, 2, h) && expect(p, ':') && read_fixed(p, 2, m) && expect(p, ':') &&
           read_fixed(p, 2, s) && *h <= 23 && *m <= 59 && *s <= 60;
}

/* Skips a day name: a run of letters. */
static bool skip_day_name(const char **p)
{
    const char *start = *p;
    while ((**p >= 'A' && **p <= 'Z') || (**p >= 'a' && **p <= 'z')) {
        (*p)++;
    }
    return *p - start >= 3;
}

/* Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2 ? 1 : 0;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool valid_day(int y, int m, int d)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) {
        return false;
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return !(m == 2 && d == 29 && !leap);
}

static bool at_end(const char *p)
{
    while (is_blank(*p)) {
        p++;
    }
    return *p == '\0';
}

qn_err_t qn_http_date_parse(const char *value, int64_t *epoch_s)
{
    const char *p = value;
    int y = 0;
    int mon = 0;
    int d = 0;
    int h = 0;
    int mi = 0;
    int s = 0;
    while (is_blank(*p)) {
        p++;
    }
    if (!skip_day_name(&p)) {
        return QN_ERR_PARSE;
    }
    bool ok = false;
    if (*p == ',') {
        p++;
        if (!expect(&p, ' ')) {
            return QN_ERR_PARSE;
        }
        if (read_fixed(&p, 2, &d) && *p == ' ') {
            /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
            ok = expect(&p, ' ') && read_month(&p, &mon) && expect(&p, ' ') &&
                 read_fixed(&p, 4, &y) && expect(&p, ' ') && read_time(&p, &h, &mi, &s) &&
                 expect(&p, ' ') && strncmp(p, "GMT", 3) == 0;
        } else if (*p == '-') {
            /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; two-digit years 70-99 are 19xx. */
            int yy = 0;
            ok = expect(&p, '-') && read_month(&p, &mon) && expect(&p, '-') &&
                 read_fixed(&p, 2, &yy) && expect(&p, ' ') && read_time(&p, &h, &mi, &s) &&
                 expect(&p, ' ') && strncmp(p, "GMT", 3) == 0;
            y = yy < 70 ? 2000 + yy : 1900 + yy;
        }
        if (ok) {
            p += 3;
        }
    } else if (*p == ' ') {
        /* asctime: "Sun Nov  6 08:49:37 1994" */
        p++;
        ok = read_month(&p, &mon) && expect(&p, ' ');
        if (ok && *p == ' ') {
            p++;
        }
        ok = ok && read_1or2(&p, &d) && expect(&p, ' ') && read_time(&p, &h, &mi, &s) &&
             expect(&p, ' ') && read_fixed(&p, 4, &y);
    }
    if (!ok || !at_end(p) || !valid_day(y, mon, d)) {
        return QN_ERR_PARSE;
    }
    *epoch_s = days_from_civil(y, mon, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + s;
    return QN_OK;
}

/* delta-seconds, optionally with a fraction: "120", "2.128". */
static qn_err_t parse_seconds(const char *p, int64_t *delay_ms)
{
    int64_t secs = 0;
    int64_t frac_ms = 0;
    bool any = false;
    while (is_digit(*p)) {
        if (secs < QN_RETRY_AFTER_MAX_MS / 1000) {
            secs = secs * 10 + (*p - '0');
        }
        any = true;
        p++;
    }
    if (*p == '.') {
        p++;
        int64_t scale = 100;
        bool frac_any = false;
        bool round_up = false;
        while (is_digit(*p)) {
            if (scale > 0) {
                frac_ms += (*p - '0') * scale;
                scale /= 10;
            } else if (*p != '0') {
                round_up = true;
            }
            frac_any = true;
            p++;
        }
        if (!frac_any) {
            return QN_ERR_PARSE;
        }
        frac_ms += round_up ? 1 : 0;
    }
    if (!any || !at_end(p)) {
        return QN_ERR_PARSE;
    }
    int64_t ms = secs * 1000 + frac_ms;
    *delay_ms = ms > QN_RETRY_AFTER_MAX_MS ? QN_RETRY_AFTER_MAX_MS : ms;
    return QN_OK;
}

qn_err_t qn_retry_after_parse(const char *value, int64_t now_epoch_ms, int64_t *delay_ms)
{
    if (value == NULL) {
        return QN_ERR_PARSE;
    }
    const char *p = value;
    while (is_blank(*p)) {
        p++;
    }
    if (is_digit(*p)) {
        return parse_seconds(p, delay_ms);
    }
    int64_t when_s = 0;
    if (qn_http_date_parse(p, &when_s) != QN_OK) {
        return QN_ERR_PARSE;
    }
    int64_t ms = when_s * 1000 - now_epoch_ms;
    if (ms < 0) {
        ms = 0;
    }
    *delay_ms = ms > QN_RETRY_AFTER_MAX_MS ? QN_RETRY_AFTER_MAX_MS : ms;
    return QN_OK;
}
