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

/* One recorded entry: 32 bytes plus its bytes in a chunk. */
struct fl_rec {
    int64_t ts;
    const char *data; /* line\0 then n_meta pairs name\0value\0 */
    uint32_t tenant, labels;
    uint32_t line_len, n_meta;
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

    size_t requests;
    size_t by_status[600];
    size_t n_entries;
    uint64_t bytes;
    struct fl_rec *recs;
    size_t n_recs, cap_recs;
    struct fl_chunk *chunks;
    struct fl_strtab tenants, labels;
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
    f->n_entries = 0;
    f->bytes = 0;
    f->requests = 0;
    memset(f->by_status, 0, sizeof(f->by_status));
}

/* Stores one entry. Caller holds the lock. 0 or -ENOMEM. */
static int record(struct bt_fake_loki *f, uint32_t tenant, uint32_t labels,
                  const Logproto__EntryAdapter *e)
{
    size_t line_len = strlen(e->line);
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
    struct fl_rec *r = &f->recs[f->n_recs++];
    r->ts = e->timestamp ? e->timestamp->seconds * 1000000000LL + e->timestamp->nanos : 0;
    r->data = p;
    r->tenant = tenant;
    r->labels = labels;
    r->line_len = (uint32_t)line_len;
    r->n_meta = (uint32_t)e->n_structuredmetadata;
    memcpy(p, e->line, line_len + 1);
    p += line_len + 1;
    for (size_t k = 0; k < e->n_structuredmetadata; k++) {
        size_t nl = strlen(e->structuredmetadata[k]->name) + 1;
        size_t vl = strlen(e->structuredmetadata[k]->value) + 1;
        memcpy(p, e->structuredmetadata[k]->name, nl);
        p += nl;
        memcpy(p, e->structuredmetadata[k]->value, vl);
        p += vl;
    }
    return 0;
}

static void rec_to_entry(const struct bt_fake_loki *f, const struct fl_rec *r,
                         struct bt_fake_entry *out)
{
    out->tenant = f->tenants.v[r->tenant];
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

int bt_fake_loki_check_labels(const char *s, char *err, size_t errlen)
{
    const char *names[64];
    size_t name_lens[64];
    size_t n = 0, visible = 0;
    const char *p = skip_ws(s);
    const char *why = "unexpected character";
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
        long vlen = parse_value(p, &p);
        if (vlen < 0) {
            why = "invalid quoted label value";
            goto bad;
        }
        if (nlen > 1024) {
            snprintf(err, errlen, "stream '%s' has label name too long: '%.*s'", s, (int)nlen,
                     name);
            return -EINVAL;
        }
        if (vlen > 0) {
            for (size_t i = 0; i < n; i++)
                if (name_lens[i] == nlen && memcmp(names[i], name, nlen) == 0) {
                    snprintf(err, errlen, "stream '%s' has duplicate label name: '%.*s'", s,
                             (int)nlen, name);
                    return -EINVAL;
                }
            if (n == 64) {
                snprintf(err, errlen, "stream '%s' has too many labels", s);
                return -EINVAL;
            }
            names[n] = name;
            name_lens[n++] = nlen;
            visible++;
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
    if (!visible) {
        snprintf(err, errlen, "error at least one label pair is required per stream");
        return -EINVAL;
    }
    return 0;
bad:
    snprintf(err, errlen, "Error parsing labels '%s' with error: parse error at char %zu: %s", s,
             (size_t)(p - s), why);
    return -EINVAL;
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

/* Validates each stream of req and records the valid ones. Like Loki, an invalid stream is
 * skipped, the others kept, and the answer is the last error. Returns the HTTP status. */
static int record_request(struct bt_fake_loki *f, const Logproto__PushRequest *req,
                          const char *tenant, char *msg, size_t msglen, size_t *n_accepted)
{
    int status = 204;
    pthread_mutex_lock(&f->mu);
    uint32_t ti = f->opts.discard ? 0 : strtab_intern(&f->tenants, tenant);
    for (size_t i = 0; i < req->n_streams && ti != UINT32_MAX; i++) {
        const Logproto__StreamAdapter *s = req->streams[i];
        char err[1024];
        if (bt_fake_loki_check_labels(s->labels, err, sizeof(err))) {
            snprintf(msg, msglen, "%s", err);
            status = 400;
            continue;
        }
        uint32_t li = f->opts.discard ? 0 : strtab_intern(&f->labels, s->labels);
        for (size_t j = 0; j < s->n_entries && li != UINT32_MAX; j++) {
            if (!f->opts.discard && record(f, ti, li, s->entries[j])) {
                li = UINT32_MAX;
                break;
            }
            f->n_entries++;
            f->bytes += strlen(s->entries[j]->line);
            (*n_accepted)++;
        }
        if (li == UINT32_MAX)
            ti = UINT32_MAX;
    }
    if (ti == UINT32_MAX) {
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
    if (f->head_script < f->n_script) {
        r = f->script[f->head_script++];
        scripted_body = r.body;
    }
    if (!r.status) /* no script, or a "delay=N" item: the default answer */
        r.status = f->default_status;
    int delay = r.delay_ms;
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
        char msg[1536];
        int st = accept_push(f, conn, c, msg, sizeof(msg), &accepted);
        if (st >= 200 && st <= 299) { /* accepted: answer with the scripted 2xx */
            ret = reply(conn, status, "", 0, NULL, 0);
        } else {
            status = st;
            ret = reply_text(conn, status, msg);
        }
    }
    free(scripted_body);
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
    int rc =
        bt_buf_addf(o, "{\"requests\":%zu,\"entries\":%zu,\"bytes\":%" PRIu64 ",\"by_status\":{",
                    f->requests, f->n_entries, f->bytes);
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
        char *end;
        long v = s ? strtol(s, &end, 10) : 0;
        if (!s || end == s || *end || v < 100 || v > 599)
            return reply_text(conn, 400, "status must be 100..599\n");
        bt_fake_loki_set_default(f, (int)v);
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
    f->default_status = 204;
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    strtab_init(&f->tenants);
    strtab_init(&f->labels);
    bt_buf_init(&f->last_headers, 1 << 20);

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(o->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
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
    bt_buf_free(&f->last_headers);
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

void bt_fake_loki_set_default(struct bt_fake_loki *f, int status)
{
    pthread_mutex_lock(&f->mu);
    f->default_status = status;
    pthread_mutex_unlock(&f->mu);
}

void bt_fake_loki_reset(struct bt_fake_loki *f)
{
    pthread_mutex_lock(&f->mu);
    clear_script(f);
    clear_records(f);
    f->gen++;
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
        if (strcmp(f->tenants.v[f->recs[i].tenant], tenant) == 0)
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
