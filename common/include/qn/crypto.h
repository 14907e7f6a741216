/*
 * crypto.h - hashing helpers over OpenSSL: deterministic ids for events and tasks.
 */
#ifndef QN_CRYPTO_H
#define QN_CRYPTO_H

#include <stddef.h>

#include "qn/err.h"

#define QN_ID_HEX_LEN 32

/* Writes the lower-case hex SHA-256 of @p data into @p out (65 bytes with the NUL). */
void qn_sha256_hex(const void *data, size_t len, char out[65]);

/*
 * Writes a deterministic 32-hex-digit id into @p out (33 bytes) from the NULL-terminated list of
 * strings: SHA-256 over the parts joined with the unit separator 0x1f, truncated to 128 bits.
 */
void qn_derive_id(char out[QN_ID_HEX_LEN + 1], const char *first, ...);

#endif
