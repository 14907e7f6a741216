/*
 * resid.c - strict ARM resource id grammar. Everything not explicitly allowed is rejected, so an id
 * taken from an alert can never change the shape of a URL built from it.
 */
#include "qn/resid.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool qn_is_guid(const char *s)
{
    static const int group_len[] = {8, 4, 4, 4, 12};
    const char *p = s;
    for (size_t g = 0; g < 5; g++) {
        for (int i = 0; i < group_len[g]; i++, p++) {
            if (!isxdigit((unsigned char)*p)) {
                return false;
            }
        }
        if (g < 4) {
            if (*p != '-') {
                return false;
            }
            p++;
        }
    }
    return *p == '\0';
}

/* Characters allowed in a name segment. Deliberately narrower than what ARM accepts. */
static bool name_char_ok(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '(' || c == ')' || c == '~' ||
           c == '@' || c == '+' || c == ',' || c == '=' || c == '!' || c == '$' || c == '\'' ||
           c == '*' || c == ':' || c == ';';
}

static bool ident_ok(const char *seg, size_t len)
{
    if (len == 0 || !isalpha((unsigned char)seg[0])) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isalnum((unsigned char)seg[i])) {
            return false;
        }
    }
    return true;
}

static bool namespace_ok(const char *seg, size_t len)
{
    /* Microsoft.Compute, Microsoft.Security, Contoso.Foo.Bar: dot-separated identifiers */
    size_t start = 0;
    int parts = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || seg[i] == '.') {
            if (!ident_ok(seg + start, i - start)) {
                return false;
            }
            parts++;
            start = i + 1;
        }
    }
    return parts >= 2;
}

static bool name_ok(const char *seg, size_t len)
{
    if (len == 0 || len > 260) {
        return false;
    }
    if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!name_char_ok((unsigned char)seg[i])) {
            return false;
        }
    }
    return true;
}

static bool rg_ok(const char *seg, size_t len)
{
    if (len == 0 || len > 90 || seg[len - 1] == '.') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)seg[i];
        if (!(isalnum(c) || c == '-' || c == '_' || c == '.' || c == '(' || c == ')')) {
            return false;
        }
    }
    return !(len <= 2 && seg[0] == '.');
}

#define MAX_SEGMENTS 64

struct seg {
    const char *p;
    size_t len;
};

static bool seg_is(const struct seg *s, const char *word)
{
    return s->len == strlen(word) && strncasecmp(s->p, word, s->len) == 0;
}

static void copy_seg(char *dst, size_t cap, const struct seg *s)
{
    size_t n = s->len < cap - 1 ? s->len : cap - 1;
    memcpy(dst, s->p, n);
    dst[n] = '\0';
}

static qn_err_t split(const char *id, struct seg *segs, int *count, struct qn_error *err)
{
    size_t len = strlen(id);
    if (len == 0) {
        return qn_error_set(err, QN_ERR_PARSE, "resource id is empty");
    }
    if (len > QN_RESID_MAX_LEN) {
        return qn_error_set(err, QN_ERR_PARSE, "resource id is longer than %d bytes",
                            QN_RESID_MAX_LEN);
    }
    if (id[0] != '/') {
        return qn_error_set(err, QN_ERR_PARSE, "resource id does not start with '/'");
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c != '/' && !name_char_ok(c)) {
            return qn_error_set(err, QN_ERR_PARSE,
                                "resource id has a forbidden character (byte 0x%02x at %zu)", c, i);
        }
    }
    int n = 0;
    const char *p = id + 1;
    while (1) {
        const char *slash = strchr(p, '/');
        size_t seg_len = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (seg_len == 0) {
            return qn_error_set(err, QN_ERR_PARSE, "resource id has an empty segment");
        }
        if (n == MAX_SEGMENTS) {
            return qn_error_set(err, QN_ERR_PARSE, "resource id has too many segments");
        }
        segs[n].p = p;
        segs[n].len = seg_len;
        n++;
        if (slash == NULL) {
            break;
        }
        p = slash + 1;
    }
    *count = n;
    return QN_OK;
}

