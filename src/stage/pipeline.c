/* The stage runner (pipeline.h, and the nested-list half of stage.h).
 *
 * A stage list is an array of stage instances. Each instance has a struct bt_stage_out naming
 * "the stages after me": entries a held stage emits continue there, and once they leave the
 * last stage of a nested list (match) they continue after the match stage in the enclosing
 * list, up to the sink. A pipeline without stages hands entries straight to the sink.
 */
#include "stage/pipeline.h"
#include "core/metrics.h"
#include "config/node.h"
#include "stage/stage.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEPTH 8      /* nested match stages */
#define MAX_REASONS 32   /* distinct drop reasons with cached series */
#define INSPECT_DEPTH 16 /* nested runs (emits, match) shown by -inspect */

struct bt_stage_out {
    struct bt_stage_list *list;
    size_t next; /* index of the stage after the emitting one */
};

struct stage_inst {
    const struct bt_stage_ops *ops;
    void *st;
    const char *name;
    int line; /* config line, for -inspect */
    struct bt_stage_out out;
};

struct bt_stage_list {
    struct stage_inst *v;
    size_t n;
    struct bt_pipeline *p;
    struct bt_stage_out *parent; /* nested lists: where entries leaving the list continue */
};

struct reason_series {
    char *reason;
    struct bt_series *entries, *bytes;
};

/* Snapshot of an entry before a stage, for -inspect. */
struct snap {
    struct bt_labels labels;
    struct bt_buf line;
    int64_t ts;
    struct bt_extracted x;
    struct bt_labels meta;
};

struct bt_pipeline {
    bt_entry_sink_fn sink;
    void *ctx;
    char *job;
    struct bt_metrics *metrics;
    struct bt_stage_list *top; /* NULL: no stages */
    struct bt_pentry work;
    struct bt_kv *kv;
    size_t kvcap;
    struct reason_series reasons[MAX_REASONS];
    size_t n_reasons;
    FILE *inspect;
    /* One snapshot per nesting level: a held stage may emit (and so run later stages on
     * another entry) while the entry it was given is still being inspected. */
    struct snap snap[INSPECT_DEPTH];
    int depth;
    /* The extracted keys the stages read (keys borrowed from them); reads.all: any key. Only
     * labels named here are copied into an entry's extracted map. */
    struct keyset {
        struct {
            const char *k;
            size_t len;
        } * v;
        size_t n, cap;
        bool all; /* some stage may read any key */
    } reads;
};

/* ---- drop counting ---- */

static struct reason_series *reason_get(struct bt_pipeline *p, const char *reason)
{
    for (size_t i = 0; i < p->n_reasons; i++)
        if (strcmp(p->reasons[i].reason, reason) == 0)
            return &p->reasons[i];
    if (p->n_reasons == MAX_REASONS || !p->metrics)
        return NULL;
    struct reason_series *r = &p->reasons[p->n_reasons];
    char esc[256], lbl[320];
    bt_metrics_escape(esc, sizeof(esc), reason);
    snprintf(lbl, sizeof(lbl), "reason=\"%s\"", esc);
    r->reason = strdup(reason);
    if (!r->reason)
        return NULL;
    r->entries = bt_metrics_counter(p->metrics, "bpftail_dropped_entries_total",
                                    "Entries dropped, by reason.", lbl);
    r->bytes = bt_metrics_counter(p->metrics, "bpftail_dropped_bytes_total",
                                  "Bytes of dropped entries, by reason.", lbl);
    p->n_reasons++;
    return r;
}

void bt_stage_count_drop(struct bt_stage_out *out, const struct bt_pentry *e, const char *reason)
{
    struct reason_series *r = reason_get(out->list->p, reason ? reason : "drop_stage");
    if (!r)
        return;
    bt_counter_inc(r->entries);
    bt_counter_add(r->bytes, (double)e->line_len);
}

/* ---- -inspect ---- */

