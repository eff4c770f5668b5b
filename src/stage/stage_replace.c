/* replace: for every match of expression in the line (or extracted[source]), each capture
 * group's text is replaced by the `replace` template; the result becomes the line (or goes
 * back to extracted[source]). Named groups are written to extracted with their replaced value
 * from the first match. Empty matches right after a previous match are skipped, as Go does.
 *
 * The template sees .Value (the captured text) and every extracted key as text; a missing key
 * prints "<no value>" as in Go. When util/gotemplate.h is in the tree the full Go template
 * subset of the template stage is used (if/else, eq, Replace, sprig functions...). Without it,
 * a built-in minimum serves: literal text and {{ .Value }} / {{ .key }} actions, optionally
 * piped through ToUpper, ToLower or TrimSpace (ASCII case mapping); anything else in {{ }} is
 * a config error naming the construct. An execution error (a missing key piped into a
 * function) leaves the entry unchanged, as promtail does. */
#include "stage/stage.h"
#include "config/node.h"
#include "util/regex.h"

#include <stdlib.h>
#include <string.h>

#if __has_include("util/gotemplate.h")
#include "util/gotemplate.h"
#define HAVE_GOTEMPLATE 1
#define NUM_SLOT 64  /* text of one numeric value */
#define NUM_SLOTS 32 /* numeric values one execution may look up */
#endif

#define MAX_PARTS 64
#define MAX_GROUPS 64

enum fn { FN_UPPER = 1, FN_LOWER, FN_TRIM };

struct part {
    char *text; /* literal, or field name (NULL name = .Value) */
    size_t len;
    bool field, value;
    enum fn fns[4];
    int nfn;
};

struct st {
    struct bt_regex *re;
    char *source;
    size_t source_len;
    struct part parts[MAX_PARTS];
    int nparts;
    struct bt_buf in, out; /* copy of a source value; result when writing to source */
    size_t gofs[MAX_GROUPS][2];
#ifdef HAVE_GOTEMPLATE
    struct bt_gotmpl *tmpl;    /* NULL when replace is empty */
    const struct bt_pentry *e; /* per-execution lookup state */
    const char *val;
    size_t vlen;
    char nums[NUM_SLOTS][NUM_SLOT];
    int nnums;
#endif
};

static const char *const keys[] = {"expression", "source", "replace", NULL};

static void replace_free(void *st)
{
    struct st *s = st;
    bt_regex_free(s->re);
    free(s->source);
    for (int i = 0; i < s->nparts; i++)
        free(s->parts[i].text);
    bt_buf_free(&s->in);
    bt_buf_free(&s->out);
#ifdef HAVE_GOTEMPLATE
    bt_gotmpl_free(s->tmpl);
#endif
    free(s);
}

#ifndef HAVE_GOTEMPLATE /* the built-in minimum template */
static int add_part(struct st *s, const char *p, size_t n, bool field)
{
    if (s->nparts == MAX_PARTS)
        return -1;
    struct part *pt = &s->parts[s->nparts];
    memset(pt, 0, sizeof(*pt));
    pt->text = strndup(p, n);
    if (!pt->text)
        return -1;
    pt->len = n;
    pt->field = field;
    s->nparts++;
    return 0;
}

static char *trim(char *a, char *b, char **end)
{
    while (a < b && (*a == ' ' || *a == '\t'))
        a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
    *end = b;
    return a;
}

