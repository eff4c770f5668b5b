#include "util/syslog.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "util/rfc3339.h"

#define NS_PER_SEC 1000000000LL

static const char *const severities[] = {"emergency", "alert",  "critical",      "error",
                                         "warning",   "notice", "informational", "debug"};
static const char *const facilities[] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "syslog",   "lpr",     "news",
    "uucp",   "cron",   "authpriv", "ftp",    "ntp",    "security", "console", "solaris-cron",
    "local0", "local1", "local2",   "local3", "local4", "local5",   "local6",  "local7"};

const char *bt_syslog_severity_name(int s)
{
    return s >= 0 && s < 8 ? severities[s] : NULL;
}

const char *bt_syslog_facility_name(int f)
{
    return f >= 0 && f < 24 ? facilities[f] : NULL;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* PRINTUSASCII of RFC 5424: %d33-126. */
static bool is_print(char c)
{
    return c >= 33 && c <= 126;
}

/* "<PRI>" at s: 1..3 digits, no leading zero unless "0", value <= 191. Bytes consumed or 0. */
static size_t parse_pri(const char *s, size_t n, struct bt_syslog_msg *m)
{
    size_t i = 1;
    int v = 0;
    if (n < 3 || s[0] != '<')
        return 0;
    while (i < n && i <= 3 && is_digit(s[i]))
        v = v * 10 + (s[i++] - '0');
    if (i == 1 || i >= n || s[i] != '>' || v > 191 || (s[1] == '0' && i > 2))
        return 0;
    m->facility = v / 8;
    m->severity = v % 8;
    return i + 1;
}

/* A header field of 1..max printable bytes ending at a space; "-" is NIL. Returns the index
 * after the space, or 0. */
static size_t field(const char *s, size_t n, size_t i, size_t max, struct bt_syslog_str *out)
{
    size_t b = i;
    while (i < n && is_print(s[i]))
        i++;
    if (i == b || i - b > max || i >= n || s[i] != ' ')
        return 0;
    out->p = (i - b == 1 && s[b] == '-') ? NULL : s + b;
    out->n = out->p ? i - b : 0;
    return i + 1;
}

/* SD-NAME: 1..32 printable bytes other than '=', ' ', ']' and '"'. Returns its end. */
static size_t sd_name(const char *s, size_t n, size_t i)
{
    size_t b = i;
    while (i < n && i - b <= 32 && is_print(s[i]) && s[i] != '=' && s[i] != ']' && s[i] != '"')
        i++;
    return (i == b || i - b > 32) ? 0 : i;
}

/* One SD-ELEMENT at s[i] == '['. Returns the index after its ']', or 0. */
static size_t sd_element(const char *s, size_t n, size_t i)
{
    size_t e = sd_name(s, n, i + 1);
    if (!e)
        return 0;
    i = e;
    while (i < n && s[i] == ' ') {
        if (!(e = sd_name(s, n, i + 1)) || e + 1 >= n || s[e] != '=' || s[e + 1] != '"')
            return 0;
        for (i = e + 2; i < n && s[i] != '"'; i++)
            if (s[i] == '\\' && i + 1 < n &&
                (s[i + 1] == '"' || s[i + 1] == '\\' || s[i + 1] == ']'))
                i++;
        if (i >= n)
            return 0;
        i++; /* closing quote */
    }
    return i < n && s[i] == ']' ? i + 1 : 0;
}

int bt_syslog_parse_rfc5424(const char *s, size_t n, struct bt_syslog_msg *m)
{
    memset(m, 0, sizeof(*m));
    size_t i = parse_pri(s, n, m), b;
    if (!i || i >= n || s[i] < '1' || s[i] > '9')
        return -EINVAL;
    for (b = i; i < n && is_digit(s[i]) && i - b < 3; i++)
        m->version = m->version * 10 + (s[i] - '0');
    if (i >= n || s[i] != ' ')
        return -EINVAL;
    struct bt_syslog_str ts;
    if (!(i = field(s, n, i + 1, 64, &ts)))
        return -EINVAL;
    if (ts.p) {
        if (bt_rfc3339_parse(ts.p, ts.n, &m->ts_ns) < 0)
            return -EINVAL;
        m->has_ts = true;
    }
    if (!(i = field(s, n, i, 255, &m->hostname)) || !(i = field(s, n, i, 48, &m->app_name)) ||
        !(i = field(s, n, i, 128, &m->proc_id)) || !(i = field(s, n, i, 32, &m->msg_id)))
        return -EINVAL;
    if (i >= n)
        return -EINVAL;
    if (s[i] == '-') {
        i++;
    } else if (s[i] == '[') {
        b = i;
        while (i < n && s[i] == '[')
            if (!(i = sd_element(s, n, i)))
                return -EINVAL;
        m->sd = (struct bt_syslog_str){s + b, i - b};
    } else {
        return -EINVAL;
    }
    if (i < n && s[i] != ' ')
        return -EINVAL;
    if (i + 1 < n) {
        i++;
        if (n - i >= 3 && memcmp(s + i, "\xef\xbb\xbf", 3) == 0)
            i += 3;
        m->msg = (struct bt_syslog_str){s + i, n - i};
    }
    return 0;
}

int bt_syslog_sd_next(const struct bt_syslog_str *sd, size_t *pos, struct bt_syslog_str *id,
                      struct bt_syslog_str *name, struct bt_syslog_str *value)
{
    const char *s = sd->p;
    size_t n = sd->n, i = *pos;
    if (!s)
        return 0;
    for (;;) {
        if (i >= n)
            return 0;
        if (s[i] == ']') {
            i++;
            continue;
        }
        if (s[i] == '[') {
            size_t e = sd_name(s, n, i + 1);
            if (!e)
                return 0;
            *id = (struct bt_syslog_str){s + i + 1, e - i - 1};
            i = e;
            continue;
        }
        if (s[i] != ' ')
            return 0;
        /* a parameter of the element whose SD-ID the previous call left in *id */
        size_t e = sd_name(s, n, i + 1);
        if (!e)
            return 0;
        *name = (struct bt_syslog_str){s + i + 1, e - i - 1};
        size_t v = e + 2, j = v;
        while (j < n && s[j] != '"')
            j += (s[j] == '\\' && j + 1 < n &&
                  (s[j + 1] == '"' || s[j + 1] == '\\' || s[j + 1] == ']'))
                     ? 2
                     : 1;
        *value = (struct bt_syslog_str){s + v, j - v};
        *pos = j + 1;
        return 1;
    }
}

size_t bt_syslog_sd_unescape(const char *raw, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (raw[i] == '\\' && i + 1 < n &&
            (raw[i + 1] == '"' || raw[i + 1] == '\\' || raw[i + 1] == ']'))
            i++;
        out[o++] = raw[i];
    }
    return o;
}

