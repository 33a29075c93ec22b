/* Unit tests for controller/nginx_conf: the placeholders, and the two
 * renderings of nginx/nginx.conf.template (run from the repository root,
 * as tests/run.py does): the local cluster's (api servers of the port
 * layout, the error log in the run directory) and the container's
 * (kv-controller --render-nginx DIR: an include of DIR/upstream.conf that
 * nginx/kv-nginx.sh rewrites, the error log on stderr), each
 * accepted by `nginx -t` when nginx is installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../controller/nginx_conf.h"
#include "config.h"
#include "log.h"

#define TEMPLATE "nginx/nginx.conf.template"

static char *slurp(const char *path)
{
    char err[256];
    char *s = nginx_conf_read_file(path, err, sizeof err);
    if (s == NULL)
        fail_msg("%s", err);
    return s;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* `nginx -t` on conf with prefix dir; 1 passed, 0 failed, -1 no nginx. */
static int nginx_test(const char *dir, const char *conf)
{
    char cmd[4096];
    int st;

    if (system("command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx")
        != 0)
        return -1;
    snprintf(cmd, sizeof cmd,
             "PATH=$PATH:/usr/sbin nginx -q -t -p %s/ -c %s -e %s/test.log "
             ">%s/test.out 2>&1",
             dir, conf, dir, dir);
    st = system(cmd);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_render_placeholders(void **state)
{
    nginx_conf_vars v = {0};
    char err[128];
    char *out;

    (void)state;
    assert_int_equal(nginx_conf_var_set(&v, "A", "x\ny"), 0);
    out = nginx_conf_render("  a {{A}};\n", &v, err, sizeof err);
    assert_non_null(out);
    assert_string_equal(out, "  a x\n  y;\n");
    free(out);
    assert_null(nginx_conf_render("{{B}}", &v, err, sizeof err));
    assert_non_null(strstr(err, "unknown placeholder {{B}}"));
    assert_null(nginx_conf_render("{{A", &v, err, sizeof err));
    assert_non_null(strstr(err, "unterminated"));
    nginx_conf_vars_free(&v);
}

static void test_local_rendering(void **state)
{
    char dir[] = "/tmp/kv-test-nginx-XXXXXX", conf[512], err[256];
    char *text;
    kv_config c;
    int t;

    (void)state;
    assert_non_null(mkdtemp(dir));
    config_defaults(&c);
    c.nginx_port = 18999;
    snprintf(conf, sizeof conf, "%s/nginx.conf", dir);
    assert_int_equal(nginx_conf_write(TEMPLATE, conf, &c, dir, "127.0.0.1",
                                      err, sizeof err), 0);
    text = slurp(conf);
    assert_non_null(strstr(text, "server 127.0.0.1:7010 max_fails=1"));
    assert_non_null(strstr(text, "server 127.0.0.1:7011 max_fails=1"));
    assert_non_null(strstr(text, "/nginx-error.log warn;"));
    assert_non_null(strstr(text, "listen 127.0.0.1:18999"));
    assert_non_null(strstr(text, "add_header X-KV-Api $upstream_addr always;"));
    assert_null(strstr(text, "{{"));
    free(text);
    t = nginx_test(dir, conf);
    if (t >= 0)
        assert_int_equal(t, 1);
    rm_tree(dir);
}

static void test_container_rendering(void **state)
{
    char dir[] = "/tmp/kv-test-nginx-XXXXXX", sub[600], conf[700], ups[700];
    char err[256], want[800];
    char *text;
    kv_config c;
    int t;

    (void)state;
    assert_non_null(mkdtemp(dir));
    /* DIR itself is created */
    snprintf(sub, sizeof sub, "%s/nginx", dir);
    config_defaults(&c);
    snprintf(c.bind, sizeof c.bind, "0.0.0.0");
    c.max_value_bytes = 2 * 1024 * 1024;
    assert_int_equal(nginx_conf_render_container(TEMPLATE, sub, &c, err,
                                                 sizeof err), 0);
    snprintf(conf, sizeof conf, "%s/nginx.conf", sub);
    snprintf(ups, sizeof ups, "%s/upstream.conf", sub);
    text = slurp(conf);
    snprintf(want, sizeof want, "include %s;", ups);
    assert_non_null(strstr(text, want));
    assert_null(strstr(text, "server 127.0.0.1:7010"));
    assert_non_null(strstr(text, "error_log stderr warn;"));
    assert_non_null(strstr(text, "listen 8000 backlog"));
    assert_non_null(strstr(text, "keepalive 128;"));
    assert_non_null(strstr(text, "proxy_set_header X-Real-IP $remote_addr;"));
    assert_non_null(strstr(text, "location /internal/"));
    /* max_value_bytes + 64 KiB */
    assert_non_null(strstr(text, "client_max_body_size 2162688;"));
    free(text);
    /* no api replica known yet: a valid upstream that answers 502 */
    text = slurp(ups);
    assert_string_equal(text, NGINX_CONF_NO_UPSTREAM "\n");
    free(text);
    t = nginx_test(sub, conf);
    if (t >= 0)
        assert_int_equal(t, 1);

    /* a rendering again keeps what the entrypoint wrote */
    spit(ups, "server 10.0.0.7:7010 max_fails=1 fail_timeout=1s;\n"
              "server 10.0.0.8:7010 max_fails=1 fail_timeout=1s;\n");
    assert_int_equal(nginx_conf_render_container(TEMPLATE, sub, &c, err,
                                                 sizeof err), 0);
    text = slurp(ups);
    assert_non_null(strstr(text, "10.0.0.8:7010"));
    free(text);
    t = nginx_test(sub, conf);
    if (t >= 0)
        assert_int_equal(t, 1);

    assert_int_equal(nginx_conf_render_container("no/such/template", sub, &c,
                                                 err, sizeof err), -1);
    assert_non_null(strstr(err, "no/such/template"));
    rm_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_placeholders),
        cmocka_unit_test(test_local_rendering),
        cmocka_unit_test(test_container_rendering),
    };

    log_init("test_nginx_conf", LOG_WARN);
    return cmocka_run_group_tests_name("nginx_conf", tests, NULL, NULL);
}
