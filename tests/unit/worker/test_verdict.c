/*
 * test_verdict.c - unit tests for verdict validation against schemas/verdict.schema.json: every
 * fixture in tests/data/verdicts, plus the schema's rules one by one.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_support.h"
#include "verdict.h"

#define GOOD                                                                                  \
    "{\"alertId\":\"2516839117039431999_3a7f1c2e-8b4d-4c6a-9e1f-5d2b8a0c7e34\","              \
    "\"subscriptionId\":\"3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34\",\"verdict\":\"unexpected\"," \
    "\"decidedBy\":\"bob@contoso.com\"}"

static void valid_fixture(const char *rel, const char *subscription)
{
    cJSON *json = ts_parse_fixture(rel);
    char sub[37];
    memset(sub, 'x', sizeof(sub));
    struct qn_error err = {0};
    qn_err_t rc = qn_verdict_validate(json, sub, &err);
    cJSON_Delete(json);
    if (rc != QN_OK) {
        print_error("%s: %s\n", rel, err.msg);
    }
    assert_int_equal(rc, QN_OK);
    assert_string_equal(sub, subscription);
}

/* @returns true if the fixture is rejected with a message naming @p field. */
static bool rejects_fixture(const char *rel, const char *field)
{
    cJSON *json = ts_parse_fixture(rel);
    char sub[37] = "";
    struct qn_error err = {0};
    qn_err_t rc = qn_verdict_validate(json, sub, &err);
    cJSON_Delete(json);
    if (rc == QN_OK) {
        print_error("%s: accepted (subscription %s), expected a rejection naming '%s'\n", rel, sub,
                    field);
        return false;
    }
    if (rc != QN_ERR_PARSE || strstr(err.msg, field) == NULL) {
        print_error("%s: rejected with '%s', expected a message naming '%s'\n", rel, err.msg,
                    field);
        return false;
    }
    return true;
}

/* Validates GOOD with member @p key replaced by the JSON @p value (NULL: removed). */
static qn_err_t validate_with(const char *key, const char *value, struct qn_error *err)
{
    cJSON *json = cJSON_Parse(GOOD);
    assert_non_null(json);
    cJSON_DeleteItemFromObjectCaseSensitive(json, key);
    if (value != NULL) {
        cJSON *item = cJSON_Parse(value);
        assert_non_null(item);
        cJSON_AddItemToObject(json, key, item);
    }
    char sub[37];
    qn_err_t rc = qn_verdict_validate(json, sub, err);
    cJSON_Delete(json);
    return rc;
}

static void expect_valid(const char *key, const char *value)
{
    struct qn_error err = {0};
    qn_err_t rc = validate_with(key, value, &err);
    if (rc != QN_OK) {
        print_error("%s=%s rejected: %s\n", key, value != NULL ? value : "(absent)", err.msg);
    }
    assert_int_equal(rc, QN_OK);
}

/* @returns true if GOOD with @p key = @p value is rejected naming @p key. */
static bool expect_invalid(const char *key, const char *value)
{
    struct qn_error err = {0};
    qn_err_t rc = validate_with(key, value, &err);
    if (rc == QN_OK) {
        print_error("%s=%.80s accepted, the schema forbids it\n", key,
                    value != NULL ? value : "(absent)");
        return false;
    }
    if (strstr(err.msg, key) == NULL) {
        print_error("%s=%.80s rejected with '%s', which does not name the field\n", key,
                    value != NULL ? value : "(absent)", err.msg);
        return false;
    }
    return true;
}

static void test_valid_fixtures(void **state)
{
    (void)state;
    valid_fixture("verdicts/expected.json", "8c1d4e2f-7a3b-4f6e-b5d9-0e2c4a6b8d13");
    /* upper-case input, lower-case copy */
    valid_fixture("verdicts/unexpected.json", "3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34");
    valid_fixture("verdicts/approvals.json", "3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34");
}

static void test_bad_fixtures(void **state)
{
    (void)state;

    static const struct {
        const char *file;
        const char *field;
    } cases[] = {
        {"verdicts/bad-alert-id-traversal.json", "alertId"},
        {"verdicts/bad-approval-id.json", "approvals"},
        {"verdicts/bad-comment-too-long.json", "comment"},
        {"verdicts/bad-decided-by-newline.json", "decidedBy"},
        {"verdicts/bad-empty-approvals.json", "approvals"},
        {"verdicts/bad-extra-key.json", "status"},
        {"verdicts/bad-no-decided-by.json", "decidedBy"},
        {"verdicts/bad-no-verdict-or-approvals.json", "verdict"},
        {"verdicts/bad-subscription-id.json", "subscriptionId"},
        {"verdicts/bad-verdict-value.json", "verdict"},
    };

    int wrong = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wrong += !rejects_fixture(cases[i].file, cases[i].field);
    }
    assert_int_equal(wrong, 0);
}

