#include "token.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_BYTES 32

int token_path(const kv_config *c, char *buf, size_t len)
{
    int n = c->token_file[0]
                ? snprintf(buf, len, "%s", c->token_file)
                : snprintf(buf, len, "%s/run/token", c->data_dir);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

int token_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = alen != blen;
    size_t n = alen < blen ? alen : blen;

    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* Make the directories of path, as mkdir -p (the data directory may not
 * exist yet on a first start). */
static void token_mkdir_for(const char *path)
{
    char dir[CFG_STR_MAX + 16];

    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
    }
}

/* A new file with a new token; EEXIST when another process made it first. */
static int token_create(const char *path, char *err, size_t errlen)
{
    unsigned char raw[TOKEN_BYTES];
    char hex[2 * TOKEN_BYTES + 2];
    int fd;

    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        snprintf(err, errlen, "no random bytes for a token: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[2 * TOKEN_BYTES] = '\n';
    token_mkdir_for(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno != EEXIST)
            snprintf(err, errlen, "cannot create the token file %s: %s", path,
                     strerror(errno));
        return errno == EEXIST ? 1 : -1;
    }
    if (write(fd, hex, 2 * TOKEN_BYTES + 1) != 2 * TOKEN_BYTES + 1 ||
        fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write the token file %s: %s", path,
                 strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    log_info("made a new cluster token in %s (mode 0600)", path);
    return 0;
}

/* The token of the file into c->token: its first line, printable ASCII
 * without spaces, 16 to CFG_STR_MAX - 1 bytes. 0, ENOENT, or -1. */
static int token_read(kv_config *c, const char *path, char *err, size_t errlen)
{
    char buf[CFG_STR_MAX + 2];
    struct stat st;
    ssize_t n;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        if (errno == ENOENT)
            return ENOENT;
        snprintf(err, errlen, "cannot read the token file %s: %s", path,
                 strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
        log_warn("the token file %s can be read by others (mode %03o): "
                 "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "cannot read the token file %s: %s", path,
                 strerror(errno));
        return -1;
    }
    buf[n] = '\0';
    while (len < (size_t)n && buf[len] > ' ' && buf[len] < 0x7f)
        len++;
    if (len < 16 || len >= CFG_STR_MAX ||
        (len < (size_t)n && buf[len] != '\n' && buf[len] != '\r')) {
        snprintf(err, errlen, "the token file %s does not hold one token "
                 "(16 to %d printable characters, no spaces, on one line)",
                 path, CFG_STR_MAX - 1);
        return -1;
    }
    memcpy(c->token, buf, len);
    c->token[len] = '\0';
    return 0;
}

int token_resolve(kv_config *c, int create, char *err, size_t errlen)
{
    char path[CFG_STR_MAX + 16];
    int rc;

    if (strcmp(c->auth, "off") == 0) {
        c->token[0] = '\0';
        return 0;
    }
    if (c->token[0])
        return 0;
    if (token_path(c, path, sizeof path) != 0) {
        snprintf(err, errlen, "the token file's path is too long");
        return -1;
    }
    rc = token_read(c, path, err, errlen);
    if (rc == ENOENT && create) {
        rc = token_create(path, err, errlen);
        if (rc >= 0) /* made here, or by a racing process: read it back */
            rc = token_read(c, path, err, errlen);
    }
    if (rc == ENOENT)
        snprintf(err, errlen, "no cluster token: set cluster.token (KV_TOKEN), "
                 "or point cluster.token_file (KV_TOKEN_FILE) at the file the "
                 "controller made (%s by default)", path);
    return rc == 0 ? 0 : -1;
}
