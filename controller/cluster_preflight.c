/* cluster_preflight: checks and the run directory (cluster_preflight.h). */
#include "cluster_preflight.h"

#include "log.h"
#include "nginx_conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int cluster_preflight_find_program(const char *name, char *out, size_t outlen)
{
    static const char *const extra[] = {"/usr/sbin", "/usr/local/sbin",
                                        "/sbin", "/usr/local/nginx/sbin"};
    const char *path = getenv("PATH");

    if (name == NULL || *name == '\0')
        return -1;
    if (strchr(name, '/')) {
        snprintf(out, outlen, "%s", name);
        return access(out, X_OK) == 0 ? 0 : -1;
    }
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && (size_t)snprintf(out, outlen, "%.*s/%s", (int)n, path,
                                      name) < outlen &&
            access(out, X_OK) == 0)
            return 0;
        path += n + (path[n] == ':');
    }
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        snprintf(out, outlen, "%s/%s", extra[i], name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

int cluster_preflight_check_binaries(cluster_t *cl, char *err, size_t errlen)
{
    static const char *const progs[] = {"kv-store", "kv-queue", "kv-api"};

    if (!cl->supervise)
        return 0;
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
        char path[PATH_MAX];
        if (cluster_fmt(path, sizeof path, "%s/%s", cl->bin_dir, progs[i]) ||
            access(path, X_OK) != 0)
            return cluster_errf(err, errlen,
                                "%s not found next to kv-controller (%s): "
                                "build it with `make`",
                                progs[i], path);
    }
    if (cluster_preflight_find_program(cl->cfg.nginx_bin, cl->nginx_bin,
                             sizeof cl->nginx_bin) < 0)
        return cluster_errf(err, errlen,
                            "nginx.bin: cannot find \"%s\" in PATH or "
                            "/usr/sbin; install nginx (nginx-light) or set "
                            "nginx.bin to its path",
                            cl->cfg.nginx_bin);
    return 0;
}

static int cluster_preflight_port_free(const char *bind_addr, uint16_t port, int *eno)
{
    struct sockaddr_in sa;
    int one = 1, fd, rc;

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
        *eno = EINVAL;
        return 0;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *eno = errno;
        return 0;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    *eno = rc < 0 ? errno : 0;
    close(fd);
    return rc == 0;
}

int cluster_preflight_check_ports(const cluster_t *cl, char *err, size_t errlen)
{
    const char *bind_addr = cl->cfg.bind[0] ? cl->cfg.bind : "0.0.0.0";
    int eno;

    if (!cluster_preflight_port_free(bind_addr, (uint16_t)cl->cfg.base_port, &eno))
        return cluster_errf(err, errlen,
                            "port %lld on %s (kv-controller, "
                            "cluster.base_port) is not available: %s",
                            (long long)cl->cfg.base_port, bind_addr,
                            strerror(eno));
    for (size_t i = 0; cl->supervise && i < cl->nnodes; i++) {
        const cluster_node *n = &cl->nodes[i];
        if (!cluster_preflight_port_free(bind_addr, n->port, &eno))
            return cluster_errf(err, errlen,
                                "port %u on %s (%s) is not available: %s; "
                                "stop what holds it or move the cluster "
                                "(cluster.base_port, nginx.port)",
                                (unsigned)n->port, bind_addr, n->name,
                                strerror(eno));
    }
    return 0;
}

static int cluster_preflight_mkdirs(const char *path, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len >= sizeof buf)
        return cluster_errf(err, errlen, "path too long: %s", path);
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return cluster_errf(err, errlen, "mkdir %s: %s", buf,
                                strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return cluster_errf(err, errlen, "mkdir %s: %s", buf, strerror(errno));
    return 0;
}

static int cluster_preflight_write_file(const char *path, const char *text, char *err,
                              size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return cluster_errf(err, errlen, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fputc('\n', f);
    if (fclose(f) != 0)
        return cluster_errf(err, errlen, "%s: %s", path, strerror(errno));
    return 0;
}

/* Run `nginx -t` on the rendered file; its output goes to a file that is
 * quoted in err when the test fails. */
static int cluster_preflight_nginx_test(cluster_t *cl, char *err, size_t errlen)
{
    char out_path[PATH_MAX], prefix[PATH_MAX];
    char *argv[] = {cl->nginx_bin, "-t", "-q", "-p", prefix, "-c",
                    cl->nginx_conf, "-e", cl->nginx_errlog, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none;
    pid_t pid;
    int status = 0, rc;

    if (cluster_fmt(prefix, sizeof prefix, "%s/", cl->run_dir) ||
        cluster_fmt(out_path, sizeof out_path, "%s/nginx-test.log",
                    cl->run_dir))
        return cluster_errf(err, errlen, "run dir: path too long");
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    rc = posix_spawn(&pid, cl->nginx_bin, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        return cluster_errf(err, errlen, "cannot run %s: %s", cl->nginx_bin,
                            strerror(rc));
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    {
        char buf[600] = "";
        FILE *f = fopen(out_path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = '\0';
        return cluster_errf(err, errlen, "nginx rejects %s: %s",
                            cl->nginx_conf, buf);
    }
}

int cluster_preflight_prepare(cluster_t *cl, const char *nginx_template, char *err,
                    size_t errlen)
{
    char path[PATH_MAX];
    char *json;

    if (cluster_preflight_mkdirs(cl->data_dir, err, errlen) < 0)
        return -1;
    if (!cl->supervise)
        return 0; /* the nodes have their own data; ours is the state file */
    if (cluster_preflight_mkdirs(cl->run_dir, err, errlen) < 0)
        return -1;
    if (cl->log_dir[0] && cluster_preflight_mkdirs(cl->log_dir, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < cl->nnodes; i++) {
        const cluster_node *n = &cl->nodes[i];
        int bad;
        if (n->kind == CLUSTER_STORE)
            bad = cluster_fmt(path, sizeof path, "%s/shard-%d-%d",
                              cl->data_dir, n->shard, n->replica);
        else if (n->kind == CLUSTER_QUEUE)
            bad = cluster_fmt(path, sizeof path, "%s/queue", cl->data_dir);
        else
            continue;
        if (bad)
            return cluster_errf(err, errlen, "data dir: path too long");
        if (cluster_preflight_mkdirs(path, err, errlen) < 0)
            return -1;
    }
    {
        /* The children's copy: their token comes in KV_TOKEN. */
        kv_config copy = cl->cfg;
        copy.token[0] = '\0';
        json = config_to_json(&copy);
    }
    if (json == NULL)
        return cluster_errf(err, errlen, "config_to_json failed");
    if (cluster_preflight_write_file(cl->config_path, json, err, errlen) < 0) {
        free(json);
        return -1;
    }
    free(json);
    if (nginx_conf_write(nginx_template, cl->nginx_conf, &cl->cfg, cl->run_dir,
                         cl->host, err, errlen) < 0)
        return -1;
    return cluster_preflight_nginx_test(cl, err, errlen);
}

