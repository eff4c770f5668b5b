/*
 * gotemplate: lexer and parser that compile template text into the tree of gotemplate_int.h
 * (see util/gotemplate.h for the supported language). Execution is in gotemplate_exec.c.
 */
#include "util/gotemplate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/gotemplate_int.h"
#include "util/regex.h"

#define TEXT_MAX (256 * 1024)

/* ---- parser ----------------------------------------------------------------------------- */

enum tok {
    T_END_ACTION,
    T_IDENT,
    T_FIELD,
    T_VAR,
    T_DOT,
    T_STRING,
    T_RAW,
    T_CHAR,
    T_NUMBER,
    T_PIPE,
    T_LPAREN,
    T_RPAREN,
    T_DECLARE,
    T_ASSIGN,
    T_COMMA,
    T_BAD,
};

struct token {
    enum tok k;
    const char *s;
    size_t n;
    bool space_before;
};

struct parser {
    struct bt_gotmpl *t;
    const char *s;
    size_t n, pos;
    int line;
    char *err;
    size_t errlen;
    bool trim_next; /* the last action ended with " -}}" */
    int depth;
    const char *vars[GT_MAX_VARS];
    size_t varn[GT_MAX_VARS];
    int nvars;
};

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parser *p, const char *fmt, ...)
{
    if (p->err && p->errlen && !p->err[0]) {
        int k = snprintf(p->err, p->errlen, "template: line %d: ", p->line);
        if (k >= 0 && (size_t)k < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

static void *palloc(struct parser *p, size_t n)
{
    struct gt_alloc *a = malloc(sizeof(*a));
    void *m = calloc(1, n);
    if (!a || !m) {
        free(a);
        free(m);
        perr(p, "out of memory");
        return NULL;
    }
    a->p = m;
    a->re = false;
    a->next = p->t->allocs;
    p->t->allocs = a;
    return m;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_alnum(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (unsigned char)c >= 0x80;
}

static bool at_right_delim(const struct parser *p, size_t i, bool *trim)
{
    if (i + 4 <= p->n && is_space(p->s[i]) && p->s[i + 1] == '-' && p->s[i + 2] == '}' &&
        p->s[i + 3] == '}') {
        *trim = true;
        return true;
    }
    *trim = false;
    return i + 2 <= p->n && p->s[i] == '}' && p->s[i + 1] == '}';
}

static void advance(struct parser *p, size_t to)
{
    for (size_t i = p->pos; i < to; i++)
        if (p->s[i] == '\n')
            p->line++;
    p->pos = to;
}

/* Reads the next token inside an action. */
static int lex(struct parser *p, struct token *t)
{
    size_t i = p->pos;
    bool trim;
    t->space_before = false;
    while (i < p->n && is_space(p->s[i])) {
        if (at_right_delim(p, i, &trim) && trim)
            break;
        i++;
        t->space_before = true;
    }
    advance(p, i);
    if (i >= p->n)
        return perr(p, "unclosed action");
    t->s = p->s + i;
    if (at_right_delim(p, i, &trim)) {
        t->k = T_END_ACTION;
        t->n = trim ? 4 : 2;
        p->trim_next = trim;
        advance(p, i + t->n);
        return 0;
    }
    char c = p->s[i];
    size_t j = i + 1;
    switch (c) {
    case '|': t->k = T_PIPE; break;
    case '(': t->k = T_LPAREN; break;
    case ')': t->k = T_RPAREN; break;
    case ',': t->k = T_COMMA; break;
    case '=': t->k = T_ASSIGN; break;
    case ':':
        if (j >= p->n || p->s[j] != '=')
            return perr(p, "expected :=");
        t->k = T_DECLARE;
        j++;
        break;
    case '"':
        while (j < p->n && p->s[j] != '"') {
            if (p->s[j] == '\\' && j + 1 < p->n)
                j++;
            if (p->s[j] == '\n')
                return perr(p, "unterminated quoted string");
            j++;
        }
        if (j >= p->n)
            return perr(p, "unterminated quoted string");
        t->k = T_STRING;
        j++;
        break;
    case '`':
        while (j < p->n && p->s[j] != '`')
            j++;
        if (j >= p->n)
            return perr(p, "unterminated raw quoted string");
        t->k = T_RAW;
        j++;
        break;
    case '\'':
        while (j < p->n && p->s[j] != '\'') {
            if (p->s[j] == '\\' && j + 1 < p->n)
                j++;
            if (p->s[j] == '\n')
                return perr(p, "unterminated character constant");
            j++;
        }
        if (j >= p->n)
            return perr(p, "unterminated character constant");
        t->k = T_CHAR;
        j++;
        break;
    case '.':
        if (j < p->n && p->s[j] >= '0' && p->s[j] <= '9') {
            t->k = T_NUMBER;
            while (j < p->n && (is_alnum(p->s[j]) || p->s[j] == '.'))
                j++;
            break;
        }
        t->k = j < p->n && is_alnum(p->s[j]) ? T_FIELD : T_DOT;
        while (j < p->n && is_alnum(p->s[j]))
            j++;
        break;
    case '$':
        t->k = T_VAR;
        while (j < p->n && is_alnum(p->s[j]))
            j++;
        break;
    default:
        if (c == '+' || c == '-' || (c >= '0' && c <= '9')) {
            t->k = T_NUMBER;
            while (j < p->n && (is_alnum(p->s[j]) || p->s[j] == '.' ||
                                ((p->s[j] == '+' || p->s[j] == '-') &&
                                 (p->s[j - 1] == 'e' || p->s[j - 1] == 'E'))))
                j++;
        } else if (is_alnum(c)) {
            t->k = T_IDENT;
            while (j < p->n && is_alnum(p->s[j]))
                j++;
        } else {
            return perr(p, "unexpected %c in command", c);
        }
        break;
    }
    t->n = j - i;
    advance(p, j);
    return 0;
}

static int peek(struct parser *p, struct token *t)
{
    size_t pos = p->pos;
    int line = p->line;
    bool trim = p->trim_next;
    int rc = lex(p, t);
    p->pos = pos;
    p->line = line;
    p->trim_next = trim;
    return rc;
}

static bool tok_is(const struct token *t, const char *w)
{
    return t->k == T_IDENT && t->n == strlen(w) && memcmp(t->s, w, t->n) == 0;
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

/* Decodes the Go-quoted body s[0..n) (quote = '"' or '\'') into out; returns its length. */
static int unquote(struct parser *p, const char *s, size_t n, char quote, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            out[o++] = s[i++];
            continue;
        }
        if (++i >= n)
            return perr(p, "bad escape in string");
        char c = s[i++];
        static const char esc_in[] = "abfnrtv\\", esc_out[] = "\a\b\f\n\r\t\v\\";
        const char *e = strchr(esc_in, c);
        if (e && c) {
            out[o++] = esc_out[e - esc_in];
        } else if (c == quote) {
            out[o++] = c;
        } else if (c == 'x' || c == 'u' || c == 'U') {
            size_t nd = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            uint32_t v = 0;
            for (size_t k = 0; k < nd; k++) {
                int h = i + k < n ? hexval(s[i + k]) : -1;
                if (h < 0)
                    return perr(p, "bad \\%c escape in string", c);
                v = v * 16 + (uint32_t)h;
            }
            i += nd;
            if (c == 'x')
                out[o++] = (char)v;
            else if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
                return perr(p, "escape \\%c is not a valid Unicode code point", c);
            else
                o += gt_enc_rune(out + o, v);
        } else if (c >= '0' && c <= '7') {
            unsigned v = (unsigned)(c - '0');
            for (int k = 0; k < 2; k++, i++) {
                if (i >= n || s[i] < '0' || s[i] > '7')
                    return perr(p, "bad octal escape in string");
                v = v * 8 + (unsigned)(s[i] - '0');
            }
            if (v > 255)
                return perr(p, "octal escape out of range");
            out[o++] = (char)v;
        } else {
            return perr(p, "unknown escape \\%c in string", c);
        }
    }
    return (int)o;
}

static int number_arg(struct parser *p, const struct token *t, struct gt_arg *a)
{
    char buf[64];
    if (t->n >= sizeof(buf))
        return perr(p, "bad number syntax: %.*s", (int)t->n, t->s);
    memcpy(buf, t->s, t->n);
    buf[t->n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 0);
    if (!*end && !errno) {
        a->kind = GA_INT;
        a->i = v;
        a->f = (double)v;
        return 0;
    }
    errno = 0;
    double f = strtod(buf, &end);
    if (*end || errno || strpbrk(buf, "xXpP"))
        return perr(p, "bad number syntax: %s", buf);
    a->kind = GA_FLOAT;
    a->f = f;
    /* 1.0 is an int constant too; the range is checked before the cast, which is undefined
     * for a double outside int64's range. */
    if (f > -9.2e18 && f < 9.2e18 && f == (double)(int64_t)f) {
        a->i = (int64_t)f;
    }
    return 0;
}

static int parse_pipe(struct parser *p, struct gt_pipe **out, bool allow_decl, enum tok stop);

static bool var_known(const struct parser *p, const char *s, size_t n)
{
    if (n == 1)
        return true; /* $ */
    for (int i = p->nvars - 1; i >= 0; i--)
        if (p->varn[i] == n && memcmp(p->vars[i], s, n) == 0)
            return true;
    return false;
}

/* An operand: a term followed by a chain of .fields with no space in between. */
static int parse_operand(struct parser *p, struct gt_arg **out)
{
    struct token t;
    int rc = lex(p, &t);
    if (rc < 0)
        return rc;
    struct gt_arg *a = palloc(p, sizeof(*a));
    if (!a)
        return -ENOMEM;
    switch (t.k) {
    case T_STRING:
    case T_RAW:
    case T_CHAR: {
        char *s = palloc(p, t.n + 1);
        if (!s)
            return -ENOMEM;
        if (t.k == T_RAW) {
            memcpy(s, t.s + 1, t.n - 2);
            rc = (int)t.n - 2;
        } else {
            rc = unquote(p, t.s + 1, t.n - 2, t.s[0], s);
        }
        if (rc < 0)
            return rc;
        a->kind = GA_STR;
        a->s = s;
        a->n = (size_t)rc;
        if (t.k == T_CHAR) { /* a character constant is a number: its code point */
            const unsigned char *u = (const unsigned char *)s;
            uint32_t r = u[0];
            if (rc == 2)
                r = (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
            else if (rc == 3)
                r = (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
            else if (rc == 4)
                r = (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 |
                    (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F);
            else if (rc != 1)
                return perr(p, "malformed character constant");
            a->kind = GA_INT;
            a->i = r;
            a->f = r;
        }
        break;
    }
    case T_NUMBER:
        if ((rc = number_arg(p, &t, a)) < 0)
            return rc;
        break;
    case T_DOT: a->kind = GA_DOT; break;
    case T_FIELD:
        a->kind = GA_FIELD;
        a->s = t.s + 1;
        a->n = t.n - 1;
        break;
    case T_VAR:
        if (!var_known(p, t.s, t.n))
            return perr(p, "undefined variable \"%.*s\"", (int)t.n, t.s);
        a->kind = GA_VAR;
        a->s = t.s;
        a->n = t.n;
        break;
    case T_LPAREN:
        if (++p->depth > GT_MAX_DEPTH)
            return perr(p, "expression nested too deeply");
        a->kind = GA_PIPE;
        if ((rc = parse_pipe(p, &a->pipe, false, T_RPAREN)) < 0)
            return rc;
        p->depth--;
        break;
    case T_IDENT:
        if (tok_is(&t, "true") || tok_is(&t, "false")) {
            a->kind = GA_BOOL;
            a->b = tok_is(&t, "true");
        } else if (tok_is(&t, "nil")) {
            a->kind = GA_NIL;
        } else {
            a->fn = gt_func_find(t.s, t.n);
            if (!a->fn) {
                if (gt_func_known_unsupported(t.s, t.n))
                    return perr(p, "function \"%.*s\" is not supported", (int)t.n, t.s);
                return perr(p, "function \"%.*s\" not defined", (int)t.n, t.s);
            }
            a->kind = GA_FUNC;
            a->s = t.s;
            a->n = t.n;
        }
        break;
    default: return perr(p, "unexpected \"%.*s\" in operand", (int)t.n, t.s);
    }
    /* chained fields: .a.b, $x.a, (pipe).a */
    for (;;) {
        struct token nt;
        if ((rc = peek(p, &nt)) < 0)
            return rc;
        if (nt.k != T_FIELD || nt.space_before)
            break;
        if (a->kind != GA_DOT && a->kind != GA_FIELD && a->kind != GA_VAR && a->kind != GA_PIPE)
            return perr(p, "unexpected . after term");
        lex(p, &nt);
        struct gt_arg *f = palloc(p, sizeof(*f));
        if (!f)
            return -ENOMEM;
        f->kind = GA_FIELD;
        f->s = nt.s + 1;
        f->n = nt.n - 1;
        f->recv = a->kind == GA_DOT ? NULL : a;
        a = f;
    }
    *out = a;
    return 0;
}

static int check_cmd(struct parser *p, struct gt_cmd *c, bool piped)
{
    int got = c->nargs + (piped ? 1 : 0);
    if (!c->fn) {
        if (piped)
            return perr(p, "non executable command in pipeline stage");
        if (c->nargs != 1)
            return perr(p, "can't give argument to non-function");
        return 0;
    }
    if (got < c->fn->min || (c->fn->max >= 0 && got > c->fn->max))
        return perr(p, "wrong number of args for %s: want %d got %d", c->fn->name, c->fn->min, got);
    int ri = c->fn->regex_arg;
    if (ri >= 0 && ri < c->nargs && c->args[ri]->kind == GA_STR) {
        char e[128];
        char *pat = palloc(p, c->args[ri]->n + 1);
        if (!pat)
            return -ENOMEM;
        memcpy(pat, c->args[ri]->s, c->args[ri]->n);
        if (memchr(pat, '\0', c->args[ri]->n))
            return perr(p, "%s: regular expression contains a NUL byte", c->fn->name);
        c->re = bt_regex_new(pat, 0, e, sizeof(e));
        if (!c->re)
            return perr(p, "%s: bad regular expression %s: %s", c->fn->name, pat, e);
        struct gt_alloc *al = malloc(sizeof(*al));
        if (!al) {
            bt_regex_free(c->re);
            return perr(p, "out of memory");
        }
        *al = (struct gt_alloc){p->t->allocs, c->re, true};
        p->t->allocs = al;
    }
    return 0;
}

static int parse_cmd(struct parser *p, struct gt_cmd *c, enum tok stop, bool piped, bool *more)
{
    int rc;
    for (;;) {
        struct token t;
        if ((rc = peek(p, &t)) < 0)
            return rc;
        if (t.k == stop || t.k == T_PIPE || (t.k == T_END_ACTION && stop == T_RPAREN) ||
            (t.k == T_RPAREN && stop == T_END_ACTION)) {
            if (t.k != stop && t.k != T_PIPE)
                return perr(p, t.k == T_RPAREN ? "unexpected right paren" : "unclosed left paren");
            lex(p, &t);
            *more = t.k == T_PIPE;
            break;
        }
        if (t.k == T_DECLARE || t.k == T_ASSIGN || t.k == T_COMMA)
            return perr(p, "unexpected \"%.*s\" in command", (int)t.n, t.s);
        struct gt_arg *a = NULL;
        if ((rc = parse_operand(p, &a)) < 0)
            return rc;
        if (!c->fn && c->nargs == 0 && a->kind == GA_FUNC) {
            c->fn = a->fn;
            continue;
        }
        if (c->nargs == GT_MAX_ARGS)
            return perr(p, "too many arguments");
        c->args[c->nargs++] = a;
    }
    if (!c->fn && !c->nargs)
        return perr(p, "missing value for command");
    for (int i = 0; i < c->nargs; i++) {
        struct gt_arg *a = c->args[i];
        if (a->kind == GA_FUNC && a->fn->min > 0)
            return perr(p, "wrong number of args for %s: want %d got 0", a->fn->name, a->fn->min);
    }
    return check_cmd(p, c, piped);
}

static int parse_pipe(struct parser *p, struct gt_pipe **out, bool allow_decl, enum tok stop)
{
    struct gt_pipe *pp = palloc(p, sizeof(*pp));
    struct gt_cmd *cmds[GT_MAX_ARGS];
    int rc;
    if (!pp)
        return -ENOMEM;
    pp->line = p->line;
    struct token t;
    if ((rc = peek(p, &t)) < 0)
        return rc;
    if (t.k == T_VAR) {
        size_t save = p->pos;
        int line = p->line;
        lex(p, &t);
        struct token op;
        if ((rc = peek(p, &op)) < 0)
            return rc;
        if (op.k == T_DECLARE || op.k == T_ASSIGN) {
            if (!allow_decl)
                return perr(p, "variable declaration not allowed here");
            lex(p, &op);
            if (t.n == 1)
                return perr(p, "cannot assign to $");
            if (op.k == T_ASSIGN && !var_known(p, t.s, t.n))
                return perr(p, "undefined variable \"%.*s\"", (int)t.n, t.s);
            pp->decl = t.s;
            pp->decl_n = t.n;
            pp->assign = op.k == T_ASSIGN;
        } else if (op.k == T_COMMA) {
            return perr(p, "range is not supported");
        } else {
            p->pos = save;
            p->line = line;
        }
    }
    bool more = true;
    while (more) {
        if (pp->ncmds == GT_MAX_ARGS)
            return perr(p, "pipeline too long");
        struct gt_cmd *c = palloc(p, sizeof(*c));
        if (!c)
            return -ENOMEM;
        if ((rc = parse_cmd(p, c, stop, pp->ncmds > 0, &more)) < 0)
            return rc;
        cmds[pp->ncmds++] = c;
    }
    pp->cmds = palloc(p, sizeof(*pp->cmds) * (size_t)pp->ncmds);
    if (!pp->cmds)
        return -ENOMEM;
    for (int i = 0; i < pp->ncmds; i++)
        pp->cmds[i] = *cmds[i];
    if (pp->decl && !pp->assign) { /* visible after the declaration */
        if (p->nvars == GT_MAX_VARS)
            return perr(p, "too many variables");
        p->vars[p->nvars] = pp->decl;
        p->varn[p->nvars++] = pp->decl_n;
        p->t->nvars++;
    }
    *out = pp;
    return 0;
}

enum list_end { L_EOF, L_END, L_ELSE, L_ELSE_IF, L_ELSE_WITH };

static int parse_list(struct parser *p, struct gt_node **head, enum list_end *how);

/* After "if"/"with": pipeline, body, optional else branch, end. */
static int parse_control(struct parser *p, enum gt_node_kind kind, struct gt_node **out)
{
    int rc, vmark = p->nvars;
    enum list_end how;
    struct gt_node *n = palloc(p, sizeof(*n));
    if (!n)
        return -ENOMEM;
    if (++p->depth > GT_MAX_DEPTH)
        return perr(p, "control structures nested too deeply");
    n->kind = kind;
    if ((rc = parse_pipe(p, &n->pipe, true, T_END_ACTION)) < 0)
        return rc;
    if ((rc = parse_list(p, &n->list, &how)) < 0)
        return rc;
    if (how == L_EOF)
        return perr(p, "unexpected EOF: missing {{end}}");
    if ((how == L_ELSE_IF && kind == GN_IF) || (how == L_ELSE_WITH && kind == GN_WITH)) {
        if ((rc = parse_control(p, kind, &n->elselist)) < 0)
            return rc; /* the chained control consumed the shared {{end}} */
    } else if (how == L_ELSE_IF || how == L_ELSE_WITH) {
        return perr(p, "unexpected else %s", how == L_ELSE_IF ? "if" : "with");
    } else if (how == L_ELSE) {
        if ((rc = parse_list(p, &n->elselist, &how)) < 0)
            return rc;
        if (how != L_END)
            return perr(p, how == L_EOF ? "unexpected EOF: missing {{end}}"
                                        : "expected end; found else");
    }
    p->nvars = vmark;
    p->depth--;
    *out = n;
    return 0;
}

static int skip_comment(struct parser *p, size_t i)
{
    const char *e = NULL;
    for (size_t k = i + 2; k + 1 < p->n; k++) {
        if (p->s[k] == '*' && p->s[k + 1] == '/') {
            e = p->s + k;
            break;
        }
    }
    if (!e)
        return perr(p, "unclosed comment");
    size_t j = (size_t)(e - p->s) + 2;
    bool trim;
    if (!at_right_delim(p, j, &trim))
        return perr(p, "comment ends before closing delimiter");
    p->trim_next = trim;
    advance(p, j + (trim ? 4 : 2));
    return 0;
}

/* Handles one {{ ... }} starting after the left delimiter. */
static int parse_action(struct parser *p, struct gt_node ***tail, enum list_end *how, bool *done)
{
    struct token t;
    int rc;
    if (p->pos + 1 < p->n && p->s[p->pos] == '/' && p->s[p->pos + 1] == '*')
        return skip_comment(p, p->pos);
    if ((rc = peek(p, &t)) < 0)
        return rc;
    if (t.k == T_END_ACTION)
        return perr(p, "missing value for command");
    static const char *const unsupported[] = {"range", "define", "template",
                                              "block", "break",  "continue"};
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++)
        if (tok_is(&t, unsupported[i]))
            return perr(p, "{{%s}} is not supported", unsupported[i]);
    if (tok_is(&t, "end") || tok_is(&t, "else")) {
        lex(p, &t);
        *done = true;
        *how = L_END;
        if (tok_is(&t, "else")) {
            struct token n2;
            if ((rc = peek(p, &n2)) < 0)
                return rc;
            *how = L_ELSE;
            if (tok_is(&n2, "if") || tok_is(&n2, "with")) {
                lex(p, &n2);
                *how = tok_is(&n2, "if") ? L_ELSE_IF : L_ELSE_WITH;
                return 0;
            }
        }
        if ((rc = lex(p, &t)) < 0)
            return rc;
        if (t.k != T_END_ACTION)
            return perr(p, "unexpected \"%.*s\" after %s", (int)t.n, t.s,
                        *how == L_END ? "end" : "else");
        return 0;
    }
    struct gt_node *n;
    if (tok_is(&t, "if") || tok_is(&t, "with")) {
        lex(p, &t);
        if ((rc = parse_control(p, tok_is(&t, "if") ? GN_IF : GN_WITH, &n)) < 0)
            return rc;
    } else {
        if (!(n = palloc(p, sizeof(*n))))
            return -ENOMEM;
        n->kind = GN_ACTION;
        if ((rc = parse_pipe(p, &n->pipe, true, T_END_ACTION)) < 0)
            return rc;
    }
    **tail = n;
    *tail = &n->next;
    return 0;
}

static int parse_list(struct parser *p, struct gt_node **head, enum list_end *how)
{
    struct gt_node **tail = head;
    *how = L_EOF;
    while (p->pos < p->n) {
        const char *open = memmem(p->s + p->pos, p->n - p->pos, "{{", 2);
        size_t tend = open ? (size_t)(open - p->s) : p->n;
        size_t tstart = p->pos, after = tend + 2;
        if (p->trim_next) {
            while (tstart < tend && is_space(p->s[tstart]))
                tstart++;
            p->trim_next = false;
        }
        if (open && after + 1 < p->n && p->s[after] == '-' && is_space(p->s[after + 1])) {
            while (tend > tstart && is_space(p->s[tend - 1]))
                tend--;
            after += 2;
        }
        if (tend > tstart) {
            struct gt_node *n = palloc(p, sizeof(*n));
            if (!n)
                return -ENOMEM;
            n->kind = GN_TEXT;
            n->text = p->s + tstart;
            n->tlen = tend - tstart;
            *tail = n;
            tail = &n->next;
        }
        if (!open) {
            advance(p, p->n);
            break;
        }
        advance(p, after);
        bool done = false;
        int rc = parse_action(p, &tail, how, &done);
        if (rc < 0)
            return rc;
        if (done)
            return 0;
    }
    return 0;
}

void bt_gotmpl_free(struct bt_gotmpl *t)
{
    if (!t)
        return;
    struct gt_alloc *a = t->allocs;
    while (a) {
        struct gt_alloc *nx = a->next;
        if (a->re)
            bt_regex_free(a->p);
        else
            free(a->p);
        free(a);
        a = nx;
    }
    gt_arena_free(&t->arena);
    free(t->src);
    free(t);
}

struct bt_gotmpl *bt_gotmpl_new(const char *text, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    size_t n = strlen(text);
    if (n > TEXT_MAX) {
        if (err && errlen)
            snprintf(err, errlen, "template longer than %d bytes", TEXT_MAX);
        errno = E2BIG;
        return NULL;
    }
    struct bt_gotmpl *t = calloc(1, sizeof(*t));
    if (!t || !(t->src = strdup(text))) {
        free(t);
        errno = ENOMEM;
        return NULL;
    }
    struct parser p = {.t = t, .s = t->src, .n = n, .line = 1, .err = err, .errlen = errlen};
    enum list_end how;
    int rc = parse_list(&p, &t->root, &how);
    if (rc == 0 && how != L_EOF)
        rc = perr(&p, "unexpected {{%s}}", how == L_END ? "end" : "else");
    if (rc < 0) {
        bt_gotmpl_free(t);
        errno = -rc;
        return NULL;
    }
    return t;
}
