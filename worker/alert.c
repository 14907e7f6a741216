/*
 * alert.c - classification of exported records and strict decoding of alerts of both shapes.
 *
 * cJSON's cJSON_GetObjectItem matches keys case-insensitively, which is exactly what the two
 * shapes need (SystemAlertId vs systemAlertId). Entities use Json.NET "$id"/"$ref"
 * back-references, possibly nested; they are resolved through an index of every "$id" in the
 * Entities tree, with a bound on hops so a reference cycle cannot loop.
 */
#include "alert.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "qn/mem.h"
#include "qn/resid.h"

#define MAX_FIELD_LEN  8192
#define MAX_ID_LEN     512
#define MAX_ENTITIES   256
#define MAX_REF_INDEX  1024
#define MAX_REF_HOPS   8
#define MAX_LIST_ITEMS 64

static const char *const class_names[] = {
    [QN_RECORD_ALERT] = "alert",
    [QN_RECORD_ASSESSMENT] = "assessment",
    [QN_RECORD_SUB_ASSESSMENT] = "sub_assessment",
    [QN_RECORD_SECURE_SCORE] = "secure_score",
    [QN_RECORD_COMPLIANCE] = "compliance",
    [QN_RECORD_UNKNOWN] = "unknown",
};

const char *qn_record_class_name(enum qn_record_class cls)
{
    return class_names[cls];
}

const char *qn_alert_status_name(enum qn_alert_status status)
{
    static const char *const names[] = {"Active", "InProgress", "Resolved", "Dismissed"};
    return names[status];
}

