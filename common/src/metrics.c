/*
 * metrics.c - the Prometheus registry: families of (labels -> double) series and their rendering.
 *
 * Families and series are found through two chained hash tables (FNV-1a), so updates stay O(1)
 * with thousands of series. Families also sit in two arrays that fix the rendering order: the
 * order of qn_metrics_describe calls, then the order in which undeclared families first appeared.
 * Each family keeps its series in creation order. The registry owns every name, label text and
 * help string it stores; callers' strings are copied.
 */
#include "qn/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn/log.h"
#include "qn/mem.h"

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME  1099511628211ULL

/* Largest magnitude below which every integer is exactly representable as a double (2^53). */
#define EXACT_INT_LIMIT 9007199254740992.0

/* A hash-chain link: the first member of both struct family and struct series. */
struct link {
    struct link *next;
    uint64_t hash;
};

struct series {
    struct link link; /* first: a struct link * converts back to the series */
    const struct family *family;
    char *labels;
    double value;
};

struct family {
    struct link link; /* first: a struct link * converts back to the family */
    char *name;
    char *help;
    enum qn_metric_type type;
    bool described;
    struct series **series; /* creation order */
    size_t nseries;
    size_t series_cap;
};

struct table {
    struct link **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
};

struct qn_metrics {
    struct table families_by_name;
    struct table series_by_key;
    struct family **families; /* creation order */
    size_t nfamilies;
    size_t families_cap;
    struct family **declared; /* describe order */
    size_t ndeclared;
    size_t declared_cap;
};

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        h ^= *p;
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t series_hash(const struct family *family, const char *labels)
{
    /* Mix a separator in so that labels hash differently from the bare family hash. */
    uint64_t h = (family->link.hash ^ 0xffU) * FNV_PRIME;
    return fnv1a(h, labels);
}

/*
 * @returns @p array with room for element @p len (grown if needed, updating @p cap), or NULL when
 * it cannot grow; @p array is then unchanged.
 */
static void *grow_array(void *array, size_t len, size_t *cap, size_t elem_size)
{
    if (len < *cap) {
        return array;
    }
    size_t ncap = *cap == 0 ? 16 : *cap * 2;
    void *grown = qn_realloc(array, ncap * elem_size);
    if (grown != NULL) {
        *cap = ncap;
    }
    return grown;
}

static bool table_init(struct table *t)
{
    t->nbuckets = 64;
    t->count = 0;
    t->buckets = qn_calloc(t->nbuckets, sizeof(*t->buckets));
    return t->buckets != NULL;
}

static void table_insert(struct table *t, struct link *e)
{
    size_t b = (size_t)(e->hash & (t->nbuckets - 1));
    e->next = t->buckets[b];
    t->buckets[b] = e;
    t->count++;
    if (t->count <= t->nbuckets) {
        return;
    }
    /* Load factor above 1: double the buckets. On failure keep the longer chains. */
    size_t n = t->nbuckets * 2;
    struct link **buckets = qn_calloc(n, sizeof(*buckets));
    if (buckets == NULL) {
        return;
    }
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct link *c = t->buckets[i];
        while (c != NULL) {
            struct link *next = c->next;
            size_t nb = (size_t)(c->hash & (n - 1));
            c->next = buckets[nb];
            buckets[nb] = c;
            c = next;
        }
    }
    qn_free(t->buckets);
    t->buckets = buckets;
    t->nbuckets = n;
}

qn_err_t qn_metrics_new(struct qn_metrics **out, struct qn_error *err)
{
    struct qn_metrics *metrics = qn_calloc(1, sizeof(*metrics));
    if (metrics == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate the metrics registry");
    }
    if (!table_init(&metrics->families_by_name) || !table_init(&metrics->series_by_key)) {
        qn_metrics_free(metrics);
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate the metrics hash tables");
    }
    *out = metrics;
    return QN_OK;
}

void qn_metrics_free(struct qn_metrics *metrics)
{
    if (metrics == NULL) {
        return;
    }
    for (size_t i = 0; i < metrics->nfamilies; i++) {
        struct family *family = metrics->families[i];
        for (size_t j = 0; j < family->nseries; j++) {
            qn_free(family->series[j]->labels);
            qn_free(family->series[j]);
        }
        qn_free(family->series);
        qn_free(family->name);
        qn_free(family->help);
        qn_free(family);
    }
    qn_free(metrics->families);
    qn_free(metrics->declared);
    qn_free(metrics->families_by_name.buckets);
    qn_free(metrics->series_by_key.buckets);
    qn_free(metrics);
}

