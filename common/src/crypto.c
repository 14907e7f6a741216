/*
 * crypto.c - SHA-256 helpers (OpenSSL EVP) for deterministic event and task ids.
 */
#include "qn/crypto.h"

#include <stdarg.h>
#include <string.h>

#include <openssl/evp.h>

#include "qn/err.h"

static void to_hex(const unsigned char *digest, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0xf];
    }
    out[2 * n] = '\0';
}

void qn_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    int ok = EVP_Digest(data, len, digest, &digest_len, EVP_sha256(), NULL);
    QN_ASSERT(ok == 1 && digest_len == 32);
    to_hex(digest, 32, out);
}

void qn_derive_id(char out[QN_ID_HEX_LEN + 1], const char *first, ...)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    QN_ASSERT(ctx != NULL);
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    va_list ap;
    va_start(ap, first);
    const char *part = first;
    int index = 0;
    while (part != NULL) {
        if (index++ > 0) {
            ok &= EVP_DigestUpdate(ctx, "\x1f", 1);
        }
        ok &= EVP_DigestUpdate(ctx, part, strlen(part));
        part = va_arg(ap, const char *);
    }
    va_end(ap);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    ok &= EVP_DigestFinal_ex(ctx, digest, &digest_len);
    EVP_MD_CTX_free(ctx);
    QN_ASSERT(ok == 1);
    to_hex(digest, QN_ID_HEX_LEN / 2, out);
}
