#include "fake_loki.h"
#include "util/buf.h"
#include "util/hmap.h"

#include "push.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_BODY ((size_t)100 << 20) /* compressed, as Loki 3's max_recv_msg_size */
#define MAX_RAW ((size_t)512 << 20)  /* decompressed */
#define MAX_SCRIPT_BODY 4096
#define CHUNK_SIZE ((size_t)4 << 20)

struct fl_resp {
    int status;
    char *body; /* NULL: default body */
    int retry_after_s;
    int delay_ms;
    bool hang, drop;
};

/* One stored entry: 32 bytes plus its bytes in a chunk. */
struct fl_rec {
    int64_t ts;
    const char *data; /* line\0 then n_meta pairs name\0value\0 */
    uint32_t stream;  /* index into streams (which knows the tenant) */
    uint32_t labels;  /* the labels string as sent */
    uint32_t line_len, n_meta;
};

/* What Loki's ingester keeps per stream (tenant + canonical labels). */
struct fl_stream {
    uint32_t tenant;
    bool any;           /* something stored */
    int64_t highest_ts; /* newest stored timestamp: the out-of-order window hangs off it */
    int64_t last_ts;    /* the last stored entry, for the duplicate check of discard mode */
    uint64_t last_hash;
    uint32_t last_len;
};

struct fl_chunk {
    struct fl_chunk *next;
    size_t used, cap;
    char data[];
};

struct fl_strtab {
    struct bt_hmap map; /* string -> index + 1 */
    char **v;
    size_t n, cap;
};

struct bt_fake_loki {
    struct MHD_Daemon *d;
    struct bt_fake_loki_opts opts;
    uint16_t port;
    char url[64];

    pthread_mutex_t mu;
    pthread_cond_t cv; /* requests/entries changed, stop, reset */
    bool stopping;
    uint64_t gen; /* bumped by reset: wakes hanging requests */

    struct fl_resp *script;
    size_t n_script, head_script, cap_script;
    int default_status;

    struct bt_fake_loki_limits limits;

    size_t requests;
    size_t active, max_active; /* push requests being handled now, and the peak */
    int default_delay_ms;
    size_t by_status[600];
    size_t n_entries; /* stored */
    uint64_t bytes;   /* stored line bytes */
    size_t received, duplicates, truncated;
    size_t rej_labels, rej_line, rej_behind;
    uint64_t received_bytes;
    struct fl_rec *recs;
    size_t n_recs, cap_recs;
    struct fl_chunk *chunks;
    struct fl_strtab tenants, labels;
    struct fl_stream *streams;
    size_t n_streams, cap_streams;
    struct bt_hmap stream_idx; /* tenant\0 then canonical pairs -> stream index + 1 */
    uint32_t *dedup;           /* open addressing: record index + 1, 0 = empty */
    size_t dedup_cap, dedup_n;
    struct bt_buf key;          /* scratch for stream keys, under the lock */
    struct bt_buf last_headers; /* name\0value\0 ... */
};

struct fl_conn {
    struct bt_buf body;
    bool too_big;
};

/* ---- storage ---------------------------------------------------------------------------- */

static char *chunk_alloc(struct bt_fake_loki *f, size_t n)
{
    struct fl_chunk *c = f->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > CHUNK_SIZE ? n : CHUNK_SIZE;
        c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = f->chunks;
        f->chunks = c;
    }
    char *p = c->data + c->used;
    c->used += n;
    return p;
}

static void strtab_init(struct fl_strtab *t)
{
    memset(t, 0, sizeof(*t));
    bt_hmap_init(&t->map);
}

static void strtab_free(struct fl_strtab *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i]);
    free(t->v);
    bt_hmap_free(&t->map);
    strtab_init(t);
}

/* Index of s in t, added if new; UINT32_MAX on ENOMEM. */
static uint32_t strtab_intern(struct fl_strtab *t, const char *s)
{
    size_t len = strlen(s);
    uintptr_t idx = (uintptr_t)bt_hmap_get(&t->map, s, len);
    if (idx)
        return (uint32_t)(idx - 1);
    if (t->n == t->cap) {
        size_t n = t->cap ? t->cap * 2 : 16;
        char **nv = realloc(t->v, n * sizeof(*nv));
        if (!nv)
            return UINT32_MAX;
        t->v = nv;
        t->cap = n;
    }
    char *copy = strdup(s);
    if (!copy || bt_hmap_put(&t->map, s, len, (void *)(uintptr_t)(t->n + 1), NULL)) {
        free(copy);
        return UINT32_MAX;
    }
    t->v[t->n] = copy;
    return (uint32_t)t->n++;
}

static void clear_script(struct bt_fake_loki *f)
{
    for (size_t i = f->head_script; i < f->n_script; i++)
        free(f->script[i].body);
    f->n_script = f->head_script = 0;
}

static void clear_records(struct bt_fake_loki *f)
{
    while (f->chunks) {
        struct fl_chunk *c = f->chunks;
        f->chunks = c->next;
        free(c);
    }
    free(f->recs);
    f->recs = NULL;
    f->n_recs = f->cap_recs = 0;
    strtab_free(&f->tenants);
    strtab_free(&f->labels);
    free(f->streams);
    f->streams = NULL;
    f->n_streams = f->cap_streams = 0;
    bt_hmap_free(&f->stream_idx);
    bt_hmap_init(&f->stream_idx);
    free(f->dedup);
    f->dedup = NULL;
    f->dedup_cap = f->dedup_n = 0;
    f->n_entries = 0;
    f->bytes = 0;
    f->received = f->duplicates = f->truncated = 0;
    f->rej_labels = f->rej_line = f->rej_behind = 0;
    f->received_bytes = 0;
    f->requests = 0;
    memset(f->by_status, 0, sizeof(f->by_status));
}

/* ---- per-stream state and the duplicate check ---------------------------------------------- */

/* The stream for key (tenant\0 canonical pairs), created if new; UINT32_MAX on ENOMEM. */
static uint32_t stream_get(struct bt_fake_loki *f, const char *key, size_t klen, uint32_t tenant)
{
    uintptr_t idx = (uintptr_t)bt_hmap_get(&f->stream_idx, key, klen);
    if (idx)
        return (uint32_t)(idx - 1);
    if (f->n_streams == f->cap_streams) {
        size_t n = f->cap_streams ? f->cap_streams * 2 : 64;
        struct fl_stream *ns = realloc(f->streams, n * sizeof(*ns));
        if (!ns)
            return UINT32_MAX;
        f->streams = ns;
        f->cap_streams = n;
    }
    if (bt_hmap_put(&f->stream_idx, key, klen, (void *)(uintptr_t)(f->n_streams + 1), NULL))
        return UINT32_MAX;
    f->streams[f->n_streams] = (struct fl_stream){.tenant = tenant};
    return (uint32_t)f->n_streams++;
}

