/*
 * version.c - the worker's version string, in one place for --version, logs and /metrics.
 */
#include "version.h"

const char *qn_worker_version(void)
{
    return QN_VERSION;
}
