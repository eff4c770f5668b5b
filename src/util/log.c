#include "util/log.h"
#include "util/buf.h"
#include "util/logfmt.h"
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
static _Atomic int g_format = BT_LOG_LOGFMT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void bt_log_set_level(enum bt_log_level lvl)
{
    atomic_store(&g_level, (int)lvl);
}

enum bt_log_level bt_log_get_level(void)
{
    return (enum bt_log_level)atomic_load(&g_level);
}

void bt_log_set_format(enum bt_log_format f)
{
    atomic_store(&g_format, (int)f);
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

/* Appends s[0..n) as a JSON string. */
static void json_str(struct bt_buf *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    bt_buf_add(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            bt_buf_add(o, e, 2);
        } else if (ch == '\n') {
            bt_buf_add(o, "\\n", 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            bt_buf_add(o, e, 6);
        } else {
            bt_buf_add(o, s + i, 1);
        }
    }
    bt_buf_add(o, "\"", 1);
}

/* Rewrites a logfmt line as one JSON object. Values that do not unquote (bt_logq's \x escapes)
 * are kept as written; text the tokenizer cannot read ends up whole in "_rest". */
static size_t to_json(const char *line, size_t len, char *out, size_t outlen)
{
    struct bt_buf o, v;
    bt_buf_init(&o, outlen);
    bt_buf_init(&v, outlen);
    struct bt_logfmt d;
    struct bt_logfmt_kv kv;
    bt_logfmt_init(&d, line, len);
    bt_buf_add(&o, "{", 1);
    int rc, n = 0;
    size_t before = 0;
    while ((rc = bt_logfmt_next(&d, &kv)) == 1) {
        before = d.pos;
        if (n++)
            bt_buf_add(&o, ",", 1);
        json_str(&o, kv.key, kv.klen);
        bt_buf_add(&o, ":", 1);
        bt_buf_reset(&v);
        if (bt_logfmt_value(&kv, &v) == 0)
            json_str(&o, v.ptr ? v.ptr : "", v.len);
        else if (kv.quoted && kv.vlen >= 2)
            json_str(&o, kv.val + 1, kv.vlen - 2);
        else
            json_str(&o, kv.val, kv.vlen);
    }
    while (before < len && line[before] == ' ')
        before++;
    if (rc < 0 && before < len) {
        bt_buf_adds(&o, n ? ",\"_rest\":" : "\"_rest\":");
        json_str(&o, line + before, len - before);
    }
    bt_buf_add(&o, "}", 1);
    size_t m = 0;
    if (o.ptr && o.len < outlen) {
        memcpy(out, o.ptr, o.len);
        m = o.len;
    } else if (outlen > 2) {
        memcpy(out, "{}", 2); /* past the cap: an empty object rather than broken JSON */
        m = 2;
    }
    bt_buf_free(&o);
    bt_buf_free(&v);
    return m;
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
    char json[8192];
    char *out = line;
    if (atomic_load(&g_format) == BT_LOG_JSON) {
        len = to_json(line, len, json, sizeof(json) - 1);
        out = json;
    }
    out[len++] = '\n';
    ssize_t w = write(atomic_load(&g_fd), out, len);
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
