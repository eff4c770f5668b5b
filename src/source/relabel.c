#include "source/relabel.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/labels.h"
#include "config/node.h"
#include "util/buf.h"
#include "util/regex.h"

/* Joined source values and expansions come from label values, which come from outside
 * (container labels); this bounds what one rule may build. */
#define RELABEL_MAX_VALUE (1u << 20)

enum action {
    A_REPLACE,
    A_KEEP,
    A_DROP,
    A_KEEPEQUAL,
    A_DROPEQUAL,
    A_HASHMOD,
    A_LABELMAP,
    A_LABELDROP,
    A_LABELKEEP,
    A_LOWERCASE,
    A_UPPERCASE,
};

static const char *const action_names[] = {
    "replace",  "keep",      "drop",      "keepequal", "dropequal", "hashmod",
    "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase",
};

struct rule {
    enum action action;
    char **src;
    size_t n_src;
    char *sep;
    char *target;
    char *replacement;
    uint64_t modulus;
    struct bt_regex *re;
};

struct bt_relabel {
    struct rule *rules;
    size_t n;
    struct bt_buf val;     /* joined source values */
    struct bt_buf out;     /* expansion result */
    struct bt_buf tgt;     /* expanded target label */
    struct bt_labels snap; /* snapshot for labelmap/labeldrop/labelkeep */
};

/* ---- MD5 (RFC 1321) ---- */

