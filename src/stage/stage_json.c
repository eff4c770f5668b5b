/* json: parses the line (or extracted[source]) as a JSON object and stores the result of each
 * expression in extracted: strings, numbers (float64), bools and null as such, objects and
 * arrays as compact JSON text with sorted keys (as Go re-marshals them). Malformed JSON (or a
 * top-level value that is not an object) leaves the entry unchanged, or drops it with
 * drop_malformed (reason "malformed_json"). Expressions are the JMESPath subset described in
 * util/jmespath.h. Scalar results are read straight from the text without allocation;
 * object/array results go through jansson to be re-marshalled. */
#include "stage/stage.h"
#include "config/node.h"
#include "util/jmespath.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct expr {
    char *key;
    size_t key_len;
    struct bt_jpath *path;
};

struct st {
    struct expr *ex;
    size_t n;
    struct bt_jpath **paths; /* ex[i].path, as the array bt_jpath_eval_object takes */
    const char **v;          /* per-expression results, reused */
    size_t *vlen;
    int *found;
    char *source;
    size_t source_len;
    bool drop_malformed;
    struct bt_buf doc; /* copy of a source value */
    struct bt_buf str; /* decoded string results */
};

static const char *const keys[] = {"expressions", "source", "drop_malformed", NULL};

static void json_free(void *st)
{
    struct st *s = st;
    for (size_t i = 0; i < s->n; i++) {
        free(s->ex[i].key);
        bt_jpath_free(s->ex[i].path);
    }
    free(s->ex);
    free(s->paths);
    free(s->v);
    free(s->vlen);
    free(s->found);
    free(s->source);
    bt_buf_free(&s->doc);
    bt_buf_free(&s->str);
    free(s);
}

static void *json_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                       size_t errlen)
{
    int bad;
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    const struct bt_node *exprs = bt_node_get(cfg, "expressions");
    if (!exprs || bt_node_is_null(exprs) || exprs->type != BT_NODE_MAP || exprs->n == 0)
        return bt_stage_err(err, errlen, env, exprs ? exprs : cfg,
                            "expressions must be a non-empty map of key: expression");
    const char *src = bt_stage_str(cfg, "source", env, &bad, err, errlen);
    if (bad)
        return NULL;
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    bt_buf_init(&s->doc, BT_XVAL_MAX);
    bt_buf_init(&s->str, BT_XVAL_MAX);
    const struct bt_node *dm = bt_node_get(cfg, "drop_malformed");
    if (dm && !bt_node_is_null(dm) && bt_node_bool(dm, &s->drop_malformed) < 0) {
        bt_stage_err(err, errlen, env, dm, "drop_malformed must be true or false");
        goto fail;
    }
    if (src && *src) {
        s->source = strdup(src);
        if (!s->source)
            goto oom;
        s->source_len = strlen(src);
    }
    s->ex = calloc(exprs->n, sizeof(*s->ex));
    s->paths = calloc(exprs->n, sizeof(*s->paths));
    s->v = calloc(exprs->n, sizeof(*s->v));
    s->vlen = calloc(exprs->n, sizeof(*s->vlen));
    s->found = calloc(exprs->n, sizeof(*s->found));
    if (!s->ex || !s->paths || !s->v || !s->vlen || !s->found)
        goto oom;
    for (size_t i = 0; i < exprs->n; i++) {
        const struct bt_node *k = bt_node_key(exprs, i), *v = bt_node_val(exprs, i);
        if (k->type != BT_NODE_SCALAR || (!bt_node_is_null(v) && v->type != BT_NODE_SCALAR)) {
            bt_stage_err(err, errlen, env, k, "expressions must map names to strings");
            goto fail;
        }
        const char *expr = bt_node_is_null(v) || v->len == 0 ? k->str : v->str;
        char jerr[256];
        s->ex[i].key = strdup(k->str);
        s->ex[i].key_len = k->len;
        s->n = i + 1;
        if (!s->ex[i].key)
            goto oom;
        s->ex[i].path = bt_jpath_new(expr, jerr, sizeof(jerr));
        if (!s->ex[i].path) {
            bt_stage_err(err, errlen, env, bt_node_is_null(v) ? k : v,
                         "could not compile JMES expression: %s", jerr);
            goto fail;
        }
        s->paths[i] = s->ex[i].path;
    }
    return s;
oom:
    bt_stage_err(err, errlen, env, NULL, "out of memory");
fail:
    json_free(s);
    return NULL;
}

