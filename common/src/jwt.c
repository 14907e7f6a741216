/*
 * jwt.c - RS256/PS256 client assertions with OpenSSL EVP, and base64url.
 *
 * The signer keeps an EVP_PKEY (OpenSSL clears RSA key material when it is freed) and the
 * thumbprints of the certificate. Every temporary buffer that held key PEM or the signing input is
 * cleansed before it is freed. The claims are built as text with JSON string escaping from
 * qn_buf, so no value can break the JSON structure.
 */
#include "qn/jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "qn/http.h"
#include "qn/mem.h"

#define PEM_MAX_BYTES ((size_t)256 * 1024)

struct qn_jwt_signer {
    EVP_PKEY *pkey;
    char x5t_s256[48]; /* base64url of 32 bytes: 43 chars */
    char x5t_sha1[32]; /* base64url of 20 bytes: 27 chars */
};

/* ---- base64url ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

qn_err_t qn_base64url_encode(struct qn_buf *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    qn_err_t rc = QN_OK;
    size_t i = 0;
    for (; rc == QN_OK && i + 3 <= len; i += 3) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
        char q[4] = {b64url[(v >> 18) & 63], b64url[(v >> 12) & 63], b64url[(v >> 6) & 63],
                     b64url[v & 63]};
        rc = qn_buf_append(out, q, 4);
    }
    if (rc == QN_OK && len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[2] = {b64url[(v >> 18) & 63], b64url[(v >> 12) & 63]};
        rc = qn_buf_append(out, q, 2);
    } else if (rc == QN_OK && len - i == 2) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8);
        char q[3] = {b64url[(v >> 18) & 63], b64url[(v >> 12) & 63], b64url[(v >> 6) & 63]};
        rc = qn_buf_append(out, q, 3);
    }
    return rc;
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

qn_err_t qn_base64url_decode(struct qn_buf *out, const char *s, size_t len)
{
    while (len > 0 && s[len - 1] == '=') {
        len--;
    }
    if (len % 4 == 1) {
        return QN_ERR_PARSE;
    }
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(s[i]);
        if (v < 0) {
            return QN_ERR_PARSE;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            qn_err_t rc = qn_buf_append_char(out, (char)((acc >> bits) & 0xff));
            if (rc != QN_OK) {
                return rc;
            }
        }
    }
    return QN_OK;
}

/* ---- loading ---- */

static void openssl_reason(char *out, size_t size)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        (void)snprintf(out, size, "no detail");
    } else {
        ERR_error_string_n(e, out, size);
    }
    ERR_clear_error();
}

static qn_err_t thumbprints(struct qn_jwt_signer *s, X509 *cert, struct qn_error *err)
{
    unsigned char *der = NULL;
    int der_len = i2d_X509(cert, &der);
    if (der_len <= 0) {
        return qn_error_set(err, QN_ERR_CONFIG, "cannot encode the certificate");
    }
    unsigned char sha256[EVP_MAX_MD_SIZE];
    unsigned int n256 = 0;
    unsigned char sha1[EVP_MAX_MD_SIZE];
    unsigned int n1 = 0;
    bool ok = EVP_Digest(der, (size_t)der_len, sha256, &n256, EVP_sha256(), NULL) == 1 &&
              EVP_Digest(der, (size_t)der_len, sha1, &n1, EVP_sha1(), NULL) == 1;
    OPENSSL_free(der);
    if (!ok) {
        return qn_error_set(err, QN_ERR_CONFIG, "cannot hash the certificate");
    }
    struct qn_buf b;
    qn_buf_init(&b, 64);
    qn_err_t rc = qn_base64url_encode(&b, sha256, n256);
    if (rc == QN_OK) {
        (void)snprintf(s->x5t_s256, sizeof(s->x5t_s256), "%s", qn_buf_cstr(&b));
        qn_buf_reset(&b);
        rc = qn_base64url_encode(&b, sha1, n1);
    }
    if (rc == QN_OK) {
        (void)snprintf(s->x5t_sha1, sizeof(s->x5t_sha1), "%s", qn_buf_cstr(&b));
    }
    qn_buf_fini(&b);
    return rc == QN_OK ? QN_OK : qn_error_set(err, rc, "cannot encode thumbprints");
}

