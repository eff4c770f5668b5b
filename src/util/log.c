#include "util/log.h"
#include "util/timeutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int g_level = BT_LOG_INFO;
static _Atomic int g_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void bt_log_set_level(enum bt_log_level lvl)
{
    atomic_store(&g_level, (int)lvl);
}

enum bt_log_level bt_log_get_level(void)
{
    return (enum bt_log_level)atomic_load(&g_level);
}

void bt_log_set_fd(int fd)
{
    atomic_store(&g_fd, fd);
}

int bt_log_parse_level(const char *s, enum bt_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum bt_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = BT_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

const char *bt_logq(char *out, size_t outlen, const char *s)
{
    size_t o = 0;
    int bare = *s != '\0';
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p == 0x7f)
            bare = 0;
    if (outlen == 0)
        return out;
    if (bare) {
        snprintf(out, outlen, "%s", s);
        return out;
    }
    static const char hex[] = "0123456789abcdef";
#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (o + 1 < outlen)                                                                        \
            out[o++] = (c);                                                                        \
    } while (0)
    PUT('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            PUT('\\');
            PUT((char)*p);
        } else if (*p == '\n') {
            PUT('\\');
            PUT('n');
        } else if (*p < 0x20 || *p == 0x7f) {
            PUT('\\');
            PUT('x');
            PUT(hex[*p >> 4]);
            PUT(hex[*p & 15]);
        } else {
            PUT((char)*p);
        }
    }
    PUT('"');
#undef PUT
    out[o] = '\0';
    return out;
}

void bt_log(enum bt_log_level lvl, const char *component, const char *msg, const char *kvfmt, ...)
{
    if ((int)lvl < atomic_load(&g_level))
        return;
    char line[4096];
    char qmsg[1024];
    int64_t now = bt_now_ns();
    time_t sec = (time_t)(now / 1000000000LL);
    struct tm tm;
    gmtime_r(&sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s component=%s msg=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)((now / 1000000) % 1000), level_names[lvl & 3], component,
                     bt_logq(qmsg, sizeof(qmsg), msg));
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (kvfmt && *kvfmt && len + 2 < sizeof(line)) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, kvfmt);
        int m = vsnprintf(line + len, sizeof(line) - len, kvfmt, ap);
        va_end(ap);
        if (m > 0)
            len += (size_t)m < sizeof(line) - len ? (size_t)m : sizeof(line) - len - 1;
    }
    if (len >= sizeof(line) - 1)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(atomic_load(&g_fd), line, len);
    (void)w;
}

int bt_ratelimit_ok(struct bt_ratelimit *rl, uint64_t *suppressed)
{
    int64_t now = bt_mono_ns();
    if (rl->last_ns == 0 || now - rl->last_ns >= rl->interval_ns) {
        if (suppressed)
            *suppressed = rl->suppressed;
        rl->suppressed = 0;
        rl->last_ns = now;
        return 1;
    }
    rl->suppressed++;
    return 0;
}
