/*
 * resid.h - strict parser for Azure Resource Manager resource ids, and URL path building.
 *
 * Grammar (keywords case-insensitive, no empty segments, no trailing slash):
 *   id       = "/subscriptions/" guid [ "/resourceGroups/" rg ] [ provider ]
 *            | provider                                   (tenant level, only if allowed)
 *   provider = "/providers/" namespace "/" type "/" name *( "/" type "/" name )
 *              *( "/providers/" namespace "/" type "/" name *( "/" type "/" name ) )
 * Segments may only use a conservative character set: anything that could smuggle a path or a
 * query into a URL (`..`, `.`, `?`, `#`, `%`, `\`, whitespace, control bytes, non-ASCII) is
 * rejected. The parsed value lives in caller storage and holds no pointers.
 */
#ifndef QN_RESID_H
#define QN_RESID_H

#include <stdbool.h>
#include <stddef.h>

#include "qn/buf.h"
#include "qn/err.h"

#define QN_RESID_MAX_LEN 1024

struct qn_resid {
    char subscription[37];   /* lower-case GUID, "" for tenant-level ids */
    char resource_group[91]; /* "" when absent */
    char provider[128];      /* namespace of the last provider, e.g. "Microsoft.Compute" */
    char type[256];          /* type path under it, e.g. "virtualMachines" or "a/b" */
    char name[261];          /* last name segment, "" for subscription or group ids */
    int depth;               /* number of (type, name) pairs under the last provider */
};

#define QN_RESID_ALLOW_TENANT 0x1

/*
 * @brief Parses @p id strictly. On failure @p err says which segment is wrong and why.
 * @returns QN_OK or QN_ERR_PARSE. @p out is written only on success.
 */
QN_NODISCARD qn_err_t qn_resid_parse(const char *id,
                                     int flags,
                                     struct qn_resid *out,
                                     struct qn_error *err);

/* @returns true if the id names a virtual machine (Microsoft.Compute/virtualMachines/{name}). */
bool qn_resid_is_vm(const struct qn_resid *rid);

/* @returns true for "/subscriptions/{id}" alone. */
bool qn_resid_is_subscription(const struct qn_resid *rid);

/* @returns true if @p s is a GUID in 8-4-4-4-12 hex form (either case). */
bool qn_is_guid(const char *s);

/*
 * Appends @p id to @p out as a URL path, percent-encoding every byte of every segment that is not
 * an RFC 3986 unreserved character. The id must have passed qn_resid_parse.
 */
QN_NODISCARD qn_err_t qn_resid_append_path(struct qn_buf *out, const char *id);

#endif