/* Parses one action body ".Name | Fn | Fn". NULL on success, else what is not supported. */
static const char *parse_action(struct st *s, char *a, char *b)
{
    char *e, *bar = memchr(a, '|', (size_t)(b - a));
    char *f = trim(a, bar ? bar : b, &e);
    if (f >= e || *f != '.' || e - f < 2)
        return "only .Value and .name fields are supported";
    for (char *c = f + 1; c < e; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_'))
            return "only .Value and .name fields are supported";
    if (add_part(s, f + 1, (size_t)(e - f - 1), true) < 0)
        return "template too long";
    struct part *pt = &s->parts[s->nparts - 1];
    pt->value = strcmp(pt->text, "Value") == 0;
    while (bar) {
        char *next = memchr(bar + 1, '|', (size_t)(b - bar - 1));
        char *fe, *fn = trim(bar + 1, next ? next : b, &fe);
        size_t fl = (size_t)(fe - fn);
        if (pt->nfn == 4)
            return "too many functions";
        if (fl == 7 && memcmp(fn, "ToUpper", 7) == 0)
            pt->fns[pt->nfn++] = FN_UPPER;
        else if (fl == 7 && memcmp(fn, "ToLower", 7) == 0)
            pt->fns[pt->nfn++] = FN_LOWER;
        else if (fl == 9 && memcmp(fn, "TrimSpace", 9) == 0)
            pt->fns[pt->nfn++] = FN_TRIM;
        else
            return "only the functions ToUpper, ToLower and TrimSpace are supported";
        bar = next;
    }
    return NULL;
}

static const char *parse_template(struct st *s, const char *tpl)
{
    char *t = strdup(tpl), *p = t;
    const char *msg = NULL;
    if (!t)
        return "out of memory";
    while (*p && !msg) {
        char *open = strstr(p, "{{");
        if (!open) {
            if (add_part(s, p, strlen(p), false) < 0)
                msg = "template too long";
            break;
        }
        if (open > p && add_part(s, p, (size_t)(open - p), false) < 0) {
            msg = "template too long";
            break;
        }
        char *a = open + 2, *close = strstr(a, "}}");
        if (!close) {
            msg = "unclosed action";
            break;
        }
        if (*a == '-') /* {{- trims spaces before: not needed for replace values */
            msg = "trim markers ({{- -}}) are not supported";
        else
            msg = parse_action(s, a, close);
        p = close + 2;
    }
    free(t);
    return msg;
}

#endif

static void *replace_init(const struct bt_node *cfg, const struct bt_stage_env *env, char *err,
                          size_t errlen)
{
    int bad;
    char rerr[256];
    if (bt_stage_check_keys(cfg, env, keys, err, errlen) < 0)
        return NULL;
    const char *expr = bt_stage_str(cfg, "expression", env, &bad, err, errlen);
    if (bad)
        return NULL;
    if (!expr || !*expr)
        return bt_stage_err(err, errlen, env, cfg, "expression is required");
    const char *src = bt_stage_str(cfg, "source", env, &bad, err, errlen);
    if (bad)
        return NULL;
    const char *rep = bt_stage_str(cfg, "replace", env, &bad, err, errlen);
    if (bad)
        return NULL;
    struct st *s = calloc(1, sizeof(*s));
    if (!s)
        return bt_stage_err(err, errlen, env, NULL, "out of memory");
    bt_buf_init(&s->in, BT_XVAL_MAX);
    bt_buf_init(&s->out, BT_PENTRY_LINE_MAX);
    s->re = bt_regex_new(expr, 0, rerr, sizeof(rerr));
    if (!s->re) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "expression"), "%s", rerr);
        goto fail;
    }
    if (bt_regex_ngroups(s->re) < 1 || bt_regex_ngroups(s->re) >= MAX_GROUPS) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "expression"),
                     "expression needs 1 to %d capture groups", MAX_GROUPS - 1);
        goto fail;
    }
#ifdef HAVE_GOTEMPLATE
    char terr[256];
    if (rep && *rep && !(s->tmpl = bt_gotmpl_new(rep, terr, sizeof(terr)))) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "replace"), "replace template: %s", terr);
        goto fail;
    }
#else
    const char *msg = rep ? parse_template(s, rep) : NULL;
    if (msg) {
        bt_stage_err(err, errlen, env, bt_node_get(cfg, "replace"), "replace template: %s", msg);
        goto fail;
    }
#endif
    if (src && *src) {
        if (!(s->source = strdup(src))) {
            bt_stage_err(err, errlen, env, NULL, "out of memory");
            goto fail;
        }
        s->source_len = strlen(src);
    }
    return s;
fail:
    replace_free(s);
    return NULL;
}

#ifdef HAVE_GOTEMPLATE
static int lookup(void *ctx, const char *name, size_t n, const char **val, size_t *vlen)
{
    struct st *s = ctx;
    if (n == 5 && memcmp(name, "Value", 5) == 0) {
        *val = s->val;
        *vlen = s->vlen;
        return 1;
    }
    const struct bt_xval *xv = bt_extracted_get(&s->e->x, name, n);
    if (!xv || s->nnums == NUM_SLOTS)
        return 0;
    char *tmp = s->nums[s->nnums];
    if (bt_xval_string(xv, tmp, NUM_SLOT, val, vlen) < 0)
        return 0;
    if (*val == tmp)
        s->nnums++;
    return 1;
}

