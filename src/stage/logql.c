/* LogQL stream selector and line filters (logql.h). */
#include "stage/logql.h"
#include "core/labels.h"
#include "util/buf.h"
#include "util/jmespath.h"
#include "util/regex.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 64

enum op { OP_EQ, OP_NE, OP_RE, OP_NRE };

struct item {
    enum op op;
    char *name; /* matchers only */
    char *val;
    size_t vlen;
    struct bt_regex *re;
};

struct bt_logql {
    struct item m[MAX_ITEMS], f[MAX_ITEMS];
    size_t nm, nf;
};

struct parser {
    const char *s;
    size_t n, i;
    char *err;
    size_t errlen;
};

static void ws(struct parser *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int fail(struct parser *p, const char *msg)
{
    snprintf(p->err, p->errlen, "offset %zu: %s", p->i, msg);
    return -EINVAL;
}

static bool at(struct parser *p, const char *tok)
{
    size_t l = strlen(tok);
    return p->n - p->i >= l && memcmp(p->s + p->i, tok, l) == 0;
}

/* Reads a Go string literal into a new NUL-terminated string. */
static int string_lit(struct parser *p, char **out, size_t *len)
{
    ws(p);
    if (p->i >= p->n || (p->s[p->i] != '"' && p->s[p->i] != '`'))
        return fail(p, "expected a string (\"...\" or `...`)");
    struct bt_buf b;
    bt_buf_init(&b, 1 << 20);
    if (p->s[p->i] == '`') {
        const char *e = memchr(p->s + p->i + 1, '`', p->n - p->i - 1);
        if (!e)
            return fail(p, "unterminated `string`");
        size_t st = p->i + 1;
        if (bt_buf_add(&b, p->s + st, (size_t)(e - p->s) - st) < 0)
            return fail(p, "string too long");
        p->i = (size_t)(e - p->s) + 1;
    } else {
        size_t st = p->i++;
        while (p->i < p->n && p->s[p->i] != '"')
            p->i += p->s[p->i] == '\\' ? 2 : 1;
        if (p->i >= p->n)
            return fail(p, "unterminated \"string\"");
        p->i++;
        /* Go and JSON escapes agree for what selectors use (\" \\ \n \t \uXXXX). */
        if (bt_json_unescape(p->s + st, p->i - st, &b) < 0) {
            bt_buf_free(&b);
            p->i = st;
            return fail(p, "bad escape in string");
        }
    }
    *out = bt_buf_take(&b, len);
    if (!*out)
        return fail(p, "out of memory");
    return 0;
}

static int compile(struct parser *p, struct item *it, bool anchored)
{
    char rerr[256], msg[320];
    it->re = bt_regex_new(it->val, anchored ? BT_RE_ANCHORED : 0, rerr, sizeof(rerr));
    if (!it->re) {
        snprintf(msg, sizeof(msg), "bad regex: %s", rerr);
        return fail(p, msg);
    }
    return 0;
}

static int matcher(struct parser *p, struct bt_logql *q)
{
    ws(p);
    size_t st = p->i;
    while (p->i < p->n && (p->s[p->i] == '_' || (p->s[p->i] >= 'a' && p->s[p->i] <= 'z') ||
                           (p->s[p->i] >= 'A' && p->s[p->i] <= 'Z') ||
                           (p->i > st && p->s[p->i] >= '0' && p->s[p->i] <= '9')))
        p->i++;
    if (p->i == st)
        return fail(p, "expected a label name");
    if (q->nm == MAX_ITEMS)
        return fail(p, "too many matchers");
    struct item *it = &q->m[q->nm++];
    if (!(it->name = strndup(p->s + st, p->i - st)))
        return fail(p, "out of memory");
    ws(p);
    if (at(p, "=~"))
        it->op = OP_RE, p->i += 2;
    else if (at(p, "!~"))
        it->op = OP_NRE, p->i += 2;
    else if (at(p, "!="))
        it->op = OP_NE, p->i += 2;
    else if (at(p, "="))
        it->op = OP_EQ, p->i += 1;
    else
        return fail(p, "expected =, !=, =~ or !~");
    int rc = string_lit(p, &it->val, &it->vlen);
    if (rc == 0 && (it->op == OP_RE || it->op == OP_NRE))
        rc = compile(p, it, true);
    return rc;
}

static int filter(struct parser *p, struct bt_logql *q)
{
    if (q->nf == MAX_ITEMS)
        return fail(p, "too many line filters");
    struct item *it = &q->f[q->nf++];
    if (at(p, "|="))
        it->op = OP_EQ;
    else if (at(p, "!="))
        it->op = OP_NE;
    else if (at(p, "|~"))
        it->op = OP_RE;
    else
        it->op = OP_NRE;
    p->i += 2;
    int rc = string_lit(p, &it->val, &it->vlen);
    if (rc == 0 && (it->op == OP_RE || it->op == OP_NRE))
        rc = compile(p, it, false);
    if (rc == 0) {
        ws(p);
        if (at(p, "or ") || at(p, "or\t") || at(p, "or\""))
            return fail(p, "\"or\" in line filters is not supported");
    }
    return rc;
}

void bt_logql_free(struct bt_logql *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->nm; i++) {
        free(q->m[i].name);
        free(q->m[i].val);
        bt_regex_free(q->m[i].re);
    }
    for (size_t i = 0; i < q->nf; i++) {
        free(q->f[i].val);
        bt_regex_free(q->f[i].re);
    }
    free(q);
}

