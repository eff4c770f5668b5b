/*
 * log: bpftail's own logs, one logfmt line (or JSON object) per message on stderr.
 *
 *   ts=2026-11-29T07:00:00.123Z level=info component=tail msg="file rotated" path=/var/log/x
 *
 * bt_log() formats the fixed fields and quotes msg; the caller's key=value tail is printed as
 * given, with bt_logq() available to quote a value that may hold spaces or quotes. Per-line or
 * per-event warnings go through a struct bt_ratelimit. Thread-safe (one write(2) per line).
 */
#ifndef BT_UTIL_LOG_H
#define BT_UTIL_LOG_H

#include <stddef.h>
#include <stdint.h>

enum bt_log_level { BT_LOG_DEBUG = 0, BT_LOG_INFO = 1, BT_LOG_WARN = 2, BT_LOG_ERROR = 3 };

void bt_log_set_level(enum bt_log_level lvl);
enum bt_log_level bt_log_get_level(void);
/* Parses debug|info|warn|error. 0 or -EINVAL. */
int bt_log_parse_level(const char *s, enum bt_log_level *out);
/* logfmt (the default) or one JSON object per line (promtail's server.log_format: json): the
 * same fields, the caller's key=value tail turned into JSON members. */
enum bt_log_format { BT_LOG_LOGFMT = 0, BT_LOG_JSON = 1 };
void bt_log_set_format(enum bt_log_format f);
/* Sends log lines to fd instead of stderr (tests). */
void bt_log_set_fd(int fd);

/* Logs one line. kvfmt (may be NULL) is a printf format for the trailing key=value pairs. */
void bt_log(enum bt_log_level lvl, const char *component, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes s into out as a logfmt value: bare when safe, else double-quoted with escapes.
 * Returns out (truncated to outlen). */
const char *bt_logq(char *out, size_t outlen, const char *s);

/* At most one message per interval; the next one says how many were suppressed. */
struct bt_ratelimit {
    int64_t interval_ns;
    int64_t last_ns;
    uint64_t suppressed;
};
#define BT_RATELIMIT_INIT(sec)                                                                     \
    {                                                                                              \
        (int64_t)(sec) * 1000000000LL, 0, 0                                                        \
    }
/* Returns 1 if the caller may log now (and *suppressed gets the count skipped), else 0. */
int bt_ratelimit_ok(struct bt_ratelimit *rl, uint64_t *suppressed);

#define BT_DEBUG(comp, msg, ...)                                                                   \
    do {                                                                                           \
        if (bt_log_get_level() <= BT_LOG_DEBUG)                                                    \
            bt_log(BT_LOG_DEBUG, comp, msg, __VA_ARGS__);                                          \
    } while (0)
#define BT_INFO(comp, msg, ...) bt_log(BT_LOG_INFO, comp, msg, __VA_ARGS__)
#define BT_WARN(comp, msg, ...) bt_log(BT_LOG_WARN, comp, msg, __VA_ARGS__)
#define BT_ERROR(comp, msg, ...) bt_log(BT_LOG_ERROR, comp, msg, __VA_ARGS__)

#endif
