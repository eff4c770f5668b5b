/*
 * The function library of gotemplate: Go's builtins, promtail's extras and a sprig subset.
 * Argument types follow the Go signatures: a string parameter given a missing key or a number
 * is an execution error, as text/template reports it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/gotemplate_int.h"
#include "util/regex.h"

#define REPEAT_MAX (1u << 20)

static int put_hex(struct gt_exec *x, const unsigned char *d, size_t n, struct gt_val *out)
{
    static const char hx[] = "0123456789abcdef";
    char tmp[64];
    gt_sb_begin(x);
    for (size_t i = 0; i < n; i++) {
        tmp[2 * i] = hx[d[i] >> 4];
        tmp[2 * i + 1] = hx[d[i] & 15];
    }
    int rc = gt_sb_put(x, tmp, 2 * n);
    gt_sb_end(x, out);
    return rc;
}

/* ---- argument helpers ------------------------------------------------------------------- */

const char *gt_kind_name(enum gt_kind k)
{
    switch (k) {
    case GT_STR: return "string";
    case GT_INT: return "int";
    case GT_FLOAT: return "float64";
    case GT_BOOL: return "bool";
    case GT_MAP: return "map";
    default: return "<nil>";
    }
}

int gt_want_str(struct gt_exec *x, const struct gt_val *v)
{
    if (v->k == GT_STR)
        return 0;
    if (v->k == GT_NONE || v->k == GT_NIL)
        return gt_fail(x, -EINVAL, "invalid value; expected string");
    return gt_fail(x, -EINVAL, "wrong type for value; expected string; got %s", gt_kind_name(v->k));
}

static int want_strs(struct gt_exec *x, const struct gt_val *a, int n)
{
    for (int i = 0; i < n; i++)
        if (gt_want_str(x, &a[i]) < 0)
            return -EINVAL;
    return 0;
}

/* A float in int64's range (NaN is not). Converting one outside it is undefined in C. */
static bool f_in_i64(double f)
{
    return f >= -9223372036854775808.0 && f < 9223372036854775808.0;
}

static int want_int(struct gt_exec *x, const struct gt_val *v, int64_t *out)
{
    if (v->k == GT_INT) {
        *out = v->i;
        return 0;
    }
    if (v->k == GT_FLOAT && f_in_i64(v->f) && v->f == (double)(int64_t)v->f) {
        *out = (int64_t)v->f;
        return 0;
    }
    return gt_fail(x, -EINVAL, "wrong type for value; expected int; got %s", gt_kind_name(v->k));
}

/* cast.ToInt64 as sprig uses it: strings parsed with base prefixes, failures are 0. */
static int64_t cast_i64(const struct gt_val *v)
{
    switch (v->k) {
    case GT_INT: return v->i;
    /* Go's conversion on amd64 gives the smallest int64 for NaN and out-of-range values. */
    case GT_FLOAT: return f_in_i64(v->f) ? (int64_t)v->f : INT64_MIN;
    case GT_BOOL: return v->b;
    case GT_STR: {
        char buf[64];
        size_t n = v->n;
        while (n > 1 && v->s[n - 1] == '0' && memchr(v->s, '.', n))
            n--;
        if (n > 1 && v->s[n - 1] == '.')
            n--;
        if (!n || n >= sizeof(buf) || v->s[0] == ' ' || v->s[0] == '\t')
            return 0;
        memcpy(buf, v->s, n);
        buf[n] = '\0';
        char *end;
        errno = 0;
        long long r = strtoll(buf, &end, 0);
        return *end || errno ? 0 : r;
    }
    default: return 0;
    }
}

/* sprig's strval: a missing key is nil and prints as <nil>. */
static int strval(struct gt_exec *x, const struct gt_val *v, struct gt_val *out)
{
    if (v->k == GT_STR) {
        *out = *v;
        return 0;
    }
    struct gt_val nil = {.k = GT_NIL};
    gt_sb_begin(x);
    int rc = gt_put_val(x, v->k == GT_NONE ? &nil : v);
    gt_sb_end(x, out);
    return rc;
}

/* ---- strings ---------------------------------------------------------------------------- */

