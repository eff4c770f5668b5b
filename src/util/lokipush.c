#include "util/lokipush.h"

#include <errno.h>
#include <jansson.h>
#include <push.pb-c.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_SEC 1000000000LL

static int fail(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -EINVAL;
}

/* Sizes the three arrays of the view. */
static int alloc_view(struct bt_lokipush *p, size_t ns, size_t ne, size_t nkv)
{
    p->streams = calloc(ns ? ns : 1, sizeof(*p->streams));
    p->entries = calloc(ne ? ne : 1, sizeof(*p->entries));
    p->kv = calloc(nkv ? nkv : 1, sizeof(*p->kv));
    return p->streams && p->entries && p->kv ? 0 : -ENOMEM;
}

static int decode_proto(struct bt_lokipush *p, const void *body, size_t n, size_t max_raw,
                        char *err, size_t errlen)
{
    size_t raw_len = 0;
    if (snappy_uncompressed_length(body, n, &raw_len) != SNAPPY_OK)
        return fail(err, errlen, "not a snappy block");
    if (raw_len > max_raw)
        return -E2BIG;
    if (!(p->raw = malloc(raw_len ? raw_len : 1)))
        return -ENOMEM;
    if (snappy_uncompress(body, n, p->raw, &raw_len) != SNAPPY_OK)
        return fail(err, errlen, "corrupt snappy block");
    Logproto__PushRequest *req =
        logproto__push_request__unpack(NULL, raw_len, (const uint8_t *)p->raw);
    if (!req)
        return fail(err, errlen, "not a logproto.PushRequest");
    p->priv = req;
    size_t ne = 0, nkv = 0;
    for (size_t i = 0; i < req->n_streams; i++) {
        ne += req->streams[i]->n_entries;
        for (size_t j = 0; j < req->streams[i]->n_entries; j++)
            nkv += req->streams[i]->entries[j]->n_structuredmetadata;
    }
    if (alloc_view(p, req->n_streams, ne, nkv) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < req->n_streams; i++) {
        Logproto__StreamAdapter *s = req->streams[i];
        struct bt_lp_stream *o = &p->streams[p->n_streams++];
        o->labels = s->labels ? s->labels : "";
        o->labels_len = strlen(o->labels);
        o->entry = p->n_entries;
        o->n_entries = s->n_entries;
        for (size_t j = 0; j < s->n_entries; j++) {
            Logproto__EntryAdapter *e = s->entries[j];
            struct bt_lp_entry *oe = &p->entries[p->n_entries++];
            /* Seconds and nanos from outside: an instant past int64 nanoseconds is refused
             * (computing it would overflow), as the JSON form refuses one. */
            if (e->timestamp &&
                (__builtin_mul_overflow(e->timestamp->seconds, NS_PER_SEC, &oe->ts_ns) ||
                 __builtin_add_overflow(oe->ts_ns, (int64_t)e->timestamp->nanos, &oe->ts_ns)))
                return fail(err, errlen, "entry timestamp out of range");
            oe->line = e->line ? e->line : "";
            oe->line_len = strlen(oe->line);
            oe->meta = p->n_kv;
            oe->n_meta = e->n_structuredmetadata;
            for (size_t k = 0; k < e->n_structuredmetadata; k++) {
                Logproto__LabelPairAdapter *m = e->structuredmetadata[k];
                struct bt_lp_kv *kv = &p->kv[p->n_kv++];
                kv->name = m->name ? m->name : "";
                kv->name_len = strlen(kv->name);
                kv->value = m->value ? m->value : "";
                kv->value_len = strlen(kv->value);
            }
        }
    }
    return 0;
}

