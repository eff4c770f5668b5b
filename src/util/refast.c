/*
 * refast: see util/refast.h for the subset and why matching it in one pass is exact.
 *
 * The pattern becomes a tree of nodes: a class node is a set of ASCII bytes (plus whether it
 * accepts every non-ASCII character) with a repetition count; a group node holds a sequence of
 * nodes. Compiling checks determinism with FIRST sets: for each node whose repetition leaves a
 * choice (a class repeated a variable number of times, an optional group), the characters it
 * can take next must be disjoint from FIRST of everything that may follow it. The end of the
 * subject (for a pattern ending in $) is a FIRST member no class has; a pattern without $ may
 * end anywhere, which conflicts with nothing, since greedy matching prefers to go on.
 *
 * Matching then walks the tree once. The only step back is an optional group whose first
 * character was right but which failed further in: the group is skipped, and what follows is
 * tried from the same place, as RE2 would; it starts with a character the group's FIRST does
 * not share, so it can only succeed by matching nothing.
 */
#include "util/refast.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { RF_CLASS, RF_GROUP };

#define RF_INF 0xffff
#define RF_MAXNODES 512
#define RF_MAXDEPTH 32
#define RF_MAXCOUNT 1000 /* Go's and RE2's limit for {n,m} */

struct rf_set {
    uint32_t b[4]; /* ASCII bytes */
    bool nonascii; /* every non-ASCII character */
    bool eot;      /* the end of the subject ($) */
};

enum { SWAR_NONE, SWAR_XOR, SWAR_LESS };

struct rf_node {
    uint8_t kind;
    uint8_t swar;  /* class: how to skip 8 ASCII bytes at a time (see stop8) */
    uint8_t nexcl; /* SWAR_XOR: the excluded ASCII bytes; SWAR_LESS: excl[0] is the bound */
    uint8_t excl[3];
    int16_t lit;        /* class: the one byte it matches exactly once, or -1 */
    uint8_t tbl[256];   /* class: 1 for each ASCII member (0 for every byte >= 0x80) */
    uint16_t min, max;  /* repetition; max RF_INF for unbounded */
    int next;           /* next node of the sequence, -1 at its end */
    int child;          /* group: first node of its sequence, -1 if empty */
    int cap;            /* group: capture number, 0 for none */
    int cap_lo, cap_hi; /* group: captures [lo, hi) inside it, reset when it is skipped */
    struct rf_set set;  /* class */
};

struct bt_refast {
    int ngroups;
    int head;    /* first node of the top sequence */
    bool dollar; /* the pattern ends in $ */
    struct rf_node nodes[];
};

/* ---- sets ---------------------------------------------------------------------------- */

static void set_add(struct rf_set *s, unsigned c)
{
    s->b[c >> 5] |= 1u << (c & 31);
}

static void set_range(struct rf_set *s, unsigned lo, unsigned hi)
{
    for (unsigned c = lo; c <= hi; c++)
        set_add(s, c);
}

static bool set_has(const struct rf_set *s, unsigned c)
{
    return (s->b[c >> 5] >> (c & 31)) & 1;
}

static void set_union(struct rf_set *a, const struct rf_set *b)
{
    for (int i = 0; i < 4; i++)
        a->b[i] |= b->b[i];
    a->nonascii |= b->nonascii;
    a->eot |= b->eot;
}

static void set_negate(struct rf_set *s)
{
    for (int i = 0; i < 4; i++)
        s->b[i] = ~s->b[i];
    s->nonascii = !s->nonascii;
}

static bool set_meet(const struct rf_set *a, const struct rf_set *b)
{
    for (int i = 0; i < 4; i++)
        if (a->b[i] & b->b[i])
            return true;
    return (a->nonascii && b->nonascii) || (a->eot && b->eot);
}

/* Perl classes as RE2 and Go define them: ASCII only. */
static bool perl_class(char c, struct rf_set *s)
{
    memset(s, 0, sizeof(*s));
    switch (c) {
    case 'd':
    case 'D': set_range(s, '0', '9'); break;
    case 's':
    case 'S':
        set_add(s, '\t'), set_add(s, '\n'), set_add(s, '\f'), set_add(s, '\r'), set_add(s, ' ');
        break;
    case 'w':
    case 'W':
        set_range(s, '0', '9'), set_range(s, 'A', 'Z'), set_range(s, 'a', 'z'), set_add(s, '_');
        break;
    default: return false;
    }
    if (c >= 'A' && c <= 'Z')
        set_negate(s);
    return true;
}