static int map_case(struct gt_exec *x, const struct gt_val *v, bool upper, struct gt_val *out)
{
    size_t i = 0;
    while (i < v->n && (unsigned char)v->s[i] < 0x80 &&
           !(upper ? (v->s[i] >= 'a' && v->s[i] <= 'z') : (v->s[i] >= 'A' && v->s[i] <= 'Z')))
        i++;
    if (i == v->n) {
        *out = *v; /* nothing to change */
        return 0;
    }
    gt_sb_begin(x);
    int rc = gt_sb_put(x, v->s, i);
    char chunk[256];
    size_t used = 0;
    while (rc == 0 && i < v->n) {
        size_t w;
        uint32_t r = gt_dec_rune(v->s + i, v->n - i, &w);
        used += gt_enc_rune(chunk + used, gt_case_map(r, upper));
        i += w;
        if (used > sizeof(chunk) - 4) { /* flush in chunks, not per rune */
            rc = gt_sb_put(x, chunk, used);
            used = 0;
        }
    }
    if (rc == 0)
        rc = gt_sb_put(x, chunk, used);
    gt_sb_end(x, out);
    return rc;
}

static int f_upper(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                   struct gt_val *out)
{
    return gt_want_str(x, &a[0]) < 0 ? -EINVAL : map_case(x, &a[0], true, out);
}

static int f_lower(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                   struct gt_val *out)
{
    return gt_want_str(x, &a[0]) < 0 ? -EINVAL : map_case(x, &a[0], false, out);
}

static bool in_cutset(uint32_t r, const char *cut, size_t cn)
{
    for (size_t i = 0; i < cn;) {
        size_t w;
        if (gt_dec_rune(cut + i, cn - i, &w) == r)
            return true;
        i += w;
    }
    return false;
}

/* Trims runes for which cutset (or, with cut == NULL, Unicode white space) matches. */
static void trim_runes(const char **s, size_t *n, const char *cut, size_t cn, bool left, bool right)
{
    while (left && *n) {
        size_t w;
        uint32_t r = gt_dec_rune(*s, *n, &w);
        if (cut ? !in_cutset(r, cut, cn) : !gt_is_space(r))
            break;
        *s += w;
        *n -= w;
    }
    while (right && *n) {
        size_t w;
        uint32_t r = gt_dec_last_rune(*s, *n, &w);
        if (cut ? !in_cutset(r, cut, cn) : !gt_is_space(r))
            break;
        *n -= w;
    }
}

static int trim_common(struct gt_exec *x, const struct gt_val *s, const struct gt_val *cut, bool l,
                       bool r, struct gt_val *out)
{
    const char *p = s->s;
    size_t n = s->n;
    if (cut && !cut->n)
        return gt_ret_str(out, p, n);
    trim_runes(&p, &n, cut ? cut->s : NULL, cut ? cut->n : 0, l, r);
    return gt_ret_str(out, p, n);
}

static int f_Trim(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                  struct gt_val *out)
{
    return want_strs(x, a, 2) < 0 ? -EINVAL : trim_common(x, &a[0], &a[1], true, true, out);
}

static int f_TrimLeft(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                      struct gt_val *out)
{
    return want_strs(x, a, 2) < 0 ? -EINVAL : trim_common(x, &a[0], &a[1], true, false, out);
}

static int f_TrimRight(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                       struct gt_val *out)
{
    return want_strs(x, a, 2) < 0 ? -EINVAL : trim_common(x, &a[0], &a[1], false, true, out);
}

static int f_TrimSpace(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                       struct gt_val *out)
{
    return gt_want_str(x, &a[0]) < 0 ? -EINVAL : trim_common(x, &a[0], NULL, true, true, out);
}

static int f_trimAll(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                     struct gt_val *out)
{
    return want_strs(x, a, 2) < 0 ? -EINVAL : trim_common(x, &a[1], &a[0], true, true, out);
}

static int trim_fix(const struct gt_val *s, const struct gt_val *fix, bool prefix,
                    struct gt_val *out)
{
    if (fix->n <= s->n) {
        if (prefix && memcmp(s->s, fix->s, fix->n) == 0)
            return gt_ret_str(out, s->s + fix->n, s->n - fix->n);
        if (!prefix && memcmp(s->s + s->n - fix->n, fix->s, fix->n) == 0)
            return gt_ret_str(out, s->s, s->n - fix->n);
    }
    *out = *s;
    return 0;
}

static int f_TrimPrefix(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                        struct gt_val *out)
{
    return want_strs(x, a, 2) < 0 ? -EINVAL : trim_fix(&a[0], &a[1], true, out);
}

