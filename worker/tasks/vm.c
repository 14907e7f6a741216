/*
 * vm.c - the virtual-machine tasks: vm_reset_passwords and vm_antimalware_scan (Compute run
 * command) and vm_reimage (Compute reimage). DESIGN.md's "Virtual machines" step.
 *
 * Each task is a reconciler with the same check step: read the VM (GET, $expand=instanceView, to
 * learn its OS type, power state and tags), then the tags of its resource group and subscription
 * (Tags_GetAtScope), and stop as SKIPPED if any of the three carries a protected tag. Then it
 * acts once (qn_task_may_write immediately before the write) and verifies the long-running
 * result: the run command's output, or the reimaged VM read back.
 *
 * Run-command scripts are constants of this file (the scanner command comes from configuration):
 * nothing from the alert is ever put into script text. The password script makes every new
 * password on the VM itself (Linux: /dev/urandom into chpasswd; Windows: the OS CSPRNG into a
 * SecureString) and prints only account names, so no secret passes through quench, its events
 * or its logs. Neither the password change, the scan nor the reimage can be undone: undo is null
 * and the evidence says why.
 *
 * A VM runs one run command at a time and refuses other actions meanwhile (409 Conflict), and one
 * alert plans a password change and a scan on the same VM, in parallel. So this file queues its
 * own writes per VM: a task whose VM has a write of ours in flight waits (still running) until
 * that write's completion starts it. The queue is file-local state; it is safe because tasks only
 * run on the engine's single loop thread. A holder older than LOCK_STALE_MS (its engine was freed
 * with the call in flight, so no completion will come) is dropped.
 *
 * Ownership: a task's `priv` is its struct vm_job, freed by finish() before qn_task_finish.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "qn/azure_auth.h"
#include "qn/buf.h"
#include "qn/crypto.h"
#include "qn/http.h"
#include "qn/log.h"
#include "qn/loop.h"
#include "qn/mem.h"
#include "qn/resid.h"
#include "tasks.h"

/* api-versions from reference/azure/operations.json */
#define COMPUTE_API_VERSION "2024-11-01" /* VirtualMachines_Get, _RunCommand, _Reimage */
#define TAGS_API_VERSION    "2021-04-01" /* Tags_GetAtScope */

#define PATH_MAX_BYTES   8192
#define OUTPUT_MAX_BYTES 4096 /* kept of each of stdout and stderr (Azure keeps 4096 too) */
#define MAX_USERS        64   /* names listed in the event */
#define LOCK_SLOTS       64
#define LOCK_STALE_MS    (6LL * 3600 * 1000)
#define MESSAGE_BYTES    768

/* ---- run-command scripts --------------------------------------------------------------------- */

/*
 * Constants only. Every account name printed is one line of stdout; failures go to stderr as
 * "quench: ..." lines. The scripts always exit 0 so that a partial failure still returns the
 * names already changed (a non-zero exit can turn the whole run command into a failed operation).
 */

static const char *const linux_password_script[] = {
    "#!/bin/sh",
    "# quench vm_reset_passwords: a new random password for every local interactive account",
    "# (root, and UID >= 1000 with a login shell). Each password is made here from /dev/urandom",
    "# and goes only to chpasswd through a pipe; only account names are printed.",
    "export LC_ALL=C",
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
    "umask 077",
    "login_shell() {",
    "  case \"$1\" in ''|*/nologin|*/false) return 1 ;; esac",
    "  [ -r /etc/shells ] || return 0",
    "  grep -qxF -- \"$1\" /etc/shells",
    "}",
    "while IFS=: read -r name _ uid _ _ _ shell <&3; do",
    "  case \"$uid\" in ''|*[!0-9]*) continue ;; esac",
    "  if [ \"$uid\" -ne 0 ]; then",
    "    if [ \"$uid\" -lt 1000 ] || [ \"$uid\" -eq 65534 ]; then continue; fi",
    "    login_shell \"$shell\" || continue",
    "  fi",
    "  locked=0",
    "  case \"$(getent shadow \"$name\" 2>/dev/null | cut -d: -f2)\" in",
    "    '!'*|'*'*) locked=1 ;;",
    "  esac",
    "  pw=$(tr -dc 'A-Za-z0-9' </dev/urandom 2>/dev/null | head -c 32)",
    "  if [ \"${#pw}\" -eq 32 ] &&",
    "     printf '%s:%s\\n' \"$name\" \"$pw\" | chpasswd >/dev/null 2>&1 &&",
    "     { [ \"$locked\" -eq 0 ] || usermod -L \"$name\" >/dev/null 2>&1; }; then",
    "    printf '%s\\n' \"$name\"",
    "  else",
    "    printf 'quench: could not change the password of %s\\n' \"$name\" >&2",
    "  fi",
    "  pw=",
    "done 3</etc/passwd",
    "exit 0",
};