static uint64_t dedup_hash(uint32_t stream, int64_t ts, const char *line, size_t len)
{
    uint64_t h = bt_hash64(line, len);
    h ^= (uint64_t)ts * 0x9E3779B97F4A7C15ULL;
    h ^= ((uint64_t)stream + 1) * 0xC2B2AE3D27D4EB4FULL;
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 29);
}

/* True if a stored entry of stream has timestamp ts and this exact line. */
static bool dedup_find(const struct bt_fake_loki *f, uint32_t stream, int64_t ts, const char *line,
                       size_t len)
{
    if (!f->dedup_cap)
        return false;
    size_t mask = f->dedup_cap - 1;
    for (size_t i = dedup_hash(stream, ts, line, len) & mask;; i = (i + 1) & mask) {
        uint32_t v = f->dedup[i];
        if (!v)
            return false;
        const struct fl_rec *r = &f->recs[v - 1];
        if (r->stream == stream && r->ts == ts && r->line_len == len &&
            memcmp(r->data, line, len) == 0)
            return true;
    }
}

static void dedup_insert(uint32_t *tab, size_t cap, const struct fl_rec *recs, uint32_t idx)
{
    const struct fl_rec *r = &recs[idx];
    size_t mask = cap - 1;
    size_t i = dedup_hash(r->stream, r->ts, r->data, r->line_len) & mask;
    while (tab[i])
        i = (i + 1) & mask;
    tab[i] = idx + 1;
}

/* Indexes the record idx (just stored). 0 or -ENOMEM. */
static int dedup_add(struct bt_fake_loki *f, uint32_t idx)
{
    if ((f->dedup_n + 1) * 2 > f->dedup_cap) {
        size_t cap = f->dedup_cap ? f->dedup_cap * 2 : 4096;
        uint32_t *tab = calloc(cap, sizeof(*tab));
        if (!tab)
            return -ENOMEM;
        for (size_t i = 0; i < f->dedup_cap; i++)
            if (f->dedup[i])
                dedup_insert(tab, cap, f->recs, f->dedup[i] - 1);
        free(f->dedup);
        f->dedup = tab;
        f->dedup_cap = cap;
    }
    dedup_insert(f->dedup, f->dedup_cap, f->recs, idx);
    f->dedup_n++;
    return 0;
}

/* Stores one entry (line cut to line_len). Caller holds the lock. 0 or -ENOMEM. */
static int record(struct bt_fake_loki *f, uint32_t stream, uint32_t labels,
                  const Logproto__EntryAdapter *e, size_t line_len)
{
    size_t need = line_len + 1;
    for (size_t k = 0; k < e->n_structuredmetadata; k++)
        need +=
            strlen(e->structuredmetadata[k]->name) + strlen(e->structuredmetadata[k]->value) + 2;
    if (f->n_recs == f->cap_recs) {
        size_t n = f->cap_recs ? f->cap_recs * 2 : 1024;
        struct fl_rec *nr = realloc(f->recs, n * sizeof(*nr));
        if (!nr)
            return -ENOMEM;
        f->recs = nr;
        f->cap_recs = n;
    }
    char *p = chunk_alloc(f, need);
    if (!p)
        return -ENOMEM;
    struct fl_rec *r = &f->recs[f->n_recs];
    r->ts = e->timestamp ? e->timestamp->seconds * 1000000000LL + e->timestamp->nanos : 0;
    r->data = p;
    r->stream = stream;
    r->labels = labels;
    r->line_len = (uint32_t)line_len;
    r->n_meta = (uint32_t)e->n_structuredmetadata;
    memcpy(p, e->line, line_len);
    p[line_len] = '\0';
    p += line_len + 1;
    for (size_t k = 0; k < e->n_structuredmetadata; k++) {
        size_t nl = strlen(e->structuredmetadata[k]->name) + 1;
        size_t vl = strlen(e->structuredmetadata[k]->value) + 1;
        memcpy(p, e->structuredmetadata[k]->name, nl);
        p += nl;
        memcpy(p, e->structuredmetadata[k]->value, vl);
        p += vl;
    }
    if (dedup_add(f, (uint32_t)f->n_recs) < 0)
        return -ENOMEM; /* the chunk bytes are wasted, which is harmless */
    f->n_recs++;
    return 0;
}

static void rec_to_entry(const struct bt_fake_loki *f, const struct fl_rec *r,
                         struct bt_fake_entry *out)
{
    out->tenant = f->tenants.v[f->streams[r->stream].tenant];
    out->labels = f->labels.v[r->labels];
    out->ts_ns = r->ts;
    out->line = r->data;
    out->line_len = r->line_len;
    out->meta = r->data + r->line_len + 1;
    out->n_meta = r->n_meta;
}

/* ---- Loki's labels check ------------------------------------------------------------------ */

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static int hexlen(const char *p, int n)
{
    for (int i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return -1;
    }
    return n;
}

/* Parses a quoted value at p; *end gets the byte after the closing quote. Returns the number of
 * raw bytes between the quotes, or -1 on a syntax error. */
