/*
 * gotemplate_int: what the template engine (gotemplate.c) and its function library
 * (gotemplate_funcs.c) share. Not for use outside those two files.
 *
 * Values are small structs passed by value. Strings point into the template text, into the
 * caller's data (borrowed for one execution) or into the scratch arena, which is reset at the
 * start of every execution and keeps its blocks, so steady-state runs do not allocate.
 */
#ifndef BT_UTIL_GOTEMPLATE_INT_H
#define BT_UTIL_GOTEMPLATE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/gotemplate.h"

struct bt_regex;
struct bt_buf;

enum gt_kind { GT_NONE, GT_NIL, GT_STR, GT_INT, GT_FLOAT, GT_BOOL, GT_MAP };

struct gt_val {
    enum gt_kind k;
    bool b;
    const char *s;
    size_t n;
    int64_t i;
    double f;
};

struct gt_block {
    struct gt_block *next;
    size_t cap, used;
    char data[];
};

struct gt_arena {
    struct gt_block *head, *cur;
    size_t total;  /* bytes of all blocks */
    size_t sb_off; /* start of the string being built in cur */
};

struct gt_exec {
    struct gt_arena *arena;
    bt_gotmpl_lookup_fn lookup;
    void *ctx;
    char *err;
    size_t errlen;
    int line;
};