static int f_TrimSuffix(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                        struct gt_val *out)
{
    return want_strs(x, a, 2) < 0 ? -EINVAL : trim_fix(&a[0], &a[1], false, out);
}

static int f_trimPrefix(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                        struct gt_val *out)
{
    return want_strs(x, a, 2) < 0 ? -EINVAL : trim_fix(&a[1], &a[0], true, out);
}

static int f_trimSuffix(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                        struct gt_val *out)
{
    return want_strs(x, a, 2) < 0 ? -EINVAL : trim_fix(&a[1], &a[0], false, out);
}

/* strings.Replace(s, old, new, n) */
static int replace(struct gt_exec *x, const struct gt_val *s, const struct gt_val *old,
                   const struct gt_val *nw, int64_t lim, struct gt_val *out)
{
    if (lim == 0 || (old->n == nw->n && memcmp(old->s, nw->s, old->n) == 0)) {
        *out = *s;
        return 0;
    }
    int rc = 0;
    size_t i = 0;
    int64_t done = 0;
    gt_sb_begin(x);
    if (!old->n) { /* insert at the start and after every rune */
        while (rc == 0 && (lim < 0 || done < lim)) {
            rc = gt_sb_put(x, nw->s, nw->n);
            done++;
            if (i >= s->n)
                break;
            size_t w;
            gt_dec_rune(s->s + i, s->n - i, &w);
            if (rc == 0)
                rc = gt_sb_put(x, s->s + i, w);
            i += w;
        }
    } else {
        while (rc == 0 && (lim < 0 || done < lim)) {
            const char *hit = memmem(s->s + i, s->n - i, old->s, old->n);
            if (!hit)
                break;
            size_t at = (size_t)(hit - s->s);
            rc = gt_sb_put(x, s->s + i, at - i);
            if (rc == 0)
                rc = gt_sb_put(x, nw->s, nw->n);
            i = at + old->n;
            done++;
        }
    }
    if (rc == 0)
        rc = gt_sb_put(x, s->s + i, s->n - i);
    gt_sb_end(x, out);
    return rc;
}

static int f_Replace(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                     struct gt_val *out)
{
    int64_t lim;
    if (want_strs(x, a, 3) < 0 || want_int(x, &a[3], &lim) < 0)
        return -EINVAL;
    return replace(x, &a[0], &a[1], &a[2], lim, out);
}

static int f_replace(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                     struct gt_val *out)
{
    if (want_strs(x, a, 3) < 0)
        return -EINVAL;
    return replace(x, &a[2], &a[0], &a[1], -1, out);
}

static int f_Hash(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                  struct gt_val *out)
{
    if (want_strs(x, a, 2) < 0)
        return -EINVAL;
    struct gt_sha3 h;
    unsigned char d[32];
    memset(&h, 0, sizeof(h));
    gt_sha3_absorb(&h, a[0].s, a[0].n);
    gt_sha3_absorb(&h, a[1].s, a[1].n);
    gt_sha3_256_final(&h, d);
    return put_hex(x, d, 32, out);
}

static int sha2(struct gt_exec *x, const struct gt_val *a, int n, struct gt_val *out)
{
    struct gt_sha256 h;
    unsigned char d[32];
    gt_sha256_init(&h);
    for (int i = 0; i < n; i++)
        gt_sha256_update(&h, a[i].s, a[i].n);
    gt_sha256_final(&h, d);
    return put_hex(x, d, 32, out);
}

static int f_Sha2Hash(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                      struct gt_val *out)
{
    return want_strs(x, a, 2) < 0 ? -EINVAL : sha2(x, a, 2, out);
}

static int f_sha256sum(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                       struct gt_val *out)
{
    return gt_want_str(x, &a[0]) < 0 ? -EINVAL : sha2(x, a, 1, out);
}

static int f_contains(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                      struct gt_val *out)
{
    if (want_strs(x, a, 2) < 0)
        return -EINVAL;
    return gt_ret_bool(out, !a[0].n || memmem(a[1].s, a[1].n, a[0].s, a[0].n) != NULL);
}

static int f_hasPrefix(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                       struct gt_val *out)
{
    if (want_strs(x, a, 2) < 0)
        return -EINVAL;
    return gt_ret_bool(out, a[0].n <= a[1].n && memcmp(a[1].s, a[0].s, a[0].n) == 0);
}

