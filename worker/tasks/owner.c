/*
 * owner.c - the contact family: resolve_owner (who to ask whether the activity was expected) and
 * dismiss_alert (the owner said it was).
 *
 * resolve_owner is read-only and never fails for want of an owner. It walks three steps and stops
 * at the first that yields a mail address, recording what every step it ran found:
 *   1. owner tags (contact.owner_tags) on the resource, its resource group and the subscription
 *      (Tags_GetAtScope, read in parallel); a value that looks like a mail address or UPN is one;
 *   2. principals holding Owner at or above the resource (RoleAssignments_ListForScope with
 *      $filter=atScope(), paged), users resolved to mail through Graph (GET /users/{id}); groups
 *      are recorded without an address, service principals skipped. A compromised principal of
 *      the alert, or an Owner assigned after the alert started, is never asked;
 *   3. the subscription's Defender for Cloud security contacts (SecurityContacts_List).
 * The candidates go to task->detail "owners" (outcome.schema.json $defs ownerCandidate); the
 * engine adds contact.security_contact when none has an address.
 *
 * dismiss_alert: check (GET the alert at subscription level, then resource-group level, then by
 * listing the subscription's alerts and matching systemAlertId) -> act (POST .../dismiss, 204)
 * -> verify (GET: status Dismissed). Already dismissed is success without a write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "evidence.h"
#include "outcome.h"
#include "qn/mem.h"
#include "qn/resid.h"
#include "tasks.h"

#define TAGS_API       "2021-04-01"
#define ROLES_API      "2022-04-01"
#define CONTACTS_API   "2023-12-01-preview"
#define ALERTS_API     "2022-01-01"
#define OWNER_ROLE     "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
#define MAX_OWNERS     16 /* Owner users looked up in Graph */
#define MAX_TAG_SCOPES 3

/* ---- shared helpers ------------------------------------------------------------------------ */

static cJSON *parse_body(const struct qn_http_result *res)
{
    if (res == NULL || res->body == NULL || res->body->len == 0) {
        return NULL;
    }
    return cJSON_ParseWithLength(qn_buf_cstr(res->body), res->body->len);
}

static const char *jstr(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* The nextLink (ARM) or @odata.nextLink (Graph) of a page, or NULL at the end. */
static const char *next_link(const cJSON *page)
{
    const char *next = jstr(page, "nextLink");
    if (next == NULL) {
        next = jstr(page, "@odata.nextLink");
    }
    return next != NULL && next[0] != '\0' ? next : NULL;
}

/* Appends the ARM path of @p id + @p suffix + api-version to a fresh @p out. */
static qn_err_t arm_target(struct qn_buf *out,
                           const char *id,
                           const char *suffix,
                           const char *api_version,
                           struct qn_error *err)
{
    qn_buf_init(out, QN_HTTP_MAX_URL);
    qn_err_t rc = qn_azure_arm_path(out, id, 0, suffix, api_version, err);
    if (rc != QN_OK) {
        qn_buf_fini(out);
    }
    return rc;
}

static const char *err_text(const struct qn_error *err)
{
    return err != NULL && err->msg[0] != '\0' ? err->msg : "no usable response";
}

/*
 * @returns true if @p s (@p n bytes) looks like a deliverable mail address or UPN: one '@', a
 * non-empty local part, a dotted domain, printable ASCII without blanks or address punctuation,
 * and not a guest UPN (#EXT#).
 */
static bool looks_like_address(const char *s, size_t n)
{
    if (n < 3 || n > 254) {
        return false;
    }
    size_t at = n;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("<>()[],;:\"\\", c) != NULL) {
            return false;
        }
        if (c == '@') {
            if (at != n) {
                return false;
            }
            at = i;
        }
    }
    if (at == n || at == 0 || at + 1 >= n) {
        return false;
    }
    const char *domain = s + at + 1;
    size_t dlen = n - at - 1;
    const char *dot = memchr(domain, '.', dlen);
    if (dot == NULL || domain[0] == '.' || domain[dlen - 1] == '.') {
        return false;
    }
    for (size_t i = 0; i + 5 <= n; i++) {
        if (strncasecmp(s + i, "#EXT#", 5) == 0) {
            return false;
        }
    }
    return true;
}

/* ---- resolve_owner ------------------------------------------------------------------------- */

struct owner_run;

/* One scope whose tags are read in step 1. */
struct tag_slot {
    struct owner_run *run;
    char *scope;
    cJSON *tags; /* the tags object read, or NULL */
    bool failed;
};

/* One Owner principal from step 2. */
struct role_owner {
    struct owner_run *run;
    char *principal;
    char *scope;
    bool group;
    char *address; /* from Graph */
};