static const char *const windows_password_script[] = {
    "# quench vm_reset_passwords: a new random password for every enabled local account.",
    "# Each password is drawn here from the OS CSPRNG straight into a SecureString; only account",
    "# names are printed. A domain controller's accounts are domain accounts: it is refused.",
    "$ErrorActionPreference = 'Stop'",
    "if ((Get-CimInstance -ClassName Win32_ComputerSystem).DomainRole -ge 4) {",
    "  [Console]::Error.WriteLine('quench: this machine is a domain controller; nothing changed')",
    "  exit 0",
    "}",
    "$alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'",
    "$rng = [System.Security.Cryptography.RandomNumberGenerator]::Create()",
    "$bytes = New-Object byte[] 32",
    "foreach ($user in @(Get-LocalUser | Where-Object { $_.Enabled })) {",
    "  try {",
    "    do {",
    "      $rng.GetBytes($bytes)",
    "      $upper = $false; $lower = $false; $digit = $false",
    "      foreach ($b in $bytes) {",
    "        $i = $b % 64",
    "        if ($i -lt 26) { $upper = $true }",
    "        if ($i -ge 26 -and $i -lt 52) { $lower = $true }",
    "        if ($i -ge 52 -and $i -lt 62) { $digit = $true }",
    "      }",
    "    } until ($upper -and $lower -and $digit)",
    "    $secret = New-Object System.Security.SecureString",
    "    foreach ($b in $bytes) { $secret.AppendChar($alphabet[$b % 64]) }",
    "    $secret.MakeReadOnly()",
    "    Set-LocalUser -InputObject $user -Password $secret",
    "    Write-Output $user.Name",
    "  } catch {",
    "    [Console]::Error.WriteLine('quench: could not change the password of ' + $user.Name +",
    "                               ': ' + $_.Exception.Message)",
    "  } finally {",
    "    [Array]::Clear($bytes, 0, $bytes.Length)",
    "    if ($secret) { $secret.Dispose(); $secret = $null }",
    "  }",
    "}",
    "exit 0",
};

#define NLINES(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the job --------------------------------------------------------------------------------- */

struct vm_job {
    struct qn_task *task;
    struct qn_resid rid;
    char os_type[16];    /* "Linux" | "Windows" | "" */
    char power[48];      /* "running", "deallocated", ... or "" when not reported */
    char *os_disk;       /* properties.storageProfile.osDisk.managedDisk.id (or name) before */
    char *body;          /* the write's request body */
    char lock_key[65];   /* SHA-256 of the lower-cased VM id */
    bool locked;         /* holds its VM's slot */
    struct vm_job *next; /* next waiter on the same VM */
};

static void send_write(struct vm_job *job);

static void free_job(struct vm_job *job)
{
    if (job == NULL) {
        return;
    }
    qn_free(job->os_disk);
    qn_free(job->body);
    qn_free(job);
}

/* ---- per-VM write queue ---------------------------------------------------------------------- */

struct vm_lock {
    char key[65]; /* "" = free slot */
    struct vm_job *holder;
    int64_t since_ms;
    struct vm_job *head; /* waiters, first in first out */
    struct vm_job *tail;
};

static struct vm_lock locks[LOCK_SLOTS];