static int f_hasSuffix(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                       struct gt_val *out)
{
    if (want_strs(x, a, 2) < 0)
        return -EINVAL;
    return gt_ret_bool(out,
                       a[0].n <= a[1].n && memcmp(a[1].s + a[1].n - a[0].n, a[0].s, a[0].n) == 0);
}

static int f_repeat(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                    struct gt_val *out)
{
    int64_t c;
    if (want_int(x, &a[0], &c) < 0 || gt_want_str(x, &a[1]) < 0)
        return -EINVAL;
    if (c < 0)
        return gt_fail(x, -EINVAL, "repeat: negative count");
    if (a[1].n && (uint64_t)c > REPEAT_MAX / a[1].n)
        return gt_fail(x, -E2BIG, "repeat: result longer than %u bytes", REPEAT_MAX);
    int rc = 0;
    gt_sb_begin(x);
    /* An empty string repeated any number of times is empty: no loop of c rounds for it. */
    for (int64_t i = 0; a[1].n && i < c && rc == 0; i++)
        rc = gt_sb_put(x, a[1].s, a[1].n);
    gt_sb_end(x, out);
    return rc;
}

static int f_substr(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                    struct gt_val *out)
{
    int64_t st, en, len = (int64_t)a[2].n;
    if (want_int(x, &a[0], &st) < 0 || want_int(x, &a[1], &en) < 0 || gt_want_str(x, &a[2]) < 0)
        return -EINVAL;
    if (st < 0) {
        st = 0;
    } else if (en < 0 || en > len) {
        en = len;
    }
    if (en < 0 || en > len || st > en)
        return gt_fail(x, -EINVAL, "substr: slice bounds out of range [%lld:%lld]", (long long)st,
                       (long long)en);
    return gt_ret_str(out, a[2].s + st, (size_t)(en - st));
}

static int f_trunc(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                   struct gt_val *out)
{
    int64_t c, len = (int64_t)a[1].n;
    if (want_int(x, &a[0], &c) < 0 || gt_want_str(x, &a[1]) < 0)
        return -EINVAL;
    if (c < 0 && len + c > 0)
        return gt_ret_str(out, a[1].s + len + c, (size_t)-c);
    if (c >= 0 && len > c)
        return gt_ret_str(out, a[1].s, (size_t)c);
    *out = a[1];
    return 0;
}

static int f_nospace(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                     struct gt_val *out)
{
    if (gt_want_str(x, &a[0]) < 0)
        return -EINVAL;
    int rc = 0;
    gt_sb_begin(x);
    for (size_t i = 0; i < a[0].n && rc == 0;) {
        size_t w;
        uint32_t r = gt_dec_rune(a[0].s + i, a[0].n - i, &w);
        if (!gt_is_space(r))
            rc = gt_sb_put(x, a[0].s + i, w);
        i += w;
    }
    gt_sb_end(x, out);
    return rc;
}

/* strconv.Quote into the current string being built. */
int gt_go_quote(struct gt_exec *x, const char *s, size_t n)
{
    int rc = gt_sb_put(x, "\"", 1);
    for (size_t i = 0; i < n && rc == 0;) {
        size_t w;
        uint32_t r = gt_dec_rune(s + i, n - i, &w);
        char esc[12];
        const char *e = NULL;
        switch (r) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\a': e = "\\a"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\v': e = "\\v"; break;
        default: break;
        }
        if (e) {
            rc = gt_sb_put(x, e, strlen(e));
        } else if (r == GT_RUNE_ERROR && w == 1) {
            snprintf(esc, sizeof(esc), "\\x%02x", (unsigned char)s[i]);
            rc = gt_sb_put(x, esc, 4);
        } else if (r < 0x20 || r == 0x7F) {
            snprintf(esc, sizeof(esc), "\\x%02x", (unsigned)r);
            rc = gt_sb_put(x, esc, 4);
        } else if ((r >= 0x80 && r < 0xA0) || r == 0xAD || r == 0xFEFF ||
                   (r >= 0x2028 && r <= 0x202F && r != 0x202F) || (r >= 0x200B && r <= 0x200F)) {
            snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)r);
            rc = gt_sb_put(x, esc, 6);
        } else {
            rc = gt_sb_put(x, s + i, w);
        }
        i += w;
    }
    return rc ? rc : gt_sb_put(x, "\"", 1);
}

