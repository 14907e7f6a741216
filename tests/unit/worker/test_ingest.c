/*
 * test_ingest.c - unit tests for the ingest stage through a capturing sink: forward/skip/reject
 * decisions on mixed streams, (alert id, status) deduplication, skip counts, reject reasons with
 * the exact rejected bytes and the record's index, verdict mode, extra_alert_types, and sink
 * errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "ingest.h"
#include "qn/mem.h"
#include "test_support.h"

#define SUB_IP   "3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34"
#define SUB_RB   "8c1d4e2f-7a3b-4f6e-b5d9-0e2c4a6b8d13"
#define ID_IP    "2516839117039431999_3a7f1c2e-8b4d-4c6a-9e1f-5d2b8a0c7e34"
#define ID_HOST  "2516837880001112223_f6a7b8c9-d0e1-4f2a-9b4c-5d6e7f809102"
#define MAX_CALL 64

struct call {
    bool forward;
    enum qn_work_kind kind;
    char *key;
    char *alert_id;
    char *bytes;
    size_t len;
    int index;
    enum qn_reject_reason reason;
    char *message;
};

struct sink_rec {
    struct call calls[MAX_CALL];
    int count;
    int forwards;
    int rejects;
    qn_err_t fail_with; /* returned by every callback when not QN_OK */
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static struct call *new_call(struct sink_rec *s, const char *bytes, size_t len, int index)
{
    assert_true(s->count < MAX_CALL);
    struct call *c = &s->calls[s->count++];
    memset(c, 0, sizeof(*c));
    c->bytes = malloc(len + 1);
    assert_non_null(c->bytes);
    memcpy(c->bytes, bytes, len);
    c->bytes[len] = '\0';
    c->len = len;
    c->index = index;
    return c;
}

static qn_err_t on_forward(void *opaque,
                           enum qn_work_kind kind,
                           const char *key,
                           const char *alert_id,
                           const char *bytes,
                           size_t len,
                           int index)
{
    struct sink_rec *s = opaque;
    struct call *c = new_call(s, bytes, len, index);
    c->forward = true;
    c->kind = kind;
    c->key = dup_or_null(key);
    c->alert_id = dup_or_null(alert_id);
    s->forwards++;
    return s->fail_with;
}

static qn_err_t on_reject(void *opaque,
                          const char *bytes,
                          size_t len,
                          int index,
                          enum qn_reject_reason reason,
                          const char *message,
                          const char *alert_id)
{
    struct sink_rec *s = opaque;
    struct call *c = new_call(s, bytes, len, index);
    c->reason = reason;
    c->message = dup_or_null(message);
    c->alert_id = dup_or_null(alert_id);
    s->rejects++;
    return s->fail_with;
}

static void sink_clear(struct sink_rec *s)
{
    for (int i = 0; i < s->count; i++) {
        free(s->calls[i].key);
        free(s->calls[i].alert_id);
        free(s->calls[i].bytes);
        free(s->calls[i].message);
    }
    qn_err_t fail_with = s->fail_with;
    memset(s, 0, sizeof(*s));
    s->fail_with = fail_with;
}

struct fx {
    struct qn_config *cfg;
    struct qn_ingest *ing;
    struct sink_rec sink;
    struct qn_ingest_sink qsink;
};

static struct fx *fx_new(const char *config_path, char *const *envp)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    struct qn_error err = {0};
    qn_err_t rc = qn_config_load_flags(config_path, envp, QN_CONFIG_OFFLINE, &f->cfg, &err);
    if (rc != QN_OK) {
        print_error("config: %s\n", err.msg);
    }
    assert_int_equal(rc, QN_OK);
    assert_int_equal(qn_ingest_new(f->cfg, NULL, &f->ing), QN_OK);
    f->qsink.forward = on_forward;
    f->qsink.reject = on_reject;
    f->qsink.opaque = &f->sink;
    return f;
}

static void fx_free(struct fx *f)
{
    sink_clear(&f->sink);
    qn_ingest_free(f->ing);
    qn_config_free(f->cfg);
    free(f);
}