static void test_every_fixture_is_covered(void **state)
{
    (void)state;
    /* the two lists above name every file of tests/data/verdicts */
    static const char *const files[] = {
        "approvals.json",
        "bad-alert-id-traversal.json",
        "bad-approval-id.json",
        "bad-comment-too-long.json",
        "bad-decided-by-newline.json",
        "bad-empty-approvals.json",
        "bad-extra-key.json",
        "bad-no-decided-by.json",
        "bad-no-verdict-or-approvals.json",
        "bad-subscription-id.json",
        "bad-verdict-value.json",
        "expected.json",
        "unexpected.json",
    };
    char path[1024];
    snprintf(path, sizeof(path), "%s/verdicts", QN_TEST_DATA_DIR);
    size_t found = 0;
    DIR *dir = opendir(path);
    assert_non_null(dir);
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        const char *line = de->d_name;
        if (line[0] == '.') {
            continue;
        }
        bool known = false;
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            known = known || strcmp(files[i], line) == 0;
        }
        if (!known) {
            print_error("verdict fixture %s is not covered by this test\n", line);
        }
        assert_true(known);
        found++;
    }
    closedir(dir);
    assert_int_equal(found, sizeof(files) / sizeof(files[0]));
}

static void test_alert_id_rules(void **state)
{
    (void)state;
    expect_valid("alertId", "\"2516839117039431999_3a7f1c2e\"");
    char max[600];
    memset(max, 'a', sizeof(max));
    max[0] = '"';
    max[513] = '"';
    max[514] = '\0';
    expect_valid("alertId", max);
    int wrong = 0;
    max[513] = 'a';
    max[514] = '"';
    max[515] = '\0';
    wrong += !expect_invalid("alertId", max); /* 513 characters */
    wrong += !expect_invalid("alertId", NULL);
    wrong += !expect_invalid("alertId", "\"\"");
    wrong += !expect_invalid("alertId", "42");
    wrong += !expect_invalid("alertId", "\"a\\u0001b\"");
    /* the schema's pattern: no whitespace, '/', '\', '?', '#', '%', and not "." or ".." */
    static const char *const smuggled[] = {
        "\"..\"",  "\".\"",   "\"../x\"",  "\"a/b\"", "\"a\\\\b\"",
        "\"a?b\"", "\"a#b\"", "\"a%2Fb\"", "\"a b\"", "\"a\\tb\"",
    };
    for (size_t i = 0; i < sizeof(smuggled) / sizeof(smuggled[0]); i++) {
        wrong += !expect_invalid("alertId", smuggled[i]);
    }
    assert_int_equal(wrong, 0);
}

static void test_subscription_rules(void **state)
{
    (void)state;
    expect_valid("subscriptionId", "\"3F2A9C1E-6B4D-4E8A-9C7B-2D5E8F1A0B34\"");
    int wrong = 0;
    wrong += !expect_invalid("subscriptionId", NULL);
    wrong += !expect_invalid("subscriptionId", "\"\"");
    wrong += !expect_invalid("subscriptionId", "\"3f2a9c1e6b4d4e8a9c7b2d5e8f1a0b34\"");
    wrong += !expect_invalid("subscriptionId",
                             "\"/subscriptions/3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34\"");
    wrong += !expect_invalid("subscriptionId", "\"3f2a9c1e-6b4d-4e8a-9c7b-2d5e8f1a0b34 \"");
    wrong += !expect_invalid("subscriptionId", "true");
    assert_int_equal(wrong, 0);

    /* the copy is lower case and NUL-terminated */
    cJSON *json = cJSON_Parse(GOOD);
    cJSON_ReplaceItemInObject(json, "subscriptionId",
                              cJSON_CreateString("ABCDEF01-2345-6789-ABCD-EF0123456789"));
    char sub[37];
    assert_int_equal(qn_verdict_validate(json, sub, NULL), QN_OK);
    assert_string_equal(sub, "abcdef01-2345-6789-abcd-ef0123456789");
    cJSON_Delete(json);
}