static int exec_template(struct st *s, const struct bt_pentry *e, const char *val, size_t vlen,
                         struct bt_buf *b)
{
    char terr[128];
    if (!s->tmpl)
        return 0;
    s->e = e;
    s->val = val;
    s->vlen = vlen;
    s->nnums = 0;
    return bt_gotmpl_exec(s->tmpl, lookup, s, b, terr, sizeof(terr)) < 0 ? -1 : 0;
}
#else
static int exec_template(struct st *s, const struct bt_pentry *e, const char *val, size_t vlen,
                         struct bt_buf *b)
{
    char tmp[64];
    for (int i = 0; i < s->nparts; i++) {
        const struct part *pt = &s->parts[i];
        const char *v = pt->text;
        size_t n = pt->len;
        if (pt->field && pt->value) {
            v = val, n = vlen;
        } else if (pt->field &&
                   bt_extracted_get_str(&e->x, pt->text, pt->len, tmp, sizeof(tmp), &v, &n) < 0) {
            if (pt->nfn)
                return -1; /* Go: a missing value is no string for the function */
            v = "<no value>", n = 10;
        }
        size_t at = b->len;
        if (bt_buf_add(b, v, n) < 0)
            return -1;
        for (int f = 0; f < pt->nfn; f++) {
            char *p = b->ptr + at;
            size_t len = b->len - at;
            if (pt->fns[f] == FN_TRIM) {
                size_t a = 0, z = len;
                while (a < z && (p[a] == ' ' || (p[a] >= '\t' && p[a] <= '\r')))
                    a++;
                while (z > a && (p[z - 1] == ' ' || (p[z - 1] >= '\t' && p[z - 1] <= '\r')))
                    z--;
                memmove(p, p + a, z - a);
                b->len = at + (z - a);
                b->ptr[b->len] = '\0';
            } else {
                for (size_t k = 0; k < len; k++) {
                    if (pt->fns[f] == FN_UPPER && p[k] >= 'a' && p[k] <= 'z')
                        p[k] = (char)(p[k] - 32);
                    else if (pt->fns[f] == FN_LOWER && p[k] >= 'A' && p[k] <= 'Z')
                        p[k] = (char)(p[k] + 32);
                }
            }
        }
    }
    return 0;
}

#endif

static size_t utf8_step(const char *s, size_t n, size_t i)
{
    i++;
    while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80)
        i++;
    return i;
}

/* Builds the replaced text of in[0,n) into b. Returns 1 if anything matched, 0 if not, -1 on
 * error (b left in an unknown state). */
static int build(struct st *s, const struct bt_pentry *e, const char *in, size_t n,
                 struct bt_buf *b)
{
    int ng = bt_regex_ngroups(s->re), matched = 0;
    size_t prev = 0, start = 0, last_end = (size_t)-1;
    memset(s->gofs, 0xff, sizeof(s->gofs));
    while (start <= n) {
        if (bt_regex_match(s->re, in, n, start) <= 0)
            break;
        size_t ms, me;
        bt_regex_group(s->re, 0, &ms, &me);
        if (ms == me && ms == last_end) { /* empty match abutting the previous one */
            if (ms >= n)
                break;
            start = utf8_step(in, n, ms);
            continue;
        }
        for (int g = 1; g <= ng; g++) {
            size_t a, z;
            if (!bt_regex_group(s->re, g, &a, &z) || a < prev)
                continue;
            if (bt_buf_add(b, in + prev, a - prev) < 0)
                return -1;
            size_t o = b->len;
            if (exec_template(s, e, in + a, z - a, b) < 0)
                return -1;
            if (!matched) {
                s->gofs[g][0] = o;
                s->gofs[g][1] = b->len;
            }
            prev = z;
        }
        matched = 1;
        last_end = me;
        start = me > ms ? me : (ms >= n ? n + 1 : utf8_step(in, n, ms));
    }
    if (!matched)
        return 0;
    if (bt_buf_add(b, in + prev, n - prev) < 0)
        return -1;
    return 1;
}

static enum bt_stage_result replace_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    struct st *s = st;
    const char *in = e->line;
    size_t n = e->line_len;
    struct bt_buf *b;
    if (s->source) {
        char tmp[64];
        if (bt_extracted_get_str(&e->x, s->source, s->source_len, tmp, sizeof(tmp), &in, &n) < 0)
            return BT_STAGE_KEEP;
        bt_buf_reset(&s->in);
        if (bt_buf_add(&s->in, in, n) < 0)
            return BT_STAGE_KEEP;
        in = bt_buf_str(&s->in);
        b = &s->out;
        bt_buf_reset(b);
    } else {
        b = bt_pentry_line_begin(e);
    }
    if (build(s, e, in, n, b) != 1)
        return BT_STAGE_KEEP;
    if (s->source)
        bt_extracted_set_str(&e->x, s->source, s->source_len, bt_buf_str(b), b->len);
    else
        bt_pentry_line_commit(e);
    for (int g = 1; g <= bt_regex_ngroups(s->re); g++) {
        const char *name = bt_regex_group_name(s->re, g);
        if (!name || s->gofs[g][0] == (size_t)-1)
            continue;
        const char *base = s->source ? bt_buf_str(b) : e->line;
        bt_extracted_set_str(&e->x, name, strlen(name), base + s->gofs[g][0],
                             s->gofs[g][1] - s->gofs[g][0]);
    }
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_replace_ops = {
    .name = "replace",
    .init = replace_init,
    .process = replace_process,
    .free = replace_free,
};