static void snap_init(struct snap *s)
{
    bt_labels_init(&s->labels);
    bt_labels_init(&s->meta);
    bt_buf_init(&s->line, BT_PENTRY_LINE_MAX);
    bt_extracted_init(&s->x);
}

static void snap_free(struct snap *s)
{
    bt_labels_free(&s->labels);
    bt_labels_free(&s->meta);
    bt_buf_free(&s->line);
    bt_extracted_free(&s->x);
}

static void snap_take(struct snap *s, const struct bt_pentry *e)
{
    if (e->labels)
        bt_labels_copy(&s->labels, e->labels);
    else
        bt_labels_clear(&s->labels);
    bt_labels_copy(&s->meta, &e->meta);
    bt_buf_reset(&s->line);
    bt_buf_add(&s->line, e->line, e->line_len);
    s->ts = e->ts_ns;
    bt_extracted_copy(&s->x, &e->x);
}

/* Prints s Go-quoted (newlines, quotes and bad bytes escaped), as label values are shown. */
static void print_q(FILE *f, const char *s, size_t n)
{
    struct bt_buf b;
    bt_buf_init(&b, 2 * BT_PENTRY_LINE_MAX);
    if (bt_go_quote(&b, s, n) == 0)
        fwrite(b.ptr, 1, b.len, f);
    bt_buf_free(&b);
}

static void print_val(FILE *f, const struct bt_xval *v)
{
    char tmp[64];
    const char *s;
    size_t n;
    if (v->type == BT_X_NULL)
        fputs("null", f);
    else if (v->type == BT_X_JSON)
        fprintf(f, "%.*s", (int)v->len, v->s);
    else if (v->type == BT_X_STRING)
        print_q(f, v->s, v->len);
    else if (bt_xval_string(v, tmp, sizeof(tmp), &s, &n) == 0)
        fprintf(f, "%.*s", (int)n, s);
}

static void print_label(FILE *f, const char *what, char op, const char *name, const char *old,
                        const char *val)
{
    fprintf(f, "  %s: %c %s=", what, op, name);
    print_q(f, old ? old : val, strlen(old ? old : val));
    if (old && val) {
        fputs(" -> ", f);
        print_q(f, val, strlen(val));
    }
    fputc('\n', f);
}

static bool xval_eq(const struct bt_xval *a, const struct bt_xval *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case BT_X_NUMBER: return a->num == b->num;
    case BT_X_BOOL: return a->b == b->b;
    case BT_X_STRING:
    case BT_X_JSON: return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    default: return true;
    }
}

static void diff_labels(FILE *f, const char *what, const struct bt_labels *a,
                        const struct bt_labels *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const char *old = bt_labels_get(a, b->v[i].name);
        if (!old)
            print_label(f, what, '+', b->v[i].name, NULL, b->v[i].value);
        else if (strcmp(old, b->v[i].value) != 0)
            print_label(f, what, '~', b->v[i].name, old, b->v[i].value);
    }
    for (size_t i = 0; i < a->n; i++)
        if (!bt_labels_get(b, a->v[i].name))
            print_label(f, what, '-', a->v[i].name, a->v[i].value, NULL);
}

/* RFC 3339 in UTC with nanoseconds, for -inspect. */
static const char *fmt_ts(char *out, size_t n, int64_t ts)
{
    time_t sec = (time_t)(ts / BT_NS_PER_SEC);
    long ns = (long)(ts % BT_NS_PER_SEC);
    if (ns < 0)
        ns += BT_NS_PER_SEC, sec--;
    struct tm tm;
    char d[32];
    gmtime_r(&sec, &tm);
    strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%09ldZ", d, ns);
    return out;
}