static long parse_value(const char *p, const char **end)
{
    char q = *p;
    if (q != '"' && q != '\'' && q != '`')
        return -1;
    const char *s = ++p;
    while (*p && *p != q) {
        if (q != '`' && *p == '\n')
            return -1;
        if (q != '`' && *p == '\\') {
            p++;
            int skip = 1;
            switch (*p) {
            case 'a':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
            case 'v':
            case '\\':
            case '"':
            case '\'': break;
            case 'x': skip = hexlen(p + 1, 2) < 0 ? -1 : 3; break;
            case 'u': skip = hexlen(p + 1, 4) < 0 ? -1 : 5; break;
            case 'U': skip = hexlen(p + 1, 8) < 0 ? -1 : 9; break;
            default:
                if (*p >= '0' && *p <= '7' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' &&
                    p[2] <= '7')
                    skip = 3;
                else
                    skip = -1;
            }
            if (skip < 0)
                return -1;
            p += skip;
            continue;
        }
        p++;
    }
    if (*p != q)
        return -1;
    *end = p + 1;
    return (long)(p - s);
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static int put_utf8(struct bt_buf *o, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return bt_buf_add(o, u, n);
}

/* Appends the value between the quotes (already checked by parse_value), unescaped. */
static int unquote(struct bt_buf *o, const char *p, size_t n, char q)
{
    if (q == '`')
        return bt_buf_add(o, p, n);
    const char *end = p + n;
    int rc = 0;
    while (p < end && !rc) {
        if (*p != '\\') {
            const char *run = p;
            while (p < end && *p != '\\')
                p++;
            rc = bt_buf_add(o, run, (size_t)(p - run));
            continue;
        }
        char c = p[1], b;
        p += 2;
        switch (c) {
        case 'a': b = '\a'; break;
        case 'b': b = '\b'; break;
        case 'f': b = '\f'; break;
        case 'n': b = '\n'; break;
        case 'r': b = '\r'; break;
        case 't': b = '\t'; break;
        case 'v': b = '\v'; break;
        case 'x':
            b = (char)(hexval(p[0]) << 4 | hexval(p[1]));
            p += 2;
            break;
        case 'u':
        case 'U': {
            int digits = c == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int i = 0; i < digits; i++)
                cp = cp << 4 | (uint32_t)hexval(p[i]);
            p += digits;
            rc = put_utf8(o, cp);
            continue;
        }
        default:
            if (c >= '0' && c <= '7') { /* three octal digits */
                b = (char)((c - '0') << 6 | (p[0] - '0') << 3 | (p[1] - '0'));
                p += 2;
            } else {
                b = c; /* \\ \" \' */
            }
        }
        rc = bt_buf_add(o, &b, 1);
    }
    return rc;
}

struct fl_label {
    const char *name;
    size_t nlen;
    size_t voff, vlen; /* unquoted value in the scratch buffer */
};

static int cmp_label(const void *a, const void *b)
{
    const struct fl_label *x = a, *y = b;
    size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->nlen > y->nlen) - (x->nlen < y->nlen);
}

/* Parses and validates a labels string as Loki does (parse, drop empty values, sort, then
 * ValidateLabels). On success appends the stream's canonical form to key if not NULL: sorted
 * name\0value\0 pairs. 0, -EINVAL with Loki's message in err, or -ENOMEM. */
static int parse_labels(const char *s, const struct bt_fake_loki_limits *lim, struct bt_buf *key,
                        char *err, size_t errlen)
{
    struct fl_label *ls = malloc(BT_FAKE_LOKI_MAX_LABELS * sizeof(*ls));
    struct bt_buf vals;
    bt_buf_init(&vals, (size_t)1 << 30);
    size_t n = 0;
    int rc = -EINVAL;
    const char *p = skip_ws(s);
    const char *why = "unexpected character";
    if (!ls) {
        rc = -ENOMEM;
        goto out;
    }
    if (*p++ != '{') {
        why = "expected '{'";
        goto bad;
    }
    p = skip_ws(p);
    while (*p != '}') {
        if (!is_name_start(*p)) {
            why = "expected label name";
            goto bad;
        }
        const char *name = p;
        while (is_name_char(*p))
            p++;
        size_t nlen = (size_t)(p - name);
        p = skip_ws(p);
        if (*p++ != '=') {
            why = "expected '=' after label name";
            goto bad;
        }
        p = skip_ws(p);
        char q = *p;
        const char *raw = p + 1;
        long rawlen = parse_value(p, &p);
        if (rawlen < 0) {
            why = "invalid quoted label value";
            goto bad;
        }
        size_t voff = vals.len;
        if (unquote(&vals, raw, (size_t)rawlen, q)) {
            rc = -ENOMEM;
            goto out;
        }
        if (vals.len > voff) { /* Loki drops pairs with empty values */
            if (n == BT_FAKE_LOKI_MAX_LABELS) {
                snprintf(err, errlen, "entry for stream '%s' has more than %d label names", s,
                         BT_FAKE_LOKI_MAX_LABELS);
                goto out;
            }
            ls[n++] = (struct fl_label){name, nlen, voff, vals.len - voff};
        }
        p = skip_ws(p);
        if (*p == ',') {
            p = skip_ws(p + 1);
            continue;
        }
        if (*p != '}') {
            why = "expected ',' or '}'";
            goto bad;
        }
    }
    p = skip_ws(p + 1);
    if (*p) {
        why = "unexpected text after '}'";
        goto bad;
    }
    if (!n) {
        snprintf(err, errlen, "error at least one label pair is required per stream");
        goto out;
    }
    if (lim->max_label_names_per_series && n > lim->max_label_names_per_series) {
        snprintf(err, errlen, "entry for stream '%s' has %zu label names; limit %u", s, n,
                 lim->max_label_names_per_series);
        goto out;
    }
    qsort(ls, n, sizeof(*ls), cmp_label);
    for (size_t i = 0; i < n; i++) {
        const char *v = vals.ptr + ls[i].voff;
        if (ls[i].nlen > lim->max_label_name_length) {
            snprintf(err, errlen, "stream '%s' has label name too long: '%.*s'", s, (int)ls[i].nlen,
                     ls[i].name);
            goto out;
        }
        if (ls[i].vlen > lim->max_label_value_length) {
            snprintf(err, errlen, "stream '%s' has label value too long: '%.*s'", s,
                     (int)ls[i].vlen, v);
            goto out;
        }
        if (i && cmp_label(&ls[i - 1], &ls[i]) == 0) {
            snprintf(err, errlen, "stream '%s' has duplicate label name: '%.*s'", s,
                     (int)ls[i].nlen, ls[i].name);
            goto out;
        }
    }
    rc = 0;
    for (size_t i = 0; key && i < n && !rc; i++) {
        rc = bt_buf_add(key, ls[i].name, ls[i].nlen);
        rc = rc ? rc : bt_buf_add(key, "", 1);
        rc = rc ? rc : bt_buf_add(key, vals.ptr + ls[i].voff, ls[i].vlen);
        rc = rc ? rc : bt_buf_add(key, "", 1);
    }
    if (rc)
        rc = -ENOMEM;
    goto out;
bad:
    snprintf(err, errlen, "Error parsing labels '%s' with error: parse error at char %zu: %s", s,
             (size_t)(p - s), why);
out:
    if (rc == -ENOMEM)
        snprintf(err, errlen, "fake loki: out of memory");
    bt_buf_free(&vals);
    free(ls);
    return rc;
}

struct bt_fake_loki_limits bt_fake_loki_default_limits(void)
{
    return (struct bt_fake_loki_limits){
        .max_line_size = 256 * 1024,
        .max_line_size_truncate = false,
        .max_chunk_age_ns = 2 * 3600 * 1000000000LL,
        .max_label_names_per_series = 15,
        .max_label_name_length = 1024,
        .max_label_value_length = 2048,
    };
}