struct owner_run {
    struct qn_task *task;
    int pending;
    cJSON *owners; /* the candidates, in order of preference */
    struct tag_slot slots[MAX_TAG_SCOPES];
    int slot_count;
    /* step 2 */
    char *role_scope;
    int role_pages;
    bool role_fallback; /* already retried at subscription scope */
    struct role_owner owners_found[MAX_OWNERS];
    int owner_count;
    int skipped_compromised;
    int skipped_recent;
    int skipped_apps;
    int skipped_over_cap;
    /* step 3 */
    int contact_pages;
};

static void owner_free(struct owner_run *run)
{
    for (int i = 0; i < run->slot_count; i++) {
        qn_free(run->slots[i].scope);
        cJSON_Delete(run->slots[i].tags);
    }
    for (int i = 0; i < run->owner_count; i++) {
        qn_free(run->owners_found[i].principal);
        qn_free(run->owners_found[i].scope);
        qn_free(run->owners_found[i].address);
    }
    qn_free(run->role_scope);
    cJSON_Delete(run->owners);
    qn_free(run);
}

static int addressed(const cJSON *owners)
{
    int n = 0;
    const cJSON *o = NULL;
    cJSON_ArrayForEach(o, owners)
    {
        n += cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "address"));
    }
    return n;
}

static void owner_finish(struct owner_run *run, const char *step)
{
    struct qn_task *task = run->task;
    int with_address = addressed(run->owners);
    int total = cJSON_GetArraySize(run->owners);
    char msg[256];
    if (with_address > 0) {
        snprintf(msg, sizeof(msg), "owner resolved from %s: %d candidate(s) with an address", step,
                 with_address);
    } else {
        snprintf(msg, sizeof(msg),
                 "no owner with a mail address found (%d candidate(s) without one); the configured "
                 "security contact applies",
                 total);
    }
    qn_task_add_detail(task, "owners", run->owners);
    run->owners = NULL;
    task->priv = NULL;
    owner_free(run);
    qn_task_finish(task, QN_TASK_SUCCEEDED, msg);
}

/* Finds or adds the candidate (source, scope, principal, address); NULL members are absent. */
static cJSON *candidate(struct owner_run *run,
                        const char *source,
                        const char *scope,
                        const char *principal,
                        const char *address)
{
    cJSON *o = NULL;
    cJSON_ArrayForEach(o, run->owners)
    {
        const char *s = jstr(o, "source");
        const char *sc = jstr(o, "scope");
        const char *p = jstr(o, "principal");
        const char *a = jstr(o, "address");
        if (strcmp(s, source) == 0 && (sc == NULL) == (scope == NULL) &&
            (sc == NULL || strcasecmp(sc, scope) == 0) && (p == NULL) == (principal == NULL) &&
            (p == NULL || strcasecmp(p, principal) == 0) && (a == NULL) == (address == NULL) &&
            (a == NULL || strcasecmp(a, address) == 0)) {
            return o;
        }
    }
    o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "source", source);
    qn_json_add_str(o, "scope", scope);
    qn_json_add_str(o, "principal", principal);
    qn_json_add_str(o, "address", address);
    cJSON_AddItemToArray(run->owners, o);
    return o;
}

static void candidate_add_tag(cJSON *cand, const char *tag)
{
    if (cand == NULL) {
        return;
    }
    cJSON *tags = cJSON_GetObjectItemCaseSensitive(cand, "tags");
    if (tags == NULL) {
        tags = cJSON_AddArrayToObject(cand, "tags");
    }
    const cJSON *t = NULL;
    cJSON_ArrayForEach(t, tags)
    {
        if (cJSON_IsString(t) && strcmp(t->valuestring, tag) == 0) {
            return;
        }
    }
    cJSON_AddItemToArray(tags, cJSON_CreateString(tag));
}

/* Records one owner tag: a candidate per address in its value, or one without an address. */
static void
owner_tag_candidates(struct owner_run *run, const struct tag_slot *slot, const cJSON *tag)
{
    const char *v = tag->valuestring;
    bool any = false;
    for (size_t i = 0; v[i] != '\0';) {
        size_t n = strcspn(v + i, ";, \t<>\"");
        if (n > 0 && looks_like_address(v + i, n)) {
            char addr[256];
            snprintf(addr, sizeof(addr), "%.*s", (int)n, v + i);
            candidate_add_tag(candidate(run, "tag", slot->scope, NULL, addr), tag->string);
            any = true;
        }
        i += n;
        i += v[i] != '\0';
    }
    if (!any) {
        /* an owner tag that names no address (a team name, say): recorded without one */
        candidate_add_tag(candidate(run, "tag", slot->scope, NULL, NULL), tag->string);
    }
}

/* Adds the candidates of one scope, in the order of contact.owner_tags (names match in any
 * case; a tag matched by two configured spellings counts once). */
