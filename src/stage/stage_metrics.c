/* metrics: updates Prometheus series (served on /metrics) from extracted data. Each metric is
 * <prefix><name> (prefix default "promtail_custom_"), labelled with the entry's labels at this
 * point of the pipeline (reserved "__" labels left out), of type counter, gauge or histogram:
 *   counter   action inc | add (value from extracted[source]); match_all counts every entry;
 *             count_entry_bytes (with match_all, action add) adds the line length;
 *   gauge     action set | inc | dec | add | sub;
 *   histogram observes the value; buckets from config or Prometheus' defaults.
 * `value` (optional) only counts entries whose source value equals it. Series not updated for
 * max_idle_duration (default 5m) are removed; at most 65536 label sets per metric are
 * tracked at once. Series pointers are cached by the label set's canonical string (which the
 * set caches with its hash), so the steady state does one map lookup and renders nothing. */
#include "stage/stage.h"
#include "core/metrics.h"
#include "config/node.h"
#include "util/hmap.h"
#include "util/timeutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SERIES 65536 /* label sets per metric */

enum action { A_INC, A_ADD, A_SET, A_DEC, A_SUB, A_OBSERVE };

struct cached {
    struct bt_series *s;
    char *key; /* the registry's label string */
    int64_t last;
};

struct metric {
    char *name; /* full name */
    char *help;
    char *source;
    enum bt_metric_type type;
    enum action action;
    char *value; /* filter or NULL */
    bool match_all, count_bytes;
    double *buckets;
    size_t nb;
    int64_t max_idle;
    struct bt_hmap cache; /* label string -> struct cached */
};

struct st {
    struct bt_metrics *m;
    struct metric *v;
    size_t n;
    struct bt_buf lbl;
    int64_t last_sweep;
};

static const char *const mkeys[] = {
    "type", "description", "source", "prefix", "max_idle_duration", "config", NULL};
static const char *const ckeys[] = {"value",   "action", "match_all", "count_entry_bytes",
                                    "buckets", NULL};

static void metrics_free(void *st)
{
    struct st *s = st;
    for (size_t i = 0; i < s->n; i++) {
        struct metric *mt = &s->v[i];
        size_t pos = 0;
        struct bt_hmap_slot *sl;
        while ((sl = bt_hmap_next(&mt->cache, &pos))) {
            free(((struct cached *)sl->val)->key);
            free(sl->val);
        }
        bt_hmap_free(&mt->cache);
        free(mt->name);
        free(mt->help);
        free(mt->source);
        free(mt->value);
        free(mt->buckets);
    }
    free(s->v);
    bt_buf_free(&s->lbl);
    free(s);
}

