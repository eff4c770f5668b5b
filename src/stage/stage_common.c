/* The working entry, the extracted map and config helpers shared by all stages (stage.h). */
#include "stage/stage.h"
#include "config/node.h"
#include "util/log.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- extracted map ---- */

void bt_extracted_init(struct bt_extracted *x)
{
    memset(x, 0, sizeof(*x));
}

void bt_extracted_free(struct bt_extracted *x)
{
    for (size_t i = 0; i < x->cap; i++) {
        free(x->v[i].key);
        free(x->v[i].buf);
    }
    free(x->v);
    bt_extracted_init(x);
}

void bt_extracted_clear(struct bt_extracted *x)
{
    x->n = 0;
}

static struct bt_xslot *find_slot(const struct bt_extracted *x, const char *k, size_t klen)
{
    for (size_t i = 0; i < x->n; i++)
        if (x->v[i].klen == klen && memcmp(x->v[i].key, k, klen) == 0)
            return &x->v[i];
    return NULL;
}

const struct bt_xval *bt_extracted_get(const struct bt_extracted *x, const char *k, size_t klen)
{
    struct bt_xslot *s = find_slot(x, k, klen);
    return s ? &s->v : NULL;
}

/* Copies n bytes to *p (capacity *cap), growing it; p may overlap the source. */
static int put_bytes(char **p, size_t *cap, const char *s, size_t n)
{
    if (n + 1 > *cap) {
        size_t nc = n + 1 < 32 ? 32 : n + 1;
        char *q = malloc(nc);
        if (!q)
            return -ENOMEM;
        memcpy(q, s, n); /* s may live in *p: copy before freeing it */
        free(*p);
        *p = q;
        *cap = nc;
    } else {
        memmove(*p, s, n);
    }
    (*p)[n] = '\0';
    return 0;
}

int bt_extracted_set(struct bt_extracted *x, const char *k, size_t klen, const struct bt_xval *vp)
{
    const struct bt_xval vv = *vp; /* vp may point into the slot array, which may move below */
    const struct bt_xval *v = &vv;
    struct bt_xslot *s = find_slot(x, k, klen);
    if (!s) {
        if (x->n >= BT_EXTRACTED_MAX)
            return -E2BIG;
        if (x->n == x->cap) {
            size_t nc = x->cap ? x->cap * 2 : 16;
            struct bt_xslot *nv = realloc(x->v, nc * sizeof(*nv));
            if (!nv)
                return -ENOMEM;
            memset(nv + x->cap, 0, (nc - x->cap) * sizeof(*nv));
            x->v = nv;
            x->cap = nc;
        }
        s = &x->v[x->n];
        if (put_bytes(&s->key, &s->kcap, k, klen) < 0)
            return -ENOMEM;
        s->klen = klen;
        s->v.type = BT_X_NULL;
        x->n++;
    }
    if (v->type == BT_X_STRING || v->type == BT_X_JSON) {
        if (v->len > BT_XVAL_MAX)
            return -E2BIG;
        if (put_bytes(&s->buf, &s->bcap, v->s ? v->s : "", v->len) < 0)
            return -ENOMEM;
        s->v = *v;
        s->v.s = s->buf;
    } else {
        s->v = *v;
        s->v.s = NULL;
        s->v.len = 0;
    }
    return 0;
}

int bt_extracted_set_str(struct bt_extracted *x, const char *k, size_t klen, const char *s,
                         size_t n)
{
    struct bt_xval v = {.type = BT_X_STRING, .s = s, .len = n};
    return bt_extracted_set(x, k, klen, &v);
}

int bt_extracted_set_num(struct bt_extracted *x, const char *k, size_t klen, double d)
{
    struct bt_xval v = {.type = BT_X_NUMBER, .num = d};
    return bt_extracted_set(x, k, klen, &v);
}

int bt_extracted_del(struct bt_extracted *x, const char *k, size_t klen)
{
    struct bt_xslot *s = find_slot(x, k, klen);
    if (!s)
        return 0;
    /* Keep insertion order: rotate the freed slot (and its memory) to the end. */
    struct bt_xslot tmp = *s;
    size_t i = (size_t)(s - x->v);
    memmove(&x->v[i], &x->v[i + 1], (x->n - i - 1) * sizeof(*s));
    x->v[x->n - 1] = tmp;
    x->n--;
    return 1;
}

int bt_extracted_copy(struct bt_extracted *dst, const struct bt_extracted *src)
{
    bt_extracted_clear(dst);
    for (size_t i = 0; i < src->n; i++) {
        int rc = bt_extracted_set(dst, src->v[i].key, src->v[i].klen, &src->v[i].v);
        if (rc < 0)
            return rc;
    }
    return 0;
}