static void inspect_print(struct bt_pipeline *p, const struct stage_inst *si,
                          const struct bt_pentry *e, enum bt_stage_result r)
{
    FILE *f = p->inspect;
    struct snap *s = &p->snap[p->depth];
    fprintf(f, "[inspect] stage \"%s\" (line %d):", si->name, si->line);
    if (r == BT_STAGE_DROP)
        fprintf(f, " dropped (reason %s)", e->drop_reason ? e->drop_reason : "drop_stage");
    else if (r == BT_STAGE_HELD)
        fputs(" held", f);
    fputc('\n', f);
    if (e->labels)
        diff_labels(f, "labels", &s->labels, e->labels);
    diff_labels(f, "structured_metadata", &s->meta, &e->meta);
    if (s->line.len != e->line_len || memcmp(bt_buf_str(&s->line), e->line, e->line_len) != 0) {
        fputs("  line: ", f);
        print_q(f, bt_buf_str(&s->line), s->line.len);
        fputs(" -> ", f);
        print_q(f, e->line, e->line_len);
        fputc('\n', f);
    }
    if (s->ts != e->ts_ns) {
        char a[48], b[48];
        fprintf(f, "  timestamp: %s -> %s\n", fmt_ts(a, sizeof(a), s->ts),
                fmt_ts(b, sizeof(b), e->ts_ns));
    }
    for (size_t i = 0; i < e->x.n; i++) {
        const struct bt_xslot *xs = &e->x.v[i];
        const struct bt_xval *old = bt_extracted_get(&s->x, xs->key, xs->klen);
        if (old && xval_eq(old, &xs->v))
            continue;
        fprintf(f, "  extracted: %c %s: ", old ? '~' : '+', xs->key);
        if (old) {
            print_val(f, old);
            fputs(" -> ", f);
        }
        print_val(f, &xs->v);
        fputc('\n', f);
    }
    for (size_t i = 0; i < s->x.n; i++)
        if (!bt_extracted_get(&e->x, s->x.v[i].key, s->x.v[i].klen))
            fprintf(f, "  extracted: - %s\n", s->x.v[i].key);
}

/* ---- extracted values nobody reads ---- */

static void key_add(void *ctx, const char *k, size_t klen)
{
    struct keyset *ks = ctx;
    if (ks->n == ks->cap) {
        size_t nc = ks->cap ? 2 * ks->cap : 16;
        void *nv = realloc(ks->v, nc * sizeof(*ks->v));
        if (!nv) {
            ks->all = true; /* cannot track them: keep every key */
            return;
        }
        ks->v = nv;
        ks->cap = nc;
    }
    ks->v[ks->n].k = k;
    ks->v[ks->n++].len = klen;
}

static bool key_has(const void *ctx, const char *k, size_t klen)
{
    const struct keyset *ks = ctx;
    for (size_t i = 0; i < ks->n; i++)
        if (ks->v[i].len == klen && memcmp(ks->v[i].k, k, klen) == 0)
            return true;
    return false;
}

/* Tells the stages that can skip unread extracted values which keys the pipeline reads: all of
 * them (everything) when -inspect shows the extracted map, or when a stage (a template, a nested
 * match list) does not say what it reads. The keys are borrowed from the stages, and kept in
 * p->reads for bt_pentry_load_keys. */
static void prune_unread(struct bt_pipeline *p, bool everything)
{
    struct stage_inst *v = p->top ? p->top->v : NULL;
    size_t n = p->top ? p->top->n : 0;
    struct keyset ks = {.all = everything};
    for (size_t i = 0; i < n && !ks.all; i++)
        if (!v[i].ops->reads || !v[i].ops->reads(v[i].st, key_add, &ks))
            ks.all = true;
    for (size_t i = 0; i < n; i++)
        if (v[i].ops->prune)
            v[i].ops->prune(v[i].st, ks.all ? NULL : key_has, &ks);
    free(p->reads.v);
    p->reads = ks;
}

/* ---- running ---- */