static void tags_to_candidates(struct owner_run *run, const struct tag_slot *slot)
{
    const struct qn_config *cfg = qn_task_config(run->task);
    const cJSON *done[32];
    size_t done_count = 0;
    char note[512];
    size_t used = 0;
    note[0] = '\0';
    for (size_t k = 0; k < cfg->contact.owner_tags.count; k++) {
        const cJSON *tag = NULL;
        cJSON_ArrayForEach(tag, slot->tags)
        {
            bool seen = false;
            for (size_t d = 0; d < done_count; d++) {
                seen = seen || done[d] == tag;
            }
            if (seen || tag->string == NULL || !cJSON_IsString(tag) ||
                strcasecmp(tag->string, cfg->contact.owner_tags.items[k]) != 0 ||
                done_count == sizeof(done) / sizeof(done[0])) {
                continue;
            }
            done[done_count++] = tag;
            owner_tag_candidates(run, slot, tag);
            if (used < sizeof(note) - 1) {
                int w = snprintf(note + used, sizeof(note) - used, "%s%s=%.120s",
                                 used > 0 ? "; " : "", tag->string, tag->valuestring);
                used += w > 0 ? (size_t)w : 0;
            }
        }
    }
    qn_task_add_evidence(run->task, "arm", "Tags_GetAtScope", slot->scope,
                         note[0] != '\0' ? note : "no owner tag at this scope");
}

static void start_roles(struct owner_run *run);

static void tags_done(struct owner_run *run)
{
    for (int i = 0; i < run->slot_count; i++) {
        if (!run->slots[i].failed) {
            tags_to_candidates(run, &run->slots[i]);
        }
    }
    if (addressed(run->owners) > 0) {
        owner_finish(run, "owner tags");
        return;
    }
    start_roles(run);
}

static void
on_tags(struct qn_task *task, struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct tag_slot *slot = opaque;
    struct owner_run *run = slot->run;
    if (err != NULL) {
        slot->failed = true;
        qn_task_add_evidence(task, "arm", "Tags_GetAtScope", slot->scope, err_text(err));
    } else {
        cJSON *body = parse_body(res);
        const cJSON *tags = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(body, "properties"), "tags");
        if (cJSON_IsObject(tags)) {
            slot->tags = cJSON_Duplicate(tags, 1);
        }
        cJSON_Delete(body);
    }
    if (--run->pending == 0) {
        tags_done(run);
    }
}

static bool add_slot(struct owner_run *run, const char *scope)
{
    struct tag_slot *slot = &run->slots[run->slot_count];
    slot->run = run;
    slot->scope = qn_strdup(scope);
    if (slot->scope == NULL) {
        return false;
    }
    run->slot_count++;
    return true;
}

/* ---- step 2: Owner role assignments ---- */

static void start_contacts(struct owner_run *run);

static bool is_owner_role(const char *role_definition_id)
{
    size_t n = role_definition_id != NULL ? strlen(role_definition_id) : 0;
    size_t g = strlen(OWNER_ROLE);
    return n >= g && strcasecmp(role_definition_id + n - g, OWNER_ROLE) == 0;
}

/* ISO-8601 UTC timestamps of the same shape compare as text on their first 19 characters. */
static bool after(const char *when, const char *start)
{
    return when != NULL && start != NULL && strlen(when) >= 19 && strncmp(when, start, 19) > 0;
}

static void note_owner(struct owner_run *run, const cJSON *ra)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(ra, "properties");
    const char *principal = jstr(props, "principalId");
    const char *type = jstr(props, "principalType");
    const char *scope = jstr(props, "scope");
    if (!is_owner_role(jstr(props, "roleDefinitionId")) || principal == NULL || scope == NULL) {
        return;
    }
    const struct qn_alert *alert = qn_task_alert(run->task);
    if (qn_evidence_is_compromised(alert, principal)) {
        run->skipped_compromised++;
        return;
    }
    if (after(jstr(props, "createdOn"), alert->start_time)) {
        run->skipped_recent++; /* may be the attacker's own: never the one to ask */
        return;
    }
    bool group = type != NULL && strcasecmp(type, "Group") == 0;
    if (type != NULL && !group && strcasecmp(type, "User") != 0) {
        run->skipped_apps++; /* service principals and the like cannot answer */
        return;
    }
    for (int i = 0; i < run->owner_count; i++) {
        struct role_owner *o = &run->owners_found[i];
        if (strcasecmp(o->principal, principal) == 0) {
            if (strlen(scope) > strlen(o->scope)) { /* keep the most specific scope */
                char *s = qn_strdup(scope);
                if (s != NULL) {
                    qn_free(o->scope);
                    o->scope = s;
                }
            }
            return;
        }
    }
    if (run->owner_count == MAX_OWNERS) {
        run->skipped_over_cap++;
        return;
    }
    struct role_owner *o = &run->owners_found[run->owner_count];
    o->run = run;
    o->principal = qn_strdup(principal);
    o->scope = qn_strdup(scope);
    o->group = group;
    if (o->principal == NULL || o->scope == NULL) {
        qn_free(o->principal);
        qn_free(o->scope);
        memset(o, 0, sizeof(*o));
        return;
    }
    run->owner_count++;
}

