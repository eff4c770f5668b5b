/*
 * gotemplate_exec: runs a compiled template (see util/gotemplate.h): the scratch arena, value
 * printing and truth, and the tree walk.
 */
#include "util/gotemplate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/gotemplate_int.h"

/* ---- arena and values ------------------------------------------------------------------- */

void gt_arena_reset(struct gt_arena *a)
{
    for (struct gt_block *b = a->head; b; b = b->next)
        b->used = 0;
    a->cur = a->head;
    a->sb_off = 0;
}

void gt_arena_free(struct gt_arena *a)
{
    struct gt_block *b = a->head;
    while (b) {
        struct gt_block *nx = b->next;
        free(b);
        b = nx;
    }
    memset(a, 0, sizeof(*a));
}

void gt_sb_begin(struct gt_exec *x)
{
    struct gt_arena *a = x->arena;
    a->sb_off = a->cur ? a->cur->used : 0;
}

int gt_sb_put(struct gt_exec *x, const void *p, size_t n)
{
    struct gt_arena *a = x->arena;
    struct gt_block *c = a->cur;
    if (!n)
        return 0;
    if (!c || c->cap - c->used < n) {
        size_t partial = c ? c->used - a->sb_off : 0;
        size_t need = partial + n;
        struct gt_block *nb = c ? c->next : a->head;
        if (!nb || nb->cap < need) {
            size_t cap = need * 2 > 4096 ? need * 2 : 4096;
            if (need > BT_GOTMPL_SCRATCH_MAX || a->total + cap > BT_GOTMPL_SCRATCH_MAX * 2)
                return gt_fail(x, -E2BIG, "template scratch space exceeds %u bytes",
                               BT_GOTMPL_SCRATCH_MAX);
            nb = malloc(sizeof(*nb) + cap);
            if (!nb)
                return gt_fail(x, -ENOMEM, "out of memory");
            nb->cap = cap;
            a->total += cap;
            if (c) {
                nb->next = c->next;
                c->next = nb;
            } else {
                nb->next = a->head;
                a->head = nb;
            }
        }
        nb->used = 0;
        if (partial) {
            memcpy(nb->data, c->data + a->sb_off, partial);
            nb->used = partial;
        }
        if (c)
            c->used = a->sb_off;
        a->cur = nb;
        a->sb_off = 0;
        c = nb;
    }
    memcpy(c->data + c->used, p, n);
    c->used += n;
    return 0;
}

void gt_sb_end(struct gt_exec *x, struct gt_val *out)
{
    struct gt_arena *a = x->arena;
    memset(out, 0, sizeof(*out));
    out->k = GT_STR;
    if (!a->cur) {
        out->s = "";
        return;
    }
    out->s = a->cur->data + a->sb_off;
    out->n = a->cur->used - a->sb_off;
    a->sb_off = a->cur->used;
}

