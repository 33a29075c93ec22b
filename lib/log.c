#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *log_name = "kv";
static enum log_level log_threshold = LOG_INFO;
static const char *const log_labels[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_init(const char *name, enum log_level level)
{
    const char *env = getenv("KV_LOG_LEVEL");
    log_name = name;
    log_threshold = level;
    if (env == NULL)
        return;
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
        if (strcasecmp(env, log_labels[i]) == 0)
            log_threshold = (enum log_level)i;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    va_list ap;

    if (level < log_threshold)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %s[%d] %s ",
                          ts.tv_nsec / 1000000, log_name, (int)getpid(),
                          log_labels[level]);
    va_start(ap, fmt);
    if (n < sizeof line)
        n += (size_t)vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    /* One write per line so lines of concurrent threads never interleave. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}
