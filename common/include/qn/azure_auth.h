/*
 * azure_auth.h - Azure identity (token acquisition and caching) and the ARM/Graph call API.
 *
 * Identity: one of four credentials, chosen by configuration, all acquired asynchronously on the
 * loop through the qn_http client:
 *   QN_AZURE_CRED_SECRET       client secret, form POST to {authority}/{tenant}/oauth2/v2.0/token
 *   QN_AZURE_CRED_CERTIFICATE  the same POST with a signed JWT client assertion (jwt.h)
 *   QN_AZURE_CRED_WORKLOAD     AKS workload identity: the projected service-account token named by
 *                              AZURE_FEDERATED_TOKEN_FILE, re-read on every refresh, sent as the
 *                              client assertion
 *   QN_AZURE_CRED_MANAGED      managed identity through IMDS (GET {imds}/metadata/identity/oauth2/
 *                              token?api-version=2018-02-01&resource=...; header Metadata: true)
 * Tokens are cached per audience (ARM, Graph, Event Hubs) and refreshed ahead of expiry (5 min
 * skew by default, half the lifetime for short tokens) by a loop timer, so callers rarely wait.
 * Concurrent requests for one audience share one token request. A failed refresh never stalls the
 * loop: waiters get the error at once, refreshes are retried with backoff (honouring Retry-After),
 * and an unexpired cached token keeps being served meanwhile.
 *
 * Calls: qn_azure_request() runs one ARM or Graph operation through the qn_http call engine with
 * a gate that (1) waits for a rate-limit token for (subscription or tenant, principal, class),
 * (2) attaches "Authorization: Bearer <token>" for the audience, and (3) feeds 429 Retry-After and
 * x-ms-ratelimit-remaining-* back into the limiter. Targets are paths on the configured endpoint
 * or absolute URLs on exactly that origin, so a token never leaves for another host. Build paths
 * with qn_azure_arm_path / qn_azure_graph_path: resource ids go through qn_resid_parse first.
 *
 * Secrets (client secret, private key, assertions, federated tokens, access tokens) are never
 * logged and are wiped with OPENSSL_cleanse when freed. Cloud endpoints come from presets
 * (public, usgov, china) and each can be overridden (tests point them at a simulator).
 *
 * Ownership: the client borrows the qn_http client (and through it the loop), which must outlive
 * it; free the azure client first. Configuration strings are copied at qn_azure_new.
 */
#ifndef QN_AZURE_AUTH_H
#define QN_AZURE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qn/backoff.h"
#include "qn/buf.h"
#include "qn/err.h"
#include "qn/http.h"
#include "qn/jwt.h"
#include "qn/ratelimit.h"

enum qn_azure_cloud {
    QN_AZURE_CLOUD_PUBLIC = 0,
    QN_AZURE_CLOUD_USGOV,
    QN_AZURE_CLOUD_CHINA,
};

enum qn_azure_audience {
    QN_AZURE_ARM = 0,
    QN_AZURE_GRAPH,
    QN_AZURE_EVENTHUBS, /* tokens only (Kafka OAUTHBEARER); no requests */
    QN_AZURE_AUDIENCE__COUNT
};

enum qn_azure_credential {
    QN_AZURE_CRED_SECRET = 0,
    QN_AZURE_CRED_CERTIFICATE,
    QN_AZURE_CRED_WORKLOAD,
    QN_AZURE_CRED_MANAGED,
};

/* Endpoints: origins without a trailing slash. NULL members take the cloud's preset. */
struct qn_azure_endpoints {
    const char *authority; /* https://login.microsoftonline.com */
    const char *arm;       /* https://management.azure.com */
    const char *graph;     /* https://graph.microsoft.com (paths carry /v1.0) */
    const char *imds;      /* http://169.254.169.254 */
    /* Token audiences (App ID URIs); scope = audience + "/.default", IMDS resource = audience +
     * "/". They stay the cloud's even when the endpoints point at a simulator. */
    const char *audiences[QN_AZURE_AUDIENCE__COUNT];
};

