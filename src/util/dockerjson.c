#include "util/dockerjson.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "util/buf.h"
#include "util/rfc3339.h"

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -EINVAL;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes one escape at s[0] == '\\' (n bytes available) into o (room for 4 bytes). Returns the
 * number of input bytes used and sets *w to the bytes written, or 0 on a bad escape. */
static size_t unescape_one(const char *s, size_t n, char *o, size_t *w)
{
    if (n < 2)
        return 0;
    *w = 1;
    switch (s[1]) {
    case '"': *o = '"'; return 2;
    case '\\': *o = '\\'; return 2;
    case '/': *o = '/'; return 2;
    case 'b': *o = '\b'; return 2;
    case 'f': *o = '\f'; return 2;
    case 'n': *o = '\n'; return 2;
    case 'r': *o = '\r'; return 2;
    case 't': *o = '\t'; return 2;
    case 'u': break;
    default: return 0;
    }
    unsigned cp, lo;
    if (n < 6 || hex4(s + 2, &cp))
        return 0;
    size_t used = 6;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (n >= 12 && s[6] == '\\' && s[7] == 'u' && hex4(s + 8, &lo) == 0 && lo >= 0xdc00 &&
            lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            used = 12;
        } else {
            cp = 0xfffd;
        }
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        cp = 0xfffd;
    }
    *w = utf8_put(o, cp);
    return used;
}

int bt_dockerjson_unescape(const char *s, size_t n, struct bt_buf *out)
{
    /* Decoded text is never longer than its escaped form. */
    int rc = bt_buf_reserve(out, n);
    if (rc)
        return rc;
    char *o = out->ptr + out->len;
    const char *end = s + n;
    while (s < end) {
        const char *bs = memchr(s, '\\', (size_t)(end - s));
        size_t plain = (size_t)((bs ? bs : end) - s);
        memcpy(o, s, plain);
        o += plain;
        s += plain;
        if (!bs)
            break;
        size_t w;
        size_t used = unescape_one(s, (size_t)(end - s), o, &w);
        if (!used)
            return -EINVAL;
        o += w;
        s += used;
    }
    out->len = (size_t)(o - out->ptr);
    out->ptr[out->len] = 0;
    return 0;
}

/* First '"' or '\\' in [s, end), or end. Eight bytes at a time: a byte equal to c leaves a
 * zero byte in x ^ c, and the lowest flag of the zero-byte test is always exact (flags above
 * a true zero may be false, so only the lowest one is used). */
static const char *quote_or_backslash(const char *s, const char *end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - s >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        uint64_t a = w ^ (ones * '"'), b = w ^ (ones * '\\');
        uint64_t m = ((a - ones) & ~a & highs) | ((b - ones) & ~b & highs);
        if (m) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return s + (__builtin_ctzll(m) >> 3);
#else
            break; /* find it bytewise below */
#endif
        }
        s += 8;
    }
    while (s < end && *s != '"' && *s != '\\')
        s++;
    return s;
}

/* Decodes the JSON string body at s into log (reset first) in one pass, up to its closing
 * quote. Returns the position of that quote; NULL when there is none or an escape is bad (the
 * caller lets jansson judge); *rc gets a buffer error. */
static const char *decode_string(const char *s, const char *end, struct bt_buf *log, int *rc)
{
    bt_buf_reset(log);
    /* Decoded text is never longer than the rest of the record. A buffer capped below that
     * may still hold the text itself: jansson's path finds out. */
    *rc = 0;
    int r = bt_buf_reserve(log, (size_t)(end - s));
    if (r) {
        *rc = r == -E2BIG ? 0 : r;
        return NULL;
    }
    char *o = log->ptr;
    for (;;) {
        const char *q = quote_or_backslash(s, end);
        memcpy(o, s, (size_t)(q - s));
        o += q - s;
        if (q == end)
            return NULL;
        if (*q == '"') {
            log->len = (size_t)(o - log->ptr);
            log->ptr[log->len] = 0;
            return q;
        }
        size_t w;
        size_t used = unescape_one(q, (size_t)(end - q), o, &w);
        if (!used)
            return NULL;
        o += w;
        s = q + used;
    }
}

static bool skip_lit(const char **p, const char *end, const char *lit, size_t n)
{
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

static void set_stream(struct bt_dockerjson *out, const char *s, size_t n)
{
    if (n >= sizeof(out->stream))
        n = 0; /* not a stream name Docker writes; leave the label off */
    memcpy(out->stream, s, n);
    out->stream[n] = 0;
    out->stream_len = n;
}

/* 1: decoded; 0: not the common shape (use the fallback); <0: error from the buffer. */
static int fast_path(const char *p, const char *end, struct bt_buf *log, struct bt_dockerjson *out)
{
    if (!skip_lit(&p, end, "{\"log\":\"", 8))
        return 0;
    int rc;
    const char *q = decode_string(p, end, log, &rc);
    if (!q)
        return rc; /* 0: not decodable here, let jansson judge it */
    p = q + 1;
    if (!skip_lit(&p, end, ",\"stream\":\"", 11))
        return 0;
    const char *sb = p;
    while (p < end && *p != '"' && *p != '\\')
        p++;
    if (p == end || *p != '"')
        return 0;
    const char *se = p++;
    if (!skip_lit(&p, end, ",\"time\":\"", 9))
        return 0;
    const char *tb = p;
    while (p < end && *p != '"' && *p != '\\')
        p++;
    if (p == end || *p != '"')
        return 0;
    const char *te = p++;
    if (p == end || *p++ != '}')
        return 0;
    while (p < end && (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t'))
        p++;
    if (p != end)
        return 0;
    set_stream(out, sb, (size_t)(se - sb));
    out->has_time = bt_rfc3339_parse(tb, (size_t)(te - tb), &out->time_ns) == 0;
    return 1;
}

static int slow_path(const char *rec, size_t len, struct bt_buf *log, struct bt_dockerjson *out)
{
    json_error_t jerr;
    json_t *root = json_loadb(rec, len, JSON_ALLOW_NUL, &jerr);
    int rc = -EINVAL;
    if (!root || !json_is_object(root))
        goto out;
    json_t *l = json_object_get(root, "log");
    if (!json_is_string(l))
        goto out;
    bt_buf_reset(log);
    rc = bt_buf_reserve(log, 1);
    if (rc == 0)
        rc = bt_buf_add(log, json_string_value(l), json_string_length(l));
    if (rc)
        goto out;
    json_t *s = json_object_get(root, "stream");
    if (json_is_string(s))
        set_stream(out, json_string_value(s), json_string_length(s));
    json_t *t = json_object_get(root, "time");
    if (json_is_string(t))
        out->has_time =
            bt_rfc3339_parse(json_string_value(t), json_string_length(t), &out->time_ns) == 0;
    out->slow = true;
out:
    json_decref(root);
    return rc;
}

int bt_dockerjson_parse(const char *rec, size_t len, struct bt_buf *log, struct bt_dockerjson *out)
{
    memset(out, 0, sizeof(*out));
    int rc = fast_path(rec, rec + len, log, out);
    if (rc == 1)
        return 0;
    if (rc < 0) {
        bt_buf_reset(log);
        return rc;
    }
    memset(out, 0, sizeof(*out));
    rc = slow_path(rec, len, log, out);
    if (rc)
        bt_buf_reset(log);
    return rc;
}