int bt_fake_loki_check_labels(const char *s, char *err, size_t errlen)
{
    struct bt_fake_loki_limits lim = bt_fake_loki_default_limits();
    int rc = parse_labels(s, &lim, NULL, err, errlen);
    return rc == -ENOMEM ? -EINVAL : rc;
}

/* ---- HTTP ----------------------------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *conn, int status, const char *body, size_t len,
                             const char *ctype, int retry_after_s)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (len && ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    if (retry_after_s > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%d", retry_after_s);
        MHD_add_response_header(r, "Retry-After", v);
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, int status, const char *text)
{
    return reply(conn, status, text, strlen(text), "text/plain; charset=utf-8", 0);
}

static const char *default_body(int status)
{
    switch (status) {
    case 429:
        return "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while "
               "attempting to ingest lines, reduce log volume or contact your Loki "
               "administrator to see if the limit can be increased";
    case 500: return "rpc error: code = Unavailable desc = fake loki: scripted server error";
    case 503: return "fake loki: service unavailable";
    default: return "fake loki: scripted answer";
    }
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct bt_buf *b = cls;
    if (bt_buf_add(b, key, strlen(key) + 1) ||
        bt_buf_add(b, value ? value : "", value ? strlen(value) + 1 : 1))
        return MHD_NO;
    return MHD_YES;
}

static void count_status(struct bt_fake_loki *f, int status)
{
    pthread_mutex_lock(&f->mu);
    if (status >= 0 && status < 600)
        f->by_status[status]++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Waits ms (or forever if ms < 0) unless the server stops or resets. Caller holds the lock.
 * Returns true if interrupted. */
static bool wait_interruptible(struct bt_fake_loki *f, long ms)
{
    uint64_t gen = f->gen;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!f->stopping && f->gen == gen) {
        if (ms < 0)
            pthread_cond_wait(&f->cv, &f->mu);
        else if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) == ETIMEDOUT)
            return false;
    }
    return true;
}

/* Go's time.Time.String() in UTC ("2006-01-02 15:04:05.999999999 +0000 UTC"), or RFC3339
 * at second precision ("2006-01-02T15:04:05Z"), as Loki's messages print timestamps. */