static int setup(void **state)
{
    *state = fx_new(NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    fx_free(*state);
    return 0;
}

static qn_err_t ingest(struct fx *f, bool verdicts, const char *data, size_t len)
{
    sink_clear(&f->sink);
    return qn_ingest_value(f->ing, verdicts, data, len, &f->qsink);
}

static qn_err_t ingest_str(struct fx *f, bool verdicts, const char *data)
{
    return ingest(f, verdicts, data, strlen(data));
}

static qn_err_t ingest_fixture(struct fx *f, bool verdicts, const char *rel)
{
    size_t len = 0;
    char *data = ts_read_fixture(rel, &len);
    qn_err_t rc = ingest(f, verdicts, data, len);
    free(data);
    return rc;
}

/* The fixture as compact JSON on one line (for NDJSON and batches). */
static char *compact_fixture(const char *rel)
{
    cJSON *json = ts_parse_fixture(rel);
    char *text = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    assert_non_null(text);
    return text;
}

/* The fixture with member @p key set to the string @p value, as compact JSON. */
static char *fixture_with(const char *rel, const char *key, const char *value)
{
    cJSON *json = ts_parse_fixture(rel);
    cJSON *target = json;
    if (cJSON_GetObjectItem(json, key) == NULL &&
        cJSON_IsObject(cJSON_GetObjectItem(json, "properties"))) {
        target = cJSON_GetObjectItem(json, "properties");
    }
    cJSON_ReplaceItemInObject(target, key, cJSON_CreateString(value));
    char *text = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    assert_non_null(text);
    return text;
}

static void
assert_counts(const struct fx *f, long records, long forwarded, long skipped, long rejected)
{
    struct qn_ingest_counts c;
    qn_ingest_counts(f->ing, &c);
    if (c.records != records || c.forwarded != forwarded || c.skipped != skipped ||
        c.rejected != rejected) {
        print_error("counts: records %ld forwarded %ld skipped %ld rejected %ld; expected %ld %ld "
                    "%ld %ld\n",
                    c.records, c.forwarded, c.skipped, c.rejected, records, forwarded, skipped,
                    rejected);
    }
    assert_int_equal(c.records, records);
    assert_int_equal(c.forwarded, forwarded);
    assert_int_equal(c.skipped, skipped);
    assert_int_equal(c.rejected, rejected);
    assert_int_equal(c.records, c.forwarded + c.skipped + c.rejected);
}

/* The original bytes of a pretty-printed fixture record: the file without trailing whitespace. */
static char *fixture_record_bytes(const char *rel, size_t *len)
{
    char *data = ts_read_fixture(rel, len);
    while (*len > 0 &&
           (data[*len - 1] == '\n' || data[*len - 1] == '\r' || data[*len - 1] == ' ')) {
        data[--*len] = '\0';
    }
    return data;
}

static void assert_reject(const struct call *c,
                          int index,
                          enum qn_reject_reason reason,
                          const char *bytes,
                          size_t len,
                          const char *alert_id)
{
    assert_false(c->forward);
    assert_int_equal(c->index, index);
    if (c->reason != reason) {
        print_error("expected reject reason %s, got %s (%s)\n", qn_reject_reason_name(reason),
                    qn_reject_reason_name(c->reason), c->message != NULL ? c->message : "");
    }
    assert_int_equal(c->reason, reason);
    assert_non_null(c->message);
    assert_true(c->message[0] != '\0');
    assert_int_equal(c->len, len);
    assert_memory_equal(c->bytes, bytes, len);
    if (alert_id == NULL) {
        assert_null(c->alert_id);
    } else {
        assert_non_null(c->alert_id);
        assert_string_equal(c->alert_id, alert_id);
    }
}

/* ---- alerts ---------------------------------------------------------------------------------- */

static void test_forward_single_alert(void **state)
{
    struct fx *f = *state;
    size_t len = 0;
    char *bytes = fixture_record_bytes("alerts/arm-flat-suspicious-ip.json", &len);
    assert_int_equal(ingest_fixture(f, false, "alerts/arm-flat-suspicious-ip.json"), QN_OK);
    assert_int_equal(f->sink.count, 1);
    const struct call *c = &f->sink.calls[0];
    assert_true(c->forward);
    assert_int_equal(c->kind, QN_WORK_ALERT);
    assert_string_equal(c->key, SUB_IP);
    assert_string_equal(c->alert_id, ID_IP);
    assert_int_equal(c->index, 0);
    assert_int_equal(c->len, len);
    assert_memory_equal(c->bytes, bytes, len);
    assert_counts(f, 1, 1, 0, 0);
    free(bytes);
    assert_string_equal(qn_work_kind_name(QN_WORK_ALERT), "alert");
    assert_string_equal(qn_work_kind_name(QN_WORK_VERDICT), "verdict");
}

static void test_key_is_lower_cased_subscription(void **state)
{
    struct fx *f = *state;
    assert_int_equal(ingest_fixture(f, false, "alerts/arm-flat-runbook.json"), QN_OK);
    assert_int_equal(f->sink.forwards, 1);
    assert_string_equal(f->sink.calls[0].key, SUB_RB);

    assert_int_equal(ingest_fixture(f, false, "alerts/arm-rest-shape-microburst.json"), QN_OK);
    assert_int_equal(f->sink.forwards, 1);
    assert_string_equal(f->sink.calls[0].key, "a61b7c2d-0e3f-4a5b-8c9d-e0f1a2b3c4d5");
    assert_string_equal(f->sink.calls[0].alert_id,
                        "2516838902123456789_9d4e2f1a-7c3b-4e5d-8a6f-1b2c3d4e5f60");
}

static void test_dedup_id_status_pairs(void **state)
{
    struct fx *f = *state;
    /* first sight: forwarded; the same (id, status) again: skipped */
    assert_int_equal(ingest_fixture(f, false, "alerts/arm-flat-suspicious-ip.json"), QN_OK);
    assert_int_equal(f->sink.forwards, 1);
    assert_int_equal(ingest_fixture(f, false, "alerts/arm-flat-suspicious-ip.json"), QN_OK);
    assert_int_equal(f->sink.count, 0);
    assert_counts(f, 2, 1, 1, 0);
    /* "Active" is the same status as "New" */
    char *active = fixture_with("alerts/arm-flat-suspicious-ip.json", "Status", "Active");
    assert_int_equal(ingest_str(f, false, active), QN_OK);
    assert_int_equal(f->sink.count, 0);
    free(active);
    /* same id, new status: forwarded once */
    assert_int_equal(ingest_fixture(f, false, "alerts/status-dismissed.json"), QN_OK);
    assert_int_equal(f->sink.forwards, 1);
    assert_string_equal(f->sink.calls[0].alert_id, ID_IP);
    assert_int_equal(ingest_fixture(f, false, "alerts/status-dismissed.json"), QN_OK);
    assert_int_equal(f->sink.count, 0);
    char *resolved = fixture_with("alerts/arm-flat-suspicious-ip.json", "Status", "Resolved");
    assert_int_equal(ingest_str(f, false, resolved), QN_OK);
    assert_int_equal(f->sink.forwards, 1);
    free(resolved);
    assert_counts(f, 6, 3, 3, 0);

    /* demo 01 is the same alert as arm-flat-suspicious-ip (compact): already seen */
    assert_int_equal(ingest_fixture(f, false, "demo/01-arm-flat-alert.json"), QN_OK);
    assert_int_equal(f->sink.count, 0);

    /* on a fresh stage, the demo's duplicate file is a repeat of 01 */
    struct fx *g = fx_new(NULL, NULL);
    assert_int_equal(ingest_fixture(g, false, "demo/01-arm-flat-alert.json"), QN_OK);
    int first = g->sink.forwards;
    assert_int_equal(ingest_fixture(g, false, "demo/04-duplicate-of-01.json"), QN_OK);
    int second = g->sink.count;
    fx_free(g);
    assert_int_equal(first, 1);
    assert_int_equal(second, 0);
}

static void test_dedup_disabled(void **state)
{
    (void)state;
    char env0[] = "QUENCH_INGEST_DEDUP_CAPACITY=0";
    char *envp[] = {env0, NULL};
    struct fx *f = fx_new(NULL, envp);
    assert_int_equal(f->cfg->ingest.dedup_capacity, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ingest_fixture(f, false, "alerts/arm-flat-suspicious-ip.json"), QN_OK);
        assert_int_equal(f->sink.forwards, 1);
    }
    assert_counts(f, 3, 3, 0, 0);
    fx_free(f);
}

