/*
 * kafka_oauth.h - SASL/OAUTHBEARER tokens for Kafka (the Event Hubs Kafka endpoint) from the Azure
 * identity layer (azure_auth.h): the same azure.* credential, endpoints and CA as the engine, its
 * own qn_http + qn_azure on the worker's loop, and the audience QN_AZURE_EVENTHUBS. Its value is
 * the one Microsoft documents for Kafka clients, https://<namespace>.servicebus.windows.net (or
 * the usgov/china servicebus domain), taken from the first kafka.bootstrap.servers host when that
 * is an Event Hubs namespace (a "privatelink." label is dropped); for any other broker it is the
 * Azure client's default, https://eventhubs.azure.net. The scope is the audience + "/.default".
 *
 * Used when kafka_oauth is "azure" (config.h). librdkafka 2.0.2 has no azure_imds OIDC method, its
 * OIDC flow knows only client secrets, and Debian 12's build has no OIDC at all (no libcurl: the
 * sasl.oauthbearer.method property is refused), so the worker registers a token refresh callback
 * on its producer and consumer configurations. librdkafka serves that callback from rd_kafka_poll /
 * rd_kafka_consumer_poll, which the loop calls, so it runs on the loop thread:
 *
 *   refresh callback -> qn_kafka_oauth_refresh(ko, rk) -> qn_azure_token_get (async, usually the
 *   cached token) -> rd_kafka_oauthbearer_set_token(rk, token, expiry, principal)
 *                    or rd_kafka_oauthbearer_set_token_failure(rk, why), and librdkafka asks again
 *                    (after 10 s on failure, at 80 % of the lifetime on success).
 *
 * A refresh that arrives while one is pending for the same handle is folded into it. No broker
 * connection is made until a token is set, so the first one is fetched synchronously with
 * qn_kafka_oauth_wait before anything needs the broker (the worker's start-up metadata lookup).
 *
 * The token is handed to librdkafka (which copies it) and is never stored, logged or printed here:
 * only its expiry and a SHA-256 fingerprint (for tests and debugging) are kept.
 *
 * Threading: loop thread only. Ownership: borrows the loop (and, until free, nothing else); every
 * rd_kafka_t given to it must stay valid while a refresh for it may complete, i.e. until the loop
 * runs no more or qn_kafka_oauth_free. Free it after the Kafka handles and before the loop.
 */
#ifndef QN_KAFKA_OAUTH_H
#define QN_KAFKA_OAUTH_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "qn/err.h"
#include "qn/loop.h"

struct qn_kafka_oauth;

/* @returns true if @p cfg asks for Entra ID tokens on Kafka (kafka_oauth = "azure"). */
bool qn_kafka_oauth_enabled(const struct qn_config *cfg);

/*
 * @brief Creates the token source: a qn_http client on @p loop and a qn_azure client from the
 *        azure.* settings (AZURE_* workload-identity variables apply as for the engine). No token
 *        is requested yet.
 * @returns QN_OK, QN_ERR_CONFIG (credential "none", unreadable secret file, ...) with
 *          @p err naming the key, or QN_ERR_NOMEM.
 */
QN_NODISCARD qn_err_t qn_kafka_oauth_new(struct qn_loop *loop,
                                         const struct qn_config *cfg,
                                         struct qn_kafka_oauth **out,
                                         struct qn_error *err);

/* Cancels pending token requests (no librdkafka call is made afterwards) and frees. NULL ok. */
void qn_kafka_oauth_free(struct qn_kafka_oauth *ko);

/*
 * @brief The body of librdkafka's token refresh callback for @p rk: starts a token request unless
 *        one is pending for @p rk. The result goes to librdkafka later, from the loop. A request
 *        that cannot even start is reported to librdkafka with set_token_failure at once.
 */
void qn_kafka_oauth_refresh(struct qn_kafka_oauth *ko, rd_kafka_t *rk);

/*
 * @brief Makes sure @p rk has a token: starts a refresh if none was set, then runs the loop
 *        (qn_loop_run_once) until the token is set or refused, or @p timeout_ms passes. For
 *        start-up only, before the loop runs on its own.
 * @returns QN_OK once rd_kafka_oauthbearer_set_token accepted a token; otherwise the token
 *          error (QN_ERR_AUTH for rejected credentials, QN_ERR_CONFIG, QN_ERR_HTTP_TRANSIENT,
 *          QN_ERR_IO, ...) or QN_ERR_TIMEOUT, with @p err saying why.
 */
QN_NODISCARD qn_err_t qn_kafka_oauth_wait(struct qn_kafka_oauth *ko,
                                          rd_kafka_t *rk,
                                          int64_t timeout_ms,
                                          struct qn_error *err);

#define QN_KAFKA_OAUTH_ERROR_LEN 448

/* What happened for one handle (for tests, readiness and debugging). */
struct qn_kafka_oauth_status {
    uint64_t refreshes;    /* refresh requests (callbacks and waits) */
    uint64_t token_sets;   /* tokens librdkafka accepted */
    uint64_t failures;     /* set_token_failure calls */
    bool pending;          /* a token request is in flight */
    int64_t expires_at_ms; /* wall-clock expiry of the last token set; 0 if none */
    char fingerprint[17];  /* first 16 hex digits of the last token's SHA-256; "" if none */
    char last_error[QN_KAFKA_OAUTH_ERROR_LEN]; /* the last reason given to set_token_failure */
};

/* @returns false if @p rk was never seen; otherwise fills @p out. */
bool qn_kafka_oauth_status(const struct qn_kafka_oauth *ko,
                           const rd_kafka_t *rk,
                           struct qn_kafka_oauth_status *out);

/* The principal name given with each token (azure client id, else "quench"). */
const char *qn_kafka_oauth_principal(const struct qn_kafka_oauth *ko);

/* The OAuth scope requested ("<audience>/.default"). */
const char *qn_kafka_oauth_scope(const struct qn_kafka_oauth *ko);

#endif