int gt_fail(struct gt_exec *x, int rc, const char *fmt, ...)
{
    if (x->err && x->errlen && !x->err[0]) {
        int k = snprintf(x->err, x->errlen, "line %d: ", x->line);
        if (k >= 0 && (size_t)k < x->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(x->err + k, x->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

bool gt_truth(const struct gt_val *v)
{
    switch (v->k) {
    case GT_STR: return v->n > 0;
    case GT_INT: return v->i != 0;
    case GT_FLOAT: return v->f != 0;
    case GT_BOOL: return v->b;
    case GT_MAP: return true;
    default: return false;
    }
}

/* Go's %v for float64: shortest representation, exponent below 1e-4 or from 1e21. */
static int fmt_float(char *out, size_t outlen, double f)
{
    char tmp[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    const char *e = strchr(tmp, 'e');
    int exp10 = e ? (int)strtol(e + 1, NULL, 10) : 0;
    if (exp10 < -4 || exp10 >= 21)
        return snprintf(out, outlen, "%.*e", prec - 1, f);
    int decimals = prec - 1 - exp10;
    return snprintf(out, outlen, "%.*f", decimals > 0 ? decimals : 0, f);
}

int gt_put_val(struct gt_exec *x, const struct gt_val *v)
{
    char tmp[64];
    int k;
    switch (v->k) {
    case GT_STR: return gt_sb_put(x, v->s, v->n);
    case GT_INT:
        k = snprintf(tmp, sizeof(tmp), "%lld", (long long)v->i);
        return gt_sb_put(x, tmp, (size_t)k);
    case GT_FLOAT: k = fmt_float(tmp, sizeof(tmp), v->f); return gt_sb_put(x, tmp, (size_t)k);
    case GT_BOOL: return v->b ? gt_sb_put(x, "true", 4) : gt_sb_put(x, "false", 5);
    case GT_NIL: return gt_sb_put(x, "<nil>", 5);
    case GT_MAP: return gt_fail(x, -EINVAL, "cannot print the whole data map");
    default: return gt_sb_put(x, "<no value>", 10);
    }
}

/* ---- execution -------------------------------------------------------------------------- */

struct var {
    const char *name;
    size_t n;
    struct gt_val v;
};

struct run {
    struct gt_exec x;
    struct bt_buf *out;
    struct var vars[GT_MAX_VARS + 1];
    int nvars;
};

static int eval_pipe(struct run *r, const struct gt_pipe *pp, const struct gt_val *dot,
                     struct gt_val *out);

static int field_of(struct run *r, const struct gt_val *recv, const char *name, size_t n,
                    struct gt_val *out)
{
    memset(out, 0, sizeof(*out));
    switch (recv->k) {
    case GT_MAP: {
        const char *v;
        size_t vl;
        if (r->x.lookup && r->x.lookup(r->x.ctx, name, n, &v, &vl) == 1) {
            out->k = GT_STR;
            out->s = v;
            out->n = vl;
        } else {
            out->k = GT_NONE; /* missing key: prints as <no value> */
        }
        return 0;
    }
    case GT_NONE:
    case GT_NIL: return gt_fail(&r->x, -EINVAL, "nil pointer evaluating .%.*s", (int)n, name);
    default:
        return gt_fail(&r->x, -EINVAL, "can't evaluate field %.*s in a %s", (int)n, name,
                       recv->k == GT_STR ? "string" : "number or bool");
    }
}

static int eval_arg(struct run *r, const struct gt_arg *a, const struct gt_val *dot,
                    struct gt_val *out)
{
    memset(out, 0, sizeof(*out));
    switch (a->kind) {
    case GA_STR:
        out->k = GT_STR;
        out->s = a->s;
        out->n = a->n;
        return 0;
    case GA_INT:
        out->k = GT_INT;
        out->i = a->i;
        out->f = a->f;
        return 0;
    case GA_FLOAT:
        out->k = GT_FLOAT;
        out->f = a->f;
        return 0;
    case GA_BOOL:
        out->k = GT_BOOL;
        out->b = a->b;
        return 0;
    case GA_NIL: out->k = GT_NIL; return 0;
    case GA_DOT: *out = *dot; return 0;
    case GA_VAR:
        for (int i = r->nvars - 1; i >= 0; i--) {
            if (r->vars[i].n == a->n && memcmp(r->vars[i].name, a->s, a->n) == 0) {
                *out = r->vars[i].v;
                return 0;
            }
        }
        return gt_fail(&r->x, -EINVAL, "undefined variable %.*s", (int)a->n, a->s);
    case GA_FIELD: {
        struct gt_val recv;
        int rc = a->recv ? eval_arg(r, a->recv, dot, &recv) : (recv = *dot, 0);
        if (rc < 0)
            return rc;
        return field_of(r, &recv, a->s, a->n, out);
    }
    case GA_PIPE: return eval_pipe(r, a->pipe, dot, out);
    case GA_FUNC: return a->fn->fn(&r->x, NULL, NULL, 0, out);
    }
    return -EINVAL;
}

static int eval_cmd(struct run *r, const struct gt_cmd *c, const struct gt_val *dot,
                    const struct gt_val *final, struct gt_val *out)
{
    struct gt_val args[GT_MAX_ARGS + 1];
    int n = 0, rc;
    if (!c->fn)
        return eval_arg(r, c->args[0], dot, out);
    if (c->fn->special != GT_PLAIN) { /* and/or: evaluate lazily, return the deciding value */
        int total = c->nargs + (final ? 1 : 0);
        for (int i = 0; i < total; i++) {
            if (i < c->nargs) {
                if ((rc = eval_arg(r, c->args[i], dot, out)) < 0)
                    return rc;
            } else {
                *out = *final;
            }
            bool t = gt_truth(out);
            if ((c->fn->special == GT_AND && !t) || (c->fn->special == GT_OR && t))
                return 0;
        }
        return 0;
    }
    for (; n < c->nargs; n++)
        if ((rc = eval_arg(r, c->args[n], dot, &args[n])) < 0)
            return rc;
    if (final)
        args[n++] = *final;
    memset(out, 0, sizeof(*out));
    return c->fn->fn(&r->x, c->re, args, n, out);
}

static int eval_pipe(struct run *r, const struct gt_pipe *pp, const struct gt_val *dot,
                     struct gt_val *out)
{
    struct gt_val v = {0}, prev;
    int rc;
    r->x.line = pp->line;
    for (int i = 0; i < pp->ncmds; i++) {
        prev = v;
        if ((rc = eval_cmd(r, &pp->cmds[i], dot, i ? &prev : NULL, &v)) < 0)
            return rc;
    }
    if (pp->decl) {
        if (pp->assign) {
            for (int i = r->nvars - 1; i >= 0; i--) {
                if (r->vars[i].n == pp->decl_n &&
                    memcmp(r->vars[i].name, pp->decl, pp->decl_n) == 0) {
                    r->vars[i].v = v;
                    break;
                }
            }
        } else {
            if (r->nvars > GT_MAX_VARS)
                return gt_fail(&r->x, -E2BIG, "too many variables");
            r->vars[r->nvars++] = (struct var){pp->decl, pp->decl_n, v};
        }
    }
    *out = v;
    return 0;
}

static int emit(struct run *r, const char *s, size_t n)
{
    int rc = bt_buf_add(r->out, s, n);
    return rc < 0 ? gt_fail(&r->x, rc, "template output exceeds its limit") : 0;
}

static int walk(struct run *r, const struct gt_node *n, const struct gt_val *dot)
{
    int rc;
    for (; n; n = n->next) {
        struct gt_val v;
        switch (n->kind) {
        case GN_TEXT:
            if ((rc = emit(r, n->text, n->tlen)) < 0)
                return rc;
            break;
        case GN_ACTION:
            if ((rc = eval_pipe(r, n->pipe, dot, &v)) < 0)
                return rc;
            if (n->pipe->decl)
                break; /* declarations print nothing */
            if (v.k == GT_STR) {
                rc = emit(r, v.s, v.n);
            } else {
                gt_sb_begin(&r->x);
                if ((rc = gt_put_val(&r->x, &v)) < 0)
                    return rc;
                gt_sb_end(&r->x, &v);
                rc = emit(r, v.s, v.n);
            }
            if (rc < 0)
                return rc;
            break;
        case GN_IF:
        case GN_WITH: {
            int mark = r->nvars;
            if ((rc = eval_pipe(r, n->pipe, dot, &v)) < 0)
                return rc;
            if (gt_truth(&v))
                rc = walk(r, n->list, n->kind == GN_WITH ? &v : dot);
            else
                rc = walk(r, n->elselist, dot);
            r->nvars = mark;
            if (rc < 0)
                return rc;
            break;
        }
        }
    }
    return 0;
}

int bt_gotmpl_exec(struct bt_gotmpl *t, bt_gotmpl_lookup_fn lookup, void *ctx, struct bt_buf *out,
                   char *err, size_t errlen)
{
    struct run r;
    if (err && errlen)
        err[0] = '\0';
    gt_arena_reset(&t->arena);
    r.x = (struct gt_exec){&t->arena, lookup, ctx, err, errlen, 1};
    r.out = out;
    r.nvars = 1;
    r.vars[0] = (struct var){"$", 1, {.k = GT_MAP}};
    struct gt_val root = {.k = GT_MAP};
    return walk(&r, t->root, &root);
}