static void make_lock_key(const char *vm_id, char out[65])
{
    char lower[QN_RESID_MAX_LEN + 1];
    size_t n = 0;
    for (; vm_id[n] != '\0' && n < QN_RESID_MAX_LEN; n++) {
        char c = vm_id[n];
        lower[n] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    lower[n] = '\0';
    qn_sha256_hex(lower, n, out);
}

static struct vm_lock *find_lock(const char *key)
{
    for (int i = 0; i < LOCK_SLOTS; i++) {
        if (strcmp(locks[i].key, key) == 0) {
            return &locks[i];
        }
    }
    return NULL;
}

/*
 * Takes the VM's slot for @p job. @returns true if the job may write now; false if it was queued
 * behind a write in flight (send_write will be called when its turn comes).
 */
static bool acquire(struct vm_job *job)
{
    struct vm_lock *lock = find_lock(job->lock_key);
    if (lock != NULL && lock->holder != NULL && qn_clock_ms() - lock->since_ms > LOCK_STALE_MS) {
        QN_LOG_WARN("task", "task %s: dropping a stale VM write slot", job->task->id);
        memset(lock, 0, sizeof(*lock));
        lock = NULL;
    }
    if (lock != NULL) {
        job->next = NULL;
        if (lock->tail != NULL) {
            lock->tail->next = job;
        } else {
            lock->head = job;
        }
        lock->tail = job;
        qn_task_add_evidence(job->task, "arm", "VM operations", NULL,
                             "waited for another write of quench on this VM to finish (a VM runs "
                             "one operation at a time)");
        return false;
    }
    for (int i = 0; i < LOCK_SLOTS; i++) {
        if (locks[i].key[0] == '\0') {
            memcpy(locks[i].key, job->lock_key, sizeof(locks[i].key));
            locks[i].holder = job;
            locks[i].since_ms = qn_clock_ms();
            locks[i].head = locks[i].tail = NULL;
            job->locked = true;
            return true;
        }
    }
    return true; /* every slot busy: write unqueued; Azure answers 409 if the VM is busy */
}

/* Gives up @p job's slot and starts the next waiter's write, if any. */
static void release(struct vm_job *job)
{
    if (!job->locked) {
        return;
    }
    job->locked = false;
    struct vm_lock *lock = find_lock(job->lock_key);
    if (lock == NULL || lock->holder != job) {
        return;
    }
    struct vm_job *next = lock->head;
    if (next == NULL) {
        memset(lock, 0, sizeof(*lock));
        return;
    }
    lock->head = next->next;
    if (lock->head == NULL) {
        lock->tail = NULL;
    }
    next->next = NULL;
    lock->holder = next;
    lock->since_ms = qn_clock_ms();
    next->locked = true;
    send_write(next);
}

/* ---- finishing ------------------------------------------------------------------------------- */

/* Frees the job (releasing its VM slot), then ends the task with a formatted message. */
static void finish(struct vm_job *job, enum qn_task_state state, const char *fmt, ...)
    QN_PRINTF(3, 4);

static void finish(struct vm_job *job, enum qn_task_state state, const char *fmt, ...)
{
    char message[MESSAGE_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (n < 0) {
        message[0] = '\0';
    }
    struct qn_task *task = job->task;
    task->priv = NULL;
    release(job);
    free_job(job);
    qn_task_finish(task, state, message);
}

/* The message of a failed call, for the event. */
static const char *call_error(const struct qn_error *err)
{
    return err->msg[0] != '\0' ? err->msg : qn_err_str(err->code);
}

/* ---- JSON helpers ---------------------------------------------------------------------------- */

static cJSON *parse_body(const struct qn_http_result *res)
{
    if (res == NULL || res->body == NULL || res->body->len == 0) {
        return NULL;
    }
    return cJSON_ParseWithLength(qn_buf_cstr(res->body), res->body->len);
}

static const char *json_str(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static const cJSON *json_path(const cJSON *obj, const char *a, const char *b, const char *c)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, a);
    if (b != NULL) {
        item = cJSON_GetObjectItemCaseSensitive(item, b);
    }
    if (c != NULL) {
        item = cJSON_GetObjectItemCaseSensitive(item, c);
    }
    return item;
}

/* Adds @p value under @p name unless it is NULL. */
static void add_str(cJSON *obj, const char *name, const char *value)
{
    if (value != NULL) {
        cJSON_AddStringToObject(obj, name, value);
    }
}

static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = src != NULL ? strnlen(src, size - 1) : 0;
    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

/* ---- paths and calls ------------------------------------------------------------------------- */

/* Starts a GET of the VM itself (@p expand may be NULL). @returns QN_OK or the error. */
static qn_err_t get_vm(struct vm_job *job, const char *expand, qn_task_call_fn fn)
{
    struct qn_buf path;
    qn_buf_init(&path, PATH_MAX_BYTES);
    struct qn_error err = {0};
    qn_err_t rc =
        qn_azure_arm_path(&path, job->task->target_id, 0, NULL, COMPUTE_API_VERSION, &err);
    if (rc == QN_OK && expand != NULL) {
        rc = qn_http_query_append(&path, "$expand", expand);
    }
    if (rc == QN_OK) {
        rc = qn_task_call(job->task, QN_AZURE_ARM, "GET", qn_buf_cstr(&path), NULL, 0, fn, job);
    }
    qn_buf_fini(&path);
    return rc;
}

/* Starts Tags_GetAtScope on @p scope_id (a subscription or resource group id). */
static qn_err_t get_tags(struct vm_job *job, const char *scope_id, qn_task_call_fn fn)
{
    struct qn_buf path;
    qn_buf_init(&path, PATH_MAX_BYTES);
    struct qn_error err = {0};
    qn_err_t rc = qn_azure_arm_path(
        &path, scope_id, 0, "/providers/Microsoft.Resources/tags/default", TAGS_API_VERSION, &err);
    if (rc == QN_OK) {
        rc = qn_task_call(job->task, QN_AZURE_ARM, "GET", qn_buf_cstr(&path), NULL, 0, fn, job);
    }
    qn_buf_fini(&path);
    return rc;
}

/* ---- run-command output ---------------------------------------------------------------------- */

struct run_output {
    struct qn_buf out; /* all of stdout */
    struct qn_buf err; /* all of stderr */
    bool failed;       /* a status said the command failed on the VM */
    bool lost;         /* some output could not be kept (memory) */
    char status[128];  /* displayStatus of the failing status, if any */
};

static void append(struct run_output *o, struct qn_buf *buf, const char *s, size_t len)
{
    if (qn_buf_append(buf, s, len) != QN_OK) {
        o->lost = true;
    }
}

/*
 * Splits a Linux-style status message "Enable succeeded: \n[stdout]\n...\n[stderr]\n..." into
 * its parts; a message without both markers is all stdout.
 */
static void split_sections(struct run_output *o, const char *msg)
{
    const char *so = strstr(msg, "[stdout]\n");
    const char *se = so != NULL ? strstr(so, "[stderr]\n") : NULL;
    if (so == NULL || se == NULL) {
        append(o, &o->out, msg, strlen(msg));
        return;
    }
    so += strlen("[stdout]\n");
    append(o, &o->out, so, (size_t)(se - so));
    se += strlen("[stderr]\n");
    append(o, &o->err, se, strlen(se));
}

/*
 * Reads a RunCommandResult: {"value":[{code,level,displayStatus,message}]} (the 200 answer or
 * the Location result), or the same under properties.output (the Azure-AsyncOperation status).
 */
static void read_run_output(const cJSON *body, struct run_output *o)
{
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(body, "value");
    if (!cJSON_IsArray(value)) {
        value = json_path(body, "properties", "output", "value");
    }
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, value)
    {
        const char *code = json_str(item, "code");
        const char *level = json_str(item, "level");
        const char *msg = json_str(item, "message");
        if (code == NULL) {
            code = "";
        }
        size_t clen = strlen(code);
        bool failed = (clen >= 7 && strcasecmp(code + clen - 7, "/failed") == 0) ||
                      (level != NULL && strcasecmp(level, "Error") == 0);
        if (failed && !o->failed) {
            o->failed = true;
            const char *ds = json_str(item, "displayStatus");
            copy_str(o->status, sizeof(o->status), ds != NULL ? ds : code);
        }
        if (msg == NULL || msg[0] == '\0') {
            continue;
        }
        /* Windows answers with StdOut and StdErr statuses; Linux with one ProvisioningState
         * status whose message holds both as "[stdout]" and "[stderr]" sections */
        if (strstr(code, "StdErr") != NULL) {
            append(o, &o->err, msg, strlen(msg));
        } else {
            split_sections(o, msg);
        }
    }
}