/* A single-character escape: \t \n \r \f \v, or escaped ASCII punctuation. -1 for others. */
static int escape_char(char c)
{
    switch (c) {
    case 't': return '\t';
    case 'n': return '\n';
    case 'r': return '\r';
    case 'f': return '\f';
    case 'v': return '\v';
    }
    unsigned char u = (unsigned char)c;
    if (u > 0x20 && u < 0x7f &&
        !((u >= '0' && u <= '9') || (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || u == '_'))
        return u;
    return -1;
}

/* ---- parsing ------------------------------------------------------------------------- */

struct parser {
    const char *p;
    size_t i, n;
    struct rf_node *nodes;
    int nn, ncap, depth;
    bool dollar;
};

static bool plain_ascii(unsigned char c)
{
    return c >= 0x01 && c < 0x7f;
}

/* A class [...] at p[i] == '['; ASCII members only; no [:name:]; inside it only \d \s \w and
 * single-character escapes. */
static bool parse_class(struct parser *ps, struct rf_set *out)
{
    const char *p = ps->p;
    size_t i = ps->i + 1, n = ps->n;
    bool neg = false;
    memset(out, 0, sizeof(*out));
    if (i < n && p[i] == '^')
        neg = true, i++;
    bool first = true;
    for (;;) {
        if (i >= n)
            return false;
        unsigned char c = (unsigned char)p[i];
        if (c == ']' && !first)
            break;
        first = false;
        int lo;
        if (c == '[' && i + 1 < n && p[i + 1] == ':')
            return false;
        if (c == '\\') {
            if (i + 1 >= n)
                return false;
            char e = p[i + 1];
            if (e == 'd' || e == 's' || e == 'w') {
                struct rf_set pc;
                perl_class(e, &pc);
                set_union(out, &pc);
                i += 2;
                continue;
            }
            if ((lo = escape_char(e)) < 0)
                return false;
            i += 2;
        } else {
            if (!plain_ascii(c))
                return false;
            lo = c;
            i++;
        }
        int hi = lo;
        if (i + 1 < n && p[i] == '-' && p[i + 1] != ']') {
            unsigned char d = (unsigned char)p[i + 1];
            if (d == '\\') {
                if (i + 2 >= n || (hi = escape_char(p[i + 2])) < 0)
                    return false;
                i += 3;
            } else {
                if (!plain_ascii(d) || d == '[')
                    return false;
                hi = d;
                i += 2;
            }
            if (hi < lo)
                return false;
        }
        set_range(out, (unsigned)lo, (unsigned)hi);
    }
    if (neg)
        set_negate(out); /* as RE2 with ClassNL: a negated class matches \n */
    ps->i = i + 1;
    return true;
}

static int new_node(struct parser *ps)
{
    if (ps->nn >= RF_MAXNODES)
        return -1;
    struct rf_node *nd = &ps->nodes[ps->nn];
    memset(nd, 0, sizeof(*nd));
    nd->next = nd->child = -1;
    nd->lit = -1;
    nd->min = nd->max = 1;
    return ps->nn++;
}

static bool parse_count(struct parser *ps, uint16_t *min, uint16_t *max)
{
    const char *p = ps->p;
    size_t i = ps->i + 1;
    unsigned a = 0, b;
    size_t d0 = i;
    while (i < ps->n && p[i] >= '0' && p[i] <= '9' && a <= RF_MAXCOUNT)
        a = a * 10 + (unsigned)(p[i++] - '0');
    /* {00} and {01,2} are literal text in Go and RE2 (no leading zeros): left to RE2 */
    if (i == d0 || a > RF_MAXCOUNT || i >= ps->n || (p[d0] == '0' && i - d0 > 1))
        return false;
    if (p[i] == '}') {
        b = a;
    } else if (p[i] == ',') {
        i++;
        if (i < ps->n && p[i] == '}') {
            b = RF_INF;
        } else {
            b = 0;
            size_t d1 = i;
            while (i < ps->n && p[i] >= '0' && p[i] <= '9' && b <= RF_MAXCOUNT)
                b = b * 10 + (unsigned)(p[i++] - '0');
            if (i == d1 || b > RF_MAXCOUNT || b < a || i >= ps->n || p[i] != '}' ||
                (p[d1] == '0' && i - d1 > 1))
                return false;
        }
    } else {
        return false;
    }
    if (b == 0)
        return false; /* x{0} matches nothing and is not worth a case of its own */
    *min = (uint16_t)a;
    *max = (uint16_t)b;
    ps->i = i + 1;
    return true;
}

/* Parses a sequence up to ')' (in a group) or the end (top level); *head gets its first node.
 * False: not in the subset. */
static bool parse_seq(struct parser *ps, int *head, bool top)
{
    const char *p = ps->p;
    int prev = -1;
    *head = -1;
    if (++ps->depth > RF_MAXDEPTH)
        return false;
    while (ps->i < ps->n) {
        unsigned char c = (unsigned char)p[ps->i];
        if (c == ')') {
            if (top)
                return false;
            break;
        }
        if (c == '$') {
            if (!top || ps->i + 1 != ps->n)
                return false;
            ps->dollar = true;
            ps->i++;
            break;
        }
        if (c == '|' || c == '^' || c == '*' || c == '+' || c == '?' || c == '{')
            return false;
        int k = new_node(ps);
        if (k < 0)
            return false;
        struct rf_node *nd = &ps->nodes[k];
        if (c == '(') {
            ps->i++;
            int before = ps->ncap;
            if (ps->i < ps->n && p[ps->i] == '?') {
                if (ps->i + 1 < ps->n && p[ps->i + 1] == ':') {
                    ps->i += 2;
                } else if (ps->i + 2 < ps->n && p[ps->i + 1] == 'P' && p[ps->i + 2] == '<') {
                    const char *gt = memchr(p + ps->i, '>', ps->n - ps->i);
                    if (!gt)
                        return false;
                    ps->i = (size_t)(gt - p) + 1;
                    nd->cap = ++ps->ncap;
                } else {
                    return false; /* flags and everything else */
                }
            } else {
                nd->cap = ++ps->ncap;
            }
            nd->kind = RF_GROUP;
            int child;
            if (!parse_seq(ps, &child, false))
                return false;
            nd = &ps->nodes[k];
            nd->child = child;
            if (ps->i >= ps->n || p[ps->i] != ')')
                return false;
            ps->i++;
            nd->cap_lo = before + 1;
            nd->cap_hi = ps->ncap + 1;
        } else {
            nd->kind = RF_CLASS;
            if (c == '[') {
                if (!parse_class(ps, &nd->set))
                    return false;
            } else if (c == '.') {
                memset(&nd->set, 0, sizeof(nd->set));
                set_add(&nd->set, '\n');
                set_negate(&nd->set);
                ps->i++;
            } else if (c == '\\') {
                if (ps->i + 1 >= ps->n)
                    return false;
                char e = p[ps->i + 1];
                if (!perl_class(e, &nd->set)) {
                    int lit = escape_char(e);
                    if (lit < 0)
                        return false;
                    set_add(&nd->set, (unsigned)lit);
                }
                ps->i += 2;
            } else {
                if (!plain_ascii(c))
                    return false;
                set_add(&nd->set, c);
                ps->i++;
            }
        }
        if (ps->i < ps->n) {
            char q = p[ps->i];
            if (q == '*' || q == '+' || q == '?') {
                nd->min = q == '+' ? 1 : 0;
                nd->max = q == '?' ? 1 : RF_INF;
                ps->i++;
            } else if (q == '{') {
                if (nd->kind == RF_GROUP || !parse_count(ps, &nd->min, &nd->max))
                    return false;
            }
            /* lazy (x*?), stacked (x**) and counted-after-quantifier forms stay with RE2 */
            if (ps->i < ps->n && (nd->min != 1 || nd->max != 1) &&
                (p[ps->i] == '*' || p[ps->i] == '+' || p[ps->i] == '?' || p[ps->i] == '{'))
                return false;
        }
        if (nd->kind == RF_GROUP && !(nd->max == 1 && nd->min <= 1))
            return false;
        if (prev < 0)
            *head = k;
        else
            ps->nodes[prev].next = k;
        prev = k;
    }
    ps->depth--;
    return true;
}

/* ---- determinism --------------------------------------------------------------------- */

static bool seq_nullable(const struct rf_node *nodes, int i);

static bool node_nullable(const struct rf_node *nodes, int i)
{
    const struct rf_node *nd = &nodes[i];
    if (nd->min == 0)
        return true;
    return nd->kind == RF_GROUP && seq_nullable(nodes, nd->child);
}

static bool seq_nullable(const struct rf_node *nodes, int i)
{
    for (; i >= 0; i = nodes[i].next)
        if (!node_nullable(nodes, i))
            return false;
    return true;
}

static void seq_first(const struct rf_node *nodes, int i, const struct rf_set *follow,
                      struct rf_set *out);

/* The characters node i can start with (not counting what follows it when it is nullable). */
static void node_first(const struct rf_node *nodes, int i, struct rf_set *out)
{
    const struct rf_node *nd = &nodes[i];
    if (nd->kind == RF_CLASS) {
        *out = nd->set;
        return;
    }
    struct rf_set none = {0};
    seq_first(nodes, nd->child, &none, out);
}

/* FIRST of the sequence from node i, followed by what follow can start with. */
static void seq_first(const struct rf_node *nodes, int i, const struct rf_set *follow,
                      struct rf_set *out)
{
    memset(out, 0, sizeof(*out));
    for (; i >= 0; i = nodes[i].next) {
        struct rf_set f;
        node_first(nodes, i, &f);
        set_union(out, &f);
        if (!node_nullable(nodes, i))
            return;
    }
    set_union(out, follow);
}

static bool seq_deterministic(const struct rf_node *nodes, int i, const struct rf_set *follow)
{
    for (; i >= 0; i = nodes[i].next) {
        const struct rf_node *nd = &nodes[i];
        struct rf_set after;
        seq_first(nodes, nd->next, follow, &after);
        if (nd->kind == RF_CLASS) {
            if (nd->max > nd->min && set_meet(&nd->set, &after))
                return false;
            continue;
        }
        if (nd->min == 0) {
            struct rf_set g;
            if (seq_nullable(nodes, nd->child))
                return false;
            node_first(nodes, i, &g);
            if (set_meet(&g, &after))
                return false;
        }
        if (!seq_deterministic(nodes, nd->child, &after))
            return false;
    }
    return true;
}

/* ---- API ----------------------------------------------------------------------------- */

/* The byte table, and for a class that accepts all but a few ASCII bytes (., \S, [^"], ...) how
 * to tell in one step that 8 bytes are all members: none has its high bit set, and none is an
 * excluded byte (up to 3 compared one by one) or, when more, none is below the bound every
 * excluded byte is under (\S: 0x21). A word that fails goes byte by byte, which decides. */
static void prepare_class(struct rf_node *nd)
{
    uint8_t excl[128];
    int ne = 0, top = 0;
    for (unsigned c = 0; c < 128; c++) {
        nd->tbl[c] = set_has(&nd->set, c);
        if (!nd->tbl[c])
            excl[ne++] = (uint8_t)c, top = (int)c;
    }
    nd->lit = -1;
    if (!nd->set.nonascii && ne == 127 && nd->min == 1 && nd->max == 1)
        for (unsigned c = 0; c < 128; c++)
            if (nd->tbl[c])
                nd->lit = (int16_t)c;
    nd->swar = SWAR_NONE;
    if (!nd->set.nonascii || nd->max != RF_INF || nd->min > 1)
        return;
    if (ne <= 3) {
        nd->swar = SWAR_XOR;
        nd->nexcl = (uint8_t)ne;
        memcpy(nd->excl, excl, (size_t)ne);
    } else if (top < 0x40) {
        nd->swar = SWAR_LESS;
        nd->excl[0] = (uint8_t)(top + 1);
    }
}

struct bt_refast *bt_refast_new(const char *pattern, int ngroups)
{
    size_t n = strlen(pattern);
    if (n < 1 || pattern[0] != '^' || ngroups < 0)
        return NULL;
    struct bt_refast *f = malloc(sizeof(*f) + RF_MAXNODES * sizeof(struct rf_node));
    if (!f)
        return NULL;
    struct parser ps = {.p = pattern, .i = 1, .n = n, .nodes = f->nodes};
    struct rf_set end = {0};
    if (!parse_seq(&ps, &f->head, true) || ps.ncap != ngroups)
        goto no;
    end.eot = ps.dollar;
    if (!seq_deterministic(f->nodes, f->head, &end))
        goto no;
    for (int i = 0; i < ps.nn; i++)
        if (f->nodes[i].kind == RF_CLASS)
            prepare_class(&f->nodes[i]);
    f->ngroups = ngroups;
    f->dollar = ps.dollar;
    struct bt_refast *g =
        realloc(f, sizeof(*f) + (size_t)(ps.nn ? ps.nn : 1) * sizeof(struct rf_node));
    return g ? g : f;
no:
    free(f);
    return NULL;
}

void bt_refast_free(struct bt_refast *f)
{
    free(f);
}

/* Length of the strict UTF-8 sequence (no overlong forms, surrogates or values past U+10FFFF)
 * at s, or 0. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return len >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (len < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (len < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

#define ONES 0x0101010101010101ull
#define HIGH 0x8080808080808080ull

/* The bytes among the 8 at s that may stop a run of nd: the high bit of each byte that is not
 * an ASCII member, and possibly of bytes above the first such one (a borrow), never below it.
 * So 0 means all 8 are members, and the lowest bit set marks the first byte that is not. */
static inline uint64_t stop8(const struct rf_node *nd, const unsigned char *s)
{
    uint64_t w, stop;
    memcpy(&w, s, 8);
    stop = w & HIGH;
    if (nd->swar == SWAR_XOR) {
        for (int k = 0; k < nd->nexcl; k++) {
            uint64_t x = w ^ (ONES * nd->excl[k]);
            stop |= (x - ONES) & ~x & HIGH; /* a zero byte: the excluded byte */
        }
    } else {
        stop |= (w - ONES * nd->excl[0]) & ~w & HIGH; /* a byte below the bound */
    }
    return stop;
}

/* A class repeated without bound, at least min (0 or 1) times: the common case, in words. */
static int match_run(const struct rf_node *nd, const unsigned char *s, size_t len, size_t *pos)
{
    size_t p = *pos, start = p;
    for (;;) {
        if (nd->swar) {
            uint64_t stop = 0;
            while (p + 8 <= len && !(stop = stop8(nd, s + p)))
                p += 8;
            if (stop)
                p += (size_t)__builtin_ctzll(stop) >> 3; /* the first byte that is not a member */
        }
        while (p < len && nd->tbl[s[p]])
            p++;
        if (p >= len || s[p] < 0x80 || !nd->set.nonascii)
            break;
        size_t k = utf8_seq(s + p, len - p);
        if (!k)
            return -1;
        p += k;
    }
    if (p == start && nd->min)
        return 0;
    *pos = p;
    return 1;
}

static int match_seq(const struct bt_refast *f, int i, const unsigned char *s, size_t len,
                     size_t *pos, ssize_t *caps)
{
    for (; i >= 0; i = f->nodes[i].next) {
        const struct rf_node *nd = &f->nodes[i];
        if (nd->kind == RF_CLASS && nd->lit >= 0) { /* a literal byte, the commonest node */
            if (*pos >= len || s[*pos] != nd->lit)
                return 0;
            (*pos)++;
            continue;
        }
        if (nd->kind == RF_CLASS && nd->max == RF_INF && nd->min <= 1) {
            int r = match_run(nd, s, len, pos);
            if (r <= 0)
                return r;
            continue;
        }
        if (nd->kind == RF_CLASS) {
            size_t p = *pos;
            unsigned cnt = 0, max = nd->max == RF_INF ? UINT32_MAX : nd->max;
            while (cnt < max && p < len) {
                unsigned char c = s[p];
                if (c < 0x80) {
                    if (!nd->tbl[c])
                        break;
                    p++;
                } else {
                    if (!nd->set.nonascii)
                        break; /* RE2 matches neither a non-ASCII character nor a bad byte here */
                    size_t k = utf8_seq(s + p, len - p);
                    if (!k)
                        return -1;
                    p += k;
                }
                cnt++;
            }
            if (cnt < nd->min)
                return 0;
            *pos = p;
            continue;
        }
        size_t start = *pos;
        int r = match_seq(f, nd->child, s, len, pos, caps);
        if (r < 0)
            return r;
        if (r == 0) {
            if (nd->min)
                return 0;
            *pos = start;
            for (int c = nd->cap_lo; c < nd->cap_hi; c++)
                caps[2 * c] = caps[2 * c + 1] = -1;
            continue;
        }
        if (nd->cap) {
            caps[2 * nd->cap] = (ssize_t)start;
            caps[2 * nd->cap + 1] = (ssize_t)*pos;
        }
    }
    return 1;
}

int bt_refast_match(const struct bt_refast *f, const char *s, size_t len, ssize_t *caps)
{
    for (int c = 0; c <= f->ngroups; c++)
        caps[2 * c] = caps[2 * c + 1] = -1;
    size_t pos = 0;
    int r = match_seq(f, f->head, (const unsigned char *)(s ? s : ""), s ? len : 0, &pos, caps);
    if (r <= 0)
        return r;
    if (f->dollar && pos != len)
        return 0;
    caps[0] = 0;
    caps[1] = (ssize_t)pos;
    return 1;
}