static int by_scope_specificity(const void *a, const void *b)
{
    const struct role_owner *x = a;
    const struct role_owner *y = b;
    size_t lx = strlen(x->scope);
    size_t ly = strlen(y->scope);
    return lx > ly ? -1 : lx < ly ? 1 : strcasecmp(x->principal, y->principal);
}

static void roles_finished(struct owner_run *run)
{
    qsort(run->owners_found, (size_t)run->owner_count, sizeof(run->owners_found[0]),
          by_scope_specificity);
    for (int i = 0; i < run->owner_count; i++) {
        struct role_owner *o = &run->owners_found[i];
        cJSON *c = candidate(run, "role", o->scope, o->principal, o->address);
        if (c != NULL && cJSON_GetObjectItemCaseSensitive(c, "role") == NULL) {
            cJSON_AddStringToObject(c, "role", "Owner");
        }
    }
    if (addressed(run->owners) > 0) {
        owner_finish(run, "Owner role assignments");
        return;
    }
    start_contacts(run);
}

static void
on_user(struct qn_task *task, struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct role_owner *o = opaque;
    struct owner_run *run = o->run;
    if (err != NULL) {
        qn_task_add_evidence(task, "graph", "GET /v1.0/users/{id}", o->principal,
                             err->code == QN_ERR_NOT_FOUND ? "the Owner principal no longer exists"
                                                           : err_text(err));
    } else {
        cJSON *body = parse_body(res);
        const char *mail = jstr(body, "mail");
        const char *upn = jstr(body, "userPrincipalName");
        const char *addr = mail != NULL && looks_like_address(mail, strlen(mail)) ? mail
                           : upn != NULL && looks_like_address(upn, strlen(upn))  ? upn
                                                                                  : NULL;
        o->address = qn_strdup(addr);
        qn_task_add_evidence(task, "graph", mail != NULL ? "mail" : "userPrincipalName",
                             addr != NULL ? addr : o->principal,
                             addr != NULL ? "mail address of an Owner"
                                          : "the Owner has no usable mail address");
        cJSON_Delete(body);
    }
    if (--run->pending == 0) {
        roles_finished(run);
    }
}

static void lookup_users(struct owner_run *run)
{
    char note[192];
    snprintf(note, sizeof(note),
             "%d Owner principal(s) to ask; skipped: %d compromised, %d assigned after the alert "
             "started, %d service principal(s), %d over the cap",
             run->owner_count, run->skipped_compromised, run->skipped_recent, run->skipped_apps,
             run->skipped_over_cap);
    qn_task_add_evidence(run->task, "arm", "RoleAssignments $filter=atScope()", run->role_scope,
                         note);
    run->pending = 1; /* held while the lookups start, so none can finish the step early */
    for (int i = 0; i < run->owner_count; i++) {
        struct role_owner *o = &run->owners_found[i];
        if (o->group) {
            continue; /* recorded without an address */
        }
        struct qn_buf url;
        qn_buf_init(&url, QN_HTTP_MAX_URL);
        struct qn_error err = {0};
        qn_err_t rc = qn_azure_graph_path(&url, "/v1.0/users", o->principal, NULL, &err);
        if (rc == QN_OK) {
            rc = qn_http_query_append(&url, "$select", "mail,userPrincipalName");
        }
        if (rc == QN_OK) {
            rc = qn_task_call(run->task, QN_AZURE_GRAPH, "GET", qn_buf_cstr(&url), NULL, 0, on_user,
                              o);
        }
        qn_buf_fini(&url);
        if (rc == QN_OK) {
            run->pending++;
        } else {
            qn_task_add_evidence(run->task, "graph", "GET /v1.0/users/{id}", o->principal,
                                 "the lookup could not be started");
        }
    }
    if (--run->pending == 0) {
        roles_finished(run);
    }
}

static void roles_get(struct owner_run *run, const char *target);