static int parse(struct parser *p, struct bt_logql *q)
{
    int rc;
    ws(p);
    if (p->i >= p->n || p->s[p->i] != '{')
        return fail(p, "a selector starts with {");
    p->i++;
    ws(p);
    if (p->i < p->n && p->s[p->i] == '}')
        return fail(p, "a selector needs at least one label matcher");
    for (;;) {
        if ((rc = matcher(p, q)) < 0)
            return rc;
        ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            break;
        }
        return fail(p, "expected , or }");
    }
    for (;;) {
        ws(p);
        if (p->i >= p->n)
            return 0;
        if (at(p, "|=") || at(p, "!=") || at(p, "|~") || at(p, "!~")) {
            if ((rc = filter(p, q)) < 0)
                return rc;
            continue;
        }
        if (at(p, "|"))
            return fail(p, "only line filters (|= != |~ !~) may follow the selector; parsers "
                           "and label filters are not supported");
        return fail(p, "unexpected text after the selector");
    }
}

struct bt_logql *bt_logql_parse(const char *s, char *err, size_t errlen)
{
    struct bt_logql *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct parser p = {s, strlen(s), 0, err, errlen};
    if (parse(&p, q) < 0) {
        bt_logql_free(q);
        errno = EINVAL;
        return NULL;
    }
    return q;
}

bool bt_logql_match_labels(struct bt_logql *q, const struct bt_labels *l)
{
    for (size_t i = 0; i < q->nm; i++) {
        struct item *it = &q->m[i];
        const char *v = l ? bt_labels_get(l, it->name) : NULL;
        size_t n = v ? strlen(v) : 0;
        bool ok;
        switch (it->op) {
        case OP_EQ: ok = n == it->vlen && memcmp(v ? v : "", it->val, n) == 0; break;
        case OP_NE: ok = !(n == it->vlen && memcmp(v ? v : "", it->val, n) == 0); break;
        case OP_RE: ok = bt_regex_match(it->re, v ? v : "", n, 0) > 0; break;
        default: ok = bt_regex_match(it->re, v ? v : "", n, 0) == 0; break;
        }
        if (!ok)
            return false;
    }
    return true;
}

bool bt_logql_match_line(struct bt_logql *q, const char *line, size_t n)
{
    for (size_t i = 0; i < q->nf; i++) {
        struct item *it = &q->f[i];
        bool ok;
        switch (it->op) {
        case OP_EQ: ok = it->vlen == 0 || memmem(line, n, it->val, it->vlen) != NULL; break;
        case OP_NE: ok = !(it->vlen == 0 || memmem(line, n, it->val, it->vlen) != NULL); break;
        case OP_RE: ok = bt_regex_match(it->re, line, n, 0) > 0; break;
        default: ok = bt_regex_match(it->re, line, n, 0) == 0; break;
        }
        if (!ok)
            return false;
    }
    return true;
}