static const char *str_item(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItem(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static bool contains_ci(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = haystack; *p != '\0'; p++) {
        if (strncasecmp(p, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

enum qn_record_class qn_record_classify(const cJSON *record)
{
    if (!cJSON_IsObject(record)) {
        return QN_RECORD_UNKNOWN;
    }
    if (cJSON_GetObjectItem(record, "SystemAlertId") != NULL ||
        cJSON_GetObjectItem(record, "AlertType") != NULL) {
        return QN_RECORD_ALERT;
    }
    const cJSON *props = cJSON_GetObjectItem(record, "properties");
    if (cJSON_IsObject(props) && (cJSON_GetObjectItem(props, "systemAlertId") != NULL ||
                                  cJSON_GetObjectItem(props, "alertType") != NULL)) {
        return QN_RECORD_ALERT;
    }
    const char *dollar_type = str_item(record, "$type");
    const char *type = str_item(record, "type");
    if ((dollar_type != NULL && contains_ci(dollar_type, "subAssessment")) ||
        (type != NULL && contains_ci(type, "/subAssessments"))) {
        return QN_RECORD_SUB_ASSESSMENT;
    }
    if (type != NULL && contains_ci(type, "regulatoryCompliance")) {
        return QN_RECORD_COMPLIANCE;
    }
    if (type != NULL && contains_ci(type, "secureScore")) {
        return QN_RECORD_SECURE_SCORE;
    }
    if ((type != NULL && contains_ci(type, "Microsoft.Security/assessments")) ||
        cJSON_GetObjectItem(record, "assessmentEventDataEnrichment") != NULL) {
        return QN_RECORD_ASSESSMENT;
    }
    return QN_RECORD_UNKNOWN;
}

bool qn_alert_type_matches(const char *type, const char *pattern)
{
    size_t plen = strlen(pattern);
    if (plen > 0 && pattern[plen - 1] == '*') {
        return strncasecmp(type, pattern, plen - 1) == 0;
    }
    return strcasecmp(type, pattern) == 0;
}

bool qn_alert_type_is_resource_manager(const char *type)
{
    return qn_alert_type_matches(type, "ARM_*") || qn_alert_type_matches(type, "RM_*");
}

/* ---- decoding context ---------------------------------------------------------------------- */

struct ref_entry {
    const char *id;
    const cJSON *node;
};

struct decoder {
    const cJSON *body; /* the object holding the alert fields: the record, or its "properties" */
    struct ref_entry refs[MAX_REF_INDEX];
    size_t ref_count;
    struct qn_alert *alert;
    enum qn_reject_reason *reason;
    struct qn_error *err;
    int oom; /* an allocation failed: the decode fails with QN_ERR_NOMEM, never a partial alert */
};

/* qn_strdup that records a failure in the decoder. NULL in, NULL out (not a failure). */
static char *dup(struct decoder *dec, const char *s)
{
    char *copy = qn_strdup(s);
    if (s != NULL && copy == NULL) {
        dec->oom = 1;
    }
    return copy;
}

static char *dupn(struct decoder *dec, const char *s, size_t n)
{
    char *copy = qn_strndup(s, n);
    if (copy == NULL) {
        dec->oom = 1;
    }
    return copy;
}

static qn_err_t fail(struct decoder *dec, enum qn_reject_reason reason, const char *fmt, ...)
    QN_PRINTF(3, 4);

static qn_err_t fail(struct decoder *dec, enum qn_reject_reason reason, const char *fmt, ...)
{
    *dec->reason = reason;
    if (dec->err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(dec->err->msg, sizeof(dec->err->msg), fmt, ap);
        va_end(ap);
        dec->err->code = QN_ERR_PARSE;
    }
    return QN_ERR_PARSE;
}

static bool has_control_chars(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return true;
        }
    }
    return false;
}

/*
 * Copies the optional string field @p key of @p obj into *@p out. Absent or null is fine; any
 * other non-string, or an over-long value, rejects the alert.
 */
static qn_err_t take_str(struct decoder *dec, const cJSON *obj, const char *key, char **out)
{
    const cJSON *item = cJSON_GetObjectItem(obj, key);
    if (item == NULL || cJSON_IsNull(item)) {
        return QN_OK;
    }
    if (!cJSON_IsString(item)) {
        return fail(dec, QN_REJECT_INVALID_ALERT, "field '%s' must be a string", key);
    }
    if (strlen(item->valuestring) > MAX_FIELD_LEN) {
        return fail(dec, QN_REJECT_INVALID_ALERT, "field '%s' is longer than the limit", key);
    }
    qn_free(*out);
    *out = qn_strdup(item->valuestring);
    if (*out == NULL) {
        dec->oom = 1;
        return QN_ERR_NOMEM;
    }
    return QN_OK;
}

bool qn_alert_id_is_valid(const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > MAX_ID_LEN || strcmp(id, ".") == 0 || strcmp(id, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c <= 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '?' || c == '#' || c == '%') {
            return false;
        }
    }
    return true;
}

static bool alert_type_ok(const char *type)
{
    size_t len = strlen(type);
    if (len == 0 || len > 128) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)type[i];
        if (!(isalnum(c) || c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

static void index_refs(struct decoder *dec, const cJSON *node, int depth)
{
    if (depth > 64 || node == NULL) {
        return;
    }
    if (cJSON_IsObject(node)) {
        const char *id = str_item(node, "$id");
        if (id != NULL && dec->ref_count < MAX_REF_INDEX &&
            cJSON_GetObjectItem(node, "$ref") == NULL) {
            dec->refs[dec->ref_count].id = id;
            dec->refs[dec->ref_count].node = node;
            dec->ref_count++;
        }
    }
    if (cJSON_IsObject(node) || cJSON_IsArray(node)) {
        for (const cJSON *child = node->child; child != NULL; child = child->next) {
            index_refs(dec, child, depth + 1);
        }
    }
}

/* Follows {"$ref":"n"} to the object with "$id":"n". @returns NULL if it names nothing. */
static const cJSON *resolve(struct decoder *dec, const cJSON *node)
{
    for (int hop = 0; hop < MAX_REF_HOPS; hop++) {
        if (!cJSON_IsObject(node)) {
            return node;
        }
        const cJSON *ref = cJSON_GetObjectItem(node, "$ref");
        if (ref == NULL) {
            return node;
        }
        const cJSON *target = NULL;
        if (cJSON_IsString(ref)) {
            for (size_t i = 0; i < dec->ref_count; i++) {
                if (strcmp(dec->refs[i].id, ref->valuestring) == 0) {
                    target = dec->refs[i].node;
                    break;
                }
            }
        }
        if (target == NULL) {
            dec->alert->unresolved_refs++;
            return NULL;
        }
        node = target;
    }
    dec->alert->unresolved_refs++;
    return NULL;
}

static qn_err_t add_account(struct decoder *dec,
                            const char *aad_user_id,
                            const char *upn,
                            const char *name,
                            const char *tenant_id,
                            const char *source)
{
    if (dec->oom) {
        return QN_ERR_NOMEM;
    }
    struct qn_alert *a = dec->alert;
    for (size_t i = 0; i < a->account_count; i++) {
        struct qn_account *acc = &a->accounts[i];
        if ((aad_user_id != NULL && acc->aad_user_id != NULL &&
             strcasecmp(aad_user_id, acc->aad_user_id) == 0) ||
            (upn != NULL && acc->upn != NULL && strcasecmp(upn, acc->upn) == 0)) {
            if (acc->aad_user_id == NULL && aad_user_id != NULL) {
                acc->aad_user_id = dup(dec, aad_user_id);
            }
            if (acc->upn == NULL && upn != NULL) {
                acc->upn = dup(dec, upn);
            }
            return QN_OK;
        }
    }
    if (a->account_count == MAX_LIST_ITEMS) {
        return QN_OK;
    }
    struct qn_account *accounts =
        qn_realloc(a->accounts, (a->account_count + 1) * sizeof(*accounts));
    if (accounts == NULL) {
        dec->oom = 1;
        return QN_ERR_NOMEM;
    }
    a->accounts = accounts;
    struct qn_account *acc = &accounts[a->account_count++];
    acc->aad_user_id = dup(dec, aad_user_id);
    acc->upn = dup(dec, upn);
    acc->name = dup(dec, name);
    acc->tenant_id = dup(dec, tenant_id);
    acc->source = source;
    return QN_OK;
}

static qn_err_t add_vm(struct decoder *dec,
                       const char *resource_id,
                       const struct qn_resid *rid,
                       const char *os_family)
{
    if (dec->oom) {
        return QN_ERR_NOMEM;
    }
    struct qn_alert *a = dec->alert;
    for (size_t i = 0; i < a->vm_count; i++) {
        if (strcasecmp(a->vms[i].resource_id, resource_id) == 0) {
            if (a->vms[i].os_family == NULL && os_family != NULL) {
                a->vms[i].os_family = dup(dec, os_family);
            }
            return QN_OK;
        }
    }
    if (a->vm_count == MAX_LIST_ITEMS) {
        return QN_OK;
    }
    struct qn_vm *vms = qn_realloc(a->vms, (a->vm_count + 1) * sizeof(*vms));
    if (vms == NULL) {
        dec->oom = 1;
        return QN_ERR_NOMEM;
    }
    a->vms = vms;
    struct qn_vm *vm = &vms[a->vm_count++];
    vm->resource_id = dup(dec, resource_id);
    vm->name = dup(dec, rid->name);
    vm->os_family = dup(dec, os_family);
    return QN_OK;
}

static qn_err_t add_ip(struct decoder *dec, const char *ip)
{
    if (dec->oom) {
        return QN_ERR_NOMEM;
    }
    struct qn_alert *a = dec->alert;
    if (strlen(ip) > 64 || has_control_chars(ip) || a->ip_count == MAX_LIST_ITEMS) {
        return QN_OK;
    }
    for (size_t i = 0; i < a->ip_count; i++) {
        if (strcmp(a->ips[i], ip) == 0) {
            return QN_OK;
        }
    }
    char **ips = qn_realloc(a->ips, (a->ip_count + 1) * sizeof(*ips));
    if (ips == NULL) {
        dec->oom = 1;
        return QN_ERR_NOMEM;
    }
    a->ips = ips;
    ips[a->ip_count] = dup(dec, ip);
    a->ip_count++;
    return QN_OK;
}

/* Parses a resource id that came from the alert; a bad one rejects the whole record. */
static qn_err_t
check_resid(struct decoder *dec, const char *where, const char *id, struct qn_resid *rid)
{
    struct qn_error perr = {0};
    if (qn_resid_parse(id, 0, rid, &perr) != QN_OK) {
        return fail(dec, QN_REJECT_INVALID_RESOURCE_ID, "%s: %s", where, perr.msg);
    }
    return QN_OK;
}

static const char *entity_str(struct decoder *dec, const cJSON *entity, const char *key)
{
    const cJSON *item = resolve(dec, cJSON_GetObjectItem(entity, key));
    if (!cJSON_IsString(item) || strlen(item->valuestring) > MAX_FIELD_LEN ||
        has_control_chars(item->valuestring)) {
        return NULL;
    }
    return item->valuestring;
}

static qn_err_t decode_account(struct decoder *dec, const cJSON *e)
{
    const char *aad = entity_str(dec, e, "AadUserId");
    const char *name = entity_str(dec, e, "Name");
    const char *suffix = entity_str(dec, e, "UPNSuffix");
    const char *tenant = entity_str(dec, e, "AadTenantId");
    const char *upn_field = entity_str(dec, e, "UserPrincipalName");
    char upn[600];
    const char *upn_ptr = upn_field;
    if (upn_ptr == NULL && name != NULL && suffix != NULL && strlen(name) + strlen(suffix) < 590) {
        snprintf(upn, sizeof(upn), "%.300s@%.280s", name, suffix);
        upn_ptr = upn;
    }
    if (aad != NULL && !qn_is_guid(aad)) {
        return fail(dec, QN_REJECT_INVALID_ALERT, "account entity AadUserId '%.64s' is not a GUID",
                    aad);
    }
    if (aad == NULL && upn_ptr == NULL) {
        return QN_OK; /* a local account (e.g. on a VM) names no directory principal */
    }
    if (tenant != NULL && dec->alert->tenant_id == NULL && qn_is_guid(tenant)) {
        dec->alert->tenant_id = dup(dec, tenant);
    }
    return add_account(dec, aad, upn_ptr, name, tenant, "entity");
}

static qn_err_t decode_resource_entity(struct decoder *dec,
                                       const char *where,
                                       const char *id,
                                       const char *os_family)
{
    struct qn_resid rid;
    qn_err_t rc = check_resid(dec, where, id, &rid);
    if (rc != QN_OK) {
        return rc;
    }
    if (qn_resid_is_vm(&rid)) {
        return add_vm(dec, id, &rid, os_family);
    }
    return QN_OK;
}

static qn_err_t decode_entity(struct decoder *dec, const cJSON *e, const char *where)
{
    const char *type = entity_str(dec, e, "Type");
    if (type == NULL) {
        return QN_OK;
    }
    if (strcasecmp(type, "account") == 0) {
        return decode_account(dec, e);
    }
    if (strcasecmp(type, "host") == 0) {
        const char *azure_id = entity_str(dec, e, "AzureID");
        return azure_id == NULL
                   ? QN_OK
                   : decode_resource_entity(dec, where, azure_id, entity_str(dec, e, "OSFamily"));
    }
    if (strcasecmp(type, "azure-resource") == 0) {
        const char *res = entity_str(dec, e, "ResourceId");
        return res == NULL ? QN_OK : decode_resource_entity(dec, where, res, NULL);
    }
    if (strcasecmp(type, "ip") == 0) {
        const char *addr = entity_str(dec, e, "Address");
        return addr == NULL ? QN_OK : add_ip(dec, addr);
    }
    return QN_OK;
}

static qn_err_t decode_entities(struct decoder *dec)
{
    const cJSON *entities = cJSON_GetObjectItem(dec->body, "Entities");
    if (entities == NULL || cJSON_IsNull(entities)) {
        return QN_OK;
    }
    if (!cJSON_IsArray(entities)) {
        return fail(dec, QN_REJECT_INVALID_ALERT, "field 'Entities' must be an array");
    }
    if (cJSON_GetArraySize(entities) > MAX_ENTITIES) {
        return fail(dec, QN_REJECT_INVALID_ALERT, "field 'Entities' has too many entries");
    }
    index_refs(dec, entities, 0);
    /* Entities to decode: each top-level entity (after resolving a $ref) and every object that
     * carries an "$id" anywhere in the tree (e.g. an account nested in a host), each once. */
    const cJSON *seen[MAX_ENTITIES + MAX_REF_INDEX];
    size_t seen_count = 0;
    int index = 0;
    const cJSON *raw = NULL;
    cJSON_ArrayForEach(raw, entities)
    {
        const cJSON *e = resolve(dec, raw);
        if (cJSON_IsObject(e)) {
            seen[seen_count++] = e;
        }
    }
    for (size_t i = 0; i < dec->ref_count; i++) {
        seen[seen_count++] = dec->refs[i].node;
    }
    for (size_t i = 0; i < seen_count; i++) {
        const cJSON *e = seen[i];
        int duplicate = 0;
        for (size_t j = 0; j < i && !duplicate; j++) {
            duplicate = seen[j] == e;
        }
        if (duplicate) {
            continue;
        }
        char where[64];
        snprintf(where, sizeof(where), "Entities[%d]", index++);
        qn_err_t rc = decode_entity(dec, e, where);
        if (rc != QN_OK) {
            return rc;
        }
    }
    return QN_OK;
}

/* The resource id: AzureResourceId, or the first AzureResource of ResourceIdentifiers. */
static qn_err_t decode_resource(struct decoder *dec)
{
    struct qn_alert *a = dec->alert;
    qn_err_t rc = take_str(dec, dec->body, "AzureResourceId", &a->resource_id);
    const cJSON *idents = cJSON_GetObjectItem(dec->body, "ResourceIdentifiers");
    const cJSON *ident = NULL;
    if (rc != QN_OK) {
        return rc;
    }
    if (idents != NULL && !cJSON_IsNull(idents) && !cJSON_IsArray(idents)) {
        return fail(dec, QN_REJECT_INVALID_ALERT, "field 'ResourceIdentifiers' must be an array");
    }
    int index = 0;
    cJSON_ArrayForEach(ident, idents)
    {
        const char *type = str_item(ident, "Type");
        const char *res = str_item(ident, "AzureResourceId");
        const char *tenant = str_item(ident, "AzureResourceTenantId");
        if (tenant == NULL) {
            tenant = str_item(ident, "AadTenantId");
        }
        if (tenant != NULL && a->tenant_id == NULL && qn_is_guid(tenant)) {
            a->tenant_id = dup(dec, tenant);
        }
        if (type != NULL && strcasecmp(type, "AzureResource") == 0 && res != NULL) {
            char where[64];
            struct qn_resid rid;
            snprintf(where, sizeof(where), "ResourceIdentifiers[%d].AzureResourceId", index);
            rc = check_resid(dec, where, res, &rid);
            if (rc != QN_OK) {
                return rc;
            }
            if (a->resource_id == NULL) {
                a->resource_id = dup(dec, res);
            }
        }
        index++;
    }
    if (a->resource_id == NULL) {
        return fail(dec, QN_REJECT_INVALID_ALERT,
                    "alert names no resource (AzureResourceId or ResourceIdentifiers)");
    }
    struct qn_resid rid;
    rc = check_resid(dec, "AzureResourceId", a->resource_id, &rid);
    if (rc != QN_OK) {
        return rc;
    }
    a->subscription_id = dup(dec, rid.subscription);
    if (rid.resource_group[0] != '\0') {
        a->resource_group = dup(dec, rid.resource_group);
    }
    if (qn_resid_is_vm(&rid)) {
        rc = add_vm(dec, a->resource_id, &rid, NULL);
    }
    return rc;
}

/* Extracts "/location/{x}" from the portal link; only a plain region name is accepted. */
static void decode_location(struct decoder *dec)
{
    struct qn_alert *a = dec->alert;
    const char *uri = a->alert_uri;
    const char *at = uri != NULL ? strstr(uri, "/location/") : NULL;
    if (at == NULL) {
        return;
    }
    at += strlen("/location/");
    size_t n = 0;
    while (n < 40 && isalnum((unsigned char)at[n])) {
        n++;
    }
    if (n > 0 && (at[n] == '\0' || at[n] == '/' || at[n] == '?')) {
        a->location = dupn(dec, at, n);
    }
}

static qn_err_t decode_extended(struct decoder *dec)
{
    struct qn_alert *a = dec->alert;
    const cJSON *ext = cJSON_GetObjectItem(dec->body, "ExtendedProperties");
    if (ext == NULL || cJSON_IsNull(ext)) {
        return QN_OK;
    }
    if (!cJSON_IsObject(ext)) {
        return fail(dec, QN_REJECT_INVALID_ALERT, "field 'ExtendedProperties' must be an object");
    }
    const char *ip = str_item(ext, "Client IP address");
    if (ip != NULL && strlen(ip) <= 64 && !has_control_chars(ip)) {
        a->client_ip = dup(dec, ip);
        qn_err_t rc = add_ip(dec, ip);
        if (rc != QN_OK) {
            return rc;
        }
    }
    const char *principal = str_item(ext, "Client principal name");
    if (principal != NULL && strlen(principal) <= 512 && !has_control_chars(principal) &&
        strchr(principal, ' ') == NULL) {
        if (qn_is_guid(principal)) {
            return add_account(dec, principal, NULL, NULL, NULL, "extended_properties");
        }
        if (strchr(principal, '@') != NULL) {
            return add_account(dec, NULL, principal, NULL, NULL, "extended_properties");
        }
    }
    return QN_OK;
}

static enum qn_alert_status parse_status(const char *text)
{
    if (text == NULL) {
        return QN_ALERT_STATUS_ACTIVE;
    }
    if (strcasecmp(text, "Dismissed") == 0) {
        return QN_ALERT_STATUS_DISMISSED;
    }
    if (strcasecmp(text, "Resolved") == 0) {
        return QN_ALERT_STATUS_RESOLVED;
    }
    if (strcasecmp(text, "InProgress") == 0) {
        return QN_ALERT_STATUS_IN_PROGRESS;
    }
    return QN_ALERT_STATUS_ACTIVE;
}

static qn_err_t decode_scalars(struct decoder *dec)
{
    struct qn_alert *a = dec->alert;
    const cJSON *b = dec->body;

    const struct {
        const char *key;
        char **slot;
    } fields[] = {
        {"AlertDisplayName", &a->display_name},
        {"Severity", &a->severity},
        {"Status", &a->status_text},
        {"StartTimeUtc", &a->start_time},
        {"EndTimeUtc", &a->end_time},
        {a->shape == QN_ALERT_SHAPE_FLAT ? "TimeGenerated" : "timeGeneratedUtc",
         &a->time_generated},
        {"CompromisedEntity", &a->compromised_entity},
        {"Description", &a->description},
        {"AlertUri", &a->alert_uri},
    };

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        qn_err_t rc = take_str(dec, b, fields[i].key, fields[i].slot);
        if (rc != QN_OK) {
            return rc;
        }
    }
    a->status = parse_status(a->status_text);
    const cJSON *snap = cJSON_GetObjectItem(b, "IsSnapshot");
    if (snap == NULL && a->shape == QN_ALERT_SHAPE_REST) {
        snap = cJSON_GetObjectItem(dec->body, "isSnapshot");
    }
    a->is_snapshot =
        cJSON_IsTrue(snap) || (cJSON_IsString(snap) && strcasecmp(snap->valuestring, "true") == 0);
    return QN_OK;
}

static qn_err_t decode_identity(struct decoder *dec)
{
    struct qn_alert *a = dec->alert;
    const cJSON *id = cJSON_GetObjectItem(dec->body, "SystemAlertId");
    if (id == NULL || cJSON_IsNull(id) || (cJSON_IsString(id) && id->valuestring[0] == '\0')) {
        return fail(dec, QN_REJECT_NO_ALERT_ID, "record has no SystemAlertId");
    }
    if (!cJSON_IsString(id) || !qn_alert_id_is_valid(id->valuestring)) {
        return fail(dec, QN_REJECT_INVALID_ALERT,
                    "SystemAlertId must be 1-512 bytes without '/', '\\\\', '?', '#', '%%', "
                    "whitespace or control characters");
    }
    const cJSON *type = cJSON_GetObjectItem(dec->body, "AlertType");
    if (!cJSON_IsString(type) || !alert_type_ok(type->valuestring)) {
        return fail(dec, QN_REJECT_INVALID_ALERT,
                    "AlertType must be a string of letters, digits, '_', '.' or '-'");
    }
    a->id = dup(dec, id->valuestring);
    a->type = dup(dec, type->valuestring);
    if (a->id == NULL || a->type == NULL) {
        dec->oom = 1;
        return QN_ERR_NOMEM;
    }
    return QN_OK;
}

qn_err_t qn_alert_decode(const cJSON *record,
                         struct qn_alert *out,
                         enum qn_reject_reason *reason,
                         struct qn_error *err)
{
    struct decoder *dec = qn_calloc(1, sizeof(*dec));
    memset(out, 0, sizeof(*out));
    *reason = QN_REJECT_NONE;
    if (dec == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory decoding the alert");
    }
    dec->alert = out;
    dec->reason = reason;
    dec->err = err;
    dec->body = record;
    out->shape = QN_ALERT_SHAPE_FLAT;
    const cJSON *props = cJSON_GetObjectItem(record, "properties");
    if (cJSON_GetObjectItem(record, "SystemAlertId") == NULL &&
        cJSON_GetObjectItem(record, "AlertType") == NULL && cJSON_IsObject(props)) {
        dec->body = props;
        out->shape = QN_ALERT_SHAPE_REST;
    }
    qn_err_t rc = decode_identity(dec);
    if (rc == QN_OK) {
        rc = decode_scalars(dec);
    }
    if (rc == QN_OK) {
        rc = decode_resource(dec);
    }
    if (rc == QN_OK) {
        rc = decode_entities(dec);
    }
    if (rc == QN_OK) {
        rc = decode_extended(dec);
    }
    if (rc == QN_OK) {
        decode_location(dec);
        if (out->location == NULL && out->shape == QN_ALERT_SHAPE_REST) {
            /* the REST id: /subscriptions/../providers/Microsoft.Security/locations/{loc}/alerts/..
             */
            const char *rest_id = str_item(record, "id");
            struct qn_resid rid;
            if (rest_id != NULL && qn_resid_parse(rest_id, 0, &rid, NULL) == QN_OK) {
                const char *loc = strstr(rest_id, "/locations/");
                size_t n = 0;
                while (loc != NULL && n < 40 && isalnum((unsigned char)loc[11 + n])) {
                    n++;
                }
                if (loc != NULL && n > 0) {
                    out->location = dupn(dec, loc + 11, n);
                }
            }
        }
    }
    int oom = dec->oom || rc == QN_ERR_NOMEM;
    qn_free(dec);
    if (oom) {
        /* Not the record's fault: the caller must not dead-letter it. */
        qn_alert_fini(out);
        *reason = QN_REJECT_NONE;
        return qn_error_set(err, QN_ERR_NOMEM, "out of memory decoding the alert");
    }
    if (rc != QN_OK) {
        qn_alert_fini(out);
        if (*reason == QN_REJECT_NONE) {
            *reason = QN_REJECT_INVALID_ALERT;
        }
        return QN_ERR_PARSE;
    }
    return QN_OK;
}

void qn_alert_fini(struct qn_alert *a)
{
    char **strings[] = {&a->id,
                        &a->type,
                        &a->display_name,
                        &a->severity,
                        &a->status_text,
                        &a->start_time,
                        &a->end_time,
                        &a->time_generated,
                        &a->resource_id,
                        &a->subscription_id,
                        &a->resource_group,
                        &a->location,
                        &a->tenant_id,
                        &a->compromised_entity,
                        &a->description,
                        &a->alert_uri,
                        &a->client_ip};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        qn_free(*strings[i]);
    }
    for (size_t i = 0; i < a->account_count; i++) {
        qn_free(a->accounts[i].aad_user_id);
        qn_free(a->accounts[i].upn);
        qn_free(a->accounts[i].name);
        qn_free(a->accounts[i].tenant_id);
    }
    qn_free(a->accounts);
    for (size_t i = 0; i < a->vm_count; i++) {
        qn_free(a->vms[i].resource_id);
        qn_free(a->vms[i].name);
        qn_free(a->vms[i].os_family);
    }
    qn_free(a->vms);
    for (size_t i = 0; i < a->ip_count; i++) {
        qn_free(a->ips[i]);
    }
    qn_free(a->ips);
    memset(a, 0, sizeof(*a));
}