static int quote_list(struct gt_exec *x, struct gt_val *a, int n, bool dbl, struct gt_val *out)
{
    struct gt_val sv;
    int rc = 0, k = 0;
    /* convert first: strval uses the arena too */
    for (int i = 0; i < n && rc == 0; i++)
        if (a[i].k != GT_NONE && a[i].k != GT_NIL)
            rc = strval(x, &a[i], &a[i]);
    gt_sb_begin(x);
    for (int i = 0; i < n && rc == 0; i++) {
        if (a[i].k == GT_NONE || a[i].k == GT_NIL)
            continue;
        sv = a[i];
        if (k++)
            rc = gt_sb_put(x, " ", 1);
        if (rc)
            break;
        if (dbl) {
            rc = gt_go_quote(x, sv.s, sv.n);
        } else {
            rc = gt_sb_put(x, "'", 1);
            rc = rc ? rc : gt_sb_put(x, sv.s, sv.n);
            rc = rc ? rc : gt_sb_put(x, "'", 1);
        }
    }
    gt_sb_end(x, out);
    return rc;
}

static int f_quote(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                   struct gt_val *out)
{
    return quote_list(x, a, n, true, out);
}

static int f_squote(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                    struct gt_val *out)
{
    return quote_list(x, a, n, false, out);
}

static int f_cat(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                 struct gt_val *out)
{
    int rc = 0, k = 0;
    gt_sb_begin(x);
    for (int i = 0; i < n && rc == 0; i++) {
        if (a[i].k == GT_NONE || a[i].k == GT_NIL)
            continue;
        if (k++)
            rc = gt_sb_put(x, " ", 1);
        if (rc == 0)
            rc = gt_put_val(x, &a[i]);
    }
    gt_sb_end(x, out);
    return rc;
}

static int f_toString(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                      struct gt_val *out)
{
    return strval(x, &a[0], out);
}

/* ---- sprig logic and numbers ------------------------------------------------------------ */

static bool is_empty(const struct gt_val *v)
{
    return !gt_truth(v);
}

static int f_default(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                     struct gt_val *out)
{
    *out = (n < 2 || is_empty(&a[1])) ? a[0] : a[1];
    return 0;
}

static int f_empty(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                   struct gt_val *out)
{
    return gt_ret_bool(out, is_empty(&a[0]));
}

static int f_coalesce(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                      struct gt_val *out)
{
    for (int i = 0; i < n; i++) {
        if (!is_empty(&a[i])) {
            *out = a[i];
            return 0;
        }
    }
    out->k = GT_NIL;
    return 0;
}

static int f_ternary(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                     struct gt_val *out)
{
    if (a[2].k != GT_BOOL)
        return gt_fail(x, -EINVAL, "wrong type for value; expected bool; got %s",
                       gt_kind_name(a[2].k));
    *out = a[2].b ? a[0] : a[1];
    return 0;
}

static int f_add(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                 struct gt_val *out)
{
    uint64_t s = 0;
    for (int i = 0; i < n; i++)
        s += (uint64_t)cast_i64(&a[i]); /* wraps like Go's int64 */
    return gt_ret_int(out, (int64_t)s);
}

static int f_add1(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                  struct gt_val *out)
{
    return gt_ret_int(out, (int64_t)((uint64_t)cast_i64(&a[0]) + 1));
}

static int f_sub(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                 struct gt_val *out)
{
    return gt_ret_int(out, (int64_t)((uint64_t)cast_i64(&a[0]) - (uint64_t)cast_i64(&a[1])));
}

static int f_mul(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                 struct gt_val *out)
{
    uint64_t p = (uint64_t)cast_i64(&a[0]);
    for (int i = 1; i < n; i++)
        p *= (uint64_t)cast_i64(&a[i]);
    return gt_ret_int(out, (int64_t)p);
}

static int divmod(struct gt_exec *x, struct gt_val *a, bool mod, struct gt_val *out)
{
    int64_t l = cast_i64(&a[0]), r = cast_i64(&a[1]);
    if (r == 0)
        return gt_fail(x, -EINVAL, "integer divide by zero");
    if (r == -1)
        return gt_ret_int(out, mod ? 0 : (int64_t)(0 - (uint64_t)l));
    return gt_ret_int(out, mod ? l % r : l / r);
}

static int f_div(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                 struct gt_val *out)
{
    return divmod(x, a, false, out);
}

static int f_mod(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                 struct gt_val *out)
{
    return divmod(x, a, true, out);
}

static int f_int(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                 struct gt_val *out)
{
    return gt_ret_int(out, cast_i64(&a[0]));
}

