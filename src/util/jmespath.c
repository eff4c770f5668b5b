/* JMESPath subset and JSON scanning over text (jmespath.h). */
#include "util/jmespath.h"
#include "util/buf.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 512
#define MAX_STEPS 64
#define KEY_SCRATCH 1024 /* longest escaped key compared by decoding */

enum step_type { STEP_FIELD, STEP_INDEX };

struct step {
    enum step_type type;
    char *name;
    size_t len;
    long idx;
};

struct bt_jpath {
    struct step *steps;
    size_t n;
};

/* ---- JSON scanning ---- */

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* s[i] == '"'; returns the index after the closing quote, or 0 on error. *esc tells whether
 * the string has escapes. */
static size_t scan_string(const char *s, size_t n, size_t i, bool *esc)
{
    *esc = false;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            *esc = true;
            if (++i >= n)
                return 0;
            switch (s[i]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't': break;
            case 'u':
                if (i + 4 >= n)
                    return 0;
                for (int k = 1; k <= 4; k++)
                    if (hexval(s[i + k]) < 0)
                        return 0;
                i += 4;
                break;
            default: return 0;
            }
        }
    }
    return 0;
}

static size_t scan_number(const char *s, size_t n, size_t i)
{
    size_t st = i;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i > st ? i : 0;
}

/* Skips the value at s[i] (no leading whitespace). Returns the index after it, or 0. */
static size_t skip_value(const char *s, size_t n, size_t i, int depth)
{
    bool esc;
    if (i >= n || depth > MAX_DEPTH)
        return 0;
    switch (s[i]) {
    case '"': return scan_string(s, n, i, &esc);
    case '{':
    case '[': {
        char close = s[i] == '{' ? '}' : ']';
        bool obj = s[i] == '{';
        i = skip_ws(s, n, i + 1);
        if (i < n && s[i] == close)
            return i + 1;
        for (;;) {
            if (obj) {
                if (i >= n || s[i] != '"' || !(i = scan_string(s, n, i, &esc)))
                    return 0;
                i = skip_ws(s, n, i);
                if (i >= n || s[i] != ':')
                    return 0;
                i = skip_ws(s, n, i + 1);
            }
            if (!(i = skip_value(s, n, i, depth + 1)))
                return 0;
            i = skip_ws(s, n, i);
            if (i >= n)
                return 0;
            if (s[i] == close)
                return i + 1;
            if (s[i] != ',')
                return 0;
            i = skip_ws(s, n, i + 1);
        }
    }
    case 't': return n - i >= 4 && memcmp(s + i, "true", 4) == 0 ? i + 4 : 0;
    case 'f': return n - i >= 5 && memcmp(s + i, "false", 5) == 0 ? i + 5 : 0;
    case 'n': return n - i >= 4 && memcmp(s + i, "null", 4) == 0 ? i + 4 : 0;
    default: return scan_number(s, n, i);
    }
}

bool bt_json_valid(const char *doc, size_t n)
{
    size_t i = skip_ws(doc, n, 0);
    if (!(i = skip_value(doc, n, i, 0)))
        return false;
    return skip_ws(doc, n, i) == n;
}