static void fmt_time(char *out, size_t len, int64_t ns, bool rfc3339)
{
    int64_t sec = ns / 1000000000LL, frac = ns % 1000000000LL;
    if (frac < 0) {
        frac += 1000000000LL;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    char date[48];
    strftime(date, sizeof(date), rfc3339 ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &tm);
    if (rfc3339) {
        snprintf(out, len, "%sZ", date);
        return;
    }
    char fr[16] = "";
    if (frac) {
        snprintf(fr, sizeof(fr), ".%09" PRId64, frac);
        size_t n = strlen(fr);
        while (fr[n - 1] == '0')
            fr[--n] = '\0';
    }
    snprintf(out, len, "%s%s +0000 UTC", date, fr);
}

#define MAX_RETURNED_ERRORS 10 /* Loki's ingester max_returned_stream_errors default */

/* Applies Loki's rules to each stream of req and stores what Loki would store: an invalid
 * stream is skipped whole, a too long or too old entry alone, a duplicate silently; the answer
 * is 204, or the last error (400). Returns the HTTP status; msg gets the error. */
static int record_request(struct bt_fake_loki *f, const Logproto__PushRequest *req,
                          const char *tenant, char *msg, size_t msglen, size_t *n_stored)
{
    int status = 204;
    bool oom = false;
    pthread_mutex_lock(&f->mu);
    const struct bt_fake_loki_limits lim = f->limits;
    int64_t window = lim.max_chunk_age_ns > 0 ? lim.max_chunk_age_ns / 2 : 0;
    uint32_t ti = strtab_intern(&f->tenants, tenant);
    oom = ti == UINT32_MAX;
    for (size_t i = 0; i < req->n_streams && !oom; i++) {
        const Logproto__StreamAdapter *s = req->streams[i];
        for (size_t j = 0; j < s->n_entries; j++) {
            f->received++;
            f->received_bytes += strlen(s->entries[j]->line);
        }
        char err[8192];
        bt_buf_reset(&f->key);
        if (bt_buf_add(&f->key, tenant, strlen(tenant) + 1)) {
            oom = true;
            break;
        }
        int rc = parse_labels(s->labels, &lim, &f->key, err, sizeof(err));
        if (rc == -ENOMEM) {
            oom = true;
            break;
        }
        if (rc) {
            f->rej_labels += s->n_entries;
            snprintf(msg, msglen, "%s", err);
            status = 400;
            continue;
        }
        uint32_t si = stream_get(f, f->key.ptr, f->key.len, ti);
        uint32_t li = f->opts.discard ? 0 : strtab_intern(&f->labels, s->labels);
        if (si == UINT32_MAX || li == UINT32_MAX) {
            oom = true;
            break;
        }
        struct bt_buf behind; /* the ingester's answer for entries out of the window */
        bt_buf_init(&behind, 1 << 20);
        size_t ignored = 0, reached = 0;
        for (size_t j = 0; j < s->n_entries; j++) {
            const Logproto__EntryAdapter *e = s->entries[j];
            struct fl_stream *st = &f->streams[si];
            size_t len = strlen(e->line);
            if (lim.max_line_size && len > lim.max_line_size) {
                if (!lim.max_line_size_truncate) {
                    f->rej_line++;
                    snprintf(msg, msglen,
                             "Max entry size '%" PRIu64 "' bytes exceeded for stream '%s' while "
                             "adding an entry with length '%zu' bytes",
                             lim.max_line_size, s->labels, len);
                    status = 400;
                    continue;
                }
                len = (size_t)lim.max_line_size;
                f->truncated++;
            }
            reached++;
            int64_t ts =
                e->timestamp ? e->timestamp->seconds * 1000000000LL + e->timestamp->nanos : 0;
            if (window && st->any && ts < st->highest_ts - window) {
                f->rej_behind++;
                if (++ignored <= MAX_RETURNED_ERRORS) {
                    char t1[64], t2[64], t3[64];
                    fmt_time(t1, sizeof(t1), ts, false);
                    fmt_time(t2, sizeof(t2), ts, true);
                    fmt_time(t3, sizeof(t3), st->highest_ts - window, true);
                    bt_buf_addf(&behind,
                                "entry with timestamp %s ignored, reason: 'entry too far behind, "
                                "entry timestamp is: %s, oldest acceptable timestamp is: %s',\n",
                                t1, t2, t3);
                }
                continue;
            }
            uint64_t h = bt_hash64(e->line, len);
            bool dup = f->opts.discard ? st->any && st->last_ts == ts && st->last_len == len &&
                                             st->last_hash == h
                                       : dedup_find(f, si, ts, e->line, len);
            if (dup) {
                f->duplicates++;
                continue;
            }
            if (!f->opts.discard && record(f, si, li, e, len)) {
                oom = true;
                break;
            }
            if (!st->any || ts > st->highest_ts)
                st->highest_ts = ts;
            st->any = true;
            st->last_ts = ts;
            st->last_hash = h;
            st->last_len = (uint32_t)len;
            f->n_entries++;
            f->bytes += len;
            (*n_stored)++;
        }
        if (ignored) {
            bt_buf_addf(&behind, "user '%s', total ignored: %zu out of %zu for stream: %s",
                        *tenant ? tenant : "fake", ignored, reached, s->labels);
            snprintf(msg, msglen, "%.*s", (int)behind.len, behind.ptr ? behind.ptr : "");
            status = 400;
        }
        bt_buf_free(&behind);
    }
    if (oom) {
        snprintf(msg, msglen, "fake loki: out of memory while recording");
        status = 500;
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return status;
}

/* Decodes, validates and records a push body. Returns the HTTP status; *msg gets the error. */
static int accept_push(struct bt_fake_loki *f, struct MHD_Connection *conn, struct fl_conn *c,
                       char *msg, size_t msglen, size_t *n_accepted)
{
    const char *ctype = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (!ctype || !*ctype) {
        snprintf(msg, msglen, "mime: no media type");
        return 400;
    }
    if (strncasecmp(ctype, "application/json", 16) == 0) {
        snprintf(msg, msglen, "fake loki: JSON push bodies are not supported");
        return 400;
    }
    const char *cenc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Encoding");
    if (cenc && *cenc && strcasecmp(cenc, "snappy") != 0) {
        snprintf(msg, msglen, "Content-Encoding \"%s\" not supported", cenc);
        return 400;
    }
    if (c->too_big) {
        snprintf(msg, msglen, "request body too large: more than %zu bytes", MAX_BODY);
        return 413;
    }
    size_t raw_len;
    if (snappy_uncompressed_length(c->body.ptr ? c->body.ptr : "", c->body.len, &raw_len) !=
        SNAPPY_OK) {
        snprintf(msg, msglen, "snappy: corrupt input");
        return 400;
    }
    if (raw_len > MAX_RAW) {
        snprintf(msg, msglen, "decompressed request body too large: %zu bytes", raw_len);
        return 413;
    }
    char *raw = malloc(raw_len ? raw_len : 1);
    if (!raw) {
        snprintf(msg, msglen, "out of memory");
        return 500;
    }
    int status = 204;
    Logproto__PushRequest *req = NULL;
    if (snappy_uncompress(c->body.ptr ? c->body.ptr : "", c->body.len, raw, &raw_len) !=
        SNAPPY_OK) {
        snprintf(msg, msglen, "snappy: corrupt input");
        status = 400;
        goto out;
    }
    req = logproto__push_request__unpack(NULL, raw_len, (const uint8_t *)raw);
    if (!req) {
        snprintf(msg, msglen, "proto: failed to unmarshal PushRequest (%zu bytes)", raw_len);
        status = 400;
        goto out;
    }
    const char *tenant = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Scope-OrgID");
    status = record_request(f, req, tenant ? tenant : "", msg, msglen, n_accepted);
out:
    if (req)
        logproto__push_request__free_unpacked(req, NULL);
    free(raw);
    return status;
}

static enum MHD_Result handle_push(struct bt_fake_loki *f, struct MHD_Connection *conn,
                                   struct fl_conn *c, const char *url)
{
    struct fl_resp r = {.status = 0};
    char *scripted_body = NULL;
    pthread_mutex_lock(&f->mu);
    f->requests++;
    if (++f->active > f->max_active)
        f->max_active = f->active;
    uint64_t gen = f->gen;
    if (f->head_script < f->n_script) {
        r = f->script[f->head_script++];
        scripted_body = r.body;
    }
    if (!r.status) /* no script, or a "delay=N" item: the default answer */
        r.status = f->default_status;
    int delay = r.delay_ms ? r.delay_ms : f->default_delay_ms;
    bt_buf_reset(&f->last_headers);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, &f->last_headers);
    pthread_cond_broadcast(&f->cv);
    bool interrupted = false;
    if (delay > 0)
        interrupted = wait_interruptible(f, delay);
    if (!interrupted && r.hang)
        interrupted = wait_interruptible(f, -1);
    pthread_mutex_unlock(&f->mu);

    enum MHD_Result ret;
    int status = r.status;
    size_t accepted = 0;
    if (interrupted || r.hang || r.drop) {
        status = 0;
        ret = MHD_NO; /* closes the connection without an answer */
    } else if (status < 200 || status > 299) {
        const char *body = scripted_body ? scripted_body : default_body(status);
        ret = reply(conn, status, body, strlen(body), "text/plain; charset=utf-8", r.retry_after_s);
    } else {
        char msg[8192];
        int st = accept_push(f, conn, c, msg, sizeof(msg), &accepted);
        if (st >= 200 && st <= 299) { /* accepted: answer with the scripted 2xx */
            ret = reply(conn, status, "", 0, NULL, 0);
        } else {
            status = st;
            ret = reply_text(conn, status, msg);
        }
    }
    free(scripted_body);
    pthread_mutex_lock(&f->mu);
    if (f->gen == gen && f->active)
        f->active--;
    pthread_mutex_unlock(&f->mu);
    count_status(f, status);
    if (!f->opts.quiet)
        fprintf(stderr, "fake-loki: POST %s status=%d entries=%zu body_bytes=%zu\n", url, status,
                accepted, c->body.len);
    return ret;
}

/* Parses one script item ("500x3:retry-after=2", "hang", "drop", "delay=N").
 * Returns the repeat count (>=1), or -1 on a syntax error. */
static int parse_item(const char *item, struct fl_resp *r)
{
    memset(r, 0, sizeof(*r));
    char *end;
    const char *p = item;
    if (strncmp(p, "delay=", 6) == 0) { /* one answer with the default status, late */
        long v = strtol(p + 6, &end, 10);
        if (end == p + 6 || v < 0 || v > 3600000)
            return -1;
        r->delay_ms = (int)v;
        r->status = 0;
        p = end;
    } else if (strncmp(p, "hang", 4) == 0) {
        r->hang = true;
        p += 4;
    } else if (strncmp(p, "drop", 4) == 0) {
        r->drop = true;
        p += 4;
    } else {
        long v = strtol(p, &end, 10);
        if (end == p || v < 100 || v > 599)
            return -1;
        r->status = (int)v;
        p = end;
    }
    long times = 1;
    if (*p == 'x') {
        times = strtol(p + 1, &end, 10);
        if (end == p + 1 || times < 1 || times > 100000)
            return -1;
        p = end;
    }
    while (*p == ':') {
        p++;
        if (strncmp(p, "body=", 5) == 0) {
            r->body = strndup(p + 5, MAX_SCRIPT_BODY);
            return r->body ? (int)times : -1;
        }
        bool is_delay = strncmp(p, "delay=", 6) == 0;
        if (is_delay)
            p += 6;
        else if (strncmp(p, "retry-after=", 12) == 0)
            p += 12;
        else
            return -1;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 3600000)
            return -1;
        if (is_delay)
            r->delay_ms = (int)v;
        else
            r->retry_after_s = (int)v;
        p = end;
    }
    return *p ? -1 : (int)times;
}