static struct family *find_family(const struct qn_metrics *metrics, const char *name)
{
    uint64_t h = fnv1a(FNV_OFFSET, name);
    const struct table *t = &metrics->families_by_name;
    for (struct link *l = t->buckets[h & (t->nbuckets - 1)]; l != NULL; l = l->next) {
        struct family *f = (struct family *)l;
        if (l->hash == h && strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

static struct family *get_family(struct qn_metrics *metrics, const char *name)
{
    struct family *family = find_family(metrics, name);
    if (family != NULL) {
        return family;
    }
    struct family **families = grow_array(metrics->families, metrics->nfamilies,
                                          &metrics->families_cap, sizeof(*families));
    if (families == NULL) {
        return NULL;
    }
    metrics->families = families;
    family = qn_calloc(1, sizeof(*family));
    if (family == NULL) {
        return NULL;
    }
    family->name = qn_strdup(name);
    if (family->name == NULL) {
        qn_free(family);
        return NULL;
    }
    family->link.hash = fnv1a(FNV_OFFSET, name);
    metrics->families[metrics->nfamilies++] = family;
    table_insert(&metrics->families_by_name, &family->link);
    return family;
}

static struct series *
find_series(const struct qn_metrics *metrics, const struct family *family, const char *labels)
{
    uint64_t h = series_hash(family, labels);
    const struct table *t = &metrics->series_by_key;
    for (struct link *l = t->buckets[h & (t->nbuckets - 1)]; l != NULL; l = l->next) {
        struct series *s = (struct series *)l;
        if (l->hash == h && s->family == family && strcmp(s->labels, labels) == 0) {
            return s;
        }
    }
    return NULL;
}

static struct series *get_series(struct qn_metrics *metrics, const char *name, const char *labels)
{
    if (labels == NULL) {
        labels = "";
    }
    struct family *family = get_family(metrics, name);
    if (family == NULL) {
        return NULL;
    }
    struct series *series = find_series(metrics, family, labels);
    if (series != NULL) {
        return series;
    }
    struct series **all =
        grow_array(family->series, family->nseries, &family->series_cap, sizeof(*all));
    if (all == NULL) {
        return NULL;
    }
    family->series = all;
    series = qn_calloc(1, sizeof(*series));
    if (series == NULL) {
        return NULL;
    }
    series->labels = qn_strdup(labels);
    if (series->labels == NULL) {
        qn_free(series);
        return NULL;
    }
    series->family = family;
    series->link.hash = series_hash(family, labels);
    family->series[family->nseries++] = series;
    table_insert(&metrics->series_by_key, &series->link);
    return series;
}

static bool valid_name(const char *name)
{
    if (name[0] == '\0' || (name[0] >= '0' && name[0] <= '9')) {
        return false;
    }
    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == ':';
        if (!ok) {
            return false;
        }
    }
    return true;
}

qn_err_t qn_metrics_describe(struct qn_metrics *metrics,
                             const char *name,
                             enum qn_metric_type type,
                             const char *help)
{
    if (!valid_name(name) || (type != QN_METRIC_COUNTER && type != QN_METRIC_GAUGE)) {
        return QN_ERR_INVALID;
    }
    struct family *family = get_family(metrics, name);
    if (family == NULL) {
        return QN_ERR_NOMEM;
    }
    char *copy = qn_strdup(help != NULL ? help : "");
    if (copy == NULL) {
        return QN_ERR_NOMEM;
    }
    if (!family->described) {
        struct family **declared = grow_array(metrics->declared, metrics->ndeclared,
                                              &metrics->declared_cap, sizeof(*declared));
        if (declared == NULL) {
            qn_free(copy);
            return QN_ERR_NOMEM;
        }
        metrics->declared = declared;
        metrics->declared[metrics->ndeclared++] = family;
        family->described = true;
    }
    qn_free(family->help);
    family->help = copy;
    family->type = type;
    return QN_OK;
}

void qn_metrics_add(struct qn_metrics *metrics, const char *name, const char *labels, double delta)
{
    struct series *series = get_series(metrics, name, labels);
    if (series == NULL) {
        QN_LOG_WARN("metrics", "cannot allocate series %s{%s}; update dropped", name,
                    labels != NULL ? labels : "");
        return;
    }
    series->value += delta;
}

void qn_metrics_set(struct qn_metrics *metrics, const char *name, const char *labels, double value)
{
    struct series *series = get_series(metrics, name, labels);
    if (series == NULL) {
        QN_LOG_WARN("metrics", "cannot allocate series %s{%s}; update dropped", name,
                    labels != NULL ? labels : "");
        return;
    }
    series->value = value;
}

double qn_metrics_get(const struct qn_metrics *metrics, const char *name, const char *labels)
{
    const struct family *family = find_family(metrics, name);
    if (family == NULL) {
        return 0.0;
    }
    const struct series *series = find_series(metrics, family, labels != NULL ? labels : "");
    return series != NULL ? series->value : 0.0;
}

/* ---- rendering (text exposition format 0.0.4) ---- */

static qn_err_t append_value(struct qn_buf *out, double v)
{
    if (isnan(v)) {
        return qn_buf_append_str(out, "NaN");
    }
    if (isinf(v)) {
        return qn_buf_append_str(out, v > 0 ? "+Inf" : "-Inf");
    }
    if (v > -EXACT_INT_LIMIT && v < EXACT_INT_LIMIT && v == (double)(int64_t)v) {
        return qn_buf_printf(out, "%" PRId64, (int64_t)v);
    }
    /* The shortest of %.15g and %.17g that reads back as the same double. */
    char text[40];
    snprintf(text, sizeof(text), "%.15g", v);
    if (strtod(text, NULL) != v) {
        snprintf(text, sizeof(text), "%.17g", v);
    }
    return qn_buf_append_str(out, text);
}

/* HELP text escapes backslash and newline. */
static qn_err_t append_help(struct qn_buf *out, const char *help)
{
    qn_err_t rc = QN_OK;
    for (const char *p = help; rc == QN_OK && *p != '\0'; p++) {
        if (*p == '\\') {
            rc = qn_buf_append(out, "\\\\", 2);
        } else if (*p == '\n') {
            rc = qn_buf_append(out, "\\n", 2);
        } else {
            rc = qn_buf_append_char(out, *p);
        }
    }
    return rc;
}

static const char *type_name(const struct family *family)
{
    if (!family->described) {
        return "untyped";
    }
    return family->type == QN_METRIC_COUNTER ? "counter" : "gauge";
}

static qn_err_t render_family(const struct family *family, struct qn_buf *out)
{
    if (family->nseries == 0) {
        return QN_OK;
    }
    qn_err_t rc = QN_OK;
    if (family->described) {
        rc = qn_buf_printf(out, "# HELP %s ", family->name);
        if (rc == QN_OK) {
            rc = append_help(out, family->help);
        }
        if (rc == QN_OK) {
            rc = qn_buf_append_char(out, '\n');
        }
    }
    if (rc == QN_OK) {
        rc = qn_buf_printf(out, "# TYPE %s %s\n", family->name, type_name(family));
    }
    for (size_t i = 0; rc == QN_OK && i < family->nseries; i++) {
        const struct series *series = family->series[i];
        if (series->labels[0] == '\0') {
            rc = qn_buf_printf(out, "%s ", family->name);
        } else {
            rc = qn_buf_printf(out, "%s{%s} ", family->name, series->labels);
        }
        if (rc == QN_OK) {
            rc = append_value(out, series->value);
        }
        if (rc == QN_OK) {
            rc = qn_buf_append_char(out, '\n');
        }
    }
    return rc;
}

qn_err_t qn_metrics_render(const struct qn_metrics *metrics, struct qn_buf *out)
{
    qn_err_t rc = QN_OK;
    for (size_t i = 0; rc == QN_OK && i < metrics->ndeclared; i++) {
        rc = render_family(metrics->declared[i], out);
    }
    for (size_t i = 0; rc == QN_OK && i < metrics->nfamilies; i++) {
        if (!metrics->families[i]->described) {
            rc = render_family(metrics->families[i], out);
        }
    }
    return rc;
}