static int f_atoi(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                  struct gt_val *out)
{
    if (gt_want_str(x, &a[0]) < 0)
        return -EINVAL;
    char buf[32];
    int64_t v = 0;
    if (a[0].n && a[0].n < sizeof(buf)) {
        memcpy(buf, a[0].s, a[0].n);
        buf[a[0].n] = '\0';
        char *end;
        errno = 0;
        long long r = strtoll(buf, &end, 10);
        if (!*end && !errno && buf[0] != ' ' && buf[0] != '\t')
            v = r;
    }
    return gt_ret_int(out, v);
}

/* ---- regular expressions ---------------------------------------------------------------- */

struct re_use {
    struct bt_regex *re;
    bool owned;
};

static int re_get(struct gt_exec *x, struct bt_regex *pre, const struct gt_val *pat,
                  struct re_use *u)
{
    if (pre) {
        u->re = pre;
        u->owned = false;
        return 0;
    }
    char *p = strndup(pat->s, pat->n);
    char e[128];
    if (!p)
        return gt_fail(x, -ENOMEM, "out of memory");
    u->re = bt_regex_new(p, 0, e, sizeof(e));
    u->owned = true;
    int rc = u->re ? 0 : gt_fail(x, -EINVAL, "bad regular expression %s: %s", p, e);
    free(p);
    return rc;
}

static void re_put(struct re_use *u)
{
    if (u->owned)
        bt_regex_free(u->re);
}

/* Regexp.Expand: $1, ${1}, $name, ${name}, $$. */
static int expand(struct gt_exec *x, struct bt_regex *re, const char *src, const char *t, size_t tn)
{
    int rc = 0;
    size_t i = 0;
    while (i < tn && rc == 0) {
        const char *d = memchr(t + i, '$', tn - i);
        size_t upto = d ? (size_t)(d - t) : tn;
        rc = gt_sb_put(x, t + i, upto - i);
        i = upto;
        if (!d || rc)
            break;
        i++;
        if (i < tn && t[i] == '$') {
            rc = gt_sb_put(x, "$", 1);
            i++;
            continue;
        }
        bool brace = i < tn && t[i] == '{';
        size_t ns = i + brace, ne = ns;
        while (ne < tn &&
               ((t[ne] >= 'a' && t[ne] <= 'z') || (t[ne] >= 'A' && t[ne] <= 'Z') ||
                (t[ne] >= '0' && t[ne] <= '9') || t[ne] == '_' || (unsigned char)t[ne] >= 0x80))
            ne++;
        if (ne == ns || (brace && (ne >= tn || t[ne] != '}'))) {
            rc = gt_sb_put(x, "$", 1); /* malformed: the $ is plain text */
            continue;
        }
        i = ne + brace;
        int g = -1;
        long num = 0;
        bool numeric = true;
        for (size_t k = ns; k < ne && numeric; k++) {
            numeric = t[k] >= '0' && t[k] <= '9' && num < 100000000;
            num = num * 10 + (t[k] - '0');
        }
        if (numeric && !(t[ns] == '0' && ne - ns > 1)) {
            g = (int)num;
        } else if (ne - ns < 64) {
            char name[64];
            memcpy(name, t + ns, ne - ns);
            name[ne - ns] = '\0';
            g = bt_regex_group_index(re, name);
        }
        size_t gs, ge;
        if (g >= 0 && g <= bt_regex_ngroups(re) && bt_regex_group(re, g, &gs, &ge))
            rc = gt_sb_put(x, src + gs, ge - gs);
    }
    return rc;
}

static int regex_replace(struct gt_exec *x, struct bt_regex *pre, struct gt_val *a, bool lit,
                         struct gt_val *out)
{
    struct re_use u;
    if (want_strs(x, a, 3) < 0 || re_get(x, pre, &a[0], &u) < 0)
        return -EINVAL;
    const char *s = a[1].s;
    size_t n = a[1].n, last = 0, pos = 0;
    int rc = 0;
    gt_sb_begin(x);
    while (pos <= n && rc == 0) {
        int m = bt_regex_match(u.re, s, n, pos);
        if (m < 0)
            rc = gt_fail(x, m, "regular expression match failed");
        if (m <= 0)
            break;
        size_t ms, me;
        bt_regex_group(u.re, 0, &ms, &me);
        rc = gt_sb_put(x, s + last, ms - last);
        if (rc == 0 && (me > last || ms == 0))
            rc = lit ? gt_sb_put(x, a[2].s, a[2].n) : expand(x, u.re, s, a[2].s, a[2].n);
        last = me;
        size_t w = 0;
        if (pos < n)
            gt_dec_rune(s + pos, n - pos, &w);
        if (pos + w > me)
            pos += w;
        else if (pos + 1 > me)
            pos++;
        else
            pos = me;
    }
    if (rc == 0)
        rc = gt_sb_put(x, s + last, n - last);
    gt_sb_end(x, out);
    re_put(&u);
    return rc;
}