/* "1700000000000000000" (a JSON string of Unix nanoseconds). */
static int parse_ns(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

static int decode_json(struct bt_lokipush *p, const char *body, size_t n, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(err, errlen, "invalid JSON");
    p->priv = root;
    json_t *streams = json_object_get(root, "streams");
    if (!json_is_array(streams))
        return fail(err, errlen, "JSON: \"streams\" must be an array");
    size_t ns = json_array_size(streams), ne = 0, nkv = 0, i, j;
    json_t *s, *v;
    json_array_foreach(streams, i, s)
    {
        json_t *lab = json_object_get(s, "stream"), *vals = json_object_get(s, "values");
        if (!json_is_object(lab) || !json_is_array(vals))
            return fail(err, errlen, "JSON: each stream needs \"stream\" {} and \"values\" []");
        nkv += json_object_size(lab);
        ne += json_array_size(vals);
        json_array_foreach(vals, j, v)
        {
            json_t *m = json_array_get(v, 2);
            if (json_is_object(m))
                nkv += json_object_size(m);
        }
    }
    if (alloc_view(p, ns, ne, nkv) < 0)
        return -ENOMEM;
    json_array_foreach(streams, i, s)
    {
        json_t *lab = json_object_get(s, "stream"), *vals = json_object_get(s, "values");
        struct bt_lp_stream *o = &p->streams[p->n_streams++];
        const char *k;
        json_t *lv;
        o->lab = p->n_kv;
        json_object_foreach(lab, k, lv)
        {
            if (!json_is_string(lv))
                return fail(err, errlen, "JSON: label values must be strings");
            p->kv[p->n_kv++] =
                (struct bt_lp_kv){k, strlen(k), json_string_value(lv), json_string_length(lv)};
        }
        o->n_lab = p->n_kv - o->lab;
        o->entry = p->n_entries;
        o->n_entries = json_array_size(vals);
        json_array_foreach(vals, j, v)
        {
            json_t *ts = json_array_get(v, 0), *line = json_array_get(v, 1),
                   *m = json_array_get(v, 2);
            struct bt_lp_entry *oe = &p->entries[p->n_entries++];
            if (!json_is_array(v) || json_array_size(v) < 2 || json_array_size(v) > 3 ||
                !json_is_string(ts) || !json_is_string(line) || (m && !json_is_object(m)) ||
                parse_ns(json_string_value(ts), &oe->ts_ns) < 0)
                return fail(err, errlen,
                            "JSON: each value must be [\"<unix ns>\", \"line\"] or with {meta}");
            oe->line = json_string_value(line);
            oe->line_len = json_string_length(line);
            oe->meta = p->n_kv;
            json_object_foreach(m, k, lv)
            {
                if (!json_is_string(lv))
                    return fail(err, errlen, "JSON: metadata values must be strings");
                p->kv[p->n_kv++] =
                    (struct bt_lp_kv){k, strlen(k), json_string_value(lv), json_string_length(lv)};
            }
            oe->n_meta = p->n_kv - oe->meta;
        }
    }
    return 0;
}

int bt_lokipush_decode(struct bt_lokipush *p, enum bt_lokipush_format fmt, const void *body,
                       size_t n, size_t max_raw, char *err, size_t errlen)
{
    memset(p, 0, sizeof(*p));
    p->priv = NULL;
    int rc = fmt == BT_LOKIPUSH_JSON ? decode_json(p, body, n, err, errlen)
                                     : decode_proto(p, body, n, max_raw, err, errlen);
    if (rc < 0) {
        if (fmt == BT_LOKIPUSH_JSON)
            json_decref(p->priv);
        else if (p->priv)
            logproto__push_request__free_unpacked(p->priv, NULL);
        p->priv = NULL;
        bt_lokipush_free(p);
        p->streams = NULL;
        if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory");
    } else {
        p->priv = (void *)((uintptr_t)p->priv | (fmt == BT_LOKIPUSH_JSON));
    }
    return rc;
}

void bt_lokipush_free(struct bt_lokipush *p)
{
    if (!p)
        return;
    if (p->priv) {
        uintptr_t v = (uintptr_t)p->priv;
        if (v & 1)
            json_decref((json_t *)(v & ~(uintptr_t)1));
        else
            logproto__push_request__free_unpacked((Logproto__PushRequest *)v, NULL);
    }
    free(p->streams);
    free(p->entries);
    free(p->kv);
    free(p->raw);
    memset(p, 0, sizeof(*p));
}

/* ---- labels strings ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t utf8_put(char *o, uint32_t cp)
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

/* Unquotes the Go string literal at s[*i] == '"' into out; *i moves past the closing quote.
 * Returns the length, or -EINVAL. The output is never longer than the literal. */
static long unquote(const char *s, size_t n, size_t *i, char *out)
{
    size_t k = *i + 1, o = 0;
    while (k < n && s[k] != '"') {
        char c = s[k++];
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        if (k >= n)
            return -EINVAL;
        c = s[k++];
        const char *simple = strchr("abfnrtv\\\"'", c);
        if (simple && c) {
            static const char map[] = "\a\b\f\n\r\t\v\\\"'";
            out[o++] = map[simple - "abfnrtv\\\"'"];
        } else if (c == 'x' || c == 'u' || c == 'U') {
            int digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            uint32_t v = 0;
            if (n - k < (size_t)digits)
                return -EINVAL;
            for (int d = 0; d < digits; d++) {
                int h = hexval(s[k++]);
                if (h < 0)
                    return -EINVAL;
                v = v << 4 | (uint32_t)h;
            }
            if (c == 'x')
                out[o++] = (char)v;
            else if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
                return -EINVAL;
            else
                o += utf8_put(out + o, v);
        } else if (c >= '0' && c <= '7') {
            if (n - k < 2 || s[k] < '0' || s[k] > '7' || s[k + 1] < '0' || s[k + 1] > '7')
                return -EINVAL;
            unsigned v =
                (unsigned)(c - '0') * 64 + (unsigned)(s[k] - '0') * 8 + (unsigned)(s[k + 1] - '0');
            if (v > 255)
                return -EINVAL;
            out[o++] = (char)v;
            k += 2;
        } else {
            return -EINVAL;
        }
    }
    if (k >= n)
        return -EINVAL;
    *i = k + 1;
    return (long)o;
}

static void skip_ws(const char *s, size_t n, size_t *i)
{
    while (*i < n && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r'))
        (*i)++;
}

int bt_lokipush_labels(const char *s, size_t n, char *scratch,
                       int (*fn)(void *ctx, const char *name, size_t nl, const char *value,
                                 size_t vl),
                       void *ctx)
{
    size_t i = 0;
    skip_ws(s, n, &i);
    if (i >= n || s[i++] != '{')
        return -EINVAL;
    skip_ws(s, n, &i);
    if (i < n && s[i] == '}') {
        i++;
        skip_ws(s, n, &i);
        return i == n ? 0 : -EINVAL;
    }
    for (;;) {
        skip_ws(s, n, &i);
        size_t b = i;
        while (i < n && (s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') ||
                         (s[i] >= 'A' && s[i] <= 'Z') || (i > b && s[i] >= '0' && s[i] <= '9')))
            i++;
        size_t e = i;
        skip_ws(s, n, &i);
        if (e == b || i >= n || s[i++] != '=')
            return -EINVAL;
        skip_ws(s, n, &i);
        if (i >= n || s[i] != '"')
            return -EINVAL;
        long vl = unquote(s, n, &i, scratch);
        if (vl < 0)
            return -EINVAL;
        int rc = fn(ctx, s + b, e - b, scratch, (size_t)vl);
        if (rc < 0)
            return rc;
        skip_ws(s, n, &i);
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        if (i < n && s[i] == '}') {
            i++;
            skip_ws(s, n, &i);
            return i == n ? 0 : -EINVAL;
        }
        return -EINVAL;
    }
}
