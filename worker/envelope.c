/*
 * envelope.c - recognises how records are packed into one Kafka value and hands each record over
 * with its exact bytes. A byte scanner (string- and escape-aware) finds the spans of top-level
 * array elements, which cJSON cannot report; nesting depth is checked before cJSON ever recurses.
 */
#include "envelope.h"

#include <string.h>
#include <strings.h>

static const char *const reason_names[] = {
    [QN_REJECT_NONE] = "none",
    [QN_REJECT_NOT_JSON] = "not_json",
    [QN_REJECT_NO_ALERT_ID] = "no_alert_id",
    [QN_REJECT_INVALID_RESOURCE_ID] = "invalid_resource_id",
    [QN_REJECT_TOO_BIG] = "too_big",
    [QN_REJECT_TOO_DEEP] = "too_deep",
    [QN_REJECT_INVALID_ALERT] = "invalid_alert",
    [QN_REJECT_INVALID_VERDICT] = "invalid_verdict",
    [QN_REJECT_INVALID_ENVELOPE] = "invalid_envelope",
};

const char *qn_reject_reason_name(enum qn_reject_reason reason)
{
    return reason_names[reason];
}

const char *qn_envelope_kind_name(enum qn_envelope_kind kind)
{
    static const char *const names[] = {"single", "array", "records", "ndjson"};
    return names[kind];
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *d, size_t len, size_t pos)
{
    while (pos < len && is_ws(d[pos])) {
        pos++;
    }
    return pos;
}

int qn_json_depth(const char *data, size_t len, int stop)
{
    int depth = 0;
    int max = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max) {
                max = depth;
                if (max > stop) {
                    return max;
                }
            }
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max;
}

/* Skips one JSON value starting at @p pos of already-validated JSON; @returns its end. */
static size_t skip_value(const char *d, size_t len, size_t pos)
{
    int depth = 0;
    int in_str = 0;
    for (size_t i = pos; i < len; i++) {
        char c = d[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = 0;
                if (depth == 0) {
                    return i + 1;
                }
            }
            continue;
        }
        if (depth == 0 && i > pos && (c == ',' || c == ']' || c == '}' || is_ws(c))) {
            return i; /* end of a scalar */
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
            if (depth == 0) {
                return i + 1;
            }
        }
    }
    return len;
}

/* Calls @p fn for each element of the valid JSON array at d[pos] whose parse is @p arr. */
static int emit_array(const char *d,
                      size_t len,
                      size_t pos,
                      const cJSON *arr,
                      int base_index,
                      qn_envelope_record_fn fn,
                      void *opaque)
{
    int index = 0;
    const cJSON *el = arr->child;
    pos = skip_ws(d, len, pos + 1); /* past '[' */
    while (el != NULL && pos < len && d[pos] != ']') {
        size_t end = skip_value(d, len, pos);
        struct qn_envelope_record rec = {
            .bytes = d + pos, .len = end - pos, .index = base_index + index, .json = el};
        fn(&rec, opaque);
        index++;
        el = el->next;
        pos = skip_ws(d, len, end);
        if (pos < len && d[pos] == ',') {
            pos = skip_ws(d, len, pos + 1);
        }
    }
    return index;
}

/*
 * Finds the value of the only member of the valid JSON object at d[pos]. is_records_batch has
 * already checked (through cJSON, which decodes escapes such as "\u0072ecords") that this member
 * is "records", so the raw key bytes need no comparison here.
 */
static size_t first_member_value(const char *d, size_t len, size_t pos)
{
    pos = skip_ws(d, len, pos + 1); /* past '{' */
    pos = skip_ws(d, len, skip_value(d, len, pos));
    return skip_ws(d, len, pos + 1); /* past ':' */
}

static int is_records_batch(const cJSON *obj)
{
    const cJSON *records = cJSON_GetObjectItem(obj, "records");
    return cJSON_IsArray(records) && cJSON_GetArraySize(obj) == 1;
}

static void reject(const char *d,
                   size_t len,
                   int index,
                   enum qn_reject_reason reason,
                   const char *message,
                   qn_envelope_record_fn fn,
                   void *opaque)
{
    struct qn_envelope_record rec = {
        .bytes = d, .len = len, .index = index, .reason = reason, .message = message};
    fn(&rec, opaque);
}