qn_err_t qn_jwt_signer_new(const char *cert_pem,
                           size_t cert_len,
                           const char *key_pem,
                           size_t key_len,
                           struct qn_jwt_signer **out,
                           struct qn_error *err)
{
    char reason[160];
    qn_err_t rc = QN_OK;
    X509 *cert = NULL;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    struct qn_jwt_signer *s = NULL;
    if (cert_len > INT32_MAX || key_len > INT32_MAX) {
        return qn_error_set(err, QN_ERR_CONFIG, "PEM input too large");
    }
    bio = BIO_new_mem_buf(cert_pem, (int)cert_len);
    if (bio == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a BIO");
    }
    cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (cert == NULL) {
        openssl_reason(reason, sizeof(reason));
        rc = qn_error_set(err, QN_ERR_CONFIG, "no PEM certificate found: %s", reason);
        goto out;
    }
    if (key_pem != NULL) {
        BIO_free(bio);
        bio = BIO_new_mem_buf(key_pem, (int)key_len);
    } else {
        (void)BIO_reset(bio);
    }
    if (bio == NULL) {
        rc = qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a BIO");
        goto out;
    }
    /* No password callback: an encrypted key fails here with a clear message. */
    pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
    if (pkey == NULL) {
        openssl_reason(reason, sizeof(reason));
        rc = qn_error_set(err, QN_ERR_CONFIG, "no unencrypted PEM private key found: %s", reason);
        goto out;
    }
    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        rc = qn_error_set(err, QN_ERR_CONFIG, "the certificate key must be RSA for RS256/PS256");
        goto out;
    }
    if (X509_check_private_key(cert, pkey) != 1) {
        ERR_clear_error();
        rc = qn_error_set(err, QN_ERR_CONFIG, "the private key does not match the certificate");
        goto out;
    }
    s = qn_calloc(1, sizeof(*s));
    if (s == NULL) {
        rc = qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a signer");
        goto out;
    }
    rc = thumbprints(s, cert, err);
    if (rc != QN_OK) {
        qn_free(s);
        s = NULL;
        goto out;
    }
    s->pkey = pkey;
    pkey = NULL;
    *out = s;
out:
    BIO_free(bio);
    X509_free(cert);
    EVP_PKEY_free(pkey);
    return rc;
}

/* Reads a whole (small) file into a NUL-terminated buffer; the caller cleanses and frees it. */
static qn_err_t read_pem(const char *path, char **data, size_t *len, struct qn_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        qn_error_set(err, QN_ERR_CONFIG, "cannot open %s: errno %d", path, e);
        if (err != NULL) {
            err->sys_errno = e;
        }
        return QN_ERR_CONFIG;
    }
    struct qn_buf b;
    qn_buf_init(&b, PEM_MAX_BYTES);
    /* Allocate the cap at once so that growing never leaves a partial key in freed memory. */
    b.data = qn_malloc(PEM_MAX_BYTES + 1);
    if (b.data == NULL) {
        close(fd);
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a PEM buffer");
    }
    b.cap = PEM_MAX_BYTES + 1;
    b.data[0] = '\0';
    qn_err_t rc = QN_OK;
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = qn_error_set(err, QN_ERR_CONFIG, "cannot read %s", path);
            break;
        }
        if (n == 0) {
            break;
        }
        rc = qn_buf_append(&b, chunk, (size_t)n);
        if (rc != QN_OK) {
            qn_error_set(err, QN_ERR_CONFIG, "%s is too big for a PEM file", path);
            break;
        }
    }
    OPENSSL_cleanse(chunk, sizeof(chunk));
    close(fd);
    if (rc != QN_OK) {
        if (b.data != NULL) {
            OPENSSL_cleanse(b.data, b.cap);
        }
        qn_buf_fini(&b);
        return QN_ERR_CONFIG;
    }
    *len = b.len;
    *data = b.data;
    return QN_OK;
}

qn_err_t qn_jwt_signer_load(const char *cert_file,
                            const char *key_file,
                            struct qn_jwt_signer **out,
                            struct qn_error *err)
{
    char *cert = NULL;
    size_t cert_len = 0;
    char *key = NULL;
    size_t key_len = 0;
    qn_err_t rc = read_pem(cert_file, &cert, &cert_len, err);
    if (rc == QN_OK && key_file != NULL) {
        rc = read_pem(key_file, &key, &key_len, err);
    }
    if (rc == QN_OK) {
        rc = qn_jwt_signer_new(cert != NULL ? cert : "", cert_len, key, key_len, out, err);
    }
    if (cert != NULL) {
        OPENSSL_cleanse(cert, cert_len);
        qn_free(cert);
    }
    if (key != NULL) {
        OPENSSL_cleanse(key, key_len);
        qn_free(key);
    }
    return rc;
}

void qn_jwt_signer_free(struct qn_jwt_signer *signer)
{
    if (signer == NULL) {
        return;
    }
    EVP_PKEY_free(signer->pkey);
    qn_free(signer);
}

const char *qn_jwt_signer_x5t_s256(const struct qn_jwt_signer *signer)
{
    return signer->x5t_s256;
}