/* Parses "providers/{ns}/{type}/{name}..." starting at segs[i]; fills out. */
static qn_err_t
parse_providers(const struct seg *segs, int n, int i, struct qn_resid *out, struct qn_error *err)
{
    while (i < n) {
        if (!seg_is(&segs[i], "providers")) {
            return qn_error_set(err, QN_ERR_PARSE, "expected 'providers' at segment %d", i + 1);
        }
        if (i + 1 >= n || !namespace_ok(segs[i + 1].p, segs[i + 1].len)) {
            return qn_error_set(err, QN_ERR_PARSE, "invalid provider namespace at segment %d",
                                i + 2);
        }
        copy_seg(out->provider, sizeof(out->provider), &segs[i + 1]);
        out->type[0] = '\0';
        out->depth = 0;
        i += 2;
        if (i >= n) {
            return qn_error_set(err, QN_ERR_PARSE, "provider namespace without a resource type");
        }
        size_t type_len = 0;
        while (i < n && !seg_is(&segs[i], "providers")) {
            if (!ident_ok(segs[i].p, segs[i].len)) {
                return qn_error_set(err, QN_ERR_PARSE, "invalid resource type at segment %d",
                                    i + 1);
            }
            if (i + 1 >= n) {
                return qn_error_set(err, QN_ERR_PARSE, "resource type without a name");
            }
            if (!name_ok(segs[i + 1].p, segs[i + 1].len)) {
                return qn_error_set(err, QN_ERR_PARSE, "invalid resource name at segment %d",
                                    i + 2);
            }
            if (type_len + segs[i].len + 2 >= sizeof(out->type)) {
                return qn_error_set(err, QN_ERR_PARSE, "resource type path too long");
            }
            if (type_len > 0) {
                out->type[type_len++] = '/';
            }
            memcpy(out->type + type_len, segs[i].p, segs[i].len);
            type_len += segs[i].len;
            out->type[type_len] = '\0';
            copy_seg(out->name, sizeof(out->name), &segs[i + 1]);
            out->depth++;
            i += 2;
        }
    }
    return QN_OK;
}

qn_err_t qn_resid_parse(const char *id, int flags, struct qn_resid *out, struct qn_error *err)
{
    struct seg segs[MAX_SEGMENTS];
    int n = 0;
    struct qn_resid rid;
    memset(&rid, 0, sizeof(rid));

    qn_err_t rc = split(id, segs, &n, err);
    if (rc != QN_OK) {
        return rc;
    }
    int i = 0;
    if (seg_is(&segs[0], "subscriptions")) {
        if (n < 2 || segs[1].len != 36) {
            return qn_error_set(err, QN_ERR_PARSE, "subscription id is not a GUID");
        }
        copy_seg(rid.subscription, sizeof(rid.subscription), &segs[1]);
        if (!qn_is_guid(rid.subscription)) {
            return qn_error_set(err, QN_ERR_PARSE, "subscription id is not a GUID");
        }
        for (char *c = rid.subscription; *c != '\0'; c++) {
            *c = (char)tolower((unsigned char)*c);
        }
        i = 2;
        if (i < n && seg_is(&segs[i], "resourceGroups")) {
            if (i + 1 >= n || !rg_ok(segs[i + 1].p, segs[i + 1].len)) {
                return qn_error_set(err, QN_ERR_PARSE, "invalid resource group name");
            }
            copy_seg(rid.resource_group, sizeof(rid.resource_group), &segs[i + 1]);
            i += 2;
        }
    } else if (!(flags & QN_RESID_ALLOW_TENANT) || !seg_is(&segs[0], "providers")) {
        return qn_error_set(err, QN_ERR_PARSE, "resource id does not start with /subscriptions/");
    }
    rc = parse_providers(segs, n, i, &rid, err);
    if (rc != QN_OK) {
        return rc;
    }
    *out = rid;
    return QN_OK;
}

bool qn_resid_is_vm(const struct qn_resid *rid)
{
    return rid->depth == 1 && strcasecmp(rid->provider, "Microsoft.Compute") == 0 &&
           strcasecmp(rid->type, "virtualMachines") == 0;
}

bool qn_resid_is_subscription(const struct qn_resid *rid)
{
    return rid->subscription[0] != '\0' && rid->resource_group[0] == '\0' &&
           rid->provider[0] == '\0';
}

qn_err_t qn_resid_append_path(struct qn_buf *out, const char *id)
{
    static const char hex[] = "0123456789ABCDEF";
    qn_err_t rc = QN_OK;
    for (const unsigned char *p = (const unsigned char *)id; rc == QN_OK && *p != '\0'; p++) {
        unsigned char c = *p;
        if (c == '/' || isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            rc = qn_buf_append_char(out, (char)c);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 0xf]};
            rc = qn_buf_append(out, esc, sizeof(esc));
        }
    }
    return rc;
}
