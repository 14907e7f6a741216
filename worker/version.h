/*
 * version.h - the worker's version string.
 */
#ifndef QN_WORKER_VERSION_H
#define QN_WORKER_VERSION_H

/* @returns the static version string, e.g. "0.1.0". */
const char *qn_worker_version(void);

#endif