/* ---- RFC 3164 ---- */

static int month_of(const char *s)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (memcmp(s, names + 3 * i, 3) == 0)
            return i;
    return -1;
}

static int two(const char *s)
{
    return is_digit(s[0]) && is_digit(s[1]) ? (s[0] - '0') * 10 + (s[1] - '0') : -1;
}

/* "Mmm dd hh:mm:ss" (dd may be " d") at s, 15 bytes. 0 with *ns, or -EINVAL. */
static int bsd_time(const char *s, size_t n, int64_t now_ns, int64_t *ns)
{
    if (n < 15 || s[3] != ' ' || s[6] != ' ' || s[9] != ':' || s[12] != ':')
        return -EINVAL;
    int mon = month_of(s);
    int day = s[4] == ' ' ? (is_digit(s[5]) ? s[5] - '0' : -1) : two(s + 4);
    int hh = two(s + 7), mm = two(s + 10), ss = two(s + 13);
    if (mon < 0 || day < 1 || day > 31 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 ||
        ss > 60)
        return -EINVAL;
    time_t now = (time_t)(now_ns / NS_PER_SEC);
    struct tm tm_now;
    gmtime_r(&now, &tm_now);
    int64_t best = 0, best_d = INT64_MAX;
    for (int y = tm_now.tm_year - 1; y <= tm_now.tm_year + 1; y++) {
        struct tm t = {
            .tm_year = y, .tm_mon = mon, .tm_mday = day, .tm_hour = hh, .tm_min = mm, .tm_sec = ss};
        int64_t v = (int64_t)timegm(&t);
        int64_t d = v > (int64_t)now ? v - (int64_t)now : (int64_t)now - v;
        if (d < best_d)
            best_d = d, best = v;
    }
    *ns = best * NS_PER_SEC;
    return 0;
}

/* APP-NAME chars of a tag: printable, not '[', ':' or ' '. */
static bool tag_char(char c)
{
    return is_print(c) && c != '[' && c != ':' && c != ']';
}