struct qn_azure_config {
    enum qn_azure_cloud cloud;
    struct qn_azure_endpoints endpoints; /* overrides; NULL = preset */
    enum qn_azure_credential credential;
    const char *tenant_id;            /* GUID or domain; not needed for managed identity */
    const char *client_id;            /* app (client) id; for managed identity: the user-assigned
                                         identity's client id, or NULL for system-assigned */
    const char *client_secret;        /* QN_AZURE_CRED_SECRET; copied and wiped */
    const char *certificate_file;     /* QN_AZURE_CRED_CERTIFICATE: PEM certificate (+ key) */
    const char *private_key_file;     /* NULL = the key is in certificate_file */
    enum qn_jwt_alg assertion_alg;    /* RS256 (default) or PS256 */
    bool assertion_x5t_sha1;          /* also send the SHA-1 "x5t" header */
    const char *federated_token_file; /* QN_AZURE_CRED_WORKLOAD */
    int64_t refresh_skew_ms;          /* refresh this long before expiry; 0 = 5 min */
    int64_t token_timeout_ms;         /* per token request; 0 = 15 s */
    struct qn_backoff token_backoff;  /* between failed refreshes; 0 = 1 s .. 60 s */
    struct qn_ratelimit_config ratelimit;
    struct qn_http_call_opts call_opts; /* defaults for qn_azure_request */
};

/* Fills @p cfg: public cloud, secret credential, ARM/Graph rate-limit and call defaults. */
void qn_azure_config_default(struct qn_azure_config *cfg);

/*
 * @brief Applies the AKS workload-identity environment (AZURE_CLIENT_ID, AZURE_TENANT_ID,
 *        AZURE_AUTHORITY_HOST, AZURE_FEDERATED_TOKEN_FILE) to @p cfg. If the token file variable
 *        is set the credential becomes QN_AZURE_CRED_WORKLOAD. The strings are borrowed from the
 *        environment: call qn_azure_new before changing it.
 * @returns true if the token file variable was set.
 */
bool qn_azure_config_from_env(struct qn_azure_config *cfg);

/* Writes the preset endpoints and audiences of @p cloud into @p out (static strings). */
void qn_azure_endpoints_preset(enum qn_azure_cloud cloud, struct qn_azure_endpoints *out);

/* Parses "public" (or "AzurePublicCloud"), "usgov" ("AzureUSGovernment"), "china"
 * ("AzureChinaCloud"). @returns QN_OK or QN_ERR_CONFIG. */
QN_NODISCARD qn_err_t qn_azure_cloud_parse(const char *name, enum qn_azure_cloud *out);

struct qn_azure;

/*
 * @brief Creates the client: validates the configuration, loads the certificate if any, and
 *        creates the rate limiter. No network traffic happens until a token is needed.
 * @returns QN_OK, QN_ERR_CONFIG (missing or malformed setting, bad PEM) or QN_ERR_NOMEM.
 */
QN_NODISCARD qn_err_t qn_azure_new(struct qn_http *http,
                                   const struct qn_azure_config *cfg,
                                   struct qn_azure **out,
                                   struct qn_error *err);

/* Cancels everything in flight (no callbacks) and frees the client, wiping secrets. NULL ok. */
void qn_azure_free(struct qn_azure *az);

/* @returns the client's rate limiter (for stats and tests); valid until qn_azure_free. */
struct qn_ratelimit *qn_azure_ratelimit(const struct qn_azure *az);

/* ---- tokens ---- */

/*
 * Token delivery. On success @p token is the bare access token (borrowed: copy it, and wipe the
 * copy, if it must outlive the callback) and @p expires_at_epoch_ms its wall-clock expiry; on
 * failure @p token is NULL and @p err says why (QN_ERR_AUTH for rejected credentials,
 * QN_ERR_HTTP_TRANSIENT or QN_ERR_IO for failures worth retrying later).
 */
typedef void (*qn_azure_token_fn)(const char *token,
                                  int64_t expires_at_epoch_ms,
                                  const struct qn_error *err,
                                  void *opaque);

struct qn_azure_token_req;

/*
 * @brief Gets a token for @p audience. @p fn is called once, later, from the loop (even when
 *        the token is cached), unless qn_azure_token_cancel is called first.
 * @param out may be NULL; a handle valid until @p fn starts.
 */
QN_NODISCARD qn_err_t qn_azure_token_get(struct qn_azure *az,
                                         enum qn_azure_audience audience,
                                         qn_azure_token_fn fn,
                                         void *opaque,
                                         struct qn_azure_token_req **out,
                                         struct qn_error *err);

/* Cancels a pending token request; its callback is not called. NULL ok. */
void qn_azure_token_cancel(struct qn_azure_token_req *req);

/* Drops the cached token for @p audience (e.g. after a 401); the next use fetches a new one. */
void qn_azure_token_invalidate(struct qn_azure *az, enum qn_azure_audience audience);

/* @returns true if a cached, unexpired token exists for @p audience (for readiness probes). */
bool qn_azure_token_ready(const struct qn_azure *az, enum qn_azure_audience audience);

struct qn_azure_token_stats {
    uint64_t requests; /* token requests sent */
    uint64_t failures; /* of which failed */
    uint64_t served;   /* tokens handed to callers or attached to requests */
};