/* Records an execution error (message formatted into x->err) and returns rc. */
int gt_fail(struct gt_exec *x, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* String building in the arena: begin, put any number of times, end. Nothing else may use the
 * arena between begin and end. put returns 0 or -E2BIG/-ENOMEM. */
void gt_sb_begin(struct gt_exec *x);
int gt_sb_put(struct gt_exec *x, const void *p, size_t n);
void gt_sb_end(struct gt_exec *x, struct gt_val *out);
void gt_arena_reset(struct gt_arena *a);
void gt_arena_free(struct gt_arena *a);

/* Appends the text form of v as Go's fmt %v would print it (strings raw). */
int gt_put_val(struct gt_exec *x, const struct gt_val *v);
bool gt_truth(const struct gt_val *v);

typedef int (*gt_fn)(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                     struct gt_val *out);

enum gt_special { GT_PLAIN, GT_AND, GT_OR };

struct gt_func {
    const char *name;
    int min, max;  /* number of arguments; max -1 = any */
    int regex_arg; /* index of an argument that is a regular expression, or -1 */
    enum gt_special special;
    gt_fn fn;
};

/* The function called name, or NULL if there is none. */
const struct gt_func *gt_func_find(const char *name, size_t n);
/* Names that Go or sprig define but this engine does not (for a clearer message). */
bool gt_func_known_unsupported(const char *name, size_t n);

/* ---- the compiled tree (gotemplate.c builds it, gotemplate_exec.c walks it) ---- */

#define GT_MAX_DEPTH 64 /* nesting of control structures and parentheses */
#define GT_MAX_ARGS 16  /* arguments of one command */
#define GT_MAX_VARS 64  /* variables declared in one template */

enum gt_arg_kind {
    GA_STR,
    GA_INT,
    GA_FLOAT,
    GA_BOOL,
    GA_NIL,
    GA_DOT,
    GA_VAR,
    GA_FIELD,
    GA_PIPE,
    GA_FUNC
};

struct gt_pipe;

struct gt_arg {
    enum gt_arg_kind kind;
    const char *s; /* GA_STR (decoded), GA_VAR name, GA_FUNC name */
    size_t n;
    int64_t i;
    double f;
    bool b;
    struct gt_arg *recv;  /* GA_FIELD: receiver (NULL = dot) */
    struct gt_pipe *pipe; /* GA_PIPE */
    const struct gt_func *fn;
};

struct gt_cmd {
    const struct gt_func *fn; /* first word names a function */
    struct bt_regex *re;      /* precompiled regex argument */
    struct gt_arg *args[GT_MAX_ARGS];
    int nargs; /* without the function name */
};

struct gt_pipe {
    int line;
    const char *decl; /* variable declared or assigned */
    size_t decl_n;
    bool assign;
    struct gt_cmd *cmds;
    int ncmds;
};

enum gt_node_kind { GN_TEXT, GN_ACTION, GN_IF, GN_WITH };

struct gt_node {
    enum gt_node_kind kind;
    struct gt_node *next;
    const char *text;
    size_t tlen;
    struct gt_pipe *pipe;
    struct gt_node *list, *elselist;
};

struct gt_alloc {
    struct gt_alloc *next;
    void *p;
    bool re; /* p is a struct bt_regex */
};

struct bt_gotmpl {
    char *src;
    struct gt_node *root;
    struct gt_alloc *allocs;
    struct gt_arena arena;
    int nvars; /* declarations in the template */
};

/* ---- shared by the function files ---- */

/* Result helpers for function implementations; always return 0. */
static inline int gt_ret_str(struct gt_val *out, const char *s, size_t n)
{
    memset(out, 0, sizeof(*out));
    out->k = GT_STR;
    out->s = s;
    out->n = n;
    return 0;
}

static inline int gt_ret_bool(struct gt_val *out, bool b)
{
    memset(out, 0, sizeof(*out));
    out->k = GT_BOOL;
    out->b = b;
    return 0;
}

static inline int gt_ret_int(struct gt_val *out, int64_t i)
{
    memset(out, 0, sizeof(*out));
    out->k = GT_INT;
    out->i = i;
    out->f = (double)i;
    return 0;
}

/* Go's name of a value's type ("string", "int", "float64", "bool", "<nil>"). */
const char *gt_kind_name(enum gt_kind k);
/* 0 if v is a string, else an execution error as text/template words it. */
int gt_want_str(struct gt_exec *x, const struct gt_val *v);
/* Appends strconv.Quote(s) to the string being built. */
int gt_go_quote(struct gt_exec *x, const char *s, size_t n);

/* Go builtins (gotemplate_builtins.c); and/or are evaluated lazily by the engine. */
int gt_f_and(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out);
int gt_f_not(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out);
int gt_f_len(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out);
int gt_f_eq(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out);
int gt_f_ne(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out);
int gt_f_lt(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out);
int gt_f_le(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out);
int gt_f_gt(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out);
int gt_f_ge(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out);
int gt_f_print(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n, struct gt_val *out);
int gt_f_printf(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                struct gt_val *out);
int gt_f_println(struct gt_exec *x, struct bt_regex *re, struct gt_val *a, int n,
                 struct gt_val *out);

/* ---- text helpers (gotemplate_text.c) ---- */

#define GT_RUNE_ERROR 0xFFFDu

/* Decodes one rune as Go does: an invalid sequence is U+FFFD with width 1 (*w). */
uint32_t gt_dec_rune(const char *s, size_t n, size_t *w);
/* The last rune of s[0..n) (n > 0) and its width, as utf8.DecodeLastRuneInString. */
uint32_t gt_dec_last_rune(const char *s, size_t n, size_t *w);
/* Encodes r (a valid code point) into o (4 bytes room); returns its length. */
size_t gt_enc_rune(char *o, uint32_t r);
/* unicode.IsSpace */
bool gt_is_space(uint32_t r);
/* Simple upper/lower case of r for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic. */
uint32_t gt_case_map(uint32_t r, bool upper);

struct gt_sha3 {
    uint64_t st[25];
    size_t pos; /* bytes absorbed into the current block */
};

#define GT_SHA3_256_RATE 136
/* Start from a zeroed struct; absorb any number of times; final writes 32 bytes. */
void gt_sha3_absorb(struct gt_sha3 *h, const void *p, size_t n);
void gt_sha3_256_final(struct gt_sha3 *h, unsigned char out[32]);

struct gt_sha256 {
    uint32_t h[8];
    unsigned char block[64];
    size_t fill;
    uint64_t len;
};

void gt_sha256_init(struct gt_sha256 *s);
void gt_sha256_update(struct gt_sha256 *s, const void *p, size_t n);
void gt_sha256_final(struct gt_sha256 *s, unsigned char out[32]);

#endif