/* ---- signing ---- */

static qn_err_t sign(const struct qn_jwt_signer *s,
                     enum qn_jwt_alg alg,
                     const char *input,
                     size_t len,
                     struct qn_buf *out,
                     struct qn_error *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    EVP_PKEY_CTX *pctx = NULL;
    qn_err_t rc = QN_OK;
    char reason[160];
    if (md == NULL) {
        return qn_error_set(err, QN_ERR_NOMEM, "cannot allocate a digest context");
    }
    bool ok = EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, s->pkey) == 1;
    if (ok && alg == QN_JWT_PS256) {
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
    }
    ok = ok && EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)input, len) == 1;
    if (ok) {
        sig = qn_malloc(sig_len);
        ok = sig != NULL &&
             EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, len) == 1;
    }
    if (!ok) {
        openssl_reason(reason, sizeof(reason));
        rc = qn_error_set(err, QN_ERR_AUTH, "cannot sign the client assertion: %s", reason);
    } else {
        rc = qn_base64url_encode(out, sig, sig_len);
        if (rc != QN_OK) {
            qn_error_set(err, rc, "cannot encode the signature");
        }
    }
    qn_free(sig);
    EVP_MD_CTX_free(md);
    return rc;
}

qn_err_t qn_jwt_client_assertion(const struct qn_jwt_signer *signer,
                                 enum qn_jwt_alg alg,
                                 unsigned flags,
                                 const char *client_id,
                                 const char *audience,
                                 int64_t now_s,
                                 char **out,
                                 struct qn_error *err)
{
    char jti[QN_UUID_STR_LEN + 1];
    if (qn_uuid4(jti) != QN_OK) {
        return qn_error_set(err, QN_ERR_IO, "no randomness for the assertion id");
    }
    struct qn_buf header;
    struct qn_buf claims;
    struct qn_buf jws;
    qn_buf_init(&header, 1024);
    qn_buf_init(&claims, 8192);
    qn_buf_init(&jws, 32768);
    /* header */
    qn_err_t rc = qn_buf_printf(&header, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"x5t#S256\":\"%s\"",
                                alg == QN_JWT_PS256 ? "PS256" : "RS256", signer->x5t_s256);
    if (rc == QN_OK && (flags & QN_JWT_X5T_SHA1) != 0) {
        rc = qn_buf_printf(&header, ",\"x5t\":\"%s\"", signer->x5t_sha1);
    }
    if (rc == QN_OK) {
        rc = qn_buf_append_char(&header, '}');
    }
    /* claims */
    if (rc == QN_OK) {
        rc = qn_buf_append_str(&claims, "{\"aud\":");
    }
    if (rc == QN_OK) {
        rc = qn_buf_append_json_str(&claims, audience, strlen(audience));
    }
    if (rc == QN_OK) {
        rc = qn_buf_append_str(&claims, ",\"iss\":");
    }
    if (rc == QN_OK) {
        rc = qn_buf_append_json_str(&claims, client_id, strlen(client_id));
    }
    if (rc == QN_OK) {
        rc = qn_buf_append_str(&claims, ",\"sub\":");
    }
    if (rc == QN_OK) {
        rc = qn_buf_append_json_str(&claims, client_id, strlen(client_id));
    }
    if (rc == QN_OK) {
        rc = qn_buf_printf(
            &claims, ",\"jti\":\"%s\",\"nbf\":%" PRId64 ",\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}",
            jti, now_s, now_s, now_s + QN_JWT_LIFETIME_S);
    }
    /* signing input = b64(header) "." b64(claims) */
    if (rc == QN_OK) {
        rc = qn_base64url_encode(&jws, header.data, header.len);
    }
    if (rc == QN_OK) {
        rc = qn_buf_append_char(&jws, '.');
    }
    if (rc == QN_OK) {
        rc = qn_base64url_encode(&jws, claims.data, claims.len);
    }
    if (rc != QN_OK) {
        qn_error_set(err, rc, "client assertion too large");
    } else {
        size_t input_len = jws.len;
        rc = qn_buf_append_char(&jws, '.');
        if (rc == QN_OK) {
            rc = sign(signer, alg, jws.data, input_len, &jws, err);
        } else {
            qn_error_set(err, rc, "client assertion too large");
        }
    }
    qn_buf_fini(&header);
    qn_buf_fini(&claims);
    if (rc != QN_OK) {
        if (jws.data != NULL) {
            OPENSSL_cleanse(jws.data, jws.cap);
        }
        qn_buf_fini(&jws);
        return rc;
    }
    *out = qn_buf_detach(&jws, NULL);
    return QN_OK;
}