void qn_azure_token_stats(const struct qn_azure *az,
                          enum qn_azure_audience audience,
                          struct qn_azure_token_stats *out);

/*
 * @brief Parses a token endpoint or IMDS response: access_token, and expires_in as a number or a
 *        numeric string (IMDS), else expires_on. token_type, if present, must be Bearer. The token
 *        must be printable ASCII without blanks (it goes into a header).
 * @param token out: a copy of the token, to be freed with qn_free_secret.
 * @param expires_in_s out: seconds of validity, 1 .. 86400.
 * @returns QN_OK or QN_ERR_PARSE (outputs untouched). cJSON's copy of the token is wiped.
 */
QN_NODISCARD qn_err_t qn_azure_token_response_parse(
    const char *body, size_t len, char **token, int64_t *expires_in_s, struct qn_error *err);

/*
 * @brief The refresh schedule for a token received at @p now_ms that lives @p lifetime_ms:
 *        refresh at now + lifetime - skew, or at half-life when lifetime < 2 * skew; serve it
 *        until now + lifetime - min(30 s, lifetime / 10).
 */
void qn_azure_token_schedule(int64_t now_ms,
                             int64_t lifetime_ms,
                             int64_t skew_ms,
                             int64_t *refresh_at_ms,
                             int64_t *usable_until_ms);

/* ---- ARM and Graph requests ---- */

struct qn_azure_request {
    enum qn_azure_audience audience; /* QN_AZURE_ARM or QN_AZURE_GRAPH */
    const char *method;
    const char *target; /* "/subscriptions/...?api-version=..." or "/v1.0/users/...",
                           or an absolute URL on the audience's endpoint origin */
    const void *body;   /* may be NULL */
    size_t body_len;
    const char *const *headers;           /* NULL or NULL-terminated extra header lines */
    unsigned flags;                       /* QN_HTTP_CALL_LRO | QN_HTTP_CALL_PAGED | ... */
    const struct qn_http_call_opts *opts; /* NULL = the client's call_opts */
    const char *scope;                    /* rate-limit scope; NULL = the path's subscription (ARM;
                                             "" at tenant level) or the tenant (Graph) */
    qn_http_page_fn page_fn;              /* for paged calls; NULL = accumulate value[] */
    int64_t timeout_ms;                   /* per exchange; 0 = the http client's default */
    size_t max_body;                      /* per response; 0 = the http client's default */
    const char *client_request_id; /* NULL = fresh; or a GUID (e.g. derived from a task id) */
};

/*
 * @brief Starts an ARM or Graph operation (see the top of this file). @p fn is called once,
 *        later, from the loop, with the result (qn_http_result), unless the call is cancelled
 *        with qn_http_call_cancel(*out) first.
 * @returns QN_OK; QN_ERR_INVALID for a target that is not a clean path or leaves the endpoint's
 *          origin, or for an Authorization header among @p req's headers (the client adds it);
 *          QN_ERR_NOMEM. Then @p fn is never called.
 */
QN_NODISCARD qn_err_t qn_azure_request(struct qn_azure *az,
                                       const struct qn_azure_request *req,
                                       qn_http_call_done_fn fn,
                                       void *opaque,
                                       struct qn_http_call **out,
                                       struct qn_error *err);

/*
 * @brief Appends the ARM path for @p resource_id (strictly parsed by qn_resid_parse with
 *        @p resid_flags, then percent-encoded), then @p suffix, then "?api-version=...".
 * @param suffix NULL or a literal path such as "/providers/Microsoft.Authorization/roleAssignments"
 *        or "/dismiss": "/"-separated segments of [A-Za-z0-9._-] only.
 * @returns QN_OK, QN_ERR_PARSE (bad id; @p err says which segment), QN_ERR_INVALID (bad suffix
 *          or api-version) or QN_ERR_TOO_BIG. On failure @p out is left as it was.
 */
QN_NODISCARD qn_err_t qn_azure_arm_path(struct qn_buf *out,
                                        const char *resource_id,
                                        int resid_flags,
                                        const char *suffix,
                                        const char *api_version,
                                        struct qn_error *err);

/*
 * @brief Appends a Graph path: @p base (a literal such as "/v1.0/users"), then "/" and @p id
 *        percent-encoded as one segment if not NULL, then the literal @p suffix (e.g.
 *        "/revokeSignInSessions") if not NULL. Literals follow the same rule as in
 *        qn_azure_arm_path. On failure @p out is left as it was.
 */
QN_NODISCARD qn_err_t qn_azure_graph_path(
    struct qn_buf *out, const char *base, const char *id, const char *suffix, struct qn_error *err);

#endif
