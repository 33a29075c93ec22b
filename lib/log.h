/* log: one line per event on stderr, "time name[pid] LEVEL message".
 * Thread-safe (one write(2) per line). No allocation. */
#ifndef KV_LOG_H
#define KV_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* name: program name shown on every line (kept by pointer, must outlive logging).
 * The level also comes from $KV_LOG_LEVEL (debug|info|warn|error) when set. */
void log_init(const char *name, enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