void bt_json_trim(const char **doc, size_t *n)
{
    size_t i = skip_ws(*doc, *n, 0), e = *n;
    while (e > i && ((*doc)[e - 1] == ' ' || (*doc)[e - 1] == '\t' || (*doc)[e - 1] == '\n' ||
                     (*doc)[e - 1] == '\r'))
        e--;
    *doc += i;
    *n = e - i;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t j = 1; j < len; j++) {
        if ((s[j] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Four hex digits, or -1. */
static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Decodes the string token tok (with quotes) by chunks into emit(ctx, bytes, n). */
typedef int (*emit_fn)(void *ctx, const char *p, size_t n);

/* Decodes the escape at s[i] (a backslash) into u. Returns the bytes consumed, or 0 if the
 * escape is bad. *ulen gets the decoded length. */
static size_t decode_escape(const char *s, size_t len, size_t i, char u[8], size_t *ulen)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (i + 1 >= len)
        return 0;
    const char *k = s[i + 1] ? strchr(from, s[i + 1]) : NULL;
    if (k) {
        u[0] = to[k - from];
        *ulen = 1;
        return 2;
    }
    if (s[i + 1] != 'u' || i + 6 > len)
        return 0;
    int hv = hex4(s + i + 2);
    if (hv < 0)
        return 0;
    unsigned cp = (unsigned)hv;
    size_t adv = 6;
    if (cp >= 0xD800 && cp < 0xDC00 && i + 12 <= len && s[i + 6] == '\\' && s[i + 7] == 'u') {
        int lo = hex4(s + i + 8);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned)lo - 0xDC00);
            adv = 12;
        }
    }
    if (cp >= 0xD800 && cp <= 0xDFFF)
        cp = 0xFFFD; /* lone surrogate, as Go decodes it */
    *ulen = put_utf8(u, cp);
    return adv;
}

static int decode(const char *tok, size_t n, emit_fn emit, void *ctx)
{
    if (n < 2 || tok[0] != '"' || tok[n - 1] != '"')
        return -EINVAL;
    const char *s = tok + 1;
    size_t len = n - 2, i = 0, run = 0, adv, ulen;
    int rc;
    char u[8];
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (i > run && (rc = emit(ctx, s + run, i - run)) < 0)
            return rc;
        if (c >= 0x80) { /* raw UTF-8 is kept; a bad byte becomes U+FFFD, as in Go */
            size_t l = utf8_len((const unsigned char *)s + i, len - i);
            rc = l ? emit(ctx, s + i, l) : emit(ctx, "\xEF\xBF\xBD", 3);
            i += l ? l : 1;
        } else {
            if (!(adv = decode_escape(s, len, i, u, &ulen)))
                return -EINVAL;
            rc = emit(ctx, u, ulen);
            i += adv;
        }
        if (rc < 0)
            return rc;
        run = i;
    }
    if (len > run && (rc = emit(ctx, s + run, len - run)) < 0)
        return rc;
    return 0;
}

static int emit_buf(void *ctx, const char *p, size_t n)
{
    return bt_buf_add(ctx, p, n);
}

int bt_json_unescape(const char *tok, size_t n, struct bt_buf *out)
{
    return decode(tok, n, emit_buf, out);
}

struct cmpctx {
    const char *name;
    size_t len, off;
};

static int emit_cmp(void *ctx, const char *p, size_t n)
{
    struct cmpctx *c = ctx;
    if (c->off + n > c->len || memcmp(c->name + c->off, p, n) != 0)
        return -1;
    c->off += n;
    return 0;
}

static bool key_eq(const char *tok, size_t n, bool esc, const char *name, size_t len)
{
    if (!esc)
        return n - 2 == len && memcmp(tok + 1, name, len) == 0;
    struct cmpctx c = {name, len, 0};
    return decode(tok, n, emit_cmp, &c) == 0 && c.off == len;
}