/* The last OUTPUT_MAX_BYTES of @p buf, cut at a UTF-8 character boundary. */
static cJSON *tail_string(const struct qn_buf *buf, bool *truncated)
{
    const char *s = qn_buf_cstr(buf);
    size_t start = 0;
    if (buf->len > OUTPUT_MAX_BYTES) {
        start = buf->len - OUTPUT_MAX_BYTES;
        while (start < buf->len && ((unsigned char)s[start] & 0xC0) == 0x80) {
            start++;
        }
        *truncated = true;
    }
    return cJSON_CreateString(s + start);
}

/* Records detail.output {stdout, stderr, truncated?} and the request's shape. */
static void record_output(struct qn_task *task, const struct run_output *o)
{
    cJSON *output = cJSON_CreateObject();
    if (output == NULL) {
        return;
    }
    bool truncated = false;
    cJSON_AddItemToObject(output, "stdout", tail_string(&o->out, &truncated));
    cJSON_AddItemToObject(output, "stderr", tail_string(&o->err, &truncated));
    if (truncated || o->lost) {
        cJSON_AddBoolToObject(output, "truncated", true);
        cJSON_AddNumberToObject(output, "stdoutBytes", (double)o->out.len);
        cJSON_AddNumberToObject(output, "stderrBytes", (double)o->err.len);
    }
    if (o->failed) {
        cJSON_AddStringToObject(output, "failedStatus", o->status);
    }
    qn_task_add_detail(task, "output", output);
}

/* @returns true if @p s (length @p len) can be a local account name. */
static bool plausible_name(const char *s, size_t len)
{
    if (len == 0 || len > 64 || s[0] == ' ' || s[len - 1] == ' ') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || strchr("\"/\\[];|=,+*?<>", c) != NULL) {
            return false;
        }
    }
    return true;
}

/*
 * The account names in the password script's stdout: one a line (a passwd-style line counts by
 * its first field). Lines that cannot be a name are left out. @returns the number of names.
 */
