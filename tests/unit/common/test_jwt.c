/*
 * test_jwt.c - unit tests for base64url and the certificate client assertion.
 *
 * An RSA certificate and key are made with `openssl req` at group setup. Each assertion is
 * parsed back: the header and claims are decoded and checked field by field, the thumbprint is
 * recomputed from the certificate, and the signature is verified with OpenSSL against the
 * certificate's public key (PKCS#1 v1.5 for RS256, PSS for PS256).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "../../support/test_server.c"
#include "qn/buf.h"
#include "qn/jwt.h"
#include "qn/mem.h"

#define CLIENT_ID "11111111-2222-4333-8444-555555555555"
#define TOKEN_URL "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
#define NOW_S     1700000000LL

static struct ts_certs certs;

static int group_setup(void **state)
{
    (void)state;
    return ts_certs_make(&certs, true);
}

static int group_teardown(void **state)
{
    (void)state;
    ts_certs_remove(&certs);
    return 0;
}

static void test_base64url_round_trip(void **state)
{
    (void)state;
    unsigned char data[64];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (unsigned char)(0xff - i * 7);
    }
    for (size_t len = 0; len <= sizeof(data); len++) {
        struct qn_buf enc;
        struct qn_buf dec;
        qn_buf_init(&enc, 1024);
        qn_buf_init(&dec, 1024);
        assert_int_equal(qn_base64url_encode(&enc, data, len), QN_OK);
        const char *s = qn_buf_cstr(&enc);
        assert_null(strpbrk(s, "+/="));
        assert_int_equal(qn_base64url_decode(&dec, s, enc.len), QN_OK);
        assert_int_equal(dec.len, len);
        if (len > 0) {
            assert_memory_equal(dec.data, data, len);
        }
        qn_buf_fini(&enc);
        qn_buf_fini(&dec);
    }
    struct qn_buf b;
    qn_buf_init(&b, 64);
    assert_int_equal(qn_base64url_encode(&b, "\xfb\xff", 2), QN_OK);
    assert_string_equal(qn_buf_cstr(&b), "-_8");
    qn_buf_reset(&b);
    assert_int_equal(qn_base64url_decode(&b, "a+b/", 4), QN_ERR_PARSE);
    assert_int_equal(qn_base64url_decode(&b, "abcde", 5), QN_ERR_PARSE);
    qn_buf_reset(&b);
    assert_int_equal(qn_base64url_decode(&b, "TWE=", 4), QN_OK); /* padding tolerated */
    assert_string_equal(qn_buf_cstr(&b), "Ma");
    qn_buf_fini(&b);
}

/* Decodes one base64url JWT part into a parsed JSON object. */
static cJSON *decode_part(const char *s, size_t len)
{
    struct qn_buf b;
    qn_buf_init(&b, 65536);
    assert_int_equal(qn_base64url_decode(&b, s, len), QN_OK);
    cJSON *json = cJSON_ParseWithLength(b.data, b.len);
    qn_buf_fini(&b);
    assert_non_null(json);
    return json;
}

static X509 *load_cert(void)
{
    FILE *f = fopen(certs.rsa_cert, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static void expected_x5t(X509 *x, const EVP_MD *md, char *out, size_t size)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    assert_int_equal(EVP_Digest(der, (size_t)n, digest, &dlen, md, NULL), 1);
    OPENSSL_free(der);
    struct qn_buf b;
    qn_buf_init(&b, 128);
    assert_int_equal(qn_base64url_encode(&b, digest, dlen), QN_OK);
    snprintf(out, size, "%s", qn_buf_cstr(&b));
    qn_buf_fini(&b);
}

static bool verify_signature(
    X509 *x, bool pss, const char *input, size_t input_len, const char *sig_b64, size_t sig_len)
{
    struct qn_buf sig;
    qn_buf_init(&sig, 4096);
    assert_int_equal(qn_base64url_decode(&sig, sig_b64, sig_len), QN_OK);
    EVP_PKEY *pub = X509_get_pubkey(x);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_int_equal(EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pub), 1);
    if (pss) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
    }
    int ok = EVP_DigestVerify(md, (const unsigned char *)sig.data, sig.len,
                              (const unsigned char *)input, input_len);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pub);
    qn_buf_fini(&sig);
    return ok == 1;
}

