/*
 * main.c - the quench command line: `run` (the worker), `plan` (offline preview), `check-config`,
 * `replay-dlq` (replay_dlq.h) and `version`. The only place that chooses an exit status: 0 ok,
 * 1 usage or input error, 70 fatal runtime error, 78 bad configuration.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "pipeline.h"
#include "plan_cmd.h"
#include "qn/log.h"
#include "qn/mem.h"
#include "replay_dlq.h"
#include "version.h"

extern char **environ;

#define EXIT_USAGE  1
#define EXIT_CONFIG 78

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: quench run --config FILE        run the worker\n"
        "       quench plan [--config FILE] [FILE|-]\n"
        "                                        print the outcome events a value would produce\n"
        "       quench check-config FILE        validate a config and print it, secrets redacted\n"
        "       quench replay-dlq --config FILE [--reason CODE]... [--dry-run] [--max N]\n"
        "                                        re-send dead-lettered records to their topic\n"
        "       quench version\n"
        "Environment variables QUENCH_* override the file (QUENCH_KAFKA_<PROP> sets "
        "kafka.<prop>).\n");
}

/* Parses "[--config FILE] [ARG]" after the subcommand. */
static int parse_args(int argc, char **argv, const char **config, const char **arg)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
            if (i + 1 >= argc) {
                return -1;
            }
            *config = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            *config = argv[i] + 9;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return -1;
        } else if (*arg == NULL) {
            *arg = argv[i];
        } else {
            return -1;
        }
    }
    return 0;
}

static int load(const char *path, int flags, struct qn_config **cfg)
{
    struct qn_error err = {0};
    if (qn_config_load_flags(path, environ, flags, cfg, &err) != QN_OK) {
        QN_LOG_ERROR("config", "%s", err.msg);
        fprintf(stderr, "quench: %s\n", err.msg);
        return EXIT_CONFIG;
    }
    if (qn_log_set_level_name((*cfg)->log_level) != QN_OK) {
        qn_config_free(*cfg);
        return EXIT_CONFIG;
    }
    return 0;
}

static int cmd_run(const char *config)
{
    struct qn_config *cfg = NULL;
    if (config == NULL) {
        fprintf(stderr, "quench run: --config FILE is required\n");
        return EXIT_USAGE;
    }
    int rc = load(config, 0, &cfg);
    if (rc != 0) {
        return rc;
    }
    rc = qn_pipeline_run(cfg);
    qn_config_free(cfg);
    return rc;
}

static int cmd_plan(const char *config, const char *input)
{
    struct qn_config *cfg = NULL;
    int rc = load(config, QN_CONFIG_OFFLINE, &cfg);
    if (rc != 0) {
        return rc;
    }
    rc = qn_plan_cmd_run(cfg, input != NULL ? input : "-", stdout);
    qn_config_free(cfg);
    return rc;
}

static int cmd_check_config(const char *config)
{
    struct qn_config *cfg = NULL;
    if (config == NULL) {
        fprintf(stderr, "quench check-config: a config FILE is required\n");
        return EXIT_USAGE;
    }
    int rc = load(config, 0, &cfg);
    if (rc != 0) {
        return rc;
    }
    struct qn_buf out;
    qn_buf_init(&out, 1024 * 1024);
    if (qn_config_render_redacted(cfg, &out) == QN_OK) {
        printf("%s\n", qn_buf_cstr(&out));
    } else {
        rc = EXIT_CONFIG;
    }
    qn_buf_fini(&out);
    qn_config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    qn_mem_install_cjson_hooks();
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    const char *config = NULL;
    const char *arg = NULL;
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("quench %s\n", qn_worker_version());
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "replay-dlq") == 0) {
        return qn_replay_dlq_main(argc - 1, argv + 1, environ);
    }
    if (parse_args(argc, argv, &config, &arg) != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "run") == 0 && arg == NULL) {
        return cmd_run(config);
    }
    if (strcmp(cmd, "plan") == 0) {
        return cmd_plan(config, arg);
    }
    if (strcmp(cmd, "check-config") == 0) {
        return cmd_check_config(config != NULL ? config : arg);
    }
    usage(stderr);
    return EXIT_USAGE;
}