static int collect_names(const struct qn_buf *out, cJSON *names)
{
    int count = 0;
    const char *p = qn_buf_cstr(out);
    while (*p != '\0') {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        const char *line = p;
        p += len + (eol != NULL ? 1 : 0);
        while (len > 0 &&
               (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t')) {
            len--;
        }
        while (len > 0 && (*line == ' ' || *line == '\t')) {
            line++;
            len--;
        }
        if (len >= 7 && strncmp(line, "quench:", 7) == 0) {
            continue;
        }
        const char *colon = memchr(line, ':', len);
        if (colon != NULL) {
            len = (size_t)(colon - line);
        }
        if (!plausible_name(line, len)) {
            continue;
        }
        count++;
        if (count <= MAX_USERS) {
            char name[65];
            memcpy(name, line, len);
            name[len] = '\0';
            cJSON_AddItemToArray(names, cJSON_CreateString(name));
        }
    }
    return count;
}

/* @returns the number of "quench: could not change ..." lines in stderr. */
static int count_failures(const struct qn_buf *err)
{
    int n = 0;
    const char *p = qn_buf_cstr(err);
    const char *hit = NULL;
    while ((hit = strstr(p, "quench: ")) != NULL) {
        n++;
        p = hit + 8;
    }
    return n;
}

/* ---- kind-specific parts --------------------------------------------------------------------- */

static bool is_run_command(const struct qn_task *task)
{
    return task->kind == QN_TASK_VM_RESET_PASSWORDS || task->kind == QN_TASK_VM_ANTIMALWARE_SCAN;
}

static const char *noun(const struct qn_task *task)
{
    switch (task->kind) {
    case QN_TASK_VM_RESET_PASSWORDS:
        return "password change";
    case QN_TASK_VM_ANTIMALWARE_SCAN:
        return "antimalware scan";
    default:
        return "reimage";
    }
}

/* Builds the runCommand body for @p job's OS. @returns NULL with @p why set on failure. */
static char *run_command_body(struct vm_job *job, const char **why)
{
    const struct qn_config *cfg = qn_task_config(job->task);
    bool windows = strcasecmp(job->os_type, "Windows") == 0;
    cJSON *root = cJSON_CreateObject();
    cJSON *script = cJSON_CreateArray();
    if (root == NULL || script == NULL) {
        cJSON_Delete(root);
        cJSON_Delete(script);
        *why = "out of memory";
        return NULL;
    }
    cJSON_AddStringToObject(root, "commandId", windows ? "RunPowerShellScript" : "RunShellScript");
    cJSON_AddItemToObject(root, "script", script);
    if (job->task->kind == QN_TASK_VM_RESET_PASSWORDS) {
        const char *const *lines = windows ? windows_password_script : linux_password_script;
        size_t n = windows ? NLINES(windows_password_script) : NLINES(linux_password_script);
        for (size_t i = 0; i < n; i++) {
            cJSON_AddItemToArray(script, cJSON_CreateString(lines[i]));
        }
    } else {
        const char *command = windows ? cfg->vm.windows_scan_command : cfg->vm.linux_scan_command;
        if (command == NULL || command[0] == '\0') {
            cJSON_Delete(root);
            *why = windows ? "vm.windows_scan_command is empty: no scanner to run"
                           : "vm.linux_scan_command is empty: no scanner to run";
            return NULL;
        }
        /* The scanner's exit status is reported, not propagated: findings are evidence, and a
         * non-zero exit (clamscan exits 1 when it finds something) must not fail the command. */
        if (windows) {
            cJSON_AddItemToArray(script,
                                 cJSON_CreateString("# quench vm_antimalware_scan: the configured "
                                                    "scanner (vm.windows_scan_command)"));
            cJSON_AddItemToArray(script, cJSON_CreateString("$ErrorActionPreference = 'Continue'"));
            cJSON_AddItemToArray(script, cJSON_CreateString(command));
            cJSON_AddItemToArray(
                script,
                cJSON_CreateString("Write-Output ('quench: scanner finished, success=' + $?)"));
            cJSON_AddItemToArray(script, cJSON_CreateString("exit 0"));
        } else {
            cJSON_AddItemToArray(script,
                                 cJSON_CreateString("# quench vm_antimalware_scan: the configured "
                                                    "scanner (vm.linux_scan_command)"));
            cJSON_AddItemToArray(script, cJSON_CreateString(command));
            cJSON_AddItemToArray(script,
                                 cJSON_CreateString("echo \"quench: scanner exit status $?\""));
            cJSON_AddItemToArray(script, cJSON_CreateString("exit 0"));
        }
    }
    char *text = cJSON_PrintUnformatted(root);
    if (text != NULL) {
        /* what ran, provably, without repeating the script in every event */
        cJSON *req = cJSON_CreateObject();
        char sha[65];
        qn_sha256_hex(text, strlen(text), sha);
        cJSON_AddStringToObject(req, "commandId", json_str(root, "commandId"));
        cJSON_AddNumberToObject(req, "scriptLines", cJSON_GetArraySize(script));
        cJSON_AddStringToObject(req, "bodySha256", sha);
        qn_task_add_detail(job->task, "runCommand", req);
    }
    cJSON_Delete(root);
    if (text == NULL) {
        *why = "out of memory";
        return NULL;
    }
    char *copy = qn_strdup(text);
    cJSON_free(text);
    if (copy == NULL) {
        *why = "out of memory";
    }
    return copy;
}

/* ---- verify ---------------------------------------------------------------------------------- */

static void verify_passwords(struct vm_job *job, const struct run_output *o)
{
    cJSON *names = cJSON_CreateArray();
    int changed = names != NULL ? collect_names(&o->out, names) : 0;
    int failures = count_failures(&o->err);
    if (names != NULL) {
        qn_task_add_detail(job->task, "users", names);
    }
    if (o->failed) {
        finish(job, QN_TASK_FAILED, "the run command failed on the VM (%s); see detail.output",
               o->status);
    } else if (failures > 0) {
        finish(job, QN_TASK_FAILED,
               "changed the passwords of %d local account(s), but the script reported %d "
               "problem(s): see detail.output.stderr",
               changed, failures);
    } else if (changed == 0) {
        finish(job, QN_TASK_FAILED,
               "the run command reported no account whose password was changed; see "
               "detail.output");
    } else {
        finish(job, QN_TASK_SUCCEEDED,
               "changed the passwords of %d local account(s) to random secrets made on the VM "
               "(listed in detail.users)",
               changed);
    }
}

static void on_run_command(struct qn_task *task, struct qn_http_result *res, struct vm_job *job)
{
    if (res != NULL && res->lro_status[0] != '\0' &&
        strcasecmp(res->lro_status, "Succeeded") != 0) {
        finish(job, QN_TASK_FAILED, "the run command ended %s", res->lro_status);
        return;
    }
    cJSON *body = parse_body(res);
    const char *status = json_str(body, "status");
    if (status != NULL && strcasecmp(status, "Succeeded") != 0) {
        char copy[48];
        copy_str(copy, sizeof(copy), status);
        cJSON_Delete(body);
        finish(job, QN_TASK_FAILED, "the run command ended %s", copy);
        return;
    }
    struct run_output o;
    memset(&o, 0, sizeof(o));
    qn_buf_init(&o.out, QN_HTTP_MAX_BODY);
    qn_buf_init(&o.err, QN_HTTP_MAX_BODY);
    read_run_output(body, &o);
    cJSON_Delete(body);
    record_output(task, &o);
    if (task->kind == QN_TASK_VM_RESET_PASSWORDS) {
        verify_passwords(job, &o);
    } else if (o.failed) {
        finish(job, QN_TASK_FAILED,
               "the scan's run command failed on the VM (%s); see "
               "detail.output",
               o.status);
    } else {
        finish(job, QN_TASK_SUCCEEDED,
               "the antimalware scan ran (%zu bytes of output); its findings are in "
               "detail.output",
               o.out.len);
    }
    qn_buf_fini(&o.out);
    qn_buf_fini(&o.err);
}

static void on_reimaged_vm(struct qn_task *task,
                           struct qn_http_result *res,
                           const struct qn_error *err,
                           void *opaque)
{
    struct vm_job *job = opaque;
    if (err != NULL) {
        finish(job, QN_TASK_FAILED, "the reimage finished but the VM could not be read back: %s",
               call_error(err));
        return;
    }
    cJSON *vm = parse_body(res);
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(vm, "properties");
    char state[48];
    copy_str(state, sizeof(state), json_str(props, "provisioningState"));
    const cJSON *disk = json_path(props, "storageProfile", "osDisk", NULL);
    const char *disk_id = json_str(cJSON_GetObjectItemCaseSensitive(disk, "managedDisk"), "id");
    if (disk_id == NULL) {
        disk_id = json_str(disk, "name");
    }
    cJSON *d = cJSON_CreateObject();
    if (d != NULL) {
        add_str(d, "osDiskBefore", job->os_disk);
        add_str(d, "osDiskAfter", disk_id);
        cJSON *image =
            cJSON_Duplicate(json_path(props, "storageProfile", "imageReference", NULL), 1);
        if (image != NULL) {
            cJSON_AddItemToObject(d, "imageReference", image);
        }
        qn_task_add_detail(task, "reimage", d);
    }
    cJSON_Delete(vm);
    if (strcasecmp(state, "Succeeded") != 0) {
        finish(job, QN_TASK_FAILED, "after the reimage the VM's provisioningState is '%s'",
               state[0] != '\0' ? state : "(none)");
        return;
    }
    finish(job, QN_TASK_SUCCEEDED,
           "the VM was reimaged from its image reference and reads back provisioningState "
           "Succeeded");
}

/* ---- act ------------------------------------------------------------------------------------- */

/* 404 on the VM: what it means depends on the task (see each case). */
static void vm_gone(struct vm_job *job)
{
    if (job->task->kind == QN_TASK_VM_REIMAGE) {
        /* The goal, no machine running from a compromised OS disk, is met by absence. */
        finish(job, QN_TASK_SKIPPED,
               "VM not found (404): no machine runs from its OS disk, so there is nothing to "
               "reimage");
        return;
    }
    /* The accounts and any malware live on the OS disk, which can outlive the VM (deleteOption
     * Detach) and boot again: absence of the VM resource does not meet the goal. */
    finish(job, QN_TASK_FAILED,
           "VM not found (404): the %s could not run; its OS disk may survive the VM and needs a "
           "person",
           noun(job->task));
}

static void
on_write(struct qn_task *task, struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct vm_job *job = opaque;
    release(job); /* the VM is free for the next queued write */
    if (err != NULL) {
        if (err->code == QN_ERR_NOT_FOUND) {
            vm_gone(job);
        } else if (res != NULL && res->status == 409) {
            finish(job, QN_TASK_FAILED, "the VM is busy with another operation or locked (409): %s",
                   call_error(err));
        } else if (err->code == QN_ERR_TIMEOUT) {
            finish(job, QN_TASK_FAILED,
                   "the %s did not finish within the call's time limit; it may still be running "
                   "on the VM: %s",
                   noun(task), call_error(err));
        } else {
            finish(job, QN_TASK_FAILED, "the %s failed: %s", noun(task), call_error(err));
        }
        return;
    }
    if (is_run_command(task)) {
        on_run_command(task, res, job);
        return;
    }
    if (res != NULL && res->lro_status[0] != '\0' &&
        strcasecmp(res->lro_status, "Succeeded") != 0) {
        finish(job, QN_TASK_FAILED, "the reimage ended %s", res->lro_status);
        return;
    }
    qn_err_t rc = get_vm(job, NULL, on_reimaged_vm);
    if (rc != QN_OK) {
        finish(job, QN_TASK_FAILED, "the reimage finished but the VM read-back could not start: %s",
               qn_err_str(rc));
    }
}

/* Sends the job's write, asking qn_task_may_write immediately before. */
static void send_write(struct vm_job *job)
{
    struct qn_task *task = job->task;
    const char *why = NULL;
    if (!qn_task_may_write(task, &why)) {
        finish(job, QN_TASK_SKIPPED, "%s", why);
        return;
    }
    struct qn_buf path;
    qn_buf_init(&path, PATH_MAX_BYTES);
    struct qn_error err = {0};
    qn_err_t rc = qn_azure_arm_path(&path, task->target_id, 0,
                                    is_run_command(task) ? "/runCommand" : "/reimage",
                                    COMPUTE_API_VERSION, &err);
    if (rc == QN_OK) {
        rc = qn_task_call(task, QN_AZURE_ARM, "POST", qn_buf_cstr(&path), job->body,
                          QN_HTTP_CALL_LRO, on_write, job);
    }
    qn_buf_fini(&path);
    if (rc != QN_OK) {
        finish(job, QN_TASK_FAILED, "the %s could not be sent: %s", noun(task),
               err.msg[0] != '\0' ? err.msg : qn_err_str(rc));
    }
}

/* After the checks: the kind's last preconditions, then the write (queued behind ours). */
static void act(struct vm_job *job)
{
    struct qn_task *task = job->task;
    if (is_run_command(task)) {
        if (strcasecmp(job->os_type, "Linux") != 0 && strcasecmp(job->os_type, "Windows") != 0) {
            finish(job, QN_TASK_FAILED,
                   "the VM reports no usable osType ('%s'): no run command fits it", job->os_type);
            return;
        }
        if (job->power[0] != '\0' && strcmp(job->power, "running") != 0) {
            /* Run command needs a running VM. Starting it would boot a compromised machine; the
             * reimage (which does not depend on this) replaces its OS disk instead. */
            finish(job, QN_TASK_SKIPPED,
                   "the VM is not running (power state %s): run command cannot reach it, and "
                   "quench does not start a compromised VM; the %s was not done",
                   job->power, noun(task));
            return;
        }
        const char *why = NULL;
        job->body = run_command_body(job, &why);
        if (job->body == NULL) {
            finish(job, QN_TASK_FAILED, "%s", why);
            return;
        }
    } else {
        /* VirtualMachineReimageParameters: tempDisk false (the default, and the only value every
         * VM accepts: true is for ephemeral OS disks); no exactVersion (the image reference's
         * version, normally "latest", is the malware-free source); no osProfile.adminPassword,
         * so no secret passes through quench. */
        job->body = qn_strdup("{\"tempDisk\":false}");
        if (job->body == NULL) {
            finish(job, QN_TASK_FAILED, "out of memory");
            return;
        }
        cJSON *req = cJSON_CreateObject();
        if (req != NULL) {
            cJSON_AddBoolToObject(req, "tempDisk", false);
            qn_task_add_detail(task, "request", req);
        }
    }
    if (acquire(job)) {
        send_write(job);
    }
}

/* ---- check ----------------------------------------------------------------------------------- */

/*
 * The protected-tag check on one scope. If @p tags match, records which scope and ends the task as
 * SKIPPED (the job is freed: the caller must not touch it) and @returns true.
 */
static bool
skip_if_protected(struct vm_job *job, const cJSON *tags, const char *scope_id, const char *who)
{
    const char *why = NULL;
    if (!qn_task_protected_tags(job->task, tags, &why)) {
        return false;
    }
    qn_task_add_evidence(job->task, "config", "policy.protected_tags", scope_id,
                         "a protected tag matched here; nothing was sent to the VM");
    finish(job, QN_TASK_SKIPPED, "%s carries a %s", who, why);
    return true;
}

static void on_sub_tags(struct qn_task *task,
                        struct qn_http_result *res,
                        const struct qn_error *err,
                        void *opaque)
{
    struct vm_job *job = opaque;
    if (err != NULL && err->code != QN_ERR_NOT_FOUND) {
        finish(job, QN_TASK_FAILED,
               "the subscription's tags could not be read for the protected-tag check: %s",
               call_error(err));
        return;
    }
    cJSON *body = err == NULL ? parse_body(res) : NULL;
    char scope[64];
    snprintf(scope, sizeof(scope), "/subscriptions/%.36s", job->rid.subscription);
    bool skipped = skip_if_protected(job, json_path(body, "properties", "tags", NULL), scope,
                                     "the VM's subscription");
    cJSON_Delete(body);
    if (skipped) {
        return;
    }
    qn_task_add_evidence(task, "config", "policy.protected_tags", NULL,
                         "no protected tag on the VM, its resource group or its subscription "
                         "(Tags_GetAtScope)");
    act(job);
}

static void on_rg_tags(struct qn_task *task,
                       struct qn_http_result *res,
                       const struct qn_error *err,
                       void *opaque)
{
    (void)task;
    struct vm_job *job = opaque;
    if (err != NULL && err->code != QN_ERR_NOT_FOUND) {
        finish(job, QN_TASK_FAILED,
               "the resource group's tags could not be read for the protected-tag check: %s",
               call_error(err));
        return;
    }
    cJSON *body = err == NULL ? parse_body(res) : NULL;
    char scope[192];
    snprintf(scope, sizeof(scope), "/subscriptions/%.36s/resourceGroups/%.90s",
             job->rid.subscription, job->rid.resource_group);
    bool skipped = skip_if_protected(job, json_path(body, "properties", "tags", NULL), scope,
                                     "the VM's resource group");
    cJSON_Delete(body);
    if (skipped) {
        return;
    }
    snprintf(scope, sizeof(scope), "/subscriptions/%.36s", job->rid.subscription);
    qn_err_t rc = get_tags(job, scope, on_sub_tags);
    if (rc != QN_OK) {
        finish(job, QN_TASK_FAILED, "the subscription's tags could not be requested: %s",
               qn_err_str(rc));
    }
}

/* The power state from instanceView.statuses[] ("PowerState/running" -> "running"). */
static void read_power_state(const cJSON *props, char *out, size_t size)
{
    const cJSON *statuses = json_path(props, "instanceView", "statuses", NULL);
    const cJSON *st = NULL;
    out[0] = '\0';
    cJSON_ArrayForEach(st, statuses)
    {
        const char *code = json_str(st, "code");
        if (code != NULL && strncasecmp(code, "PowerState/", 11) == 0) {
            copy_str(out, size, code + 11);
        }
    }
}

static void
on_vm(struct qn_task *task, struct qn_http_result *res, const struct qn_error *err, void *opaque)
{
    struct vm_job *job = opaque;
    if (err != NULL) {
        if (err->code == QN_ERR_NOT_FOUND) {
            vm_gone(job);
        } else {
            finish(job, QN_TASK_FAILED, "the VM could not be read: %s", call_error(err));
        }
        return;
    }
    cJSON *vm = parse_body(res);
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(vm, "properties");
    if (!cJSON_IsObject(props)) {
        cJSON_Delete(vm);
        finish(job, QN_TASK_FAILED, "the VM read back has no properties");
        return;
    }
    const cJSON *disk = json_path(props, "storageProfile", "osDisk", NULL);
    copy_str(job->os_type, sizeof(job->os_type), json_str(disk, "osType"));
    read_power_state(props, job->power, sizeof(job->power));
    const char *disk_id = json_str(cJSON_GetObjectItemCaseSensitive(disk, "managedDisk"), "id");
    job->os_disk = qn_strdup(disk_id != NULL ? disk_id : json_str(disk, "name"));
    qn_task_add_evidence(task, "arm", "properties.storageProfile.osDisk.osType",
                         job->os_type[0] != '\0' ? job->os_type : NULL, NULL);
    qn_task_add_evidence(task, "arm", "properties.instanceView.statuses PowerState",
                         job->power[0] != '\0' ? job->power : NULL, NULL);
    if (task->kind == QN_TASK_VM_REIMAGE) {
        const char *del = json_str(disk, "deleteOption");
        bool ephemeral = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(disk, "diffDiskSettings"));
        qn_task_add_evidence(
            task, "arm", "properties.storageProfile.osDisk.deleteOption", del,
            ephemeral ? "ephemeral OS disk: the reimage resets it to the image"
            : del != NULL && strcasecmp(del, "Delete") == 0
                ? "the old OS disk is deleted by the reimage: its forensic copy is lost"
                : "the old OS disk is kept (detached) after the reimage, for forensics");
    }
    bool skipped = skip_if_protected(job, cJSON_GetObjectItemCaseSensitive(vm, "tags"),
                                     task->target_id, "the VM");
    cJSON_Delete(vm);
    if (skipped) {
        return;
    }
    char scope[192];
    snprintf(scope, sizeof(scope), "/subscriptions/%.36s/resourceGroups/%.90s",
             job->rid.subscription, job->rid.resource_group);
    qn_err_t rc = get_tags(job, scope, on_rg_tags);
    if (rc != QN_OK) {
        finish(job, QN_TASK_FAILED, "the resource group's tags could not be requested: %s",
               qn_err_str(rc));
    }
}