static bool metric_name_valid(const char *s)
{
    if (!*s || isdigit((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != ':')
            return false;
    return true;
}

static int parse_action(struct metric *mt, const struct bt_node *c, const char *a,
                        const struct bt_stage_env *env, char *err, size_t errlen)
{
    static const struct {
        const char *s;
        enum action a;
        unsigned types; /* bit per bt_metric_type */
    } acts[] = {{"inc", A_INC, 3},
                {"add", A_ADD, 3},
                {"set", A_SET, 2},
                {"dec", A_DEC, 2},
                {"sub", A_SUB, 2}};
    const struct bt_node *an = c ? bt_node_get(c, "action") : NULL;
    if (mt->type == BT_HISTOGRAM) {
        mt->action = A_OBSERVE;
        return 0;
    }
    for (size_t i = 0; a && i < sizeof(acts) / sizeof(acts[0]); i++) {
        if (strcasecmp(a, acts[i].s) == 0 && (acts[i].types >> mt->type) & 1) {
            mt->action = acts[i].a;
            return 0;
        }
    }
    bt_stage_err(err, errlen, env, an ? an : c, "%s: action must be %s", mt->name,
                 mt->type == BT_COUNTER ? "inc or add" : "set, inc, dec, add or sub");
    return -1;
}

static int parse_buckets(struct metric *mt, const struct bt_node *b, const struct bt_stage_env *env,
                         char *err, size_t errlen)
{
    if (!b || bt_node_is_null(b))
        return 0;
    if (b->type != BT_NODE_SEQ || b->n == 0) {
        bt_stage_err(err, errlen, env, b, "buckets must be a list of numbers");
        return -1;
    }
    mt->buckets = calloc(b->n, sizeof(double));
    if (!mt->buckets)
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        if (bt_node_double(b->items[i], &mt->buckets[i]) < 0 ||
            (i && !(mt->buckets[i] > mt->buckets[i - 1]))) {
            bt_stage_err(err, errlen, env, b->items[i], "buckets must be increasing numbers");
            return -1;
        }
    }
    mt->nb = b->n;
    return 0;
}

static int parse_config(struct metric *mt, const struct bt_node *c, const struct bt_stage_env *env,
                        char *err, size_t errlen)
{
    int bad;
    if (bt_stage_check_keys(c, env, ckeys, err, errlen) < 0)
        return -1;
    const char *value = bt_stage_str(c, "value", env, &bad, err, errlen);
    if (bad)
        return -1;
    const char *action = bt_stage_str(c, "action", env, &bad, err, errlen);
    if (bad)
        return -1;
    if (value && !(mt->value = strdup(value)))
        return -1;
    const struct bt_node *ma = c ? bt_node_get(c, "match_all") : NULL;
    const struct bt_node *cb = c ? bt_node_get(c, "count_entry_bytes") : NULL;
    if ((ma && !bt_node_is_null(ma) && bt_node_bool(ma, &mt->match_all) < 0) ||
        (cb && !bt_node_is_null(cb) && bt_node_bool(cb, &mt->count_bytes) < 0)) {
        bt_stage_err(err, errlen, env, c, "match_all and count_entry_bytes are true or false");
        return -1;
    }
    if (parse_action(mt, c, action, env, err, errlen) < 0)
        return -1;
    if (mt->type != BT_COUNTER && (mt->match_all || mt->count_bytes)) {
        bt_stage_err(err, errlen, env, c, "match_all and count_entry_bytes are for counters");
        return -1;
    }
    if (mt->match_all && mt->value) {
        bt_stage_err(err, errlen, env, ma, "match_all cannot be combined with value");
        return -1;
    }
    if (mt->count_bytes && (!mt->match_all || mt->action != A_ADD)) {
        bt_stage_err(err, errlen, env, cb, "count_entry_bytes needs match_all and action add");
        return -1;
    }
    const struct bt_node *b = c ? bt_node_get(c, "buckets") : NULL;
    if (b && mt->type != BT_HISTOGRAM) {
        bt_stage_err(err, errlen, env, b, "buckets are for histograms");
        return -1;
    }
    return parse_buckets(mt, b, env, err, errlen);
}

/* Checks that the family can be registered with this type (another pipeline may own the
 * name with a different type). */
static bool family_ok(struct bt_metrics *m, const struct metric *mt)
{
    struct bt_series *s;
    if (mt->type == BT_COUNTER)
        s = bt_metrics_counter(m, mt->name, mt->help, "");
    else if (mt->type == BT_GAUGE)
        s = bt_metrics_gauge(m, mt->name, mt->help, "");
    else
        s = bt_metrics_histogram(m, mt->name, mt->help, "", mt->buckets, mt->nb);
    if (!s)
        return false;
    bt_metrics_remove(m, mt->name, "");
    return true;
}

static int parse_metric(struct st *s, struct metric *mt, const struct bt_node *k,
                        const struct bt_node *v, const struct bt_stage_env *env, char *err,
                        size_t errlen)
{
    int bad;
    if (bt_stage_check_keys(v, env, mkeys, err, errlen) < 0)
        return -1;
    if (bt_node_is_null(v)) {
        bt_stage_err(err, errlen, env, k, "%s: type is required", k->str);
        return -1;
    }
    const char *type = bt_stage_str(v, "type", env, &bad, err, errlen);
    const char *desc = bad ? NULL : bt_stage_str(v, "description", env, &bad, err, errlen);
    const char *src = bad ? NULL : bt_stage_str(v, "source", env, &bad, err, errlen);
    const char *prefix = bad ? NULL : bt_stage_str(v, "prefix", env, &bad, err, errlen);
    if (bad)
        return -1;
    if (type && strcasecmp(type, "counter") == 0)
        mt->type = BT_COUNTER;
    else if (type && strcasecmp(type, "gauge") == 0)
        mt->type = BT_GAUGE;
    else if (type && strcasecmp(type, "histogram") == 0)
        mt->type = BT_HISTOGRAM;
    else {
        bt_stage_err(err, errlen, env, type ? bt_node_get(v, "type") : k,
                     "%s: type must be Counter, Gauge or Histogram", k->str);
        return -1;
    }
    if (!prefix)
        prefix = "promtail_custom_";
    size_t nl = strlen(prefix) + k->len + 1;
    mt->name = malloc(nl);
    mt->help = strdup(desc ? desc : "Custom metric from a pipeline metrics stage.");
    mt->source = strdup(src && *src ? src : k->str);
    if (!mt->name || !mt->help || !mt->source)
        return -1;
    snprintf(mt->name, nl, "%s%s", prefix, k->str);
    if (!metric_name_valid(mt->name)) {
        bt_stage_err(err, errlen, env, k, "invalid metric name \"%s\"", mt->name);
        return -1;
    }
    mt->max_idle = 5 * 60 * BT_NS_PER_SEC;
    const struct bt_node *mi = bt_node_get(v, "max_idle_duration");
    long long ns;
    if (mi && !bt_node_is_null(mi)) {
        if (bt_node_duration(mi, &ns) < 0 || ns < BT_NS_PER_SEC) {
            bt_stage_err(err, errlen, env, mi, "max_idle_duration must be at least 1s");
            return -1;
        }
        mt->max_idle = ns;
    }
    if (parse_config(mt, bt_node_get(v, "config"), env, err, errlen) < 0)
        return -1;
    if (s->m && !family_ok(s->m, mt)) {
        bt_stage_err(err, errlen, env, k, "metric %s is already registered with another type",
                     mt->name);
        return -1;
    }
    return 0;
}

static void *metrics_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                          size_t errlen)
{
    if (bt_node_is_null(cfg) || cfg->type != BT_NODE_MAP || cfg->n == 0)
        return bt_stage_err(err, errlen, env, cfg, "expected a map of metric name: definition");
    struct st *s = calloc(1, sizeof(*s));
    if (!s || !(s->v = calloc(cfg->n, sizeof(*s->v)))) {
        free(s);
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    }
    s->m = env->metrics;
    bt_buf_init(&s->lbl, 1 << 20);
    for (size_t i = 0; i < cfg->n; i++) {
        bt_hmap_init(&s->v[i].cache);
        s->n = i + 1;
        err[0] = '\0';
        if (parse_metric(s, &s->v[i], bt_node_key(cfg, i), bt_node_val(cfg, i), env, err, errlen) <
            0) {
            if (!err[0])
                bt_stage_err(err, errlen, env, bt_node_key(cfg, i), "out of memory");
            metrics_free(s);
            return NULL;
        }
    }
    return s;
}

