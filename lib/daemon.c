#include "daemon.h"

#include "token.h"

#include <errno.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

int daemon_config(kv_config *c, const char *path, char *const *sets, int nsets,
                  daemon_token token, char *out, size_t outlen)
{
    char err[512];

    config_defaults(c);
    if (config_load(c, path, err, sizeof err))
        goto bad;
    for (int i = 0; i < nsets; i++) {
        char field[128];
        const char *eq = strchr(sets[i], '=');
        size_t n = eq ? (size_t)(eq - sets[i]) : 0;
        if (eq == NULL || n == 0 || n >= sizeof field) {
            snprintf(err, sizeof err, "--set %s: expected path=value", sets[i]);
            goto bad;
        }
        memcpy(field, sets[i], n);
        field[n] = '\0';
        if (config_set(c, field, eq + 1, err, sizeof err))
            goto bad;
    }
    if (config_validate(c, err, sizeof err))
        goto bad;
    if (token != DAEMON_TOKEN_NONE &&
        token_resolve(c, token == DAEMON_TOKEN_MAKE, err, sizeof err))
        goto bad;
    return 0;
bad:
    if (out)
        snprintf(out, outlen, "%s", err);
    else
        fprintf(stderr, "configuration error: %s\n", err);
    return -1;
}

static sigset_t daemon_sigs(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}

void daemon_block_signals(void)
{
    sigset_t set = daemon_sigs();
    signal(SIGPIPE, SIG_IGN);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int daemon_wait_signal(void)
{
    sigset_t set = daemon_sigs();
    int sig = 0;
    sigwait(&set, &sig);
    return sig;
}

int daemon_wait_signal_ms(long ms)
{
    sigset_t set = daemon_sigs();
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    int sig;

    do
        sig = sigtimedwait(&set, NULL, &ts);
    while (sig < 0 && errno == EINTR);
    return sig < 0 ? 0 : sig;
}
