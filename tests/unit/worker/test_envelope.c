/*
 * test_envelope.c - unit tests for splitting one Kafka value into records: a single object, an
 * array, a {"records":[...]} batch and NDJSON, with the exact byte span of every record; garbage,
 * empty and whitespace-only values; the too_big and too_deep limits (checked before cJSON runs);
 * arrays of scalars; truncated JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "alert.h"
#include "envelope.h"
#include "qn/mem.h"
#include "test_support.h"

#define MAX_RECS 64

struct rec_copy {
    char *bytes;
    size_t len;
    int index;
    bool has_json;
    cJSON *json; /* duplicate of the parsed record */
    enum qn_reject_reason reason;
    bool has_message;
};

struct recorder {
    struct rec_copy recs[MAX_RECS];
    int count;
};

static void record(const struct qn_envelope_record *rec, void *opaque)
{
    struct recorder *r = opaque;
    assert_true(r->count < MAX_RECS);
    struct rec_copy *c = &r->recs[r->count++];
    c->bytes = malloc(rec->len + 1);
    assert_non_null(c->bytes);
    memcpy(c->bytes, rec->bytes, rec->len);
    c->bytes[rec->len] = '\0';
    c->len = rec->len;
    c->index = rec->index;
    c->has_json = rec->json != NULL;
    c->json = rec->json != NULL ? cJSON_Duplicate(rec->json, 1) : NULL;
    c->reason = rec->reason;
    c->has_message = rec->message != NULL;
    /* a record is either parsed or rejected with a reason and a message */
    if (rec->json != NULL) {
        assert_int_equal(rec->reason, QN_REJECT_NONE);
        assert_null(rec->message);
    } else {
        assert_int_not_equal(rec->reason, QN_REJECT_NONE);
        assert_non_null(rec->message);
    }
}

static void recorder_clear(struct recorder *r)
{
    for (int i = 0; i < r->count; i++) {
        free(r->recs[i].bytes);
        cJSON_Delete(r->recs[i].json);
    }
    memset(r, 0, sizeof(*r));
}

static const struct qn_envelope_limits default_limits = {.max_record_bytes = 1048576,
                                                         .max_depth = 32};

static int split(struct recorder *r,
                 const char *data,
                 size_t len,
                 const struct qn_envelope_limits *limits,
                 enum qn_envelope_kind *kind)
{
    recorder_clear(r);
    int n =
        qn_envelope_split(data, len, limits != NULL ? limits : &default_limits, record, r, kind);
    assert_int_equal(n, r->count);
    return n;
}

static int split_str(struct recorder *r, const char *data, enum qn_envelope_kind *kind)
{
    return split(r, data, strlen(data), NULL, kind);
}

/* Asserts that record @p i was parsed and that its bytes are exactly @p bytes. */
static void assert_parsed(const struct recorder *r, int i, int index, const char *bytes)
{
    const struct rec_copy *c = &r->recs[i];
    if (c->len != strlen(bytes) || memcmp(c->bytes, bytes, c->len) != 0) {
        print_error("record %d: expected bytes '%s', got '%s'\n", i, bytes, c->bytes);
    }
    assert_true(c->has_json);
    assert_int_equal(c->index, index);
    assert_int_equal(c->len, strlen(bytes));
    assert_string_equal(c->bytes, bytes);
    /* the span parses on its own to the same value the splitter handed over */
    cJSON *again = cJSON_ParseWithLength(c->bytes, c->len);
    assert_non_null(again);
    assert_true(cJSON_Compare(again, c->json, 1));
    cJSON_Delete(again);
}

static void assert_rejected(const struct recorder *r,
                            int i,
                            int index,
                            enum qn_reject_reason reason,
                            const char *bytes,
                            size_t len)
{
    const struct rec_copy *c = &r->recs[i];
    assert_false(c->has_json);
    assert_int_equal(c->index, index);
    assert_int_equal(c->reason, reason);
    assert_true(c->has_message);
    assert_int_equal(c->len, len);
    assert_memory_equal(c->bytes, bytes, len);
}