/* Handles one JSON document (the whole value, or one NDJSON line). @returns records reported. */
static int split_document(const char *d,
                          size_t len,
                          int base_index,
                          const struct qn_envelope_limits *limits,
                          qn_envelope_record_fn fn,
                          void *opaque,
                          enum qn_envelope_kind *kind,
                          int *parsed)
{
    *parsed = 0;
    if (qn_json_depth(d, len, limits->max_depth) > limits->max_depth) {
        reject(d, len, base_index, QN_REJECT_TOO_DEEP, "JSON nesting is deeper than the limit", fn,
               opaque);
        return 1;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(d, len, &end, 0);
    if (root == NULL) {
        return 0;
    }
    size_t rest = skip_ws(d, len, (size_t)(end - d));
    if (rest != len) {
        cJSON_Delete(root);
        return 0;
    }
    *parsed = 1;
    size_t start = skip_ws(d, len, 0);
    int count;
    if (cJSON_IsArray(root)) {
        *kind = QN_ENVELOPE_ARRAY;
        count = emit_array(d, len, start, root, base_index, fn, opaque);
    } else if (cJSON_IsObject(root) && is_records_batch(root)) {
        *kind = QN_ENVELOPE_RECORDS;
        size_t at = first_member_value(d, len, start);
        count =
            emit_array(d, len, at, cJSON_GetObjectItem(root, "records"), base_index, fn, opaque);
    } else {
        struct qn_envelope_record rec = {.bytes = d + start,
                                         .len = (size_t)(end - d) - start,
                                         .index = base_index,
                                         .json = root};
        fn(&rec, opaque);
        count = 1;
    }
    cJSON_Delete(root);
    return count;
}

/* NDJSON only makes sense if some line is JSON; otherwise the value is garbage as a whole. */
static int any_line_is_json(const char *data, size_t len, int max_depth)
{
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t line_end = nl != NULL ? (size_t)(nl - data) : len;
        size_t a = skip_ws(data, line_end, pos);
        if (a < line_end && (data[a] == '{' || data[a] == '[') &&
            qn_json_depth(data + a, line_end - a, max_depth) <= max_depth) {
            cJSON *doc = cJSON_ParseWithLength(data + a, line_end - a);
            if (doc != NULL) {
                cJSON_Delete(doc);
                return 1;
            }
        }
        pos = line_end + 1;
    }
    return 0;
}

int qn_envelope_split(const char *data,
                      size_t len,
                      const struct qn_envelope_limits *limits,
                      qn_envelope_record_fn fn,
                      void *opaque,
                      enum qn_envelope_kind *kind_out)
{
    enum qn_envelope_kind kind = QN_ENVELOPE_SINGLE;
    int count = 0;
    if (kind_out != NULL) {
        *kind_out = kind;
    }
    if (len > limits->max_record_bytes) {
        reject(data, len, 0, QN_REJECT_TOO_BIG, "record is larger than ingest.max_record_bytes", fn,
               opaque);
        return 1;
    }
    if (skip_ws(data, len, 0) == len) {
        reject(data, len, 0, QN_REJECT_NOT_JSON, "record is empty", fn, opaque);
        return 1;
    }
    int parsed = 0;
    count = split_document(data, len, 0, limits, fn, opaque, &kind, &parsed);
    if (parsed || count > 0) {
        if (kind_out != NULL) {
            *kind_out = kind;
        }
        return count;
    }
    if (memchr(data, '\n', len) == NULL) {
        reject(data, len, 0, QN_REJECT_NOT_JSON, "record is not valid JSON", fn, opaque);
        return 1;
    }
    if (!any_line_is_json(data, len, limits->max_depth)) {
        reject(data, len, 0, QN_REJECT_NOT_JSON, "record is not valid JSON", fn, opaque);
        return 1;
    }
    /* Newline-delimited records: each non-blank line is a document of its own. */
    kind = QN_ENVELOPE_NDJSON;
    size_t pos = 0;
    int index = 0;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t line_end = nl != NULL ? (size_t)(nl - data) : len;
        size_t a = skip_ws(data, line_end, pos);
        if (a < line_end) {
            size_t b = line_end;
            while (b > a && is_ws(data[b - 1])) {
                b--;
            }
            enum qn_envelope_kind inner = QN_ENVELOPE_SINGLE;
            int line_count =
                split_document(data + a, b - a, index, limits, fn, opaque, &inner, &parsed);
            if (!parsed && line_count == 0) {
                reject(data + a, b - a, index, QN_REJECT_NOT_JSON,
                       "line of newline-delimited JSON is not valid JSON", fn, opaque);
                line_count = 1;
            }
            index += line_count;
            count += line_count;
        }
        pos = line_end + 1;
    }
    if (kind_out != NULL) {
        *kind_out = kind;
    }
    return count;
}