size_t bt_format_go_float(char *out, size_t outlen, double v)
{
    int n;
    if (isnan(v)) {
        n = snprintf(out, outlen, "NaN");
    } else if (isinf(v)) {
        n = snprintf(out, outlen, v > 0 ? "+Inf" : "-Inf");
    } else {
        /* Shortest significant digits that read back to the same double, then plain decimal
         * with exactly as many fraction digits as those significant digits need. */
        char tmp[40];
        int prec = 1;
        for (; prec < 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
        const char *e = strchr(tmp, 'e');
        long exp10 = e ? strtol(e + 1, NULL, 10) : 0;
        long frac = (long)prec - 1 - exp10;
        if (frac < 0)
            frac = 0;
        n = snprintf(out, outlen, "%.*f", (int)frac, v);
        if (n > 0 && (size_t)n < outlen && strcmp(out, "-0") == 0)
            n = snprintf(out, outlen, "-0");
    }
    if (n < 0)
        return 0;
    return (size_t)n < outlen ? (size_t)n : outlen - 1;
}

int bt_xval_string(const struct bt_xval *v, char *tmp, size_t tmplen, const char **s, size_t *n)
{
    switch (v->type) {
    case BT_X_STRING:
    case BT_X_JSON:
        *s = v->s;
        *n = v->len;
        return 0;
    case BT_X_NUMBER:
        *n = bt_format_go_float(tmp, tmplen, v->num);
        *s = tmp;
        return 0;
    case BT_X_BOOL:
        *s = v->b ? "true" : "false";
        *n = v->b ? 4 : 5;
        return 0;
    default: return -EINVAL;
    }
}

/* ---- working entry ---- */

void bt_pentry_init(struct bt_pentry *e)
{
    memset(e, 0, sizeof(*e));
    bt_labels_init(&e->own);
    bt_labels_init(&e->meta);
    bt_buf_init(&e->lbuf[0], BT_PENTRY_LINE_MAX);
    bt_buf_init(&e->lbuf[1], BT_PENTRY_LINE_MAX);
    bt_extracted_init(&e->x);
}

void bt_pentry_free(struct bt_pentry *e)
{
    bt_labels_free(&e->own);
    bt_labels_free(&e->meta);
    bt_buf_free(&e->lbuf[0]);
    bt_buf_free(&e->lbuf[1]);
    bt_extracted_free(&e->x);
    bt_pentry_init(e);
}

int bt_pentry_load(struct bt_pentry *e, const struct bt_entry *src)
{
    return bt_pentry_load_keys(e, src, NULL, NULL);
}

int bt_pentry_load_keys(struct bt_pentry *e, const struct bt_entry *src, bt_stage_keep_fn keep,
                        const void *kctx)
{
    int rc;
    e->labels = src->labels;
    e->ts_ns = src->ts_ns;
    e->line = src->line;
    e->line_len = src->line_len;
    e->seg = src->seg;
    e->drop_reason = NULL;
    bt_labels_clear(&e->meta);
    for (size_t i = 0; i < src->n_meta; i++) {
        rc = bt_labels_setn(&e->meta, src->meta[i].name, src->meta[i].name_len, src->meta[i].value,
                            src->meta[i].value_len);
        if (rc < 0)
            return rc;
    }
    bt_extracted_clear(&e->x);
    if (src->labels) {
        for (size_t i = 0; i < src->labels->n; i++) {
            const struct bt_label *l = &src->labels->v[i];
            if (keep && !keep(kctx, l->name, l->name_len))
                continue; /* no stage reads it */
            rc = bt_extracted_set_str(&e->x, l->name, l->name_len, l->value, l->value_len);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int bt_pentry_copy(struct bt_pentry *dst, const struct bt_pentry *src)
{
    int rc = 0;
    if (src->labels) {
        rc = bt_labels_copy(&dst->own, src->labels);
        if (rc < 0)
            return rc;
        dst->labels = &dst->own;
    } else {
        dst->labels = NULL;
    }
    dst->ts_ns = src->ts_ns;
    dst->seg = src->seg;
    dst->drop_reason = src->drop_reason;
    rc = bt_pentry_set_line(dst, src->line, src->line_len);
    if (rc < 0)
        return rc;
    rc = bt_labels_copy(&dst->meta, &src->meta);
    if (rc < 0)
        return rc;
    return bt_extracted_copy(&dst->x, &src->x);
}

struct bt_labels *bt_pentry_labels_mut(struct bt_pentry *e)
{
    if (e->labels == &e->own)
        return &e->own;
    if (e->labels) {
        if (bt_labels_copy(&e->own, e->labels) < 0)
            return NULL;
    } else {
        bt_labels_clear(&e->own);
    }
    e->labels = &e->own;
    return &e->own;
}

struct bt_buf *bt_pentry_line_begin(struct bt_pentry *e)
{
    /* The spare buffer is the one not holding the current line. */
    int spare = (e->line == e->lbuf[e->cur].ptr && e->line) ? !e->cur : e->cur;
    struct bt_buf *b = &e->lbuf[spare];
    bt_buf_reset(b);
    return b;
}

void bt_pentry_line_commit(struct bt_pentry *e)
{
    int spare = (e->line == e->lbuf[e->cur].ptr && e->line) ? !e->cur : e->cur;
    e->cur = spare;
    e->line = bt_buf_str(&e->lbuf[spare]);
    e->line_len = e->lbuf[spare].len;
}

int bt_pentry_set_line(struct bt_pentry *e, const char *s, size_t n)
{
    struct bt_buf *b = bt_pentry_line_begin(e);
    int rc = bt_buf_add(b, s, n);
    if (rc < 0)
        return rc;
    bt_pentry_line_commit(e);
    return 0;
}

int bt_pentry_view(struct bt_pentry *e, struct bt_entry *out, struct bt_kv **kv, size_t *kvcap)
{
    out->labels = e->labels;
    out->ts_ns = e->ts_ns;
    out->line = e->line;
    out->line_len = e->line_len;
    out->seg = e->seg;
    out->meta = NULL;
    out->n_meta = e->meta.n;
    if (e->meta.n > *kvcap) {
        struct bt_kv *nv = realloc(*kv, e->meta.n * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        *kv = nv;
        *kvcap = e->meta.n;
    }
    for (size_t i = 0; i < e->meta.n; i++) {
        (*kv)[i].name = e->meta.v[i].name;
        (*kv)[i].name_len = e->meta.v[i].name_len;
        (*kv)[i].value = e->meta.v[i].value;
        (*kv)[i].value_len = e->meta.v[i].value_len;
    }
    if (e->meta.n)
        out->meta = *kv;
    return 0;
}

/* ---- config helpers ---- */

void *bt_stage_err(char *err, size_t errlen, const struct bt_stage_env *env,
                   const struct bt_node *at, const char *fmt, ...)
{
    char where[256];
    const struct bt_node *n = at ? at : env->where;
    if (n)
        bt_node_where(n, where, sizeof(where));
    else
        snprintf(where, sizeof(where), "<pipeline>");
    int off = snprintf(err, errlen, "%s: stage \"%s\": ", where, env->name ? env->name : "?");
    if (off < 0 || (size_t)off >= errlen)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + off, errlen - (size_t)off, fmt, ap);
    va_end(ap);
    errno = EINVAL;
    return NULL;
}

int bt_stage_check_keys(const struct bt_node *cfg, const struct bt_stage_env *env,
                        const char *const *allowed, char *err, size_t errlen)
{
    if (bt_node_is_null(cfg))
        return 0;
    if (cfg->type != BT_NODE_MAP) {
        bt_stage_err(err, errlen, env, cfg, "expected a map of options");
        return -EINVAL;
    }
    for (size_t i = 0; i < cfg->n; i++) {
        const struct bt_node *k = bt_node_key(cfg, i);
        bool ok = false;
        for (const char *const *a = allowed; *a && k->str; a++)
            if (strcmp(*a, k->str) == 0)
                ok = true;
        if (!ok) {
            /* promtail decodes stage options without checking for unused keys and starts; so
             * does bpftail, with a warning naming the place (a typo is otherwise silent). */
            char msg[512];
            bt_stage_err(msg, sizeof(msg), env, k, "unknown key \"%s\" ignored",
                         k->str ? k->str : "?");
            bt_log(BT_LOG_WARN, "config", msg, NULL);
        }
    }
    return 0;
}

const char *bt_stage_str(const struct bt_node *cfg, const char *k, const struct bt_stage_env *env,
                         int *bad, char *err, size_t errlen)
{
    *bad = 0;
    if (bt_node_is_null(cfg) || cfg->type != BT_NODE_MAP)
        return NULL;
    const struct bt_node *v = bt_node_get(cfg, k);
    if (!v || bt_node_is_null(v))
        return NULL;
    if (v->type != BT_NODE_SCALAR) {
        bt_stage_err(err, errlen, env, v, "%s must be a string", k);
        *bad = -EINVAL;
        return NULL;
    }
    return v->str;
}

int bt_extracted_get_str(const struct bt_extracted *x, const char *k, size_t klen, char *tmp,
                         size_t tmplen, const char **s, size_t *n)
{
    const struct bt_xval *v = bt_extracted_get(x, k, klen);
    if (!v)
        return -ENOENT;
    return bt_xval_string(v, tmp, tmplen, s, n);
}

void bt_stage_kv_free(struct bt_stage_kv *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].name);
        free(v[i].source);
    }
    free(v);
}

int bt_stage_kv_parse(const struct bt_node *cfg, const struct bt_stage_env *env, bool label_names,
                      struct bt_stage_kv **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (bt_node_is_null(cfg) || cfg->type != BT_NODE_MAP) {
        bt_stage_err(err, errlen, env, cfg, "expected a map of name: source");
        return -EINVAL;
    }
    struct bt_stage_kv *v = calloc(cfg->n ? cfg->n : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->n; i++) {
        const struct bt_node *k = bt_node_key(cfg, i), *val = bt_node_val(cfg, i);
        if (k->type != BT_NODE_SCALAR || (!bt_node_is_null(val) && val->type != BT_NODE_SCALAR)) {
            bt_stage_err(err, errlen, env, k, "expected name: source pairs of strings");
            goto fail;
        }
        if (label_names && !bt_label_name_valid(k->str, k->len)) {
            bt_stage_err(err, errlen, env, k, "invalid label name \"%s\"", k->str);
            goto fail;
        }
        const char *src = bt_node_is_null(val) || val->len == 0 ? k->str : val->str;
        v[i].name = strdup(k->str);
        v[i].source = strdup(src);
        *n = i + 1;
        if (!v[i].name || !v[i].source) {
            bt_stage_err(err, errlen, env, k, "out of memory");
            goto fail;
        }
        v[i].name_len = strlen(v[i].name);
        v[i].source_len = strlen(v[i].source);
    }
    *out = v;
    return 0;
fail:
    bt_stage_kv_free(v, *n);
    *n = 0;
    return -EINVAL;
}

void bt_stage_strlist_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int bt_stage_strlist(const struct bt_node *cfg, const struct bt_stage_env *env, bool label_names,
                     char ***out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (bt_node_is_null(cfg) || cfg->type != BT_NODE_SEQ) {
        bt_stage_err(err, errlen, env, cfg, "expected a list of names");
        return -EINVAL;
    }
    char **v = calloc(cfg->n ? cfg->n : 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->n; i++) {
        const struct bt_node *it = cfg->items[i];
        if (it->type != BT_NODE_SCALAR) {
            bt_stage_err(err, errlen, env, it, "expected a list of names");
            goto fail;
        }
        if (label_names && !bt_label_name_valid(it->str, it->len)) {
            bt_stage_err(err, errlen, env, it, "invalid label name \"%s\"", it->str);
            goto fail;
        }
        v[i] = strdup(it->str);
        *n = i + 1;
        if (!v[i]) {
            bt_stage_err(err, errlen, env, it, "out of memory");
            goto fail;
        }
    }
    *out = v;
    return 0;
fail:
    bt_stage_strlist_free(v, *n);
    *n = 0;
    return -EINVAL;
}

void *bt_stage_labelmap_new(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                            size_t errlen)
{
    struct bt_stage_labelmap *m = calloc(1, sizeof(*m));
    if (!m)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    if (bt_stage_kv_parse(cfg, env, true, &m->kv, &m->n, err, errlen) < 0) {
        free(m);
        return NULL;
    }
    return m;
}

void bt_stage_labelmap_free(void *map)
{
    struct bt_stage_labelmap *m = map;
    if (!m)
        return;
    bt_stage_kv_free(m->kv, m->n);
    free(m);
}

bool bt_stage_labelmap_reads(const void *map, bt_stage_key_fn fn, void *ctx)
{
    const struct bt_stage_labelmap *m = map;
    for (size_t i = 0; i < m->n; i++)
        fn(ctx, m->kv[i].source, m->kv[i].source_len);
    return true;
}

const struct bt_stage_kv *bt_stage_labelmap_next(const struct bt_stage_labelmap *m,
                                                 const struct bt_pentry *e, size_t *i, char *tmp,
                                                 const char **v, size_t *n)
{
    while (*i < m->n) {
        const struct bt_stage_kv *kv = &m->kv[(*i)++];
        if (bt_extracted_get_str(&e->x, kv->source, kv->source_len, tmp, BT_STAGE_LABELMAP_TMP, v,
                                 n) == 0 &&
            bt_utf8_valid(*v, *n))
            return kv;
    }
    return NULL;
}
