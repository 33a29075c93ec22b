/* lab_cli: see lab_cli.h. */
#include "lab_cli.h"

#include "kvctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int lab_cli_controller_path(char *out, size_t outlen, char *err, size_t errlen)
{
    char dir[LAB_CONFIG_PATH_MAX];

    if (lab_config_exe_dir(dir, sizeof dir) != 0) {
        snprintf(err, errlen, "cannot find the directory of kvctl "
                 "(/proc/self/exe)");
        return -1;
    }
    if ((size_t)snprintf(out, outlen, "%s/%s", dir, LAB_CLI_CONTROLLER_BIN) >= outlen) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    if (access(out, X_OK) != 0) {
        snprintf(err, errlen, "%s: %s (build it with make)", out,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* Print each line of msg to stderr with a prefix. */
static void lab_cli_print_lines(const char *prefix, const char *msg)
{
    const char *p = msg;

    while (*p) {
        const char *eol = strchr(p, '\n');
        int n = eol ? (int)(eol - p) : (int)strlen(p);
        fprintf(stderr, "%s%.*s\n", prefix, n, p);
        p += n;
        if (*p == '\n')
            p++;
    }
}

int lab_cli_load_config(const char *cmd, const char *arg, lab_config *c)
{
    char err[4096], warn[2048], prefix[64];
    int rc;

    rc = lab_config_load_resolved(c, arg, err, sizeof err, warn, sizeof warn);
    snprintf(prefix, sizeof prefix, "kvctl %s: warning: ", cmd);
    lab_cli_print_lines(prefix, warn);
    if (rc != 0) {
        snprintf(prefix, sizeof prefix, "kvctl %s: ", cmd);
        lab_cli_print_lines(prefix, err);
    }
    return rc;
}

int lab_cli_cmd(const kvctl_opts *o, int argc, char **argv)
{
    const char *config = NULL;
    int dry_run = 0;
    char bin[LAB_CONFIG_PATH_MAX], err[LAB_CONFIG_PATH_MAX + 128];
    lab_config *c;

    (void)o;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "kvctl lab: %s needs a file\n", a);
                return KVCTL_USAGE;
            }
            config = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            config = a + 9;
        } else if (strcmp(a, "--dry-run") == 0) {
            dry_run = 1;
        } else {
            fprintf(stderr, "kvctl lab: unknown argument %s (see kvctl help lab)\n", a);
            return KVCTL_USAGE;
        }
    }
    if (config == NULL) {
        fprintf(stderr, "usage: kvctl lab --config FILE [--dry-run]\n");
        return KVCTL_USAGE;
    }
    c = malloc(sizeof *c);
    if (c == NULL)
        return KVCTL_FAIL;
    if (lab_cli_load_config("lab", config, c) != 0) {
        free(c);
        return KVCTL_USAGE;
    }
    lab_config_print_summary(stdout, c);
    if (lab_cli_controller_path(bin, sizeof bin, err, sizeof err) != 0) {
        fprintf(stderr, "kvctl lab: %s\n", err);
        free(c);
        return KVCTL_FAIL;
    }
    printf("\n%s %s --lab %s\n", dry_run ? "would run:" : "running:", bin, c->path);
    if (!dry_run)
        printf("controller http://127.0.0.1:7000, gateway http://127.0.0.1:8000, "
               "leader :7001, follower-i :7001+i; Ctrl-C stops the lab\n");
    fflush(stdout);
    if (dry_run) {
        free(c);
        return KVCTL_OK;
    }
    {
        char path[LAB_CONFIG_PATH_MAX];
        snprintf(path, sizeof path, "%s", c->path);
        free(c);
        execl(bin, LAB_CLI_CONTROLLER_BIN, "--lab", path, (char *)NULL);
    }
    fprintf(stderr, "kvctl lab: cannot run %s: %s\n", bin, strerror(errno));
    return KVCTL_FAIL;
}

void lab_cli_tail_log(const char *path)
{
    FILE *f = fopen(path, "r");
    char *lines[20] = {0}, buf[1024];
    size_t n = 0;

    if (f == NULL)
        return;
    while (fgets(buf, sizeof buf, f)) {
        free(lines[n % 20]);
        lines[n % 20] = strdup(buf);
        n++;
    }
    fclose(f);
    fprintf(stderr, "--- last lines of %s ---\n", path);
    for (size_t i = n > 20 ? n - 20 : 0; i < n; i++)
        fputs(lines[i % 20] ? lines[i % 20] : "\n", stderr);
    for (size_t i = 0; i < 20; i++)
        free(lines[i]);
}
