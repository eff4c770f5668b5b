/*
 * gotemplate_builtins: Go text/template's own functions (and, or, not, len, eq, ne, lt, le, gt,
 * ge, print, printf, println) for gotemplate_funcs.c's table.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/gotemplate_int.h"

/* ---- Go builtins ------------------------------------------------------------------------ */

int gt_f_and(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out)
{
    return 0; /* evaluated lazily by the engine */
}

int gt_f_not(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out)
{
    return gt_ret_bool(out, !gt_truth(&a[0]));
}

int gt_f_len(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out)
{
    if (a[0].k != GT_STR)
        return gt_fail(x, -EINVAL, "len of %s",
                       a[0].k == GT_NONE || a[0].k == GT_NIL ? "nil pointer"
                                                             : gt_kind_name(a[0].k));
    return gt_ret_int(out, (int64_t)a[0].n);
}

static bool nilish(const struct gt_val *v)
{
    return v->k == GT_NONE || v->k == GT_NIL;
}

static int cmp2(struct gt_exec *x, const struct gt_val *l, const struct gt_val *r, bool eq_only,
                int *res)
{
    if (eq_only && (nilish(l) || nilish(r))) {
        *res = nilish(l) && nilish(r) ? 0 : 1;
        return 0;
    }
    if (nilish(l) || nilish(r) || l->k == GT_MAP || r->k == GT_MAP ||
        (!eq_only && (l->k == GT_BOOL || r->k == GT_BOOL)))
        return gt_fail(x, -EINVAL, "invalid type for comparison");
    if (l->k != r->k)
        return gt_fail(x, -EINVAL, "incompatible types for comparison");
    switch (l->k) {
    case GT_STR: {
        size_t m = l->n < r->n ? l->n : r->n;
        int c = memcmp(l->s, r->s, m);
        *res = c ? c : (l->n < r->n ? -1 : l->n > r->n);
        return 0;
    }
    case GT_INT: *res = (l->i > r->i) - (l->i < r->i); return 0;
    case GT_FLOAT: *res = (l->f > r->f) - (l->f < r->f); return 0;
    default: *res = l->b != r->b; return 0;
    }
}

int gt_f_eq(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out)
{
    for (int i = 1; i < n; i++) {
        int c;
        if (cmp2(x, &a[0], &a[i], true, &c) < 0)
            return -EINVAL;
        if (c == 0)
            return gt_ret_bool(out, true);
    }
    return gt_ret_bool(out, false);
}

int gt_f_ne(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out)
{
    int c;
    if (cmp2(x, &a[0], &a[1], true, &c) < 0)
        return -EINVAL;
    return gt_ret_bool(out, c != 0);
}

#define ORDER_FN(name, test)                                                                       \
    int name(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out)  \
    {                                                                                              \
        int c;                                                                                     \
        if (cmp2(x, &a[0], &a[1], false, &c) < 0)                                                  \
            return -EINVAL;                                                                        \
        return gt_ret_bool(out, test);                                                             \
    }
ORDER_FN(gt_f_lt, c < 0)
ORDER_FN(gt_f_le, c <= 0)
ORDER_FN(gt_f_gt, c > 0)
ORDER_FN(gt_f_ge, c >= 0)

static int put_printable(struct gt_exec *x, const struct gt_val *v)
{
    struct gt_val nil = {.k = GT_NIL};
    return gt_put_val(x, v->k == GT_NONE ? &nil : v);
}

static int sprint(struct gt_exec *x, struct gt_val *a, int n, bool ln, struct gt_val *out)
{
    int rc = 0;
    gt_sb_begin(x);
    for (int i = 0; i < n && rc == 0; i++) {
        if (i && (ln || (a[i].k != GT_STR && a[i - 1].k != GT_STR)))
            rc = gt_sb_put(x, " ", 1);
        if (rc == 0)
            rc = put_printable(x, &a[i]);
    }
    if (ln && rc == 0)
        rc = gt_sb_put(x, "\n", 1);
    gt_sb_end(x, out);
    return rc;
}

int gt_f_print(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out)
{
    return sprint(x, a, n, false, out);
}

int gt_f_println(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                 struct gt_val *out)
{
    return sprint(x, a, n, true, out);
}

static int bad_verb(struct gt_exec *x, char verb, const struct gt_val *v)
{
    char head[8];
    int k = snprintf(head, sizeof(head), "%%!%c(", verb);
    int rc = gt_sb_put(x, head, (size_t)k);
    if (rc == 0 && nilish(v))
        return gt_sb_put(x, "<nil>)", 6);
    if (rc == 0)
        rc = gt_sb_put(x, gt_kind_name(v->k), strlen(gt_kind_name(v->k)));
    if (rc == 0)
        rc = gt_sb_put(x, "=", 1);
    if (rc == 0)
        rc = gt_put_val(x, v);
    return rc ? rc : gt_sb_put(x, ")", 1);
}