static void to_sink(struct bt_pipeline *p, struct bt_pentry *e)
{
    struct bt_entry out;
    if (bt_pentry_view(e, &out, &p->kv, &p->kvcap) < 0) {
        static struct bt_ratelimit rl = BT_RATELIMIT_INIT(10);
        uint64_t sup;
        if (bt_ratelimit_ok(&rl, &sup))
            BT_ERROR("pipeline", "out of memory, entry dropped", "job=%s suppressed=%" PRIu64,
                     p->job, sup);
        return;
    }
    p->sink(p->ctx, &out);
}

/* Runs stages [start, n) of l. Drops are counted when count is set; otherwise the caller (a
 * match stage) returns the drop, with e->drop_reason, to a runner that counts it. */
static enum bt_stage_result run_from(struct bt_stage_list *l, size_t start, struct bt_pentry *e,
                                     bool count)
{
    struct bt_pipeline *p = l->p;
    enum bt_stage_result r = BT_STAGE_KEEP;
    p->depth++;
    bool inspect = p->inspect && p->depth < INSPECT_DEPTH;
    for (size_t i = start; i < l->n; i++) {
        struct stage_inst *si = &l->v[i];
        if (inspect)
            snap_take(&p->snap[p->depth], e);
        e->drop_reason = NULL;
        r = si->ops->process(si->st, e, &si->out);
        if (inspect)
            inspect_print(p, si, e, r);
        if (r == BT_STAGE_DROP && count)
            bt_stage_count_drop(&si->out, e, e->drop_reason);
        if (r != BT_STAGE_KEEP)
            break;
    }
    p->depth--;
    return r;
}

void bt_stage_emit(struct bt_stage_out *out, struct bt_pentry *e)
{
    struct bt_stage_list *l = out->list;
    if (run_from(l, out->next, e, true) != BT_STAGE_KEEP)
        return;
    if (l->parent)
        bt_stage_emit(l->parent, e);
    else
        to_sink(l->p, e);
}

enum bt_stage_result bt_stage_list_run(struct bt_stage_list *l, struct bt_pentry *e,
                                       struct bt_stage_out *out)
{
    l->parent = out;
    return run_from(l, 0, e, false);
}

int64_t bt_stage_list_deadline(const struct bt_stage_list *l)
{
    int64_t d = INT64_MAX;
    for (size_t i = 0; i < l->n; i++) {
        if (!l->v[i].ops->deadline)
            continue;
        int64_t x = l->v[i].ops->deadline(l->v[i].st);
        if (x < d)
            d = x;
    }
    return d;
}

void bt_stage_list_tick(struct bt_stage_list *l, int64_t now_mono, struct bt_stage_out *out)
{
    l->parent = out;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].ops->tick)
            l->v[i].ops->tick(l->v[i].st, now_mono, &l->v[i].out);
}

void bt_stage_list_flush(struct bt_stage_list *l, struct bt_stage_out *out)
{
    l->parent = out;
    /* In order, so what an early stage releases is still seen (and flushed) by later ones. */
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].ops->flush)
            l->v[i].ops->flush(l->v[i].st, &l->v[i].out);
}

void bt_stage_list_free(struct bt_stage_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].ops && l->v[i].ops->free)
            l->v[i].ops->free(l->v[i].st);
    free(l->v);
    free(l);
}

/* ---- building ---- */

static int unknown_stage(const struct bt_node *k, const struct bt_stage_env *env, bool unavail,
                         char *err, size_t errlen)
{
    char where[256];
    bt_node_where(k, where, sizeof(where));
    /* promtail stages bpftail leaves out on purpose; the compatibility corpus asserts these */
    if (unavail && strcmp(k->str, "geoip") == 0)
        snprintf(err, errlen,
                 "%s: stage \"geoip\" is not supported by bpftail: it needs a MaxMind database "
                 "reader, which bpftail does not link",
                 where);
    else if (unavail && strcmp(k->str, "eventlogmessage") == 0)
        snprintf(err, errlen,
                 "%s: stage \"eventlogmessage\" is not supported by bpftail: it parses Windows "
                 "event logs, and bpftail runs on Linux",
                 where);
    else if (unavail)
        snprintf(err, errlen, "%s: stage \"%s\" is not available in this build", where, k->str);
    else
        snprintf(err, errlen, "%s: unknown stage \"%s\"%s%s", where, k->str,
                 env->job && *env->job ? " in job " : "", env->job ? env->job : "");
    return -EINVAL;
}