static void
on_roles(struct qn_task *task, struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct owner_run *run = opaque;
    run->pending--;
    if (err != NULL) {
        struct qn_resid rid;
        if (err->code == QN_ERR_NOT_FOUND && !run->role_fallback && run->role_pages == 1 &&
            qn_resid_parse(run->role_scope, 0, &rid, NULL) == QN_OK &&
            !qn_resid_is_subscription(&rid)) {
            /* the resource (or its group) is gone: ask at the subscription instead */
            run->role_fallback = true;
            char sub[64];
            snprintf(sub, sizeof(sub), "/subscriptions/%s", qn_task_alert(task)->subscription_id);
            qn_free(run->role_scope);
            run->role_scope = qn_strdup(sub);
            run->role_pages = 0;
            if (run->role_scope != NULL) {
                roles_get(run, NULL);
                return;
            }
        }
        qn_task_add_evidence(task, "arm", "RoleAssignments $filter=atScope()", run->role_scope,
                             err_text(err));
        lookup_users(run);
        return;
    }
    cJSON *body = parse_body(res);
    const cJSON *ra = NULL;
    cJSON_ArrayForEach(ra, cJSON_GetObjectItemCaseSensitive(body, "value"))
    {
        note_owner(run, ra);
    }
    const char *next = next_link(body);
    if (next != NULL && run->role_pages < qn_task_config(task)->evidence.max_pages) {
        roles_get(run, next);
        cJSON_Delete(body);
        return;
    }
    if (next != NULL) {
        qn_task_add_evidence(task, "arm", "RoleAssignments $filter=atScope()", run->role_scope,
                             "more pages than evidence.max_pages: the rest was not read");
    }
    cJSON_Delete(body);
    lookup_users(run);
}

/* Reads one page: the first (target NULL) or a nextLink. */
static void roles_get(struct owner_run *run, const char *target)
{
    struct qn_buf url;
    struct qn_error err = {0};
    qn_err_t rc = QN_OK;
    if (target == NULL) {
        rc = arm_target(&url, run->role_scope, "/providers/Microsoft.Authorization/roleAssignments",
                        ROLES_API, &err);
        if (rc == QN_OK) {
            rc = qn_http_query_append(&url, "$filter", "atScope()");
        }
    } else {
        qn_buf_init(&url, QN_HTTP_MAX_URL);
        rc = qn_buf_append_str(&url, target);
    }
    if (rc == QN_OK) {
        rc =
            qn_task_call(run->task, QN_AZURE_ARM, "GET", qn_buf_cstr(&url), NULL, 0, on_roles, run);
    }
    qn_buf_fini(&url);
    if (rc != QN_OK) {
        qn_task_add_evidence(run->task, "arm", "RoleAssignments $filter=atScope()", run->role_scope,
                             "the read could not be started");
        lookup_users(run);
        return;
    }
    run->role_pages++;
    run->pending++;
}

static void start_roles(struct owner_run *run)
{
    /* atScope() at the most specific scope returns the assignments there and above it: the
     * resource, its group, the subscription and the management groups over it */
    run->role_scope = qn_strdup(run->slots[0].scope);
    if (run->role_scope == NULL) {
        start_contacts(run);
        return;
    }
    roles_get(run, NULL);
}

/* ---- step 3: security contacts ---- */

static void contacts_get(struct owner_run *run, const char *target);

static void contacts_from(struct owner_run *run, const cJSON *contact, const char *scope)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(contact, "properties");
    const char *emails = jstr(props, "emails");
    if (emails == NULL) {
        emails = jstr(props, "email"); /* the 2017 shape */
    }
    for (size_t i = 0; emails != NULL && emails[i] != '\0';) {
        size_t n = strcspn(emails + i, ";, \t");
        if (n > 0 && looks_like_address(emails + i, n)) {
            char addr[256];
            snprintf(addr, sizeof(addr), "%.*s", (int)n, emails + i);
            (void)candidate(run, "security_contact", scope, NULL, addr);
        }
        i += n;
        i += emails[i] != '\0';
    }
}

static void on_contacts(struct qn_task *task,
                        struct qn_http_result *res,
                        const struct qn_error *err,
                        void *opaque)
{
    struct owner_run *run = opaque;
    char scope[64];
    snprintf(scope, sizeof(scope), "/subscriptions/%s", qn_task_alert(task)->subscription_id);
    if (err != NULL) {
        qn_task_add_evidence(task, "arm", "SecurityContacts_List", scope,
                             err->code == QN_ERR_NOT_FOUND ? "no security contact is configured"
                                                           : err_text(err));
        owner_finish(run, "security contacts");
        return;
    }
    cJSON *body = parse_body(res);
    const cJSON *c = NULL;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(body, "value"))
    {
        contacts_from(run, c, scope);
    }
    const char *next = next_link(body);
    if (next != NULL && run->contact_pages < qn_task_config(task)->evidence.max_pages) {
        contacts_get(run, next);
        cJSON_Delete(body);
        return;
    }
    cJSON_Delete(body);
    int n = addressed(run->owners);
    qn_task_add_evidence(task, "arm", "SecurityContacts_List", scope,
                         n > 0 ? "security contact address(es) found"
                               : "no security contact address is configured");
    owner_finish(run, "security contacts");
}

