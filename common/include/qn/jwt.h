/*
 * jwt.h - the signed JWT client assertion for certificate credentials (Microsoft identity
 * platform), and base64url.
 *
 * A signer holds an RSA private key and the SHA-256 thumbprint of its certificate. The assertion
 * it makes has the header {"alg":"RS256"|"PS256","typ":"JWT","x5t#S256":<base64url SHA-256 of the
 * certificate DER>} (plus "x5t", the SHA-1 thumbprint, on request) and the claims aud (the token
 * endpoint URL), iss = sub = client id, jti (a random UUID), nbf = iat = now, exp = now + 600.
 * The signature is made with OpenSSL EVP (RSASSA-PKCS1-v1_5 for RS256, RSASSA-PSS with a 32-byte
 * salt for PS256).
 *
 * Ownership: the signer owns its key (freed, and so cleansed by OpenSSL, with the signer). An
 * assertion is a bearer credential for ten minutes: free it with qn_free_secret. PEM text read
 * from files is wiped after parsing. Nothing here logs.
 */
#ifndef QN_JWT_H
#define QN_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "qn/buf.h"
#include "qn/err.h"

#define QN_JWT_LIFETIME_S 600

enum qn_jwt_alg {
    QN_JWT_RS256 = 0,
    QN_JWT_PS256,
};

/* Flags for qn_jwt_client_assertion. */
#define QN_JWT_X5T_SHA1 0x1u /* also send "x5t", the SHA-1 thumbprint (older Entra form) */

struct qn_jwt_signer;

/*
 * @brief Makes a signer from PEM text: @p cert_pem holds the certificate (and the key, if
 *        @p key_pem is NULL). Only unencrypted RSA keys are accepted, and the key must match the
 *        certificate.
 * @returns QN_OK, QN_ERR_CONFIG (unreadable PEM, wrong key type, mismatch) or QN_ERR_NOMEM.
 */
QN_NODISCARD qn_err_t qn_jwt_signer_new(const char *cert_pem,
                                        size_t cert_len,
                                        const char *key_pem,
                                        size_t key_len,
                                        struct qn_jwt_signer **out,
                                        struct qn_error *err);

/* As qn_jwt_signer_new, reading PEM files; @p key_file may be NULL (key in @p cert_file). */
QN_NODISCARD qn_err_t qn_jwt_signer_load(const char *cert_file,
                                         const char *key_file,
                                         struct qn_jwt_signer **out,
                                         struct qn_error *err);

/* Frees the signer. Accepts NULL. */
void qn_jwt_signer_free(struct qn_jwt_signer *signer);

/* @returns the base64url SHA-256 certificate thumbprint (x5t#S256); valid while the signer is. */
const char *qn_jwt_signer_x5t_s256(const struct qn_jwt_signer *signer);

/*
 * @brief Makes and signs a client assertion.
 * @param audience the token endpoint URL, e.g.
 * https://login.microsoftonline.com/{t}/oauth2/v2.0/token
 * @param now_s wall-clock seconds since the epoch (nbf, iat; exp = now_s + QN_JWT_LIFETIME_S).
 * @param out receives the compact JWS; free it with qn_free_secret.
 */
QN_NODISCARD qn_err_t qn_jwt_client_assertion(const struct qn_jwt_signer *signer,
                                              enum qn_jwt_alg alg,
                                              unsigned flags,
                                              const char *client_id,
                                              const char *audience,
                                              int64_t now_s,
                                              char **out,
                                              struct qn_error *err);

/* Appends base64url (RFC 4648 §5, no padding) of @p data to @p out. */
QN_NODISCARD qn_err_t qn_base64url_encode(struct qn_buf *out, const void *data, size_t len);

/* Appends the bytes decoded from base64url @p s (padding optional) to @p out. QN_ERR_PARSE on bad
 * input. */
QN_NODISCARD qn_err_t qn_base64url_decode(struct qn_buf *out, const char *s, size_t len);

#endif