static void test_skips(void **state)
{
    struct fx *f = *state;
    static const char *const skipped[] = {
        "alerts/snapshot-alert.json", "alerts/non-arm-vm-alert.json", "alerts/assessment.json",
        "alerts/sub-assessment.json", "alerts/secure-score.json",     "alerts/compliance.json",
        "demo/05-non-arm-alert.json",
    };
    for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++) {
        assert_int_equal(ingest_fixture(f, false, skipped[i]), QN_OK);
        if (f->sink.count != 0) {
            print_error("%s was not skipped\n", skipped[i]);
        }
        assert_int_equal(f->sink.count, 0);
    }
    long n = (long)(sizeof(skipped) / sizeof(skipped[0]));
    assert_counts(f, n, 0, n, 0);
}

static void test_batches_and_indexes(void **state)
{
    struct fx *f = *state;
    assert_int_equal(ingest_fixture(f, false, "alerts/batch-array.json"), QN_OK);
    assert_int_equal(f->sink.forwards, 2);
    assert_int_equal(f->sink.calls[0].index, 0);
    assert_int_equal(f->sink.calls[1].index, 1);
    assert_string_equal(f->sink.calls[0].alert_id,
                        "2516838400987654321_7e8f9a0b-1c2d-4e3f-a4b5-c6d7e8f9a0b1");
    assert_string_equal(f->sink.calls[1].alert_id,
                        "2516838399876543210_b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e");
    assert_counts(f, 2, 2, 0, 0);

    /* {"records":[alert, assessment]}: the alert forwarded at index 0, the assessment skipped */
    assert_int_equal(ingest_fixture(f, false, "alerts/batch-records.json"), QN_OK);
    assert_int_equal(f->sink.count, 1);
    assert_true(f->sink.calls[0].forward);
    assert_int_equal(f->sink.calls[0].index, 0);
    assert_counts(f, 4, 3, 1, 0);
}

