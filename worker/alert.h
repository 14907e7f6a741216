/*
 * alert.h - the alert model: classifies one exported record (alert, or one of the non-alert
 * record kinds continuous export also sends) and decodes an alert of either shape (flat PascalCase
 * export, or the Alerts REST API resource) into a validated, owned struct qn_alert.
 *
 * Decoding is strict where a value will later reach a URL: every resource id goes through
 * qn_resid_parse, and ids and types are checked against narrow character sets.
 */
#ifndef QN_ALERT_H
#define QN_ALERT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "envelope.h"
#include "qn/err.h"

enum qn_record_class {
    QN_RECORD_ALERT,
    QN_RECORD_ASSESSMENT,
    QN_RECORD_SUB_ASSESSMENT,
    QN_RECORD_SECURE_SCORE,
    QN_RECORD_COMPLIANCE,
    QN_RECORD_UNKNOWN,
};

/* @returns the class of a parsed record. Non-objects are QN_RECORD_UNKNOWN. */
enum qn_record_class qn_record_classify(const cJSON *record);

/* @returns the metric/skip reason name of a class, e.g. "sub_assessment". */
const char *qn_record_class_name(enum qn_record_class cls);

enum qn_alert_shape {
    QN_ALERT_SHAPE_FLAT,
    QN_ALERT_SHAPE_REST,
};

enum qn_alert_status {
    QN_ALERT_STATUS_ACTIVE, /* "New" in exports, "Active" in the API */
    QN_ALERT_STATUS_IN_PROGRESS,
    QN_ALERT_STATUS_RESOLVED,
    QN_ALERT_STATUS_DISMISSED,
};

struct qn_account {
    char *aad_user_id;  /* object id, may be NULL */
    char *upn;          /* user principal name, may be NULL */
    char *name;         /* display or account name, may be NULL */
    char *tenant_id;    /* may be NULL */
    const char *source; /* static: "entity" or "extended_properties" */
};

struct qn_vm {
    char *resource_id; /* parsed and valid */
    char *name;
    char *os_family; /* may be NULL */
};

/* A decoded alert. Every string is owned and NUL-terminated; optional ones may be NULL. */
struct qn_alert {
    enum qn_alert_shape shape;
    char *id;   /* SystemAlertId */
    char *type; /* AlertType */
    char *display_name;
    char *severity;
    char *status_text;
    enum qn_alert_status status;
    char *start_time;
    char *end_time;
    char *time_generated;
    char *resource_id;     /* AzureResourceId, parsed and valid */
    char *subscription_id; /* lower-case GUID, always set */
    char *resource_group;  /* may be NULL */
    char *location;        /* ascLocation from AlertUri or the REST id, may be NULL */
    char *tenant_id;
    char *compromised_entity;
    char *description;
    char *alert_uri;
    char *client_ip;
    bool is_snapshot;
    struct qn_account *accounts;
    size_t account_count;
    struct qn_vm *vms;
    size_t vm_count;
    char **ips;
    size_t ip_count;
    int unresolved_refs; /* $ref values that named no $id (counted, not fatal) */
};

/*
 * @brief Decodes @p record (class QN_RECORD_ALERT) into @p out.
 * @returns QN_OK, or QN_ERR_PARSE with *@p reason set (no_alert_id, invalid_alert,
 *          invalid_resource_id) and @p err explaining which field is wrong. On failure @p out is
 *          left zeroed.
 */
QN_NODISCARD qn_err_t qn_alert_decode(const cJSON *record,
                                      struct qn_alert *out,
                                      enum qn_reject_reason *reason,
                                      struct qn_error *err);

/* Releases everything @p alert owns and zeroes it. */
void qn_alert_fini(struct qn_alert *alert);

/* @returns true for Defender for Resource Manager types (ARM_*, RM_*, case-insensitive). */
bool qn_alert_type_is_resource_manager(const char *type);

/* @returns true if @p type matches @p pattern: exact or with a trailing '*' (case-insensitive). */
bool qn_alert_type_matches(const char *type, const char *pattern);

const char *qn_alert_status_name(enum qn_alert_status status);

/*
 * @returns true if @p id is acceptable as an alert id: 1-512 bytes, no '/', '\\', '?', '#', '%',
 * whitespace or control characters, and not "." or "..". Alert ids end up in URL paths.
 */
bool qn_alert_id_is_valid(const char *id);

#endif