int bt_json_quote(struct bt_buf *out, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    int rc = bt_buf_add(out, "\"", 1);
    size_t run = 0, i = 0;
    while (rc == 0 && i < n) {
        unsigned char c = s[i];
        char esc[8];
        size_t en = 0, adv = 1;
        if (c >= 0x80) {
            size_t l = utf8_len(s + i, n - i);
            if (l == 3 && s[i] == 0xE2 && s[i + 1] == 0x80 &&
                (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
                en = (size_t)snprintf(esc, sizeof(esc), "\\u202%c", s[i + 2] == 0xA8 ? '8' : '9');
                adv = 3;
            } else if (l == 0)
                en = (size_t)snprintf(esc, sizeof(esc), "\\ufffd");
            else {
                i += l;
                continue;
            }
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, en = 2;
        } else if (c == '\n') {
            memcpy(esc, "\\n", 2), en = 2;
        } else if (c == '\r') {
            memcpy(esc, "\\r", 2), en = 2;
        } else if (c == '\t') {
            memcpy(esc, "\\t", 2), en = 2;
        } else if (c == '\b') {
            memcpy(esc, "\\b", 2), en = 2;
        } else if (c == '\f') {
            memcpy(esc, "\\f", 2), en = 2;
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15], en = 6;
        } else {
            i++;
            continue;
        }
        if (i > run)
            rc = bt_buf_add(out, str + run, i - run);
        if (rc == 0)
            rc = bt_buf_add(out, esc, en);
        i += adv;
        run = i;
    }
    if (rc == 0 && n > run)
        rc = bt_buf_add(out, str + run, n - run);
    if (rc == 0)
        rc = bt_buf_add(out, "\"", 1);
    return rc;
}

/* ---- expressions ---- */

void bt_jpath_free(struct bt_jpath *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->steps[i].name);
    free(p->steps);
    free(p);
}

static bool ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool ident_char(char c)
{
    return ident_start(c) || (c >= '0' && c <= '9');
}

static const char *unsupported(char c)
{
    switch (c) {
    case '*': return "wildcards (*) are not supported";
    case '|': return "pipes (|) are not supported";
    case '(':
    case ')': return "functions are not supported";
    case '{': return "multiselect hashes ({...}) are not supported";
    case '`':
    case '\'': return "literals are not supported";
    case '@': return "the current node (@) is not supported";
    case '&':
    case '!':
    case '<':
    case '>':
    case '=': return "operators are not supported";
    case '?': return "filter expressions are not supported";
    default: return NULL;
    }
}

static int add_step(struct bt_jpath *p, enum step_type t, const char *name, size_t len, long idx)
{
    if (p->n == MAX_STEPS)
        return -E2BIG;
    struct step *st = &p->steps[p->n];
    st->type = t;
    st->idx = idx;
    st->len = len;
    st->name = NULL;
    if (t == STEP_FIELD) {
        st->name = malloc(len + 1);
        if (!st->name)
            return -ENOMEM;
        memcpy(st->name, name, len);
        st->name[len] = '\0';
    }
    p->n++;
    return 0;
}

static struct bt_jpath *fail(struct bt_jpath *p, char *err, size_t errlen, const char *expr,
                             size_t at, const char *msg)
{
    snprintf(err, errlen, "expression \"%s\" at offset %zu: %s", expr, at, msg);
    bt_jpath_free(p);
    errno = EINVAL;
    return NULL;
}