static const uint32_t md5_k[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
static const uint8_t md5_r[64] = {
    7,  12, 17, 22, 7,  12, 17, 22, 7,  12, 17, 22, 7,  12, 17, 22, 5,  9,  14, 20, 5,  9,
    14, 20, 5,  9,  14, 20, 5,  9,  14, 20, 4,  11, 16, 23, 4,  11, 16, 23, 4,  11, 16, 23,
    4,  11, 16, 23, 6,  10, 15, 21, 6,  10, 15, 21, 6,  10, 15, 21, 6,  10, 15, 21,
};

static void md5_block(uint32_t h[4], const unsigned char *p)
{
    uint32_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        if (i < 16) {
            f = (b & c) | (~b & d);
            g = i;
        } else if (i < 32) {
            f = (d & b) | (~d & c);
            g = (5 * i + 1) % 16;
        } else if (i < 48) {
            f = b ^ c ^ d;
            g = (3 * i + 5) % 16;
        } else {
            f = c ^ (b | ~d);
            g = (7 * i) % 16;
        }
        uint32_t t = d;
        d = c;
        c = b;
        uint32_t x = a + f + md5_k[i] + w[g];
        b = b + (x << md5_r[i] | x >> (32 - md5_r[i]));
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

void bt_md5(const void *data, size_t n, unsigned char out[16])
{
    uint32_t h[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    const unsigned char *p = data;
    size_t left = n;
    while (left >= 64) {
        md5_block(h, p);
        p += 64;
        left -= 64;
    }
    unsigned char tail[128] = {0};
    memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tl = left < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 8 + i] = (unsigned char)(bits >> (8 * i));
    md5_block(h, tail);
    if (tl == 128)
        md5_block(h, tail + 64);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (unsigned char)(h[i] >> (8 * j));
}

/* ---- Go regexp.Expand ---- */

static bool is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Appends the text of group named or numbered by name[0..n) after the last match, or nothing
 * when the group does not exist or did not take part. */
static int add_group(struct bt_buf *out, struct bt_regex *re, const char *subj, const char *name,
                     size_t n)
{
    int idx = -1;
    bool digits = true;
    for (size_t i = 0; i < n; i++)
        digits = digits && isdigit((unsigned char)name[i]);
    if (digits) {
        if (n > 8)
            return 0; /* Go: a number this large names no group */
        idx = 0;
        for (size_t i = 0; i < n; i++)
            idx = idx * 10 + (name[i] - '0');
    } else {
        char tmp[128];
        if (n >= sizeof(tmp))
            return 0;
        memcpy(tmp, name, n);
        tmp[n] = 0;
        idx = bt_regex_group_index(re, tmp);
    }
    size_t s, e;
    if (idx < 0 || !bt_regex_group(re, idx, &s, &e))
        return 0;
    return bt_buf_add(out, subj + s, e - s);
}

/* Expands tmpl with the groups of the last match of re on subj into out (reset first). */
static int expand(struct bt_buf *out, struct bt_regex *re, const char *subj, const char *tmpl)
{
    bt_buf_reset(out);
    int rc = bt_buf_reserve(out, 1);
    for (const char *p = tmpl; *p && rc == 0;) {
        const char *d = strchr(p, '$');
        if (!d) {
            rc = bt_buf_adds(out, p);
            break;
        }
        if (d > p && (rc = bt_buf_add(out, p, (size_t)(d - p))))
            break;
        p = d + 1;
        if (*p == '$') {
            rc = bt_buf_add(out, "$", 1);
            p++;
            continue;
        }
        bool brace = *p == '{';
        const char *s = brace ? p + 1 : p;
        const char *e = s;
        while (is_name_char(*e))
            e++;
        if (e == s || (brace && *e != '}')) {
            rc = bt_buf_add(out, "$", 1); /* malformed: the $ is literal text */
            continue;
        }
        rc = add_group(out, re, subj, s, (size_t)(e - s));
        p = brace ? e + 1 : e;
    }
    return rc;
}

/* ---- config ---- */

static void rule_free(struct rule *r)
{
    for (size_t i = 0; i < r->n_src; i++)
        free(r->src[i]);
    free(r->src);
    free(r->sep);
    free(r->target);
    free(r->replacement);
    bt_regex_free(r->re);
}

void bt_relabel_free(struct bt_relabel *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        rule_free(&r->rules[i]);
    free(r->rules);
    bt_buf_free(&r->val);
    bt_buf_free(&r->out);
    bt_buf_free(&r->tgt);
    bt_labels_free(&r->snap);
    free(r);
}

size_t bt_relabel_count(const struct bt_relabel *r)
{
    return r ? r->n : 0;
}

static int fail(char *err, size_t errlen, const struct bt_node *n, const char *msg, const char *arg)
{
    char where[256];
    snprintf(err, errlen, "%s: relabel_configs: %s%s%s", bt_node_where(n, where, sizeof(where)),
             msg, arg ? " " : "", arg ? arg : "");
    return -EINVAL;
}

static int scalar_dup(const struct bt_node *v, char **out, char *err, size_t errlen,
                      const char *key)
{
    if (bt_node_is_null(v) && !(v && v->type == BT_NODE_SCALAR && v->quoted)) {
        free(*out);
        *out = strdup("");
        return *out ? 0 : -ENOMEM;
    }
    if (v->type != BT_NODE_SCALAR)
        return fail(err, errlen, v, "expected a string for", key);
    free(*out);
    *out = strdup(v->str);
    return *out ? 0 : -ENOMEM;
}

static int parse_action(struct rule *r, const struct bt_node *v, char *err, size_t errlen)
{
    if (!v || v->type != BT_NODE_SCALAR)
        return fail(err, errlen, v, "action must be a string", NULL);
    for (size_t i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++)
        if (strcasecmp(v->str, action_names[i]) == 0) {
            r->action = (enum action)i;
            return 0;
        }
    return fail(err, errlen, v, "unknown relabel action", v->str);
}

static int parse_sources(struct rule *r, const struct bt_node *v, char *err, size_t errlen)
{
    if (bt_node_is_null(v))
        return 0;
    if (v->type == BT_NODE_SCALAR) { /* a single name is accepted as a one-item list */
        r->src = calloc(1, sizeof(char *));
        if (!r->src || !(r->src[0] = strdup(v->str)))
            return -ENOMEM;
        r->n_src = 1;
        return 0;
    }
    if (v->type != BT_NODE_SEQ)
        return fail(err, errlen, v, "source_labels must be a list of label names", NULL);
    r->src = calloc(v->n ? v->n : 1, sizeof(char *));
    if (!r->src)
        return -ENOMEM;
    for (size_t i = 0; i < v->n; i++) {
        const struct bt_node *it = v->items[i];
        if (it->type != BT_NODE_SCALAR)
            return fail(err, errlen, it, "source_labels must be a list of label names", NULL);
        if (!bt_label_name_valid(it->str, it->len))
            return fail(err, errlen, it, "invalid source label name", it->str);
        if (!(r->src[i] = strdup(it->str)))
            return -ENOMEM;
        r->n_src++;
    }
    return 0;
}

static int parse_key(struct rule *r, const char *k, const struct bt_node *v, const char **regex,
                     bool *have_mod, char *err, size_t errlen)
{
    if (strcmp(k, "source_labels") == 0)
        return parse_sources(r, v, err, errlen);
    if (strcmp(k, "separator") == 0)
        return scalar_dup(v, &r->sep, err, errlen, k);
    if (strcmp(k, "target_label") == 0)
        return scalar_dup(v, &r->target, err, errlen, k);
    if (strcmp(k, "replacement") == 0)
        return scalar_dup(v, &r->replacement, err, errlen, k);
    if (strcmp(k, "action") == 0)
        return parse_action(r, v, err, errlen);
    if (strcmp(k, "regex") == 0) {
        if (!v || v->type != BT_NODE_SCALAR)
            return fail(err, errlen, v, "regex must be a string", NULL);
        *regex = v->str;
        return 0;
    }
    if (strcmp(k, "modulus") == 0) {
        long long m;
        if (bt_node_int(v, &m) || m < 0)
            return fail(err, errlen, v, "modulus must be a non-negative integer", NULL);
        r->modulus = (uint64_t)m;
        *have_mod = true;
        return 0;
    }
    return fail(err, errlen, v, "unknown key", k);
}

/* Prometheus' config checks for one parsed rule. */
static int check_rule(const struct rule *r, const struct bt_node *n, const char *regex,
                      bool have_mod, char *err, size_t errlen)
{
    enum action a = r->action;
    const char *an = action_names[a];
    bool needs_target = a == A_REPLACE || a == A_HASHMOD || a == A_LOWERCASE || a == A_UPPERCASE ||
                        a == A_KEEPEQUAL || a == A_DROPEQUAL;
    if (needs_target && !*r->target)
        return fail(err, errlen, n, "target_label is required for action", an);
    if (a == A_REPLACE && !strchr(r->target, '$') &&
        !bt_label_name_valid(r->target, strlen(r->target)))
        return fail(err, errlen, n, "invalid target_label", r->target);
    if ((a == A_LOWERCASE || a == A_UPPERCASE || a == A_HASHMOD || a == A_KEEPEQUAL ||
         a == A_DROPEQUAL) &&
        !bt_label_name_valid(r->target, strlen(r->target)))
        return fail(err, errlen, n, "invalid target_label", r->target);
    if (a == A_HASHMOD && r->modulus == 0)
        return fail(err, errlen, n, "modulus is required (non-zero) for action", an);
    if (a == A_LABELMAP && !strchr(r->replacement, '$') &&
        !bt_label_name_valid(r->replacement, strlen(r->replacement)))
        return fail(err, errlen, n, "invalid replacement for labelmap", r->replacement);
    if (a == A_LABELDROP || a == A_LABELKEEP) {
        if (r->n_src || *r->target || have_mod || strcmp(r->sep, ";") ||
            strcmp(r->replacement, "$1"))
            return fail(err, errlen, n, "only regex may be set for action", an);
    }
    if ((a == A_KEEPEQUAL || a == A_DROPEQUAL) &&
        (regex || have_mod || strcmp(r->sep, ";") || strcmp(r->replacement, "$1")))
        return fail(err, errlen, n, "only source_labels and target_label may be set for action",
                    an);
    return 0;
}

static int parse_rule(struct rule *r, const struct bt_node *n, char *err, size_t errlen)
{
    if (!n || n->type != BT_NODE_MAP)
        return fail(err, errlen, n, "each rule must be a map", NULL);
    r->sep = strdup(";");
    r->target = strdup("");
    r->replacement = strdup("$1");
    if (!r->sep || !r->target || !r->replacement)
        return -ENOMEM;
    const char *regex = NULL;
    bool have_mod = false;
    for (size_t i = 0; i < n->n; i++) {
        const struct bt_node *k = bt_node_key(n, i);
        int rc =
            parse_key(r, k->str ? k->str : "", bt_node_val(n, i), &regex, &have_mod, err, errlen);
        if (rc)
            return rc;
    }
    int rc = check_rule(r, n, regex, have_mod, err, errlen);
    if (rc)
        return rc;
    char rerr[256];
    r->re = bt_regex_new(regex ? regex : "(.*)", BT_RE_ANCHORED, rerr, sizeof(rerr));
    if (!r->re)
        return fail(err, errlen, bt_node_get(n, "regex"), rerr, NULL);
    return 0;
}

struct bt_relabel *bt_relabel_new(const struct bt_node *list, char *err, size_t errlen)
{
    struct bt_relabel *r = calloc(1, sizeof(*r));
    int rc = -ENOMEM;
    if (!r)
        goto out;
    bt_buf_init(&r->val, RELABEL_MAX_VALUE);
    bt_buf_init(&r->out, RELABEL_MAX_VALUE);
    bt_buf_init(&r->tgt, 4096);
    bt_labels_init(&r->snap);
    if (bt_node_is_null(list))
        return r;
    if (list->type != BT_NODE_SEQ) {
        rc = fail(err, errlen, list, "must be a list of rules", NULL);
        goto out;
    }
    r->rules = calloc(list->n ? list->n : 1, sizeof(*r->rules));
    if (!r->rules)
        goto out;
    for (size_t i = 0; i < list->n; i++) {
        r->n++;
        if ((rc = parse_rule(&r->rules[i], list->items[i], err, errlen)))
            goto out;
    }
    return r;
out:
    if (rc == -ENOMEM)
        snprintf(err, errlen, "relabel_configs: out of memory");
    bt_relabel_free(r);
    errno = -rc;
    return NULL;
}

/* ---- apply ---- */

static int join_sources(struct bt_relabel *r, const struct rule *ru, const struct bt_labels *l)
{
    bt_buf_reset(&r->val);
    int rc = bt_buf_reserve(&r->val, 1);
    for (size_t i = 0; i < ru->n_src && rc == 0; i++) {
        if (i && (rc = bt_buf_adds(&r->val, ru->sep)))
            break;
        const char *v = bt_labels_get(l, ru->src[i]);
        if (v)
            rc = bt_buf_adds(&r->val, v);
    }
    return rc;
}

static int do_replace(struct bt_relabel *r, const struct rule *ru, struct bt_labels *l)
{
    const char *v = bt_buf_str(&r->val);
    int m = bt_regex_match(ru->re, v, r->val.len, 0);
    if (m <= 0)
        return 0; /* no match (or a match limit hit): nothing changes, as in Prometheus */
    int rc = expand(&r->tgt, ru->re, v, ru->target);
    if (rc == 0)
        rc = expand(&r->out, ru->re, v, ru->replacement);
    if (rc)
        return rc == -E2BIG ? 0 : rc;
    if (!bt_label_name_valid(r->tgt.ptr, r->tgt.len))
        return 0;
    return bt_labels_setn(l, r->tgt.ptr, r->tgt.len, r->out.ptr, r->out.len);
}

static int do_hashmod(struct bt_relabel *r, const struct rule *ru, struct bt_labels *l)
{
    unsigned char sum[16];
    bt_md5(r->val.ptr ? r->val.ptr : "", r->val.len, sum);
    uint64_t x = 0;
    for (int i = 8; i < 16; i++)
        x = x << 8 | sum[i];
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, x % ru->modulus);
    return bt_labels_set(l, ru->target, num);
}

static int do_case(struct bt_relabel *r, const struct rule *ru, struct bt_labels *l, bool upper)
{
    for (size_t i = 0; i < r->val.len; i++)
        r->val.ptr[i] = (char)(upper ? toupper((unsigned char)r->val.ptr[i])
                                     : tolower((unsigned char)r->val.ptr[i]));
    return bt_labels_setn(l, ru->target, strlen(ru->target), r->val.ptr ? r->val.ptr : "",
                          r->val.len);
}

/* labelmap, labeldrop, labelkeep: walk a snapshot, since changing l moves its slots. */
static int do_names(struct bt_relabel *r, const struct rule *ru, struct bt_labels *l)
{
    int rc = bt_labels_copy(&r->snap, l);
    for (size_t i = 0; i < r->snap.n && rc == 0; i++) {
        const struct bt_label *lb = &r->snap.v[i];
        int m = bt_regex_match(ru->re, lb->name, lb->name_len, 0);
        if (m < 0)
            m = 0;
        if (ru->action == A_LABELDROP && m > 0)
            bt_labels_del(l, lb->name);
        else if (ru->action == A_LABELKEEP && m == 0)
            bt_labels_del(l, lb->name);
        else if (ru->action == A_LABELMAP && m > 0) {
            rc = expand(&r->out, ru->re, lb->name, ru->replacement);
            if (rc == 0 && bt_label_name_valid(r->out.ptr, r->out.len))
                rc = bt_labels_setn(l, r->out.ptr, r->out.len, lb->value, lb->value_len);
            if (rc == -E2BIG)
                rc = 0;
        }
    }
    return rc;
}

int bt_relabel_apply(struct bt_relabel *r, struct bt_labels *l)
{
    if (!r)
        return BT_RELABEL_KEEP;
    for (size_t i = 0; i < r->n; i++) {
        const struct rule *ru = &r->rules[i];
        int rc = join_sources(r, ru, l);
        if (rc == -E2BIG)
            continue; /* an oversized value matches nothing */
        if (rc)
            return rc;
        const char *v = bt_buf_str(&r->val);
        switch (ru->action) {
        case A_REPLACE: rc = do_replace(r, ru, l); break;
        case A_KEEP:
            if (bt_regex_match(ru->re, v, r->val.len, 0) <= 0)
                return BT_RELABEL_DROP;
            break;
        case A_DROP:
            if (bt_regex_match(ru->re, v, r->val.len, 0) > 0)
                return BT_RELABEL_DROP;
            break;
        case A_KEEPEQUAL:
        case A_DROPEQUAL: {
            const char *t = bt_labels_get(l, ru->target);
            bool eq = strcmp(v, t ? t : "") == 0;
            if (eq != (ru->action == A_KEEPEQUAL))
                return BT_RELABEL_DROP;
            break;
        }
        case A_HASHMOD: rc = do_hashmod(r, ru, l); break;
        case A_LOWERCASE:
        case A_UPPERCASE: rc = do_case(r, ru, l, ru->action == A_UPPERCASE); break;
        case A_LABELMAP:
        case A_LABELDROP:
        case A_LABELKEEP: rc = do_names(r, ru, l); break;
        }
        if (rc)
            return rc;
    }
    return BT_RELABEL_KEEP;
}