static int script_append(struct bt_fake_loki *f, const struct fl_resp *r)
{
    if (f->n_script == f->cap_script) {
        if (f->head_script > 0) { /* compact consumed slots first */
            memmove(f->script, f->script + f->head_script,
                    (f->n_script - f->head_script) * sizeof(*f->script));
            f->n_script -= f->head_script;
            f->head_script = 0;
        }
        if (f->n_script == f->cap_script) {
            size_t n = f->cap_script ? f->cap_script * 2 : 16;
            struct fl_resp *ns = realloc(f->script, n * sizeof(*ns));
            if (!ns)
                return -ENOMEM;
            f->script = ns;
            f->cap_script = n;
        }
    }
    f->script[f->n_script] = *r;
    if (r->body && !(f->script[f->n_script].body = strdup(r->body)))
        return -ENOMEM;
    f->n_script++;
    return 0;
}

int bt_fake_loki_script(struct bt_fake_loki *f, const struct bt_fake_response *r)
{
    struct fl_resp fr = {r->status,   (char *)r->body, r->retry_after_s,
                         r->delay_ms, r->hang,         r->drop};
    pthread_mutex_lock(&f->mu);
    int rc = script_append(f, &fr);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

#define MAX_SCRIPT_ITEMS 100000

int bt_fake_loki_script_spec(struct bt_fake_loki *f, const char *spec)
{
    char *copy = strdup(spec);
    struct fl_resp *items = NULL;
    int *counts = NULL;
    size_t n = 0, cap = 0;
    int rc = copy ? 0 : -ENOMEM;
    char *next = copy;
    while (next && !rc) {
        char *it = next;
        char *comma = strchr(it, ',');
        next = comma ? comma + 1 : NULL;
        if (comma)
            *comma = '\0';
        while (*it == ' ' || *it == '\n' || *it == '\t' || *it == '\r')
            it++;
        size_t l = strlen(it);
        while (l && (it[l - 1] == ' ' || it[l - 1] == '\n' || it[l - 1] == '\r'))
            it[--l] = '\0';
        if (!*it)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            struct fl_resp *ni = nc <= MAX_SCRIPT_ITEMS ? realloc(items, nc * sizeof(*ni)) : NULL;
            if (ni)
                items = ni;
            int *nn = ni ? realloc(counts, nc * sizeof(*nn)) : NULL;
            if (!nn) {
                rc = -EINVAL;
                break;
            }
            counts = nn;
            cap = nc;
        }
        int c = parse_item(it, &items[n]);
        if (c < 0)
            rc = -EINVAL;
        else
            counts[n++] = c;
    }
    if (!rc) {
        pthread_mutex_lock(&f->mu);
        for (size_t i = 0; i < n && !rc; i++)
            for (int k = 0; k < counts[i] && !rc; k++)
                rc = script_append(f, &items[i]);
        pthread_mutex_unlock(&f->mu);
    }
    for (size_t i = 0; i < n; i++)
        free(items[i].body);
    free(items);
    free(counts);
    free(copy);
    return rc;
}

static int json_str(struct bt_buf *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = bt_buf_add(o, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc = bt_buf_add(o, s + start, i - start);
        char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
        if (!rc && (c == '"' || c == '\\'))
            rc = bt_buf_add(o, (char[]){'\\', (char)c}, 2);
        else if (!rc)
            rc = bt_buf_add(o, esc, 6);
        start = i + 1;
    }
    if (!rc)
        rc = bt_buf_add(o, s + start, n - start);
    return rc ? rc : bt_buf_add(o, "\"", 1);
}