/* Renders the entry's visible labels as the registry's label string. */
static int render_labels(struct bt_buf *b, const struct bt_labels *l)
{
    bt_buf_reset(b);
    for (size_t i = 0; l && i < l->n; i++) {
        const struct bt_label *x = &l->v[i];
        if (x->name[0] == '_' && x->name[1] == '_')
            continue;
        int rc = bt_buf_addf(b, "%s%s=\"", b->len ? "," : "", x->name);
        for (size_t k = 0; rc == 0 && k < x->value_len; k++) {
            char c = x->value[k];
            rc = c == '\\'   ? bt_buf_add(b, "\\\\", 2)
                 : c == '"'  ? bt_buf_add(b, "\\\"", 2)
                 : c == '\n' ? bt_buf_add(b, "\\n", 2)
                             : bt_buf_add(b, &c, 1);
        }
        if (rc < 0 || bt_buf_add(b, "\"", 1) < 0)
            return -1;
    }
    return 0;
}

/* The series for the entry's labels. The cache is keyed by the label set's canonical string,
 * which the set keeps cached with its hash, so a hit renders nothing. */
static struct bt_series *series(struct st *s, struct metric *mt, struct bt_labels *l, int64_t now)
{
    size_t clen = 2;
    const char *canon = l ? bt_labels_canon(l, &clen) : "{}";
    uint64_t h = l ? bt_labels_hash(l) : bt_hash64("{}", 2);
    if (!canon)
        return NULL;
    struct cached *c = bt_hmap_get_h(&mt->cache, canon, clen, h);
    if (c) {
        c->last = now;
        return c->s;
    }
    if (mt->cache.n >= MAX_SERIES || render_labels(&s->lbl, l) < 0)
        return NULL; /* bounded: label sets past the cap are not counted */
    const char *key = bt_buf_str(&s->lbl);
    struct bt_series *se =
        mt->type == BT_COUNTER ? bt_metrics_counter(s->m, mt->name, mt->help, key)
        : mt->type == BT_GAUGE
            ? bt_metrics_gauge(s->m, mt->name, mt->help, key)
            : bt_metrics_histogram(s->m, mt->name, mt->help, key, mt->buckets, mt->nb);
    if (!se || !(c = malloc(sizeof(*c))))
        return se;
    c->s = se;
    c->last = now;
    c->key = strdup(key);
    if (!c->key || bt_hmap_put_h(&mt->cache, canon, clen, h, c, NULL) < 0) {
        free(c->key);
        free(c);
    }
    return se;
}