/* ---- entry points ---------------------------------------------------------------------------- */

static void run(struct qn_task *task)
{
    struct vm_job *job = qn_calloc(1, sizeof(*job));
    if (job == NULL) {
        qn_task_finish(task, QN_TASK_FAILED, "out of memory");
        return;
    }
    job->task = task;
    task->priv = job;
    struct qn_error err = {0};
    if (strcmp(task->target_type, "vm") != 0 ||
        qn_resid_parse(task->target_id, 0, &job->rid, &err) != QN_OK ||
        !qn_resid_is_vm(&job->rid)) {
        finish(job, QN_TASK_FAILED, "the target is not a virtual machine resource id%s%s",
               err.msg[0] != '\0' ? ": " : "", err.msg);
        return;
    }
    make_lock_key(task->target_id, job->lock_key);
    qn_task_set_undo(task, NULL);
    switch (task->kind) {
    case QN_TASK_VM_RESET_PASSWORDS:
        qn_task_add_evidence(task, "arm", "POST {vm}/runCommand", NULL,
                             "not undoable (undo is null): the old passwords are not kept and the "
                             "new ones were made on the VM and never left it");
        break;
    case QN_TASK_VM_ANTIMALWARE_SCAN:
        qn_task_add_evidence(task, "arm", "POST {vm}/runCommand", NULL,
                             "not undoable (undo is null): a scan changes no configuration, and "
                             "whatever the scanner quarantines stays quarantined");
        break;
    default:
        qn_task_add_evidence(task, "arm", "POST {vm}/reimage", NULL,
                             "reimage cannot be undone; the OS disk was replaced");
        break;
    }
    qn_err_t rc = get_vm(job, "instanceView", on_vm);
    if (rc != QN_OK) {
        finish(job, QN_TASK_FAILED, "the VM could not be requested: %s", qn_err_str(rc));
    }
}

const struct qn_task_ops qn_task_ops_vm_reset_passwords = {
    .kind = QN_TASK_VM_RESET_PASSWORDS,
    .run = run,
};

const struct qn_task_ops qn_task_ops_vm_antimalware_scan = {
    .kind = QN_TASK_VM_ANTIMALWARE_SCAN,
    .run = run,
};

const struct qn_task_ops qn_task_ops_vm_reimage = {
    .kind = QN_TASK_VM_REIMAGE,
    .run = run,
};