static int dump_entries(struct bt_fake_loki *f, struct bt_buf *o)
{
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_recs && !rc; i++) {
        struct bt_fake_entry e;
        rec_to_entry(f, &f->recs[i], &e);
        rc = bt_buf_adds(o, "{\"tenant\":");
        rc = rc ? rc : json_str(o, e.tenant, strlen(e.tenant));
        rc = rc ? rc : bt_buf_adds(o, ",\"labels\":");
        rc = rc ? rc : json_str(o, e.labels, strlen(e.labels));
        rc = rc ? rc : bt_buf_addf(o, ",\"ts\":%" PRId64 ",\"line\":", e.ts_ns);
        rc = rc ? rc : json_str(o, e.line, e.line_len);
        rc = rc ? rc : bt_buf_adds(o, ",\"meta\":{");
        const char *m = e.meta;
        for (size_t k = 0; k < e.n_meta && !rc; k++) {
            size_t nl = strlen(m);
            const char *v = m + nl + 1;
            size_t vl = strlen(v);
            rc = k ? bt_buf_add(o, ",", 1) : 0;
            rc = rc ? rc : json_str(o, m, nl);
            rc = rc ? rc : bt_buf_add(o, ":", 1);
            rc = rc ? rc : json_str(o, v, vl);
            m = v + vl + 1;
        }
        rc = rc ? rc : bt_buf_adds(o, "}}\n");
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static int dump_stats(struct bt_fake_loki *f, struct bt_buf *o)
{
    pthread_mutex_lock(&f->mu);
    int rc = bt_buf_addf(o,
                         "{\"requests\":%zu,\"entries\":%zu,\"bytes\":%" PRIu64
                         ",\"received_entries\":%zu,\"received_bytes\":%" PRIu64
                         ",\"duplicates\":%zu,\"truncated\":%zu,\"max_concurrent\":%zu,"
                         "\"rejected\":{\"invalid_labels\":%zu,"
                         "\"line_too_long\":%zu,\"too_far_behind\":%zu},\"by_status\":{",
                         f->requests, f->n_entries, f->bytes, f->received, f->received_bytes,
                         f->duplicates, f->truncated, f->max_active, f->rej_labels, f->rej_line,
                         f->rej_behind);
    bool first = true;
    for (int s = 0; s < 600 && !rc; s++) {
        if (!f->by_status[s])
            continue;
        rc = bt_buf_addf(o, "%s\"%d\":%zu", first ? "" : ",", s, f->by_status[s]);
        first = false;
    }
    rc = rc ? rc : bt_buf_adds(o, "}}\n");
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static enum MHD_Result handle_control(struct bt_fake_loki *f, struct MHD_Connection *conn,
                                      struct fl_conn *c, const char *url, const char *method)
{
    bool post = strcmp(method, "POST") == 0;
    if (post && strcmp(url, "/control/script") == 0) {
        if (c->too_big || bt_fake_loki_script_spec(f, c->body.ptr ? c->body.ptr : ""))
            return reply_text(conn, 400, "bad script\n");
        return reply_text(conn, 200, "ok\n");
    }
    if (post && strcmp(url, "/control/default") == 0) {
        const char *s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "status");
        const char *d = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "delay_ms");
        char *end;
        long v = s ? strtol(s, &end, 10) : 0;
        if (s && (end == s || *end || v < 100 || v > 599))
            return reply_text(conn, 400, "status must be 100..599\n");
        long dv = d ? strtol(d, &end, 10) : 0;
        if (d && (end == d || *end || dv < 0 || dv > 3600000))
            return reply_text(conn, 400, "delay_ms must be 0..3600000\n");
        if (!s && !d)
            return reply_text(conn, 400, "status or delay_ms needed\n");
        if (s)
            bt_fake_loki_set_default(f, (int)v);
        if (d)
            bt_fake_loki_set_delay(f, (int)dv);
        return reply_text(conn, 200, "ok\n");
    }
    if (post && strcmp(url, "/control/limits") == 0) {
        pthread_mutex_lock(&f->mu);
        struct bt_fake_loki_limits l = f->limits;
        pthread_mutex_unlock(&f->mu);
        static const char *const keys[] = {"max_line_size",         "max_line_size_truncate",
                                           "max_chunk_age_ms",      "max_label_names_per_series",
                                           "max_label_name_length", "max_label_value_length"};
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, keys[k]);
            if (!v)
                continue;
            char *end;
            errno = 0;
            unsigned long long x = strtoull(v, &end, 10);
            if (!*v || *end || errno || *v == '-' || (k == 1 && x > 1) ||
                (k == 3 && x > BT_FAKE_LOKI_MAX_LABELS) || ((k == 4 || k == 5) && x > UINT32_MAX))
                return reply_text(conn, 400, "bad limit value\n");
            switch (k) {
            case 0: l.max_line_size = x; break;
            case 1: l.max_line_size_truncate = x == 1; break;
            case 2:
                l.max_chunk_age_ns =
                    (int64_t)(x > INT64_MAX / 1000000 ? INT64_MAX / 1000000 : x) * 1000000;
                break;
            case 3: l.max_label_names_per_series = (uint32_t)x; break;
            case 4: l.max_label_name_length = (uint32_t)x; break;
            default: l.max_label_value_length = (uint32_t)x; break;
            }
        }
        bt_fake_loki_set_limits(f, &l);
        return reply_text(conn, 200, "ok\n");
    }
    if (post && strcmp(url, "/control/reset") == 0) {
        bt_fake_loki_reset(f);
        return reply_text(conn, 200, "ok\n");
    }
    if (!post && (strcmp(url, "/control/dump") == 0 || strcmp(url, "/control/stats") == 0)) {
        struct bt_buf o;
        bt_buf_init(&o, (size_t)1 << 34);
        int rc = url[9] == 'd' ? dump_entries(f, &o) : dump_stats(f, &o);
        if (rc) {
            bt_buf_free(&o);
            return reply_text(conn, 500, "out of memory\n");
        }
        size_t len;
        char *p = bt_buf_take(&o, &len);
        if (!p)
            return reply_text(conn, 500, "out of memory\n");
        struct MHD_Response *r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(p);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "application/json");
        enum MHD_Result ret = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    return reply_text(conn, 404, "404 page not found\n");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    struct bt_fake_loki *f = cls;
    struct fl_conn *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c)
            return MHD_NO;
        bt_buf_init(&c->body, MAX_BODY);
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!c->too_big && bt_buf_add(&c->body, upload_data, *upload_data_size))
            c->too_big = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strncmp(url, "/control/", 9) == 0)
        return handle_control(f, conn, c, url, method);
    if (strcmp(url, "/loki/api/v1/push") == 0 || strcmp(url, "/api/prom/push") == 0) {
        if (strcmp(method, "POST") != 0)
            return reply_text(conn, 405, "method not allowed\n");
        return handle_push(f, conn, c, url);
    }
    return reply_text(conn, 404, "404 page not found\n");
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct fl_conn *c = *con_cls;
    if (!c)
        return;
    bt_buf_free(&c->body);
    free(c);
    *con_cls = NULL;
}

/* ---- lifecycle and accessors ----------------------------------------------------------- */

struct bt_fake_loki *bt_fake_loki_start(void)
{
    struct bt_fake_loki_opts o = {.port = 0, .quiet = true};
    return bt_fake_loki_start_opts(&o);
}

struct bt_fake_loki *bt_fake_loki_start_opts(const struct bt_fake_loki_opts *o)
{
    struct bt_fake_loki *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->opts = *o;
    f->opts.limits = NULL;
    f->limits = o->limits ? *o->limits : bt_fake_loki_default_limits();
    f->default_status = 204;
    f->default_delay_ms = o->delay_ms > 0 ? o->delay_ms : 0;
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    strtab_init(&f->tenants);
    strtab_init(&f->labels);
    bt_hmap_init(&f->stream_idx);
    bt_buf_init(&f->last_headers, 1 << 20);
    bt_buf_init(&f->key, (size_t)1 << 30);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(o->port)};
    sa.sin_addr.s_addr = htonl(o->any_addr ? INADDR_ANY : INADDR_LOOPBACK);
    f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                            NULL, NULL, handler, f, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, f,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
    if (!f->d) {
        int e = errno ? errno : EADDRINUSE;
        bt_fake_loki_stop(f);
        errno = e;
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    f->port = di ? di->port : o->port;
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/loki/api/v1/push", f->port);
    return f;
}