int bt_syslog_parse_rfc3164(const char *s, size_t n, int64_t now_ns, struct bt_syslog_msg *m)
{
    memset(m, 0, sizeof(*m));
    size_t i = parse_pri(s, n, m);
    if (!i)
        return -EINVAL;
    size_t rest = i;
    /* timestamp: BSD, or RFC 3339 up to the next space */
    if (bsd_time(s + i, n - i, now_ns, &m->ts_ns) == 0) {
        m->has_ts = true;
        i += 15;
    } else {
        size_t e = i;
        while (e < n && e - i < 64 && s[e] != ' ')
            e++;
        if (e > i && bt_rfc3339_parse(s + i, e - i, &m->ts_ns) == 0) {
            m->has_ts = true;
            i = e;
        }
    }
    if (m->has_ts) {
        if (i < n && s[i] == ' ')
            i++;
        rest = i;
        /* HOSTNAME: the next word, unless the word is already the tag ("tag:" or "tag[") */
        size_t e = i;
        while (e < n && is_print(s[e]) && e - i < 255)
            e++;
        bool is_tag = e > i && (s[e - 1] == ':' || memchr(s + i, '[', e - i));
        if (e > i && e < n && s[e] == ' ' && !is_tag) {
            m->hostname = (struct bt_syslog_str){s + i, e - i};
            i = e + 1;
            rest = i;
        }
    }
    /* TAG[PID]: */
    size_t t = i;
    while (t < n && t - i < 48 && tag_char(s[t]))
        t++;
    if (t > i && t < n && (s[t] == ':' || s[t] == '[')) {
        size_t after = t, pb = 0, pe = 0;
        if (s[t] == '[') {
            pb = t + 1;
            for (pe = pb; pe < n && pe - pb < 128 && is_print(s[pe]) && s[pe] != ']'; pe++)
                ;
            after = (pe < n && s[pe] == ']' && pe > pb) ? pe + 1 : 0;
        }
        if (after && after < n && s[after] == ':') {
            m->app_name = (struct bt_syslog_str){s + i, t - i};
            if (pb)
                m->proc_id = (struct bt_syslog_str){s + pb, pe - pb};
            rest = after + 1;
            if (rest < n && s[rest] == ' ')
                rest++;
        }
    }
    if (rest < n)
        m->msg = (struct bt_syslog_str){s + rest, n - rest};
    return 0;
}

/* ---- TCP framing ---- */

enum bt_syslog_frame_rc bt_syslog_frame(struct bt_syslog_framer *f, const char *b, size_t n,
                                        bool eof, size_t max_msg, const char **msg, size_t *mlen,
                                        size_t *used)
{
    *used = 0;
    if (!n)
        return BT_SYSLOG_FRAME_MORE;
    if (f->skip) {
        *used = n < f->skip ? n : (size_t)f->skip;
        f->skip -= *used;
        return BT_SYSLOG_FRAME_SKIP;
    }
    if (f->discarding) {
        const char *nl = memchr(b, '\n', n);
        *used = nl ? (size_t)(nl - b) + 1 : n;
        f->discarding = !nl;
        return BT_SYSLOG_FRAME_SKIP;
    }
    if (*b == '\n' || *b == '\r' || *b == '\0') {
        *used = 1;
        return BT_SYSLOG_FRAME_SKIP;
    }
    if (*b >= '0' && *b <= '9') {
        size_t i = 0;
        uint64_t v = 0;
        while (i < n && i < 10 && b[i] >= '0' && b[i] <= '9')
            v = v * 10 + (uint64_t)(b[i++] - '0');
        if (i == n && !eof)
            return BT_SYSLOG_FRAME_MORE; /* the count goes on in the next read */
        if (i < n && b[i] == ' ' && v != 0) {
            if (v > max_msg) {
                f->skip = v;
                *used = i + 1;
                return BT_SYSLOG_FRAME_TOO_LONG;
            }
            if (n - i - 1 < v) {
                if (eof)
                    *used = n; /* a cut-off last message */
                return BT_SYSLOG_FRAME_MORE;
            }
            *msg = b + i + 1;
            *mlen = (size_t)v;
            *used = i + 1 + (size_t)v;
            return BT_SYSLOG_FRAME_MSG;
        }
        /* not a count: a message framed by newline that starts with a digit */
    }
    const char *nl = memchr(b, '\n', n);
    if (!nl && !eof) {
        /* Too long already, unless the byte past max_msg is the CR of a CRLF (dropped). */
        if (n > max_msg + 1 || (n == max_msg + 1 && b[max_msg] != '\r')) {
            f->discarding = true;
            *used = n;
            return BT_SYSLOG_FRAME_TOO_LONG;
        }
        return BT_SYSLOG_FRAME_MORE;
    }
    size_t len = nl ? (size_t)(nl - b) : n;
    *used = nl ? len + 1 : len;
    if (len && b[len - 1] == '\r')
        len--;
    if (len > max_msg)
        return BT_SYSLOG_FRAME_TOO_LONG;
    *msg = b;
    *mlen = len;
    return BT_SYSLOG_FRAME_MSG;
}
