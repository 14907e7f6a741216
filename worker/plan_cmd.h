/*
 * plan_cmd.h - `quench plan [FILE|-]`: the worker's decoding and planning, offline. Reads one
 * input value (any envelope) and prints the outcome events the worker would publish, one
 * CloudEvent per line, on stdout. Diagnostics go to stderr.
 */
#ifndef QN_PLAN_CMD_H
#define QN_PLAN_CMD_H

#include <stdio.h>

#include "config.h"

/* @returns 0 if the input could be read (even with rejected records), 1 otherwise. */
int qn_plan_cmd_run(const struct qn_config *cfg, const char *path, FILE *out);

#endif