static int f_regexReplaceAll(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                             struct gt_val *out)
{
    return regex_replace(x, re, a, false, out);
}

static int f_regexReplaceAllLiteral(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                                    struct gt_val *out)
{
    return regex_replace(x, re, a, true, out);
}

static int f_regexMatch(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                        struct gt_val *out)
{
    struct re_use u;
    if (want_strs(x, a, 2) < 0 || re_get(x, re, &a[0], &u) < 0)
        return -EINVAL;
    int m = bt_regex_match(u.re, a[1].s, a[1].n, 0);
    re_put(&u);
    if (m < 0)
        return gt_fail(x, m, "regular expression match failed");
    return gt_ret_bool(out, m > 0);
}

static int f_regexFind(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                       struct gt_val *out)
{
    struct re_use u;
    size_t ms = 0, me = 0;
    if (want_strs(x, a, 2) < 0 || re_get(x, re, &a[0], &u) < 0)
        return -EINVAL;
    int m = bt_regex_match(u.re, a[1].s, a[1].n, 0);
    if (m > 0)
        bt_regex_group(u.re, 0, &ms, &me);
    re_put(&u);
    if (m < 0)
        return gt_fail(x, m, "regular expression match failed");
    return gt_ret_str(out, a[1].s + ms, me - ms);
}

/* ---- table ------------------------------------------------------------------------------ */