static void test_mixed_stream(void **state)
{
    struct fx *f = *state;
    char *alert = compact_fixture("alerts/arm-flat-runbook.json");
    char *assessment = compact_fixture("alerts/assessment.json");
    char *no_id = compact_fixture("hostile/no-alert-id.json");
    char *dotdot = compact_fixture("hostile/bad-resource-id-dotdot.json");
    char *snapshot = compact_fixture("alerts/snapshot-alert.json");
    const char *garbage = "<html>502</html>";
    const char *unknown = "{\"hello\":\"world\"}";
    size_t cap = strlen(alert) + strlen(assessment) + strlen(no_id) + strlen(dotdot) +
                 strlen(snapshot) + 256;
    char *value = malloc(cap);
    assert_non_null(value);
    snprintf(value, cap, "%s\n%s\r\n\n%s\n%s\n%s\n[7, %s]\n%s\n", alert, garbage, assessment, no_id,
             unknown, dotdot, snapshot);
    assert_int_equal(ingest_str(f, false, value), QN_OK);

    /* 0 alert, 1 garbage, 2 assessment, 3 no id, 4 unknown, 5 scalar, 6 bad id, 7 snapshot */
    assert_int_equal(f->sink.count, 6);
    const struct call *c = &f->sink.calls[0];
    assert_true(c->forward);
    assert_int_equal(c->index, 0);
    assert_string_equal(c->bytes, alert);
    assert_string_equal(c->key, SUB_RB);
    assert_reject(&f->sink.calls[1], 1, QN_REJECT_NOT_JSON, garbage, strlen(garbage), NULL);
    assert_reject(&f->sink.calls[2], 3, QN_REJECT_NO_ALERT_ID, no_id, strlen(no_id), NULL);
    assert_reject(&f->sink.calls[3], 4, QN_REJECT_INVALID_ENVELOPE, unknown, strlen(unknown), NULL);
    assert_reject(&f->sink.calls[4], 5, QN_REJECT_INVALID_ENVELOPE, "7", 1, NULL);
    assert_reject(&f->sink.calls[5], 6, QN_REJECT_INVALID_RESOURCE_ID, dotdot, strlen(dotdot),
                  ID_HOST);
    assert_counts(f, 8, 1, 2, 5);
    free(value);
    free(alert);
    free(assessment);
    free(no_id);
    free(dotdot);
    free(snapshot);
}