/* Re-marshals an object or array the way Go's encoding/json writes a decoded value: compact,
 * keys sorted. */
static int set_composite(struct bt_pentry *e, const struct expr *ex, const char *v, size_t n)
{
    json_t *j = json_loadb(v, n, 0, NULL);
    if (!j)
        return -EINVAL;
    char *txt = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(j);
    if (!txt)
        return -ENOMEM;
    struct bt_xval xv = {.type = BT_X_JSON, .s = txt, .len = strlen(txt)};
    int rc = bt_extracted_set(&e->x, ex->key, ex->key_len, &xv);
    free(txt);
    return rc;
}

static void set_result(struct st *s, struct bt_pentry *e, const struct expr *ex, const char *v,
                       size_t n, int found)
{
    struct bt_xval xv = {.type = BT_X_NULL};
    if (!found) {
        bt_extracted_set(&e->x, ex->key, ex->key_len, &xv);
        return;
    }
    switch (v[0]) {
    case '"':
        bt_buf_reset(&s->str);
        if (bt_json_unescape(v, n, &s->str) == 0)
            bt_extracted_set_str(&e->x, ex->key, ex->key_len, bt_buf_str(&s->str), s->str.len);
        return;
    case 't':
    case 'f':
        xv.type = BT_X_BOOL;
        xv.b = v[0] == 't';
        bt_extracted_set(&e->x, ex->key, ex->key_len, &xv);
        return;
    case '{':
    case '[': set_composite(e, ex, v, n); return;
    default: { /* a number; strtod needs it NUL-terminated */
        char num[64];
        const char *txt = num;
        if (n < sizeof(num)) {
            memcpy(num, v, n);
            num[n] = '\0';
        } else { /* long digit strings: rare, copied to the scratch buffer */
            bt_buf_reset(&s->str);
            if (bt_buf_add(&s->str, v, n) < 0)
                return;
            txt = bt_buf_str(&s->str);
        }
        bt_extracted_set_num(&e->x, ex->key, ex->key_len, strtod(txt, NULL));
    }
    }
}

static enum bt_stage_result json_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    const char *doc = e->line;
    size_t n = e->line_len;
    if (s->source) {
        char tmp[64];
        const char *v;
        size_t vn;
        if (bt_extracted_get_str(&e->x, s->source, s->source_len, tmp, sizeof(tmp), &v, &vn) < 0)
            return BT_STAGE_KEEP; /* absent or null: nothing to parse, not malformed */
        bt_buf_reset(&s->doc);
        if (bt_buf_add(&s->doc, v, vn) < 0)
            return BT_STAGE_KEEP;
        doc = bt_buf_str(&s->doc);
        n = s->doc.len;
    }
    /* One pass validates the object and finds every expression's first key. */
    if (bt_jpath_eval_object(s->paths, s->n, doc, n, s->v, s->vlen, s->found) < 0) {
        if (!s->drop_malformed)
            return BT_STAGE_KEEP;
        e->drop_reason = "malformed_json";
        return BT_STAGE_DROP;
    }
    for (size_t i = 0; i < s->n; i++)
        set_result(s, e, &s->ex[i], s->v[i], s->vlen[i], s->found[i]);
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_json_ops = {
    .name = "json",
    .init = json_init,
    .process = json_process,
    .free = json_free,
};