static bool is_uuid4(const char *s)
{
    if (strlen(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') {
        return false;
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static void check_assertion(const char *jwt, bool pss, bool sha1)
{
    const char *dot1 = strchr(jwt, '.');
    assert_non_null(dot1);
    const char *dot2 = strchr(dot1 + 1, '.');
    assert_non_null(dot2);
    assert_null(strchr(dot2 + 1, '.'));

    X509 *x = load_cert();
    char x5t256[64];
    char x5t1[64];
    expected_x5t(x, EVP_sha256(), x5t256, sizeof(x5t256));
    expected_x5t(x, EVP_sha1(), x5t1, sizeof(x5t1));

    cJSON *header = decode_part(jwt, (size_t)(dot1 - jwt));
    assert_string_equal(cJSON_GetObjectItem(header, "alg")->valuestring, pss ? "PS256" : "RS256");
    assert_string_equal(cJSON_GetObjectItem(header, "typ")->valuestring, "JWT");
    assert_string_equal(cJSON_GetObjectItem(header, "x5t#S256")->valuestring, x5t256);
    if (sha1) {
        assert_string_equal(cJSON_GetObjectItem(header, "x5t")->valuestring, x5t1);
    } else {
        assert_null(cJSON_GetObjectItem(header, "x5t"));
    }
    cJSON_Delete(header);

    cJSON *claims = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    assert_string_equal(cJSON_GetObjectItem(claims, "aud")->valuestring, TOKEN_URL);
    assert_string_equal(cJSON_GetObjectItem(claims, "iss")->valuestring, CLIENT_ID);
    assert_string_equal(cJSON_GetObjectItem(claims, "sub")->valuestring, CLIENT_ID);
    assert_true(is_uuid4(cJSON_GetObjectItem(claims, "jti")->valuestring));
    assert_true(cJSON_GetObjectItem(claims, "nbf")->valuedouble == (double)NOW_S);
    assert_true(cJSON_GetObjectItem(claims, "iat")->valuedouble == (double)NOW_S);
    assert_true(cJSON_GetObjectItem(claims, "exp")->valuedouble == (double)(NOW_S + 600));
    cJSON_Delete(claims);

    size_t input_len = (size_t)(dot2 - jwt);
    assert_true(verify_signature(x, pss, jwt, input_len, dot2 + 1, strlen(dot2 + 1)));
    /* a changed claim no longer verifies */
    char *tampered = qn_strdup(jwt);
    tampered[dot1 - jwt + 5] = tampered[dot1 - jwt + 5] == 'A' ? 'B' : 'A';
    assert_false(verify_signature(x, pss, tampered, input_len, dot2 + 1, strlen(dot2 + 1)));
    qn_free(tampered);
    X509_free(x);
}

static void test_rs256_assertion_verifies(void **state)
{
    (void)state;
    struct qn_jwt_signer *s = NULL;
    struct qn_error err = {0};
    assert_int_equal(qn_jwt_signer_load(certs.rsa_cert, certs.rsa_key, &s, &err), QN_OK);
    char *jwt = NULL;
    assert_int_equal(
        qn_jwt_client_assertion(s, QN_JWT_RS256, 0, CLIENT_ID, TOKEN_URL, NOW_S, &jwt, &err),
        QN_OK);
    check_assertion(jwt, false, false);
    /* every assertion has its own jti */
    char *jwt2 = NULL;
    assert_int_equal(
        qn_jwt_client_assertion(s, QN_JWT_RS256, 0, CLIENT_ID, TOKEN_URL, NOW_S, &jwt2, &err),
        QN_OK);
    assert_string_not_equal(jwt, jwt2);
    qn_free_secret(jwt);
    qn_free_secret(jwt2);
    qn_jwt_signer_free(s);
}

static void test_ps256_assertion_with_sha1_thumbprint(void **state)
{
    (void)state;
    /* key and certificate in one PEM file */
    char both[192];
    snprintf(both, sizeof(both), "%s/both.pem", certs.dir);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cat %s %s > %s", certs.rsa_cert, certs.rsa_key, both);
    assert_int_equal(system(cmd), 0);
    struct qn_jwt_signer *s = NULL;
    struct qn_error err = {0};
    assert_int_equal(qn_jwt_signer_load(both, NULL, &s, &err), QN_OK);
    unlink(both);
    char *jwt = NULL;
    assert_int_equal(qn_jwt_client_assertion(s, QN_JWT_PS256, QN_JWT_X5T_SHA1, CLIENT_ID, TOKEN_URL,
                                             NOW_S, &jwt, &err),
                     QN_OK);
    check_assertion(jwt, true, true);
    qn_free_secret(jwt);
    qn_jwt_signer_free(s);
}

static void test_claims_are_json_escaped(void **state)
{
    (void)state;
    struct qn_jwt_signer *s = NULL;
    assert_int_equal(qn_jwt_signer_load(certs.rsa_cert, certs.rsa_key, &s, NULL), QN_OK);
    char *jwt = NULL;
    const char *aud = "https://x/\"},\"admin\":true,\"a\":{\"";
    assert_int_equal(qn_jwt_client_assertion(s, QN_JWT_RS256, 0, CLIENT_ID, aud, NOW_S, &jwt, NULL),
                     QN_OK);
    const char *dot1 = strchr(jwt, '.');
    const char *dot2 = strchr(dot1 + 1, '.');
    cJSON *claims = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    assert_string_equal(cJSON_GetObjectItem(claims, "aud")->valuestring, aud);
    assert_null(cJSON_GetObjectItem(claims, "admin"));
    cJSON_Delete(claims);
    qn_free_secret(jwt);
    qn_jwt_signer_free(s);
}

static void test_signer_rejects_bad_material(void **state)
{
    (void)state;
    struct qn_jwt_signer *s = NULL;
    struct qn_error err = {0};
    /* key does not match the certificate */
    assert_int_equal(qn_jwt_signer_load(certs.rsa_cert, certs.key, &s, &err), QN_ERR_CONFIG);
    assert_null(s);
    /* EC keys cannot make RS256 */
    assert_int_equal(qn_jwt_signer_load(certs.cert, certs.key, &s, &err), QN_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "RSA"));
    /* a certificate file without a key */
    assert_int_equal(qn_jwt_signer_load(certs.rsa_cert, NULL, &s, &err), QN_ERR_CONFIG);
    /* missing files and garbage */
    assert_int_equal(qn_jwt_signer_load("/nonexistent/cert.pem", NULL, &s, &err), QN_ERR_CONFIG);
    assert_int_equal(qn_jwt_signer_new("garbage", 7, NULL, 0, &s, &err), QN_ERR_CONFIG);
    assert_null(s);
    qn_jwt_signer_free(NULL);
}

static void test_thumbprint_matches_certificate(void **state)
{
    (void)state;
    struct qn_jwt_signer *s = NULL;
    assert_int_equal(qn_jwt_signer_load(certs.rsa_cert, certs.rsa_key, &s, NULL), QN_OK);
    X509 *x = load_cert();
    char expected[64];
    expected_x5t(x, EVP_sha256(), expected, sizeof(expected));
    assert_string_equal(qn_jwt_signer_x5t_s256(s), expected);
    assert_int_equal(strlen(expected), 43);
    X509_free(x);
    qn_jwt_signer_free(s);
}

int main(void)
{
    qn_mem_install_cjson_hooks();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64url_round_trip),
        cmocka_unit_test(test_rs256_assertion_verifies),
        cmocka_unit_test(test_ps256_assertion_with_sha1_thumbprint),
        cmocka_unit_test(test_claims_are_json_escaped),
        cmocka_unit_test(test_signer_rejects_bad_material),
        cmocka_unit_test(test_thumbprint_matches_certificate),
    };
    return cmocka_run_group_tests_name("jwt", tests, group_setup, group_teardown);
}