static void test_reject_reasons_and_bytes(void **state)
{
    struct fx *f = *state;

    static const struct {
        const char *file;
        enum qn_reject_reason reason;
        const char *alert_id;
    } cases[] = {
        {"hostile/no-alert-id.json", QN_REJECT_NO_ALERT_ID, NULL},
        {"hostile/bad-resource-id-dotdot.json", QN_REJECT_INVALID_RESOURCE_ID, ID_HOST},
        {"hostile/bad-resource-id-query.json", QN_REJECT_INVALID_RESOURCE_ID, ID_HOST},
        {"hostile/bad-resource-id-encoded-slash.json", QN_REJECT_INVALID_RESOURCE_ID, ID_HOST},
        {"hostile/bad-resource-id-control.json", QN_REJECT_INVALID_RESOURCE_ID, ID_HOST},
        {"hostile/deep.json", QN_REJECT_TOO_DEEP, NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = 0;
        char *bytes = fixture_record_bytes(cases[i].file, &len);
        assert_int_equal(ingest_fixture(f, false, cases[i].file), QN_OK);
        assert_int_equal(f->sink.count, 1);
        const struct call *c = &f->sink.calls[0];
        if (cases[i].reason == QN_REJECT_TOO_DEEP) {
            /* rejected before parsing: the whole value, trailing newline included */
            size_t raw_len = 0;
            char *raw = ts_read_fixture(cases[i].file, &raw_len);
            assert_reject(c, 0, cases[i].reason, raw, raw_len, NULL);
            free(raw);
        } else {
            assert_reject(c, 0, cases[i].reason, bytes, len, cases[i].alert_id);
        }
        free(bytes);
    }
    /* not JSON: the whole value, byte for byte */
    size_t raw_len = 0;
    char *raw = ts_read_fixture("hostile/not-json.txt", &raw_len);
    assert_int_equal(ingest(f, false, raw, raw_len), QN_OK);
    assert_int_equal(f->sink.count, 1);
    assert_reject(&f->sink.calls[0], 0, QN_REJECT_NOT_JSON, raw, raw_len, NULL);
    free(raw);

    /* a control character in SystemAlertId: invalid_alert, and the id is not echoed */
    char *ctrl = fixture_with("alerts/arm-flat-suspicious-ip.json", "SystemAlertId", "id\x01x");
    assert_int_equal(ingest_str(f, false, ctrl), QN_OK);
    assert_int_equal(f->sink.count, 1);
    assert_reject(&f->sink.calls[0], 0, QN_REJECT_INVALID_ALERT, ctrl, strlen(ctrl), NULL);
    free(ctrl);

    /* AlertType with '/' but an ARM_ prefix: selected, decoded, rejected as invalid_alert */
    char *slash = fixture_with("alerts/arm-flat-suspicious-ip.json", "AlertType", "ARM_x/../y");
    assert_int_equal(ingest_str(f, false, slash), QN_OK);
    assert_int_equal(f->sink.count, 1);
    assert_reject(&f->sink.calls[0], 0, QN_REJECT_INVALID_ALERT, slash, strlen(slash), ID_IP);
    free(slash);

    /* too big: generated, rejected whole before parsing */
    size_t big = (size_t)f->cfg->ingest.max_record_bytes + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    memcpy(huge, "{\"a\":1}", 7);
    assert_int_equal(ingest(f, false, huge, big), QN_OK);
    assert_int_equal(f->sink.count, 1);
    assert_reject(&f->sink.calls[0], 0, QN_REJECT_TOO_BIG, huge, big, NULL);
    free(huge);
}

/* ---- verdicts -------------------------------------------------------------------------------- */

static void test_verdicts(void **state)
{
    struct fx *f = *state;
    assert_int_equal(ingest_fixture(f, true, "verdicts/expected.json"), QN_OK);
    assert_int_equal(f->sink.forwards, 1);
    assert_int_equal(f->sink.calls[0].kind, QN_WORK_VERDICT);
    assert_string_equal(f->sink.calls[0].key, SUB_RB);
    assert_string_equal(f->sink.calls[0].alert_id,
                        "2516838755512345678_0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f");

    /* upper-case subscription in the verdict: the key is lower case */
    size_t len = 0;
    char *bytes = fixture_record_bytes("verdicts/unexpected.json", &len);
    assert_int_equal(ingest_fixture(f, true, "verdicts/unexpected.json"), QN_OK);
    assert_int_equal(f->sink.forwards, 1);
    assert_string_equal(f->sink.calls[0].key, SUB_IP);
    assert_int_equal(f->sink.calls[0].len, len);
    assert_memory_equal(f->sink.calls[0].bytes, bytes, len);
    free(bytes);

    assert_int_equal(ingest_fixture(f, true, "verdicts/approvals.json"), QN_OK);
    assert_int_equal(f->sink.forwards, 1);
    assert_string_equal(f->sink.calls[0].key, SUB_IP);

    /* verdicts are not deduplicated: the same verdict twice is forwarded twice */
    assert_int_equal(ingest_fixture(f, true, "verdicts/expected.json"), QN_OK);
    assert_int_equal(f->sink.forwards, 1);

    static const char *const bad[] = {
        "verdicts/bad-alert-id-traversal.json", "verdicts/bad-approval-id.json",
        "verdicts/bad-comment-too-long.json",   "verdicts/bad-decided-by-newline.json",
        "verdicts/bad-empty-approvals.json",    "verdicts/bad-extra-key.json",
        "verdicts/bad-no-decided-by.json",      "verdicts/bad-no-verdict-or-approvals.json",
        "verdicts/bad-subscription-id.json",    "verdicts/bad-verdict-value.json",
    };
    int accepted = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bytes = fixture_record_bytes(bad[i], &len);
        assert_int_equal(ingest_fixture(f, true, bad[i]), QN_OK);
        assert_int_equal(f->sink.count, 1);
        if (f->sink.rejects != 1) {
            print_error("%s was forwarded with key %s instead of rejected\n", bad[i],
                        f->sink.calls[0].key);
            accepted++;
        } else {
            assert_reject(&f->sink.calls[0], 0, QN_REJECT_INVALID_VERDICT, bytes, len, NULL);
        }
        free(bytes);
    }
    assert_string_equal(qn_reject_reason_name(QN_REJECT_INVALID_VERDICT), "invalid_verdict");

    /* an alert on the verdicts topic is not a verdict */
    assert_int_equal(ingest_fixture(f, true, "alerts/arm-flat-suspicious-ip.json"), QN_OK);
    assert_int_equal(f->sink.rejects, 1);
    assert_int_equal(f->sink.calls[0].reason, QN_REJECT_INVALID_VERDICT);
    /* garbage on the verdicts topic */
    assert_int_equal(ingest_str(f, true, "nope"), QN_OK);
    assert_int_equal(f->sink.calls[0].reason, QN_REJECT_NOT_JSON);
    /* a verdict on the input topic is neither an alert nor an export record */
    assert_int_equal(ingest_fixture(f, false, "verdicts/expected.json"), QN_OK);
    assert_int_equal(f->sink.rejects, 1);
    assert_int_equal(f->sink.calls[0].reason, QN_REJECT_INVALID_ENVELOPE);
    assert_int_equal(accepted, 0);
}