static int teardown(void **state)
{
    struct recorder *r = *state;
    recorder_clear(r);
    free(r);
    return 0;
}

static int setup(void **state)
{
    struct recorder *r = calloc(1, sizeof(*r));
    *state = r;
    return r == NULL ? -1 : 0;
}

/* ---- cJSON allocation counter ---------------------------------------------------------------- */

static long cjson_allocs;

static void *counting_malloc(size_t size)
{
    cjson_allocs++;
    return malloc(size);
}

static void counting_free(void *p)
{
    free(p);
}

static void count_cjson(bool on)
{
    cJSON_Hooks hooks = {.malloc_fn = counting_malloc, .free_fn = counting_free};
    cJSON_InitHooks(on ? &hooks : NULL);
    cjson_allocs = 0;
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static void test_single_object(void **state)
{
    struct recorder *r = *state;
    enum qn_envelope_kind kind = QN_ENVELOPE_NDJSON;
    assert_int_equal(split_str(r, " \r\n\t{\"a\": \"x\\\"]\", \"b\": [1, 2]} \n ", &kind), 1);
    assert_int_equal(kind, QN_ENVELOPE_SINGLE);
    assert_parsed(r, 0, 0, "{\"a\": \"x\\\"]\", \"b\": [1, 2]}");
    assert_string_equal(qn_envelope_kind_name(kind), "single");

    /* an object with other members besides "records" is a single record */
    assert_int_equal(split_str(r, "{\"records\":[{\"a\":1}],\"other\":true}", &kind), 1);
    assert_int_equal(kind, QN_ENVELOPE_SINGLE);
    assert_parsed(r, 0, 0, "{\"records\":[{\"a\":1}],\"other\":true}");

    /* "records" that is not an array is a single record */
    assert_int_equal(split_str(r, "{\"records\":{\"a\":1}}", &kind), 1);
    assert_int_equal(kind, QN_ENVELOPE_SINGLE);
}

static void test_array_spans(void **state)
{
    struct recorder *r = *state;
    const char *value = "[\n"
                        "  {\"a\":\"x]y\",\"n\":{\"m\":[1,{\"k\":\"}\"}]}},\n"
                        "  {\"b\":\"q,\\\"r\\\"]\\\\\"} ,\t{\"c\":[1,2,{\"d\":\"],[\"}]}\r\n"
                        ",{\"e\":\"\\u005d\\\"\"}"
                        "]\n";
    enum qn_envelope_kind kind = QN_ENVELOPE_SINGLE;
    assert_int_equal(split_str(r, value, &kind), 4);
    assert_int_equal(kind, QN_ENVELOPE_ARRAY);
    assert_string_equal(qn_envelope_kind_name(kind), "array");
    assert_parsed(r, 0, 0, "{\"a\":\"x]y\",\"n\":{\"m\":[1,{\"k\":\"}\"}]}}");
    assert_parsed(r, 1, 1, "{\"b\":\"q,\\\"r\\\"]\\\\\"}");
    assert_parsed(r, 2, 2, "{\"c\":[1,2,{\"d\":\"],[\"}]}");
    assert_parsed(r, 3, 3, "{\"e\":\"\\u005d\\\"\"}");
    assert_string_equal(cJSON_GetObjectItem(r->recs[3].json, "e")->valuestring, "]\"");
}

static void test_array_fixture(void **state)
{
    struct recorder *r = *state;
    size_t len = 0;
    char *data = ts_read_fixture("alerts/batch-array.json", &len);
    enum qn_envelope_kind kind = QN_ENVELOPE_SINGLE;
    assert_int_equal(split(r, data, len, NULL, &kind), 2);
    assert_int_equal(kind, QN_ENVELOPE_ARRAY);
    for (int i = 0; i < 2; i++) {
        assert_true(r->recs[i].has_json);
        assert_int_equal(r->recs[i].index, i);
        assert_int_equal(r->recs[i].bytes[0], '{');
        assert_int_equal(r->recs[i].bytes[r->recs[i].len - 1], '}');
        /* the span is a slice of the value */
        assert_non_null(strstr(data, r->recs[i].bytes));
    }
    free(data);
}

static void test_records_batch_spans(void **state)
{
    struct recorder *r = *state;
    const char *value = "{ \"records\" :\n [ {\"a\":\"]\"} , {\"b\":[\"}\",\"\\\"\"]}\n ] }";
    enum qn_envelope_kind kind = QN_ENVELOPE_SINGLE;
    assert_int_equal(split_str(r, value, &kind), 2);
    assert_int_equal(kind, QN_ENVELOPE_RECORDS);
    assert_string_equal(qn_envelope_kind_name(kind), "records");
    assert_parsed(r, 0, 0, "{\"a\":\"]\"}");
    assert_parsed(r, 1, 1, "{\"b\":[\"}\",\"\\\"\"]}");

    size_t len = 0;
    char *data = ts_read_fixture("alerts/batch-records.json", &len);
    assert_int_equal(split(r, data, len, NULL, &kind), 2);
    assert_int_equal(kind, QN_ENVELOPE_RECORDS);
    for (int i = 0; i < 2; i++) {
        assert_true(r->recs[i].has_json);
        assert_int_equal(r->recs[i].index, i);
        assert_int_equal(r->recs[i].bytes[0], '{');
        assert_int_equal(r->recs[i].bytes[r->recs[i].len - 1], '}');
        assert_non_null(strstr(data, r->recs[i].bytes));
    }
    free(data);
}

/*
 * cJSON decodes escapes in member names, so {"\u0072ecords":[...]} is a records batch to it. The
 * byte scanner that finds the array must agree, or the batch's records are lost: the value must
 * still yield its record (or be rejected), never nothing.
 */
static void test_records_batch_escaped_key(void **state)
{
    struct recorder *r = *state;
    const char *value = "{\"\\u0072ecords\":[{\"a\":1}]}";
    enum qn_envelope_kind kind = QN_ENVELOPE_SINGLE;
    int n = split_str(r, value, &kind);
    if (n < 1) {
        print_error("'%s' (kind %s) yielded %d records\n", value, qn_envelope_kind_name(kind), n);
    }
    assert_true(n >= 1);
    if (n >= 1 && r->recs[0].has_json) {
        assert_parsed(r, 0, 0, kind == QN_ENVELOPE_RECORDS ? "{\"a\":1}" : value);
    }
}

static void test_ndjson_spans(void **state)
{
    struct recorder *r = *state;
    const char *value = "{\"a\":1}\n"
                        "\n"
                        "   \t\n"
                        "  {\"b\":\"x\\ny\"}  \r\n"
                        "[{\"c\":3},{\"d\":4}]\r\n"
                        "{\"e\":5}";
    enum qn_envelope_kind kind = QN_ENVELOPE_SINGLE;
    assert_int_equal(split_str(r, value, &kind), 5);
    assert_int_equal(kind, QN_ENVELOPE_NDJSON);
    assert_string_equal(qn_envelope_kind_name(kind), "ndjson");
    assert_parsed(r, 0, 0, "{\"a\":1}");
    assert_parsed(r, 1, 1, "{\"b\":\"x\\ny\"}");
    /* an array on one line contributes one record per element, indexes continue */
    assert_parsed(r, 2, 2, "{\"c\":3}");
    assert_parsed(r, 3, 3, "{\"d\":4}");
    assert_parsed(r, 4, 4, "{\"e\":5}");

    /* trailing newline, CRLF everywhere */
    assert_int_equal(split_str(r, "{\"a\":1}\r\n{\"b\":2}\r\n", &kind), 2);
    assert_int_equal(kind, QN_ENVELOPE_NDJSON);
    assert_parsed(r, 0, 0, "{\"a\":1}");
    assert_parsed(r, 1, 1, "{\"b\":2}");
}

static void test_ndjson_fixture(void **state)
{
    struct recorder *r = *state;
    size_t len = 0;
    char *data = ts_read_fixture("alerts/ndjson-mixed.jsonl", &len);
    enum qn_envelope_kind kind = QN_ENVELOPE_SINGLE;
    int n = split(r, data, len, NULL, &kind);
    assert_int_equal(kind, QN_ENVELOPE_NDJSON);
    int lines = 0;
    for (size_t i = 0; i < len; i++) {
        lines += data[i] == '\n';
    }
    lines += len > 0 && data[len - 1] != '\n';
    assert_int_equal(n, lines);
    for (int i = 0; i < n; i++) {
        assert_true(r->recs[i].has_json);
        assert_int_equal(r->recs[i].index, i);
        assert_null(memchr(r->recs[i].bytes, '\n', r->recs[i].len));
    }
    free(data);
}

static void test_ndjson_one_garbage_line(void **state)
{
    struct recorder *r = *state;
    const char *value = "{\"a\":1}\n"
                        "this is { not json\r\n"
                        "{\"b\":2}\n"
                        "{\"c\":\n"
                        "{\"d\":4}";
    enum qn_envelope_kind kind = QN_ENVELOPE_SINGLE;
    assert_int_equal(split_str(r, value, &kind), 5);
    assert_int_equal(kind, QN_ENVELOPE_NDJSON);
    assert_parsed(r, 0, 0, "{\"a\":1}");
    assert_rejected(r, 1, 1, QN_REJECT_NOT_JSON, "this is { not json", 18);
    assert_parsed(r, 2, 2, "{\"b\":2}");
    assert_rejected(r, 3, 3, QN_REJECT_NOT_JSON, "{\"c\":", 5);
    assert_parsed(r, 4, 4, "{\"d\":4}");
    assert_string_equal(qn_reject_reason_name(QN_REJECT_NOT_JSON), "not_json");
}

static void test_garbage_with_newlines_is_one_rejection(void **state)
{
    struct recorder *r = *state;
    size_t len = 0;
    char *data = ts_read_fixture("demo/06-garbage.txt", &len);
    enum qn_envelope_kind kind = QN_ENVELOPE_NDJSON;
    assert_int_equal(split(r, data, len, NULL, &kind), 1);
    assert_rejected(r, 0, 0, QN_REJECT_NOT_JSON, data, len);
    free(data);

    const char *html = "<html>\n<body>\n<h1>502 Bad Gateway</h1>\n</body>\n</html>\n";
    assert_int_equal(split_str(r, html, &kind), 1);
    assert_int_equal(kind, QN_ENVELOPE_SINGLE);
    assert_rejected(r, 0, 0, QN_REJECT_NOT_JSON, html, strlen(html));

    /* lines that look like JSON but none parses: still one rejection of the whole value */
    const char *almost = "{\"a\":\n[1,\n{\"b\"\n";
    assert_int_equal(split_str(r, almost, &kind), 1);
    assert_rejected(r, 0, 0, QN_REJECT_NOT_JSON, almost, strlen(almost));
}

static void test_empty_and_whitespace(void **state)
{
    struct recorder *r = *state;
    enum qn_envelope_kind kind = QN_ENVELOPE_NDJSON;
    assert_int_equal(split(r, "", 0, NULL, &kind), 1);
    assert_int_equal(kind, QN_ENVELOPE_SINGLE);
    assert_rejected(r, 0, 0, QN_REJECT_NOT_JSON, "", 0);

    const char *ws = " \r\n\t\n  ";
    assert_int_equal(split_str(r, ws, &kind), 1);
    assert_rejected(r, 0, 0, QN_REJECT_NOT_JSON, ws, strlen(ws));

    /* the kind out-param is optional */
    assert_int_equal(split_str(r, "{}", NULL), 1);
    assert_parsed(r, 0, 0, "{}");
}

static void test_too_big(void **state)
{
    struct recorder *r = *state;
    struct qn_envelope_limits limits = {.max_record_bytes = 1024, .max_depth = 32};
    char value[2048];
    /* exactly at the limit: parsed */
    memset(value, ' ', sizeof(value));
    memcpy(value, "{\"a\":\"", 6);
    memset(value + 6, 'x', 1024 - 8);
    memcpy(value + 1024 - 2, "\"}", 2);
    enum qn_envelope_kind kind;
    assert_int_equal(split(r, value, 1024, &limits, &kind), 1);
    assert_true(r->recs[0].has_json);
    assert_int_equal(r->recs[0].len, 1024);

    /* one byte more (trailing whitespace counts): rejected whole, before cJSON runs */
    count_cjson(true);
    assert_int_equal(split(r, value, 1025, &limits, &kind), 1);
    long allocs = cjson_allocs;
    count_cjson(false);
    assert_int_equal(allocs, 0);
    assert_rejected(r, 0, 0, QN_REJECT_TOO_BIG, value, 1025);
    assert_string_equal(qn_reject_reason_name(QN_REJECT_TOO_BIG), "too_big");

    /* a batch of small records whose total exceeds the limit is rejected whole */
    char batch[1400];
    size_t at = 0;
    batch[at++] = '[';
    for (int i = 0; i < 130; i++) {
        at += (size_t)snprintf(batch + at, sizeof(batch) - at, "%s{\"i\":%03d}", i ? "," : "", i);
    }
    batch[at++] = ']';
    assert_true(at > 1024);
    assert_int_equal(split(r, batch, at, &limits, &kind), 1);
    assert_rejected(r, 0, 0, QN_REJECT_TOO_BIG, batch, at);
}

static char *nested(int depth, size_t *len)
{
    char *s = malloc((size_t)depth * 2 + 2);
    assert_non_null(s);
    memset(s, '[', (size_t)depth);
    s[depth] = '1';
    memset(s + depth + 1, ']', (size_t)depth);
    *len = (size_t)depth * 2 + 1;
    s[*len] = '\0';
    return s;
}

static void test_too_deep(void **state)
{
    struct recorder *r = *state;
    struct qn_envelope_limits limits = {.max_record_bytes = 1 << 22, .max_depth = 4};
    enum qn_envelope_kind kind;
    /* depth 4 is allowed: an array of one element nested 3 deep */
    assert_int_equal(split_str(r, "{\"a\":[[{\"b\":1}]]}", &kind), 1);
    assert_int_equal(split(r, "{\"a\":[[{\"b\":1}]]}", 17, &limits, &kind), 1);
    assert_true(r->recs[0].has_json);
    /* depth 5 is not */
    const char *five = "{\"a\":[[{\"b\":[1]}]]}";
    assert_int_equal(split(r, five, strlen(five), &limits, &kind), 1);
    assert_rejected(r, 0, 0, QN_REJECT_TOO_DEEP, five, strlen(five));
    assert_string_equal(qn_reject_reason_name(QN_REJECT_TOO_DEEP), "too_deep");
    /* brackets inside strings do not count */
    const char *in_str = "{\"a\":\"[[[[[[[[{{{{{{\\\"[[[[\"}";
    assert_int_equal(split(r, in_str, strlen(in_str), &limits, &kind), 1);
    assert_true(r->recs[0].has_json);

    /* the hostile fixture: depth 200 inside an entity, default limit 32 */
    size_t len = 0;
    char *deep = ts_read_fixture("hostile/deep.json", &len);
    assert_int_equal(split(r, deep, len, NULL, &kind), 1);
    assert_rejected(r, 0, 0, QN_REJECT_TOO_DEEP, deep, len);
    free(deep);
}

static void test_too_deep_100000_never_reaches_cjson(void **state)
{
    struct recorder *r = *state;
    size_t len = 0;
    char *s = nested(100000, &len);
    enum qn_envelope_kind kind;
    count_cjson(true);
    clock_t start = clock();
    assert_int_equal(split(r, s, len, NULL, &kind), 1);
    double secs = (double)(clock() - start) / CLOCKS_PER_SEC;
    long allocs = cjson_allocs;
    count_cjson(false);
    assert_int_equal(allocs, 0);
    assert_true(secs < 1.0);
    assert_rejected(r, 0, 0, QN_REJECT_TOO_DEEP, s, len);
    free(s);

    /* unterminated: only opening brackets */
    s = malloc(100001);
    assert_non_null(s);
    memset(s, '{', 100000);
    s[100000] = '\0';
    count_cjson(true);
    assert_int_equal(split(r, s, 100000, NULL, &kind), 1);
    allocs = cjson_allocs;
    count_cjson(false);
    assert_int_equal(allocs, 0);
    assert_int_equal(r->recs[0].reason, QN_REJECT_TOO_DEEP);
    free(s);

    /* as one NDJSON line among valid ones */
    size_t dlen = 0;
    char *d = nested(100000, &dlen);
    size_t total = dlen + 20;
    char *v = malloc(total + 1);
    assert_non_null(v);
    size_t at = 0;
    memcpy(v + at, "{\"a\":1}\n", 8);
    at += 8;
    memcpy(v + at, d, dlen);
    at += dlen;
    memcpy(v + at, "\n{\"b\":2}", 8);
    at += 8;
    free(d);
    count_cjson(true);
    int n = split(r, v, at, NULL, &kind);
    allocs = cjson_allocs;
    count_cjson(false);
    /* the whole value is deeper than the limit, so it is rejected whole */
    assert_int_equal(n, 1);
    assert_int_equal(r->recs[0].reason, QN_REJECT_TOO_DEEP);
    assert_int_equal(allocs, 0);
    free(v);
}

/*
 * The depth pre-check scans strings, so an unbalanced quote on one NDJSON line hides the brackets
 * of the following lines from the whole-value scan. The per-line handling must still keep cJSON
 * away from a line that is deeper than the limit. A full cJSON parse of a 100000-deep line
 * allocates one item per level up to cJSON's own nesting limit (1000); the legitimate work on the
 * other lines allocates only a handful.
 */
static void test_too_deep_line_after_unbalanced_quote(void **state)
{
    struct recorder *r = *state;
    size_t dlen = 0;
    char *d = nested(100000, &dlen);
    char *v = malloc(dlen + 16);
    assert_non_null(v);
    memcpy(v, "\"\n", 2);
    memcpy(v + 2, d, dlen);
    size_t len = dlen + 2;
    free(d);
    enum qn_envelope_kind kind;
    count_cjson(true);
    int n = split(r, v, len, NULL, &kind);
    long allocs = cjson_allocs;
    count_cjson(false);
    free(v);
    assert_true(n >= 1);
    for (int i = 0; i < n; i++) {
        assert_false(r->recs[i].has_json);
    }
    print_message("cJSON allocations for a 100000-deep line after an unbalanced quote: %ld\n",
                  allocs);
    assert_true(allocs < 100);
}

static void test_array_of_scalars(void **state)
{
    struct recorder *r = *state;
    enum qn_envelope_kind kind;
    /* every element is handed over, with its exact bytes; classifying them is not our job */
    assert_int_equal(split_str(r, "[1, \"two\" ,null,true, {\"x\":1} ,false , 2.5e3 ]", &kind), 7);
    assert_int_equal(kind, QN_ENVELOPE_ARRAY);
    assert_parsed(r, 0, 0, "1");
    assert_parsed(r, 1, 1, "\"two\"");
    assert_parsed(r, 2, 2, "null");
    assert_parsed(r, 3, 3, "true");
    assert_parsed(r, 4, 4, "{\"x\":1}");
    assert_parsed(r, 5, 5, "false");
    assert_parsed(r, 6, 6, "2.5e3");
    /* scalars are no export record of any kind */
    for (int i = 0; i < 7; i++) {
        if (i != 4) {
            assert_int_equal(qn_record_classify(r->recs[i].json), QN_RECORD_UNKNOWN);
        }
    }
}

static void test_array_last_scalar_span(void **state)
{
    struct recorder *r = *state;
    enum qn_envelope_kind kind;
    /* no whitespace before the closing bracket: the span must still stop at the scalar */
    assert_int_equal(split_str(r, "[1,2]", &kind), 2);
    assert_parsed(r, 0, 0, "1");
    assert_parsed(r, 1, 1, "2");
    assert_int_equal(split_str(r, "{\"records\":[{\"a\":1},true]}", &kind), 2);
    assert_parsed(r, 0, 0, "{\"a\":1}");
    assert_parsed(r, 1, 1, "true");
}

static void test_top_level_scalar(void **state)
{
    struct recorder *r = *state;
    enum qn_envelope_kind kind;
    assert_int_equal(split_str(r, " 42 ", &kind), 1);
    assert_int_equal(kind, QN_ENVELOPE_SINGLE);
    assert_parsed(r, 0, 0, "42");
    assert_int_equal(split_str(r, "\"text\"", &kind), 1);
    assert_parsed(r, 0, 0, "\"text\"");
}

static void test_empty_batches(void **state)
{
    struct recorder *r = *state;
    enum qn_envelope_kind kind;
    /* an empty batch holds no record: nothing is reported (envelope.h says "at least 1") */
    assert_int_equal(split_str(r, "[]", &kind), 0);
    assert_int_equal(kind, QN_ENVELOPE_ARRAY);
    assert_int_equal(split_str(r, "{\"records\":[]}", &kind), 0);
    assert_int_equal(kind, QN_ENVELOPE_RECORDS);
}

static void test_truncated_json(void **state)
{
    struct recorder *r = *state;
    size_t len = 0;
    char *data = ts_read_fixture("hostile/not-json.txt", &len);
    enum qn_envelope_kind kind;
    assert_int_equal(split(r, data, len, NULL, &kind), 1);
    assert_rejected(r, 0, 0, QN_REJECT_NOT_JSON, data, len);
    free(data);

    const char *cases[] = {"{",         "[",          "{\"a\":",      "[{\"a\":1},",
                           "{\"a\":\"", "{\"a\":1}}", "[{\"a\":1}]]", "{\"a\":1} x",
                           "nul",       "{'a':1}"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(split_str(r, cases[i], &kind), 1);
        assert_rejected(r, 0, 0, QN_REJECT_NOT_JSON, cases[i], strlen(cases[i]));
    }
    /* a valid object followed by a truncated one on the same line */
    const char *two = "{\"a\":1}{\"b\":";
    assert_int_equal(split_str(r, two, &kind), 1);
    assert_rejected(r, 0, 0, QN_REJECT_NOT_JSON, two, strlen(two));
}

static void test_value_not_nul_terminated(void **state)
{
    struct recorder *r = *state;
    /* Kafka payloads are not NUL-terminated: only len bytes may be read */
    const char *src = "{\"a\":1}\n{\"b\":2}";
    size_t len = strlen(src);
    char *exact = malloc(len);
    assert_non_null(exact);
    memcpy(exact, src, len);
    enum qn_envelope_kind kind;
    assert_int_equal(split(r, exact, len, NULL, &kind), 2);
    assert_parsed(r, 0, 0, "{\"a\":1}");
    assert_parsed(r, 1, 1, "{\"b\":2}");
    assert_int_equal(split(r, exact, 7, NULL, &kind), 1);
    assert_parsed(r, 0, 0, "{\"a\":1}");
    free(exact);
}

static void test_json_depth(void **state)
{
    (void)state;
    assert_int_equal(qn_json_depth("", 0, 10), 0);
    assert_int_equal(qn_json_depth("1", 1, 10), 0);
    assert_int_equal(qn_json_depth("{}", 2, 10), 1);
    assert_int_equal(qn_json_depth("[{},[[]]]", 9, 10), 3);
    assert_int_equal(qn_json_depth("\"[[[\"", 5, 10), 0);
    assert_int_equal(qn_json_depth("[\"\\\"[[\"]", 8, 10), 1);
    /* stops early once past the limit */
    assert_int_equal(qn_json_depth("[[[[[[", 6, 2), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_single_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_array_spans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_array_fixture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_batch_spans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_batch_escaped_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_spans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_fixture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_one_garbage_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_with_newlines_is_one_rejection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_whitespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_deep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_deep_100000_never_reaches_cjson, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_deep_line_after_unbalanced_quote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_array_of_scalars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_array_last_scalar_span, setup, teardown),
        cmocka_unit_test_setup_teardown(test_top_level_scalar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_not_nul_terminated, setup, teardown),
        cmocka_unit_test(test_json_depth),
    };
    return cmocka_run_group_tests_name("envelope", tests, NULL, NULL);
}