static void contacts_get(struct owner_run *run, const char *target)
{
    struct qn_buf url;
    struct qn_error err = {0};
    qn_err_t rc;
    if (target == NULL) {
        char sub[64];
        snprintf(sub, sizeof(sub), "/subscriptions/%s", qn_task_alert(run->task)->subscription_id);
        rc = arm_target(&url, sub, "/providers/Microsoft.Security/securityContacts", CONTACTS_API,
                        &err);
    } else {
        qn_buf_init(&url, QN_HTTP_MAX_URL);
        rc = qn_buf_append_str(&url, target);
    }
    if (rc == QN_OK) {
        rc = qn_task_call(run->task, QN_AZURE_ARM, "GET", qn_buf_cstr(&url), NULL, 0, on_contacts,
                          run);
    }
    qn_buf_fini(&url);
    if (rc != QN_OK) {
        qn_task_add_evidence(run->task, "arm", "SecurityContacts_List", NULL,
                             "the read could not be started");
        owner_finish(run, "security contacts");
        return;
    }
    run->contact_pages++;
}

static void start_contacts(struct owner_run *run)
{
    contacts_get(run, NULL);
}

/* ---- start ---- */

static void resolve_owner_run(struct qn_task *task)
{
    const struct qn_alert *alert = qn_task_alert(task);
    struct owner_run *run = qn_calloc(1, sizeof(*run));
    if (run == NULL || (run->owners = cJSON_CreateArray()) == NULL) {
        qn_free(run);
        qn_task_finish(task, QN_TASK_FAILED, "out of memory");
        return;
    }
    run->task = task;
    task->priv = run;
    /* scopes, most specific first: the resource, its resource group, the subscription */
    char sub[64];
    snprintf(sub, sizeof(sub), "/subscriptions/%s", alert->subscription_id);
    struct qn_resid rid;
    bool ok = true;
    if (task->target_id != NULL && qn_resid_parse(task->target_id, 0, &rid, NULL) == QN_OK &&
        strcasecmp(rid.subscription, alert->subscription_id) == 0 &&
        !qn_resid_is_subscription(&rid)) {
        if (rid.provider[0] != '\0') {
            ok = add_slot(run, task->target_id);
        }
        if (ok && rid.resource_group[0] != '\0') {
            char rg[256];
            snprintf(rg, sizeof(rg), "%s/resourceGroups/%s", sub, rid.resource_group);
            ok = add_slot(run, rg);
        }
    }
    if (ok) {
        ok = add_slot(run, sub);
    }
    if (!ok) {
        task->priv = NULL;
        owner_free(run);
        qn_task_finish(task, QN_TASK_FAILED, "out of memory");
        return;
    }
    run->pending = 1; /* held while the reads start */
    for (int i = 0; i < run->slot_count; i++) {
        struct tag_slot *slot = &run->slots[i];
        struct qn_buf url;
        struct qn_error err = {0};
        qn_err_t rc = arm_target(&url, slot->scope, "/providers/Microsoft.Resources/tags/default",
                                 TAGS_API, &err);
        if (rc == QN_OK) {
            rc = qn_task_call(task, QN_AZURE_ARM, "GET", qn_buf_cstr(&url), NULL, 0, on_tags, slot);
            qn_buf_fini(&url);
        }
        if (rc == QN_OK) {
            run->pending++;
        } else {
            slot->failed = true;
            qn_task_add_evidence(task, "arm", "Tags_GetAtScope", slot->scope,
                                 err.msg[0] != '\0' ? err.msg : "the read could not be started");
        }
    }
    if (--run->pending == 0) {
        tags_done(run);
    }
}

const struct qn_task_ops qn_task_ops_resolve_owner = {
    .kind = QN_TASK_RESOLVE_OWNER,
    .run = resolve_owner_run,
};

/* ---- dismiss_alert ------------------------------------------------------------------------- */

enum dismiss_stage {
    LOCATE_SUBSCRIPTION, /* GET at subscription level */
    LOCATE_GROUP,        /* GET at resource-group level */
    LOCATE_LIST,         /* list the subscription's alerts, match systemAlertId */
    DISMISS,             /* POST .../dismiss */
    VERIFY,              /* GET: Dismissed? */
};

struct dismiss_run {
    struct qn_task *task;
    enum dismiss_stage stage;
    char *alert_path; /* the ARM id of the alert resource, once known */
    int pages;
};

static void dismiss_end(struct dismiss_run *run, enum qn_task_state state, const char *msg)
{
    struct qn_task *task = run->task;
    task->priv = NULL;
    qn_free(run->alert_path);
    qn_free(run);
    qn_task_finish(task, state, msg);
}

static void dismiss_step(struct dismiss_run *run, const char *list_next);

static const char *alert_status(const cJSON *alert)
{
    return jstr(cJSON_GetObjectItemCaseSensitive(alert, "properties"), "status");
}