void bt_fake_loki_stop(struct bt_fake_loki *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (f->d)
        MHD_stop_daemon(f->d);
    clear_script(f);
    free(f->script);
    clear_records(f);
    bt_hmap_free(&f->stream_idx);
    bt_buf_free(&f->last_headers);
    bt_buf_free(&f->key);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

uint16_t bt_fake_loki_port(const struct bt_fake_loki *f)
{
    return f->port;
}

const char *bt_fake_loki_url(const struct bt_fake_loki *f)
{
    return f->url;
}

void bt_fake_loki_set_delay(struct bt_fake_loki *f, int delay_ms)
{
    pthread_mutex_lock(&f->mu);
    f->default_delay_ms = delay_ms > 0 ? delay_ms : 0;
    pthread_mutex_unlock(&f->mu);
}

size_t bt_fake_loki_max_concurrent(struct bt_fake_loki *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->max_active;
    pthread_mutex_unlock(&f->mu);
    return n;
}

void bt_fake_loki_set_default(struct bt_fake_loki *f, int status)
{
    pthread_mutex_lock(&f->mu);
    f->default_status = status;
    pthread_mutex_unlock(&f->mu);
}

void bt_fake_loki_set_limits(struct bt_fake_loki *f, const struct bt_fake_loki_limits *l)
{
    pthread_mutex_lock(&f->mu);
    f->limits = *l;
    if (f->limits.max_label_names_per_series > BT_FAKE_LOKI_MAX_LABELS)
        f->limits.max_label_names_per_series = BT_FAKE_LOKI_MAX_LABELS;
    pthread_mutex_unlock(&f->mu);
}

void bt_fake_loki_reset(struct bt_fake_loki *f)
{
    pthread_mutex_lock(&f->mu);
    clear_script(f);
    clear_records(f);
    f->gen++;
    f->active = f->max_active = 0;
    bt_buf_reset(&f->last_headers);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

size_t bt_fake_loki_requests(struct bt_fake_loki *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->requests;
    pthread_mutex_unlock(&f->mu);
    return n;
}

size_t bt_fake_loki_status_count(struct bt_fake_loki *f, int status)
{
    if (status < 0 || status >= 600)
        return 0;
    pthread_mutex_lock(&f->mu);
    size_t n = f->by_status[status];
    pthread_mutex_unlock(&f->mu);
    return n;
}

static int wait_for(struct bt_fake_loki *f, const size_t *counter, size_t n, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    while (*counter < n && rc == 0)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) == ETIMEDOUT)
            rc = *counter < n ? -ETIMEDOUT : 0;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int bt_fake_loki_wait_requests(struct bt_fake_loki *f, size_t n, int timeout_ms)
{
    return wait_for(f, &f->requests, n, timeout_ms);
}

int bt_fake_loki_wait_entries(struct bt_fake_loki *f, size_t n, int timeout_ms)
{
    return wait_for(f, &f->n_entries, n, timeout_ms);
}

size_t bt_fake_loki_entries(struct bt_fake_loki *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->n_entries;
    pthread_mutex_unlock(&f->mu);
    return n;
}

size_t bt_fake_loki_received(struct bt_fake_loki *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->received;
    pthread_mutex_unlock(&f->mu);
    return n;
}

size_t bt_fake_loki_duplicates(struct bt_fake_loki *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->duplicates;
    pthread_mutex_unlock(&f->mu);
    return n;
}

size_t bt_fake_loki_rejected(struct bt_fake_loki *f, const char *reason)
{
    pthread_mutex_lock(&f->mu);
    size_t n = 0;
    if (strcmp(reason, "invalid_labels") == 0)
        n = f->rej_labels;
    else if (strcmp(reason, "line_too_long") == 0)
        n = f->rej_line;
    else if (strcmp(reason, "too_far_behind") == 0)
        n = f->rej_behind;
    pthread_mutex_unlock(&f->mu);
    return n;
}

uint64_t bt_fake_loki_bytes(struct bt_fake_loki *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->bytes;
    pthread_mutex_unlock(&f->mu);
    return n;
}

int bt_fake_loki_entry(struct bt_fake_loki *f, size_t i, struct bt_fake_entry *out)
{
    int rc = -ENOENT;
    pthread_mutex_lock(&f->mu);
    if (i < f->n_recs) {
        rec_to_entry(f, &f->recs[i], out);
        rc = 0;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void bt_fake_loki_foreach(struct bt_fake_loki *f,
                          void (*fn)(void *ctx, const struct bt_fake_entry *e), void *ctx)
{
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_recs; i++) {
        struct bt_fake_entry e;
        rec_to_entry(f, &f->recs[i], &e);
        fn(ctx, &e);
    }
    pthread_mutex_unlock(&f->mu);
}

size_t bt_fake_loki_find_line(struct bt_fake_loki *f, const char *line)
{
    size_t n = 0, len = strlen(line);
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_recs; i++)
        if (f->recs[i].line_len == len && memcmp(f->recs[i].data, line, len) == 0)
            n++;
    pthread_mutex_unlock(&f->mu);
    return n;
}

size_t bt_fake_loki_tenant_count(struct bt_fake_loki *f, const char *tenant)
{
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_recs; i++)
        if (strcmp(f->tenants.v[f->streams[f->recs[i].stream].tenant], tenant) == 0)
            n++;
    pthread_mutex_unlock(&f->mu);
    return n;
}

int bt_fake_loki_last_header(struct bt_fake_loki *f, const char *name, char *out, size_t outlen)
{
    int found = 0;
    pthread_mutex_lock(&f->mu);
    const char *p = f->last_headers.ptr, *end = p + f->last_headers.len;
    while (p && p < end) {
        const char *v = p + strlen(p) + 1;
        if (strcasecmp(p, name) == 0) {
            snprintf(out, outlen, "%s", v);
            found = 1;
            break;
        }
        p = v + strlen(v) + 1;
    }
    pthread_mutex_unlock(&f->mu);
    return found;
}

const char *bt_fake_entry_meta(const struct bt_fake_entry *e, const char *name)
{
    const char *m = e->meta;
    for (size_t k = 0; k < e->n_meta; k++) {
        const char *v = m + strlen(m) + 1;
        if (strcmp(m, name) == 0)
            return v;
        m = v + strlen(v) + 1;
    }
    return NULL;
}