static const struct gt_func funcs[] = {
    /* Go text/template builtins */
    {"and", 1, -1, -1, GT_AND, gt_f_and},
    {"or", 1, -1, -1, GT_OR, gt_f_and},
    {"not", 1, 1, -1, GT_PLAIN, gt_f_not},
    {"len", 1, 1, -1, GT_PLAIN, gt_f_len},
    {"eq", 2, -1, -1, GT_PLAIN, gt_f_eq},
    {"ne", 2, 2, -1, GT_PLAIN, gt_f_ne},
    {"lt", 2, 2, -1, GT_PLAIN, gt_f_lt},
    {"le", 2, 2, -1, GT_PLAIN, gt_f_le},
    {"gt", 2, 2, -1, GT_PLAIN, gt_f_gt},
    {"ge", 2, 2, -1, GT_PLAIN, gt_f_ge},
    {"print", 0, -1, -1, GT_PLAIN, gt_f_print},
    {"printf", 1, -1, -1, GT_PLAIN, gt_f_printf},
    {"println", 0, -1, -1, GT_PLAIN, gt_f_println},
    /* promtail */
    {"ToLower", 1, 1, -1, GT_PLAIN, f_lower},
    {"ToUpper", 1, 1, -1, GT_PLAIN, f_upper},
    {"Replace", 4, 4, -1, GT_PLAIN, f_Replace},
    {"Trim", 2, 2, -1, GT_PLAIN, f_Trim},
    {"TrimLeft", 2, 2, -1, GT_PLAIN, f_TrimLeft},
    {"TrimRight", 2, 2, -1, GT_PLAIN, f_TrimRight},
    {"TrimPrefix", 2, 2, -1, GT_PLAIN, f_TrimPrefix},
    {"TrimSuffix", 2, 2, -1, GT_PLAIN, f_TrimSuffix},
    {"TrimSpace", 1, 1, -1, GT_PLAIN, f_TrimSpace},
    {"Hash", 2, 2, -1, GT_PLAIN, f_Hash},
    {"Sha2Hash", 2, 2, -1, GT_PLAIN, f_Sha2Hash},
    {"regexReplaceAll", 3, 3, 0, GT_PLAIN, f_regexReplaceAll},
    {"regexReplaceAllLiteral", 3, 3, 0, GT_PLAIN, f_regexReplaceAllLiteral},
    /* sprig */
    {"default", 1, 2, -1, GT_PLAIN, f_default},
    {"empty", 1, 1, -1, GT_PLAIN, f_empty},
    {"coalesce", 0, -1, -1, GT_PLAIN, f_coalesce},
    {"ternary", 3, 3, -1, GT_PLAIN, f_ternary},
    {"toString", 1, 1, -1, GT_PLAIN, f_toString},
    {"contains", 2, 2, -1, GT_PLAIN, f_contains},
    {"hasPrefix", 2, 2, -1, GT_PLAIN, f_hasPrefix},
    {"hasSuffix", 2, 2, -1, GT_PLAIN, f_hasSuffix},
    {"trim", 1, 1, -1, GT_PLAIN, f_TrimSpace},
    {"trimAll", 2, 2, -1, GT_PLAIN, f_trimAll},
    {"trimPrefix", 2, 2, -1, GT_PLAIN, f_trimPrefix},
    {"trimSuffix", 2, 2, -1, GT_PLAIN, f_trimSuffix},
    {"upper", 1, 1, -1, GT_PLAIN, f_upper},
    {"lower", 1, 1, -1, GT_PLAIN, f_lower},
    {"replace", 3, 3, -1, GT_PLAIN, f_replace},
    {"repeat", 2, 2, -1, GT_PLAIN, f_repeat},
    {"substr", 3, 3, -1, GT_PLAIN, f_substr},
    {"trunc", 2, 2, -1, GT_PLAIN, f_trunc},
    {"nospace", 1, 1, -1, GT_PLAIN, f_nospace},
    {"quote", 0, -1, -1, GT_PLAIN, f_quote},
    {"squote", 0, -1, -1, GT_PLAIN, f_squote},
    {"cat", 0, -1, -1, GT_PLAIN, f_cat},
    {"add", 0, -1, -1, GT_PLAIN, f_add},
    {"add1", 1, 1, -1, GT_PLAIN, f_add1},
    {"sub", 2, 2, -1, GT_PLAIN, f_sub},
    {"mul", 1, -1, -1, GT_PLAIN, f_mul},
    {"div", 2, 2, -1, GT_PLAIN, f_div},
    {"mod", 2, 2, -1, GT_PLAIN, f_mod},
    {"atoi", 1, 1, -1, GT_PLAIN, f_atoi},
    {"int", 1, 1, -1, GT_PLAIN, f_int},
    {"int64", 1, 1, -1, GT_PLAIN, f_int},
    {"regexMatch", 2, 2, 0, GT_PLAIN, f_regexMatch},
    {"regexFind", 2, 2, 0, GT_PLAIN, f_regexFind},
    {"sha256sum", 1, 1, -1, GT_PLAIN, f_sha256sum},
};

const struct gt_func *gt_func_find(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
        if (strlen(funcs[i].name) == n && memcmp(funcs[i].name, name, n) == 0)
            return &funcs[i];
    return NULL;
}

bool gt_func_known_unsupported(const char *name, size_t n)
{
    static const char *const names[] = {"index",
                                        "slice",
                                        "html",
                                        "js",
                                        "urlquery",
                                        "call",
                                        "title",
                                        "untitle",
                                        "camelcase",
                                        "snakecase",
                                        "kebabcase",
                                        "swapcase",
                                        "shuffle",
                                        "abbrev",
                                        "abbrevboth",
                                        "initials",
                                        "randAlpha",
                                        "randAlphaNum",
                                        "randNumeric",
                                        "randAscii",
                                        "wrap",
                                        "wrapWith",
                                        "indent",
                                        "nindent",
                                        "plural",
                                        "split",
                                        "splitList",
                                        "splitn",
                                        "join",
                                        "list",
                                        "dict",
                                        "get",
                                        "set",
                                        "keys",
                                        "now",
                                        "date",
                                        "dateInZone",
                                        "toDate",
                                        "b64enc",
                                        "b64dec",
                                        "b32enc",
                                        "b32dec",
                                        "toJson",
                                        "fromJson",
                                        "toPrettyJson",
                                        "env",
                                        "expandenv",
                                        "uuidv4",
                                        "sha1sum",
                                        "adler32sum",
                                        "regexFindAll",
                                        "regexSplit",
                                        "regexQuoteMeta",
                                        "float64",
                                        "round",
                                        "ceil",
                                        "floor",
                                        "max",
                                        "min",
                                        "biggest",
                                        "until",
                                        "untilStep",
                                        "seq",
                                        "fail"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == n && memcmp(names[i], name, n) == 0)
            return true;
    return false;
}