static size_t parse_index(const char *e, size_t n, size_t i, long *out, const char **msg)
{
    /* e[i] == '[' */
    size_t j = i + 1;
    while (j < n && e[j] == ' ')
        j++;
    if (j < n && (e[j] == '*' || e[j] == ']')) {
        *msg =
            e[j] == '*' ? "projections ([*]) are not supported" : "flatten ([]) is not supported";
        return 0;
    }
    if (j < n && e[j] == '?') {
        *msg = "filter expressions are not supported";
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(e + j, &end, 10);
    if (end == e + j || errno) {
        *msg = "multiselect lists and non-numeric indexes are not supported";
        return 0;
    }
    j = (size_t)(end - e);
    while (j < n && e[j] == ' ')
        j++;
    if (j < n && e[j] == ':') {
        *msg = "slices are not supported";
        return 0;
    }
    if (j >= n || e[j] != ']') {
        *msg = "expected ]";
        return 0;
    }
    *out = v;
    return j + 1;
}

/* Parses a key ("quoted" or an identifier) at expr[i] into a step. Returns the index after
 * it, or 0 with *msg set. */
static size_t parse_field(struct bt_jpath *p, const char *expr, size_t n, size_t i,
                          const char **msg)
{
    size_t j = i;
    int rc;
    if (expr[i] == '"') {
        bool esc;
        struct bt_buf b;
        bt_buf_init(&b, KEY_SCRATCH);
        j = scan_string(expr, n, i, &esc);
        if (!j || bt_json_unescape(expr + i, j - i, &b) < 0) {
            bt_buf_free(&b);
            *msg = "bad quoted key";
            return 0;
        }
        rc = add_step(p, STEP_FIELD, bt_buf_str(&b), b.len, 0);
        bt_buf_free(&b);
    } else if (ident_start(expr[i])) {
        while (j < n && ident_char(expr[j]))
            j++;
        rc = add_step(p, STEP_FIELD, expr + i, j - i, 0);
    } else {
        *msg = "unexpected character (quote keys that are not identifiers)";
        return 0;
    }
    if (rc < 0) {
        *msg = "too many steps";
        return 0;
    }
    return j;
}

struct bt_jpath *bt_jpath_new(const char *expr, char *err, size_t errlen)
{
    struct bt_jpath *p = calloc(1, sizeof(*p));
    if (p)
        p->steps = calloc(MAX_STEPS, sizeof(*p->steps));
    if (!p || !p->steps) {
        bt_jpath_free(p);
        snprintf(err, errlen, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    size_t n = strlen(expr), i = 0;
    bool need_field = true, first = true;
    while (1) {
        while (i < n && expr[i] == ' ')
            i++;
        if (i >= n) {
            if (need_field)
                return fail(p, err, errlen, expr, i,
                            first ? "empty expression" : "expected a key after '.'");
            break;
        }
        char c = expr[i];
        const char *msg = unsupported(c);
        if (msg)
            return fail(p, err, errlen, expr, i, msg);
        if (c == '[' && (first || !need_field)) {
            long idx;
            size_t j = parse_index(expr, n, i, &idx, &msg);
            if (!j)
                return fail(p, err, errlen, expr, i, msg);
            if (add_step(p, STEP_INDEX, NULL, 0, idx) < 0)
                return fail(p, err, errlen, expr, i, "too many steps");
            i = j;
            need_field = first = false;
            continue;
        }
        if (!need_field) {
            if (c == '.') {
                need_field = true;
                i++;
                continue;
            }
            return fail(p, err, errlen, expr, i, "expected '.' or '['");
        }
        size_t j = parse_field(p, expr, n, i, &msg);
        if (!j)
            return fail(p, err, errlen, expr, i, msg);
        i = j;
        need_field = first = false;
    }
    return p;
}

/* Finds key in the object at doc[i]; returns the value's index or 0. Last duplicate wins. */
static size_t find_key(const char *s, size_t n, size_t i, const struct step *st)
{
    bool esc;
    size_t found = 0;
    if (i >= n || s[i] != '{')
        return 0;
    i = skip_ws(s, n, i + 1);
    if (i < n && s[i] == '}')
        return 0;
    for (;;) {
        size_t ks = i, ke = scan_string(s, n, i, &esc);
        if (!ke)
            return 0;
        i = skip_ws(s, n, ke);
        i = skip_ws(s, n, i + 1); /* ':' */
        if (key_eq(s + ks, ke - ks, esc, st->name, st->len))
            found = i;
        if (!(i = skip_value(s, n, i, 0)))
            return 0;
        i = skip_ws(s, n, i);
        if (i >= n || s[i] != ',')
            return found;
        i = skip_ws(s, n, i + 1);
    }
}

static size_t find_index(const char *s, size_t n, size_t i, long idx)
{
    if (i >= n || s[i] != '[')
        return 0;
    size_t start = skip_ws(s, n, i + 1);
    if (idx < 0) {
        long count = 0;
        size_t j = start;
        if (j < n && s[j] != ']') {
            for (;;) {
                if (!(j = skip_value(s, n, j, 0)))
                    return 0;
                count++;
                j = skip_ws(s, n, j);
                if (j >= n || s[j] != ',')
                    break;
                j = skip_ws(s, n, j + 1);
            }
        }
        idx += count;
        if (idx < 0)
            return 0;
    }
    i = start;
    if (i < n && s[i] == ']')
        return 0;
    for (long k = 0;; k++) {
        if (k == idx)
            return i;
        if (!(i = skip_value(s, n, i, 0)))
            return 0;
        i = skip_ws(s, n, i);
        if (i >= n || s[i] != ',')
            return 0;
        i = skip_ws(s, n, i + 1);
    }
}

int bt_jpath_eval(const struct bt_jpath *p, const char *doc, size_t n, const char **v, size_t *vlen)
{
    size_t i = skip_ws(doc, n, 0);
    for (size_t k = 0; k < p->n; k++) {
        const struct step *st = &p->steps[k];
        i = st->type == STEP_FIELD ? find_key(doc, n, i, st) : find_index(doc, n, i, st->idx);
        if (!i)
            return 0;
    }
    size_t e = skip_value(doc, n, i, 0);
    if (!e || (e - i == 4 && memcmp(doc + i, "null", 4) == 0))
        return 0;
    *v = doc + i;
    *vlen = e - i;
    return 1;
}

/* Continues p from step k with the value at doc[i]; 1 with the span, or 0. */
static int eval_from(const struct bt_jpath *p, size_t k, const char *doc, size_t n, size_t i,
                     const char **v, size_t *vlen)
{
    for (; k < p->n; k++) {
        const struct step *st = &p->steps[k];
        i = st->type == STEP_FIELD ? find_key(doc, n, i, st) : find_index(doc, n, i, st->idx);
        if (!i)
            return 0;
    }
    size_t e = skip_value(doc, n, i, 0);
    if (!e || (e - i == 4 && memcmp(doc + i, "null", 4) == 0))
        return 0;
    *v = doc + i;
    *vlen = e - i;
    return 1;
}

int bt_jpath_eval_object(struct bt_jpath *const *p, size_t n, const char *doc, size_t len,
                         const char **v, size_t *vlen, int *found)
{
    bool esc;
    size_t i = skip_ws(doc, len, 0);
    for (size_t k = 0; k < n; k++)
        found[k] = 0;
    if (i >= len || doc[i] != '{')
        return -EINVAL;
    i = skip_ws(doc, len, i + 1);
    if (i < len && doc[i] == '}') {
        i++;
    } else {
        for (;;) {
            if (i >= len || doc[i] != '"')
                return -EINVAL;
            size_t ks = i, ke = scan_string(doc, len, i, &esc);
            if (!ke)
                return -EINVAL;
            i = skip_ws(doc, len, ke);
            if (i >= len || doc[i] != ':')
                return -EINVAL;
            size_t vs = skip_ws(doc, len, i + 1);
            size_t ve = skip_value(doc, len, vs, 1);
            if (!ve)
                return -EINVAL;
            for (size_t k = 0; k < n; k++) {
                const struct step *st = &p[k]->steps[0];
                if (st->type == STEP_FIELD && key_eq(doc + ks, ke - ks, esc, st->name, st->len)) {
                    found[k] = 1; /* the last duplicate wins, as in Go */
                    v[k] = doc + vs;
                }
            }
            i = skip_ws(doc, len, ve);
            if (i < len && doc[i] == ',') {
                i = skip_ws(doc, len, i + 1);
                continue;
            }
            if (i < len && doc[i] == '}') {
                i++;
                break;
            }
            return -EINVAL;
        }
    }
    if (skip_ws(doc, len, i) != len)
        return -EINVAL;
    for (size_t k = 0; k < n; k++)
        if (found[k])
            found[k] = eval_from(p[k], 1, doc, len, (size_t)(v[k] - doc), &v[k], &vlen[k]);
    return 0;
}