static int build_one(struct stage_inst *si, const struct bt_node *item,
                     const struct bt_stage_env *penv, char *err, size_t errlen)
{
    char where[256];
    if (item->type != BT_NODE_MAP || item->n != 1) {
        snprintf(err, errlen,
                 "%s: a pipeline stage must be a map with exactly one key "
                 "(the stage name)",
                 bt_node_where(item, where, sizeof(where)));
        return -EINVAL;
    }
    const struct bt_node *k = bt_node_key(item, 0);
    if (k->type != BT_NODE_SCALAR || !k->str) {
        snprintf(err, errlen, "%s: a stage name must be a string",
                 bt_node_where(k, where, sizeof(where)));
        return -EINVAL;
    }
    bool unavail;
    const struct bt_stage_ops *ops = bt_stage_find(k->str, &unavail);
    if (!ops)
        return unknown_stage(k, penv, unavail, err, errlen);
    struct bt_stage_env env = *penv;
    env.name = k->str;
    env.where = k;
    si->ops = ops;
    si->name = k->str;
    si->line = k->line;
    si->st = ops->init(bt_node_val(item, 0), &env, err, errlen);
    if (!si->st) {
        si->ops = NULL;
        return -EINVAL;
    }
    return 0;
}

struct bt_stage_list *bt_stage_list_new(const struct bt_node *seq, const struct bt_stage_env *env,
                                        char *err, size_t errlen)
{
    char where[256];
    if (env->depth > MAX_DEPTH) {
        snprintf(err, errlen, "%s: stages nested more than %d deep",
                 bt_node_where(seq, where, sizeof(where)), MAX_DEPTH);
        errno = EINVAL;
        return NULL;
    }
    if (!bt_node_is_null(seq) && seq->type != BT_NODE_SEQ) {
        snprintf(err, errlen, "%s: pipeline stages must be a list",
                 bt_node_where(seq, where, sizeof(where)));
        errno = EINVAL;
        return NULL;
    }
    struct bt_stage_list *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->p = env->pipeline;
    size_t n = bt_node_is_null(seq) ? 0 : seq->n;
    if (n) {
        l->v = calloc(n, sizeof(*l->v));
        if (!l->v)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        l->v[i].out.list = l;
        l->v[i].out.next = i + 1;
        if (build_one(&l->v[i], seq->items[i], env, err, errlen) < 0)
            goto fail;
        l->n = i + 1;
    }
    return l;
fail:
    bt_stage_list_free(l);
    errno = EINVAL;
    return NULL;
}

struct bt_pipeline *bt_pipeline_new(const struct bt_node *stages, const char *job,
                                    struct bt_metrics *m, bt_entry_sink_fn sink, void *ctx,
                                    char *err, size_t errlen)
{
    struct bt_pipeline *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->sink = sink;
    p->ctx = ctx;
    p->metrics = m;
    p->job = strdup(job ? job : "");
    bt_pentry_init(&p->work);
    for (int i = 0; i < INSPECT_DEPTH; i++)
        snap_init(&p->snap[i]);
    if (!p->job)
        goto fail;
    if (!bt_node_is_null(stages) && !(stages->type == BT_NODE_SEQ && stages->n == 0)) {
        struct bt_stage_env env = {.job = p->job, .metrics = m, .pipeline = p};
        p->top = bt_stage_list_new(stages, &env, err, errlen);
        if (!p->top)
            goto fail;
        prune_unread(p, false);
    }
    return p;
fail:
    bt_pipeline_free(p);
    errno = EINVAL;
    return NULL;
}