/* The check: what state is the alert in, and may we dismiss it? */
static void dismiss_check(struct dismiss_run *run, const cJSON *alert)
{
    struct qn_task *task = run->task;
    const struct qn_alert *a = qn_task_alert(task);
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(alert, "properties");
    const char *type = jstr(props, "alertType");
    const char *status = alert_status(alert);
    qn_task_add_evidence(task, "arm", "properties.status", status != NULL ? status : "(none)",
                         run->alert_path);
    if (type == NULL || strcasecmp(type, a->type) != 0) {
        dismiss_end(run, QN_TASK_FAILED,
                    "the alert read back from the Microsoft.Security API has a different type: "
                    "not dismissed");
        return;
    }
    if (status != NULL && strcasecmp(status, "Dismissed") == 0) {
        dismiss_end(run, QN_TASK_SUCCEEDED, "already dismissed");
        return;
    }
    if (status != NULL && strcasecmp(status, "Resolved") == 0) {
        dismiss_end(run, QN_TASK_SKIPPED, "the alert is already resolved: nothing to dismiss");
        return;
    }
    const char *why = NULL;
    if (!qn_task_may_write(task, &why)) {
        dismiss_end(run, QN_TASK_SKIPPED, why);
        return;
    }
    run->stage = DISMISS;
    dismiss_step(run, NULL);
}

static void on_dismiss(struct qn_task *task,
                       struct qn_http_result *res,
                       const struct qn_error *err,
                       void *opaque)
{
    struct dismiss_run *run = opaque;
    char msg[400];
    switch (run->stage) {
    case LOCATE_SUBSCRIPTION:
    case LOCATE_GROUP:
        if (err != NULL && err->code == QN_ERR_NOT_FOUND) {
            const struct qn_alert *a = qn_task_alert(task);
            run->stage = run->stage == LOCATE_SUBSCRIPTION && a->resource_group != NULL
                             ? LOCATE_GROUP
                             : LOCATE_LIST;
            dismiss_step(run, NULL);
            return;
        }
        if (err != NULL) {
            snprintf(msg, sizeof(msg), "cannot read the alert: %s", err_text(err));
            dismiss_end(run, QN_TASK_FAILED, msg);
            return;
        }
        {
            cJSON *body = parse_body(res);
            if (!cJSON_IsObject(body)) {
                cJSON_Delete(body);
                dismiss_end(run, QN_TASK_FAILED, "the alert read back is not JSON");
                return;
            }
            dismiss_check(run, body);
            cJSON_Delete(body);
        }
        return;
    case LOCATE_LIST: {
        if (err != NULL) {
            snprintf(msg, sizeof(msg), "cannot list the subscription's alerts: %s", err_text(err));
            dismiss_end(run, QN_TASK_FAILED, msg);
            return;
        }
        const struct qn_alert *a = qn_task_alert(task);
        cJSON *body = parse_body(res);
        const cJSON *item = NULL;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(body, "value"))
        {
            const char *sys =
                jstr(cJSON_GetObjectItemCaseSensitive(item, "properties"), "systemAlertId");
            const char *name = jstr(item, "name");
            const char *id = jstr(item, "id");
            if (id != NULL && ((sys != NULL && strcasecmp(sys, a->id) == 0) ||
                               (name != NULL && strcasecmp(name, a->id) == 0))) {
                struct qn_resid rid;
                run->alert_path = qn_resid_parse(id, 0, &rid, NULL) == QN_OK ? qn_strdup(id) : NULL;
                if (run->alert_path == NULL) {
                    cJSON_Delete(body);
                    dismiss_end(run, QN_TASK_FAILED, "the listed alert has an unusable id");
                    return;
                }
                qn_task_add_evidence(task, "arm", "Alerts_List properties.systemAlertId", a->id,
                                     id);
                dismiss_check(run, item);
                cJSON_Delete(body);
                return;
            }
        }
        const char *next = next_link(body);
        if (next != NULL && run->pages < qn_task_config(task)->evidence.max_pages) {
            dismiss_step(run, next);
            cJSON_Delete(body);
            return;
        }
        cJSON_Delete(body);
        dismiss_end(run, QN_TASK_FAILED, "the Microsoft.Security API does not know this alert");
        return;
    }
    case DISMISS: {
        if (err != NULL) {
            snprintf(msg, sizeof(msg), "dismiss failed: %s", err_text(err));
            dismiss_end(run, QN_TASK_FAILED, msg);
            return;
        }
        cJSON *undo = cJSON_CreateObject();
        if (undo != NULL) {
            char path[1200];
            snprintf(path, sizeof(path), "%s/activate", run->alert_path);
            cJSON_AddStringToObject(undo, "action", "activate");
            cJSON_AddStringToObject(undo, "method", "POST");
            cJSON_AddStringToObject(undo, "path", path);
            cJSON_AddStringToObject(undo, "apiVersion", ALERTS_API);
            qn_task_set_undo(task, undo);
        }
        run->stage = VERIFY;
        dismiss_step(run, NULL);
        return;
    }
    case VERIFY: {
        if (err != NULL) {
            snprintf(msg, sizeof(msg),
                     "dismiss sent (204) but the alert could not be read back: %s", err_text(err));
            dismiss_end(run, QN_TASK_FAILED, msg);
            return;
        }
        cJSON *body = parse_body(res);
        const char *status = alert_status(body);
        bool ok = status != NULL && strcasecmp(status, "Dismissed") == 0;
        snprintf(msg, sizeof(msg), "dismiss sent but the alert's status is %s",
                 status != NULL ? status : "unknown");
        cJSON_Delete(body);
        if (ok) {
            qn_task_add_evidence(task, "arm", "properties.status", "Dismissed", "verified");
        }
        dismiss_end(run, ok ? QN_TASK_SUCCEEDED : QN_TASK_FAILED, ok ? "dismissed" : msg);
        return;
    }
    }
}