/* ---- configuration --------------------------------------------------------------------------- */

static void test_extra_alert_types(void **state)
{
    (void)state;
    char path[64];
    assert_int_equal(ts_write_temp(path, sizeof(path),
                                   "{\"ingest\":{\"extra_alert_types\":[\"VM_EICAR\",\"K8S_*\"]}}"),
                     0);
    struct fx *f = fx_new(path, NULL);
    unlink(path);
    assert_int_equal(f->cfg->ingest.extra_alert_types.count, 2);

    char *eicar = fixture_with("alerts/arm-flat-suspicious-ip.json", "AlertType", "vm_eicar");
    assert_int_equal(ingest_str(f, false, eicar), QN_OK);
    assert_int_equal(f->sink.forwards, 1);
    free(eicar);

    char *k8s =
        fixture_with("alerts/arm-flat-runbook.json", "AlertType", "K8S_PrivilegedContainer");
    assert_int_equal(ingest_str(f, false, k8s), QN_OK);
    assert_int_equal(f->sink.forwards, 1);
    free(k8s);

    /* still not wanted: skipped, even though its resource id is invalid */
    assert_int_equal(ingest_fixture(f, false, "alerts/non-arm-vm-alert.json"), QN_OK);
    assert_int_equal(f->sink.count, 0);
    char *eicar2 = fixture_with("alerts/arm-rest-shape-microburst.json", "alertType", "VM_EICAR_2");
    assert_int_equal(ingest_str(f, false, eicar2), QN_OK);
    assert_int_equal(f->sink.count, 0);
    free(eicar2);

    /* the reference VM_EICAR alert of the REST API is now forwarded */
    char ref_path[1024];
    snprintf(ref_path, sizeof(ref_path), "%s/security-alerts-get.json", QN_REFERENCE_DIR);
    char *ref = ts_read_path(ref_path, NULL);
    if (ref != NULL) {
        cJSON *root = cJSON_Parse(ref);
        free(ref);
        assert_non_null(root);
        cJSON *body = cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(root, "responses"), "200"), "body");
        char *text = cJSON_PrintUnformatted(body);
        cJSON_Delete(root);
        assert_int_equal(ingest_str(f, false, text), QN_OK);
        assert_int_equal(f->sink.forwards, 1);
        assert_string_equal(f->sink.calls[0].key, "20ff7fc3-e762-44dd-bd96-b71116dcdc23");
        free(text);
    }
    fx_free(f);

    /* without the configuration the same type is skipped */
    f = fx_new(NULL, NULL);
    eicar = fixture_with("alerts/arm-flat-suspicious-ip.json", "AlertType", "VM_EICAR");
    assert_int_equal(ingest_str(f, false, eicar), QN_OK);
    assert_int_equal(f->sink.count, 0);
    assert_counts(f, 1, 0, 1, 0);
    free(eicar);
    fx_free(f);
}