void bt_pipeline_free(struct bt_pipeline *p)
{
    if (!p)
        return;
    bt_stage_list_free(p->top);
    bt_pentry_free(&p->work);
    for (int i = 0; i < INSPECT_DEPTH; i++)
        snap_free(&p->snap[i]);
    for (size_t i = 0; i < p->n_reasons; i++)
        free(p->reasons[i].reason);
    free(p->kv);
    free(p->reads.v);
    free(p->job);
    free(p);
}

void bt_pipeline_process(struct bt_pipeline *p, const struct bt_entry *e)
{
    if (!p->top) {
        p->sink(p->ctx, e);
        return;
    }
    if (bt_pentry_load_keys(&p->work, e, p->reads.all ? NULL : key_has, &p->reads) < 0) {
        static struct bt_ratelimit rl = BT_RATELIMIT_INIT(10);
        uint64_t sup;
        if (bt_ratelimit_ok(&rl, &sup))
            BT_ERROR("pipeline", "cannot load entry, dropped", "job=%s suppressed=%" PRIu64, p->job,
                     sup);
        struct bt_stage_out o = {.list = p->top};
        bt_stage_count_drop(&o, &p->work, "pipeline_error");
        return;
    }
    p->top->parent = NULL;
    if (run_from(p->top, 0, &p->work, true) == BT_STAGE_KEEP)
        to_sink(p, &p->work);
}

int64_t bt_pipeline_deadline(const struct bt_pipeline *p)
{
    return p->top ? bt_stage_list_deadline(p->top) : INT64_MAX;
}

void bt_pipeline_tick(struct bt_pipeline *p, int64_t now_mono)
{
    if (p->top)
        bt_stage_list_tick(p->top, now_mono, NULL);
}

void bt_pipeline_flush(struct bt_pipeline *p)
{
    if (p->top)
        bt_stage_list_flush(p->top, NULL);
}

void bt_pipeline_set_inspect(struct bt_pipeline *p, FILE *f)
{
    if (f && !p->inspect)
        prune_unread(p, true); /* show every group, as promtail's inspector does */
    p->inspect = f;
}

int bt_pipeline_format_entry(const struct bt_entry *e, struct bt_buf *out)
{
    time_t sec = (time_t)(e->ts_ns / 1000000000LL);
    long ns = (long)(e->ts_ns % 1000000000LL);
    if (ns < 0)
        ns += 1000000000L, sec--;
    struct tm tm;
    char date[64], frac[16] = "", zone[8];
    localtime_r(&sec, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof(zone), "%z", &tm);
    if (ns) { /* Go's .999999999: trailing zeros trimmed, nothing for a whole second */
        snprintf(frac, sizeof(frac), ".%09ld", ns);
        for (size_t n = strlen(frac); frac[n - 1] == '0'; n--)
            frac[n - 1] = '\0';
    }
    int rc = bt_buf_addf(out, "%s%s%s\t", date, frac, zone);
    size_t len = 2;
    const char *canon = "{}";
    if (rc == 0 && e->labels && !(canon = bt_labels_canon(e->labels, &len)))
        rc = -ENOMEM;
    if (rc == 0)
        rc = bt_buf_add(out, canon, len);
    if (rc == 0)
        rc = bt_buf_add(out, "\t", 1);
    for (size_t i = 0; rc == 0 && i < e->n_meta; i++) {
        rc = bt_buf_addf(out, "%s%.*s=", i ? ", " : "{", (int)e->meta[i].name_len, e->meta[i].name);
        if (rc == 0)
            rc = bt_go_quote(out, e->meta[i].value, e->meta[i].value_len);
        if (rc == 0 && i + 1 == e->n_meta)
            rc = bt_buf_add(out, "}\t", 2);
    }
    if (rc == 0)
        rc = bt_buf_add(out, e->line, e->line_len);
    if (rc == 0)
        rc = bt_buf_add(out, "\n", 1);
    return rc;
}