/* %s with Go's width and precision, both counted in runes; pads with spaces. */
static int pad_str(struct gt_exec *x, const char *spec, size_t sl, const struct gt_val *v)
{
    bool left = false;
    long width = 0, prec = -1;
    size_t i = 0;
    for (; i < sl && strchr("+-# 0", spec[i]); i++)
        left |= spec[i] == '-';
    for (; i < sl && spec[i] >= '0' && spec[i] <= '9'; i++)
        width = width * 10 + (spec[i] - '0');
    if (i < sl && spec[i] == '.')
        for (prec = 0, i++; i < sl && spec[i] >= '0' && spec[i] <= '9'; i++)
            prec = prec * 10 + (spec[i] - '0');
    size_t bytes = 0;
    long runes = 0;
    while (bytes < v->n && (prec < 0 || runes < prec)) {
        size_t w;
        gt_dec_rune(v->s + bytes, v->n - bytes, &w);
        bytes += w;
        runes++;
    }
    int rc = 0;
    for (long k = runes; !left && k < width && rc == 0; k++)
        rc = gt_sb_put(x, " ", 1);
    if (rc == 0)
        rc = gt_sb_put(x, v->s, bytes);
    for (long k = runes; left && k < width && rc == 0; k++)
        rc = gt_sb_put(x, " ", 1);
    return rc;
}

/* One printf verb with its flags/width/precision (spec is "%-08.3" without the verb). */
static int printf_one(struct gt_exec *x, const char *spec, size_t sl, char verb,
                      const struct gt_val *v)
{
    char fmt[40], tmp[10048];
    int k = -1;
    if (sl > 20)
        sl = 20; /* a prefix of a well-formed spec is still well-formed */
    switch (verb) {
    case 'd':
    case 'x':
    case 'X':
    case 'o':
    case 'c':
        if (v->k == GT_INT && verb == 'c') {
            char enc[4];
            return gt_sb_put(
                x, enc,
                gt_enc_rune(enc, v->i < 0 || v->i > 0x10FFFF ? GT_RUNE_ERROR : (uint32_t)v->i));
        }
        if (v->k == GT_INT) {
            snprintf(fmt, sizeof(fmt), "%%%.*sll%c", (int)sl, spec, verb);
            k = snprintf(tmp, sizeof(tmp), fmt, (long long)v->i);
        } else if (v->k == GT_STR && (verb == 'x' || verb == 'X')) {
            static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
            const char *h = verb == 'x' ? lo : up;
            int rc = 0;
            for (size_t i = 0; i < v->n && rc == 0; i++) {
                char b[2] = {h[(unsigned char)v->s[i] >> 4], h[v->s[i] & 15]};
                rc = gt_sb_put(x, b, 2);
            }
            return rc;
        }
        break;
    case 'f':
    case 'e':
    case 'g':
    case 'E':
    case 'G':
        if (v->k == GT_FLOAT) {
            snprintf(fmt, sizeof(fmt), "%%%.*s%c", (int)sl, spec, verb);
            k = snprintf(tmp, sizeof(tmp), fmt, v->f);
        }
        break;
    case 't':
        if (v->k == GT_BOOL)
            return gt_sb_put(x, v->b ? "true" : "false", v->b ? 4 : 5);
        break;
    case 'q':
        if (v->k == GT_STR)
            return gt_go_quote(x, v->s, v->n);
        break;
    case 's':
    case 'v':
        if (v->k == GT_STR || verb == 'v') {
            if (v->k == GT_STR && sl > 0)
                return pad_str(x, spec, sl, v);
            return put_printable(x, v);
        }
        break;
    default: break;
    }
    if (k >= 0)
        return gt_sb_put(x, tmp, (size_t)k < sizeof(tmp) ? (size_t)k : sizeof(tmp) - 1);
    return bad_verb(x, verb, v);
}

int gt_f_printf(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out)
{
    if (gt_want_str(x, &a[0]) < 0)
        return -EINVAL;
    const char *f = a[0].s;
    size_t fn = a[0].n, i = 0;
    int arg = 1, rc = 0;
    /* convert nothing up front: printf_one only appends */
    gt_sb_begin(x);
    while (i < fn && rc == 0) {
        const char *pc = memchr(f + i, '%', fn - i);
        size_t upto = pc ? (size_t)(pc - f) : fn;
        rc = gt_sb_put(x, f + i, upto - i);
        i = upto;
        if (!pc || rc)
            break;
        size_t ss = ++i;
        while (i < fn && strchr("+-# 0", f[i])) /* flags, width, precision: Go's order */
            i++;
        size_t d0 = i;
        while (i < fn && f[i] >= '0' && f[i] <= '9' && i - d0 < 4) /* width capped at 9999 */
            i++;
        if (i < fn && f[i] == '.') {
            d0 = ++i;
            while (i < fn && f[i] >= '0' && f[i] <= '9' && i - d0 < 4)
                i++;
        }
        if (i >= fn) {
            rc = gt_sb_put(x, "%!(NOVERB)", 10);
            break;
        }
        char verb = f[i++];
        if (verb == '%') {
            rc = gt_sb_put(x, "%", 1);
        } else if (arg >= n) {
            char m[24];
            int k = snprintf(m, sizeof(m), "%%!%c(MISSING)", verb);
            rc = gt_sb_put(x, m, (size_t)k);
        } else {
            rc = printf_one(x, f + ss, i - 1 - ss, verb, &a[arg++]);
        }
    }
    if (rc == 0 && arg < n) {
        rc = gt_sb_put(x, "%!(EXTRA ", 9);
        for (int k = arg; k < n && rc == 0; k++) {
            if (k > arg)
                rc = gt_sb_put(x, ", ", 2);
            if (rc == 0)
                rc = gt_sb_put(x, gt_kind_name(a[k].k), strlen(gt_kind_name(a[k].k)));
            if (rc == 0)
                rc = gt_sb_put(x, "=", 1);
            if (rc == 0)
                rc = put_printable(x, &a[k]);
        }
        if (rc == 0)
            rc = gt_sb_put(x, ")", 1);
    }
    gt_sb_end(x, out);
    return rc;
}