/* Sends the request of the current stage (for LOCATE_LIST, @p list_next is a nextLink). */
static void dismiss_step(struct dismiss_run *run, const char *list_next)
{
    struct qn_task *task = run->task;
    const struct qn_alert *a = qn_task_alert(task);
    struct qn_buf id;
    struct qn_buf url;
    struct qn_error err = {0};
    qn_buf_init(&id, 2048);
    qn_buf_init(&url, QN_HTTP_MAX_URL);
    qn_err_t rc = QN_OK;
    const char *method = "GET";
    unsigned flags = 0;
    switch (run->stage) {
    case LOCATE_SUBSCRIPTION:
    case LOCATE_GROUP:
        rc = run->stage == LOCATE_SUBSCRIPTION
                 ? qn_buf_printf(&id,
                                 "/subscriptions/%s/providers/Microsoft.Security/locations/%s"
                                 "/alerts/%s",
                                 a->subscription_id, a->location, a->id)
                 : qn_buf_printf(&id,
                                 "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Security"
                                 "/locations/%s/alerts/%s",
                                 a->subscription_id, a->resource_group, a->location, a->id);
        if (rc == QN_OK) {
            qn_free(run->alert_path);
            run->alert_path = qn_strdup(qn_buf_cstr(&id));
            rc = run->alert_path != NULL ? QN_OK : QN_ERR_NOMEM;
        }
        if (rc == QN_OK) {
            /* strictly parsed and percent-encoded: the id comes from a Kafka record */
            rc = qn_azure_arm_path(&url, run->alert_path, 0, NULL, ALERTS_API, &err);
        }
        break;
    case LOCATE_LIST:
        if (list_next != NULL) {
            rc = qn_buf_append_str(&url, list_next);
        } else {
            rc = qn_buf_printf(&id, "/subscriptions/%s", a->subscription_id);
            if (rc == QN_OK) {
                rc = qn_azure_arm_path(&url, qn_buf_cstr(&id), 0,
                                       "/providers/Microsoft.Security/alerts", ALERTS_API, &err);
            }
        }
        run->pages++;
        break;
    case DISMISS:
        method = "POST";
        flags = QN_HTTP_CALL_RETRY_UNSAFE; /* dismissing twice is harmless */
        rc = qn_azure_arm_path(&url, run->alert_path, 0, "/dismiss", ALERTS_API, &err);
        break;
    case VERIFY:
        rc = qn_azure_arm_path(&url, run->alert_path, 0, NULL, ALERTS_API, &err);
        break;
    }
    if (rc == QN_OK) {
        rc = qn_task_call(task, QN_AZURE_ARM, method, qn_buf_cstr(&url), NULL, flags, on_dismiss,
                          run);
    }
    qn_buf_fini(&id);
    qn_buf_fini(&url);
    if (rc != QN_OK) {
        char msg[400];
        snprintf(msg, sizeof(msg), "cannot address the alert: %s",
                 err.msg[0] != '\0' ? err.msg : qn_err_str(rc));
        dismiss_end(run, QN_TASK_FAILED, msg);
    }
}

static void dismiss_alert_run(struct qn_task *task)
{
    const struct qn_alert *a = qn_task_alert(task);
    struct dismiss_run *run = qn_calloc(1, sizeof(*run));
    if (run == NULL) {
        qn_task_finish(task, QN_TASK_FAILED, "out of memory");
        return;
    }
    run->task = task;
    task->priv = run;
    run->stage = a->location != NULL ? LOCATE_SUBSCRIPTION : LOCATE_LIST;
    dismiss_step(run, NULL);
}

const struct qn_task_ops qn_task_ops_dismiss_alert = {
    .kind = QN_TASK_DISMISS_ALERT,
    .run = dismiss_alert_run,
};