static void test_verdict_and_approvals_rules(void **state)
{
    (void)state;
    expect_valid("verdict", "\"expected\"");
    int wrong = 0;
    wrong += !expect_invalid("verdict", "\"Expected\"");
    wrong += !expect_invalid("verdict", "\"\"");
    wrong += !expect_invalid("verdict", "null");
    wrong += !expect_invalid("verdict", "1");
    expect_valid("approvals", "[\"79c17b56217c68a753d50307cf19ff93\"]");
    wrong += !expect_invalid("approvals", "[]");
    wrong += !expect_invalid("approvals", "[\"79C17B56217C68A753D50307CF19FF93\"]");
    wrong += !expect_invalid("approvals", "[\"79c17b56217c68a753d50307cf19ff9\"]");
    wrong += !expect_invalid("approvals", "[\"79c17b56217c68a753d50307cf19ff93\",1]");
    wrong += !expect_invalid("approvals", "\"79c17b56217c68a753d50307cf19ff93\"");
    wrong += !expect_invalid("approvals", "[\"79c17b56217c68a753d50307cf19ff93\","
                                          "\"79c17b56217c68a753d50307cf19ff93\"]");
    /* more than 256 */
    char many[257 * 35 + 8];
    size_t at = 0;
    many[at++] = '[';
    for (int i = 0; i < 257; i++) {
        at += (size_t)snprintf(many + at, sizeof(many) - at, "%s\"%032x\"", i ? "," : "", i);
    }
    many[at++] = ']';
    many[at] = '\0';
    wrong += !expect_invalid("approvals", many);
    assert_int_equal(wrong, 0);
}

static void test_decided_by_and_comment_rules(void **state)
{
    (void)state;
    int wrong = 0;
    wrong += !expect_invalid("decidedBy", "\"\"");
    wrong += !expect_invalid("decidedBy", "\"a\\nb\"");
    wrong += !expect_invalid("decidedBy", "7");
    char by[300];
    memset(by, 'b', sizeof(by));
    by[0] = '"';
    by[257] = '"';
    by[258] = '\0';
    expect_valid("decidedBy", by);
    by[257] = 'b';
    by[258] = '"';
    by[259] = '\0';
    wrong += !expect_invalid("decidedBy", by);

    char *comment = malloc(4100);
    assert_non_null(comment);
    memset(comment, 'c', 4100);
    comment[0] = '"';
    comment[4097] = '"';
    comment[4098] = '\0';
    expect_valid("comment", comment);
    comment[4097] = 'c';
    comment[4098] = '"';
    comment[4099] = '\0';
    wrong += !expect_invalid("comment", comment);
    free(comment);
    /* comments may hold newlines (the unexpected.json fixture does) */
    expect_valid("comment", "\"line 1\\nline 2\"");
    expect_valid("comment", "\"a\\tb\\r\\n\"");
    wrong += !expect_invalid("comment", "{}");
    /* the schema allows tab, CR and LF but no other control character */
    wrong += !expect_invalid("comment", "\"a\\u0001b\"");
    wrong += !expect_invalid("comment", "\"\\u001b[2J\"");
    wrong += !expect_invalid("comment", "\"a\\u007fb\"");
    assert_int_equal(wrong, 0);
}

static void test_shape(void **state)
{
    (void)state;
    char sub[37];
    struct qn_error err = {0};
    cJSON *arr = cJSON_Parse("[" GOOD "]");
    assert_int_equal(qn_verdict_validate(arr, sub, &err), QN_ERR_PARSE);
    cJSON_Delete(arr);
    cJSON *str = cJSON_Parse("\"x\"");
    assert_int_equal(qn_verdict_validate(str, sub, NULL), QN_ERR_PARSE);
    cJSON_Delete(str);
    /* member names are case-sensitive: "AlertId" is an unknown field */
    cJSON *json = cJSON_Parse(GOOD);
    cJSON_AddStringToObject(json, "AlertId", "x");
    assert_int_equal(qn_verdict_validate(json, sub, &err), QN_ERR_PARSE);
    assert_non_null(strstr(err.msg, "AlertId"));
    cJSON_Delete(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_fixtures),
        cmocka_unit_test(test_bad_fixtures),
        cmocka_unit_test(test_every_fixture_is_covered),
        cmocka_unit_test(test_alert_id_rules),
        cmocka_unit_test(test_subscription_rules),
        cmocka_unit_test(test_verdict_and_approvals_rules),
        cmocka_unit_test(test_decided_by_and_comment_rules),
        cmocka_unit_test(test_shape),
    };
    return cmocka_run_group_tests_name("verdict", tests, NULL, NULL);
}