static void sweep(struct st *s, int64_t now)
{
    for (size_t i = 0; i < s->n; i++) {
        struct metric *mt = &s->v[i];
        size_t pos = 0;
        struct bt_hmap_slot *sl;
        while ((sl = bt_hmap_next(&mt->cache, &pos))) {
            struct cached *c = sl->val;
            if (now - c->last < mt->max_idle)
                continue;
            bt_metrics_remove(s->m, mt->name, c->key);
            bt_hmap_del(&mt->cache, sl->key, sl->klen);
            free(c->key);
            free(c);
        }
    }
}

static bool to_float(const struct bt_xval *v, double *out)
{
    char buf[128], *end;
    switch (v->type) {
    case BT_X_NUMBER: *out = v->num; return true;
    case BT_X_BOOL: *out = v->b ? 1 : 0; return true;
    case BT_X_STRING:
        if (v->len == 0 || v->len >= sizeof(buf))
            return false;
        memcpy(buf, v->s, v->len);
        buf[v->len] = '\0';
        *out = strtod(buf, &end);
        return *end == '\0';
    default: return false;
    }
}

static void update(struct st *s, struct metric *mt, struct bt_pentry *e, int64_t now)
{
    double f = 1;
    if (!mt->match_all) {
        const struct bt_xval *v = bt_extracted_get(&e->x, mt->source, strlen(mt->source));
        if (!v)
            return;
        if (mt->value) {
            char tmp[64];
            const char *t;
            size_t n;
            if (bt_xval_string(v, tmp, sizeof(tmp), &t, &n) < 0 || n != strlen(mt->value) ||
                memcmp(t, mt->value, n) != 0)
                return;
        }
        bool need = mt->action == A_ADD || mt->action == A_SET || mt->action == A_SUB ||
                    mt->action == A_OBSERVE;
        if (need && !to_float(v, &f))
            return;
        if (mt->type == BT_COUNTER && f < 0)
            return;
    } else if (mt->count_bytes) {
        f = (double)e->line_len;
    }
    if (!s->m)
        return;
    struct bt_series *se = series(s, mt, e->labels, now);
    switch (mt->action) {
    case A_INC: mt->type == BT_COUNTER ? bt_counter_inc(se) : bt_gauge_add(se, 1); break;
    case A_ADD: mt->type == BT_COUNTER ? bt_counter_add(se, f) : bt_gauge_add(se, f); break;
    case A_SET: bt_gauge_set(se, f); break;
    case A_DEC: bt_gauge_add(se, -1); break;
    case A_SUB: bt_gauge_add(se, -f); break;
    case A_OBSERVE: bt_histogram_observe(se, f); break;
    }
}

static enum bt_stage_result metrics_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    int64_t now = bt_mono_ns();
    for (size_t i = 0; i < s->n; i++)
        update(s, &s->v[i], e, now);
    if (now - s->last_sweep > BT_NS_PER_SEC) {
        s->last_sweep = now;
        sweep(s, now);
    }
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_metrics_ops = {
    .name = "metrics",
    .init = metrics_init,
    .process = metrics_process,
    .free = metrics_free,
};