static void test_sink_errors_propagate(void **state)
{
    struct fx *f = *state;
    f->sink.fail_with = QN_ERR_KAFKA;
    assert_int_equal(ingest_fixture(f, false, "alerts/batch-array.json"), QN_ERR_KAFKA);
    assert_int_equal(ingest_str(f, false, "garbage"), QN_ERR_KAFKA);
    /* skipped records call no sink: no error */
    assert_int_equal(ingest_fixture(f, false, "alerts/assessment.json"), QN_OK);
    f->sink.fail_with = QN_OK;
}

static void test_alloc_failure_ingest_new(void **state)
{
    (void)state;
    struct qn_config *cfg = NULL;
    assert_int_equal(qn_config_load_flags(NULL, NULL, QN_CONFIG_OFFLINE, &cfg, NULL), QN_OK);
    for (long n = 0; n < 10; n++) {
        struct qn_ingest *ing = NULL;
        qn_mem_fail_after(n);
        qn_err_t rc = qn_ingest_new(cfg, NULL, &ing);
        qn_mem_fail_after(-1);
        if (rc == QN_OK) {
            qn_ingest_free(ing);
            break;
        }
        assert_int_equal(rc, QN_ERR_NOMEM);
    }
    qn_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_forward_single_alert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_is_lower_cased_subscription, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_id_status_pairs, setup, teardown),
        cmocka_unit_test(test_dedup_disabled),
        cmocka_unit_test_setup_teardown(test_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches_and_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mixed_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_reasons_and_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verdicts, setup, teardown),
        cmocka_unit_test(test_extra_alert_types),
        cmocka_unit_test_setup_teardown(test_sink_errors_propagate, setup, teardown),
        cmocka_unit_test(test_alloc_failure_ingest_new),
    };
    return cmocka_run_group_tests_name("ingest", tests, NULL, NULL);
}
