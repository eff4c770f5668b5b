/*
 * yaml: builds struct bt_node trees from YAML with libyaml. The one place that includes yaml.h.
 *
 * Only the first document is read. Aliases are refused (they make sizes unbounded and promtail
 * configs do not need them), nesting is capped at BT_YAML_MAX_DEPTH, a file at
 * BT_YAML_MAX_FILE bytes, and a map that repeats a key is an error, as in Go's strict YAML.
 */
#include "config/node.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define BT_YAML_MAX_DEPTH 64
#define BT_YAML_MAX_FILE (16u << 20)

struct doc {
    char *file;
};

static struct bt_node *node_new(enum bt_node_type t, const yaml_mark_t *m, const char *file)
{
    struct bt_node *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->type = t;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    n->file = file;
    return n;
}

static void node_free_rec(struct bt_node *n)
{
    if (!n)
        return;
    size_t count = n->type == BT_NODE_MAP ? 2 * n->n : n->type == BT_NODE_SEQ ? n->n : 0;
    for (size_t i = 0; i < count; i++)
        node_free_rec(n->items[i]);
    free(n->items);
    free(n->str);
    free(n);
}

void bt_node_free(struct bt_node *root)
{
    if (!root)
        return;
    struct doc *d = root->doc;
    node_free_rec(root);
    if (d) {
        free(d->file);
        free(d);
    }
}

static int push_item(struct bt_node *parent, size_t *count, struct bt_node *child)
{
    struct bt_node **ni = realloc(parent->items, (*count + 1) * sizeof(*ni));
    if (!ni)
        return -ENOMEM;
    parent->items = ni;
    ni[(*count)++] = child;
    parent->n = parent->type == BT_NODE_MAP ? *count / 2 : *count;
    return 0;
}

struct parser {
    yaml_parser_t p;
    const char *file;
    char *err;
    size_t errlen;
};

static void oom(struct parser *ps, const yaml_mark_t *m)
{
    snprintf(ps->err, ps->errlen, "%s:%zu:%zu: out of memory", ps->file, m->line + 1,
             m->column + 1);
}

static void parse_error(struct parser *ps)
{
    const char *problem = ps->p.problem ? ps->p.problem : "invalid YAML";
    if (ps->p.context)
        snprintf(ps->err, ps->errlen, "%s:%zu:%zu: %s %s that started at line %zu", ps->file,
                 ps->p.problem_mark.line + 1, ps->p.problem_mark.column + 1, problem, ps->p.context,
                 ps->p.context_mark.line + 1);
    else
        snprintf(ps->err, ps->errlen, "%s:%zu:%zu: %s", ps->file, ps->p.problem_mark.line + 1,
                 ps->p.problem_mark.column + 1, problem);
}

static int cmp_key(const void *a, const void *b)
{
    const struct bt_node *x = *(struct bt_node *const *)a, *y = *(struct bt_node *const *)b;
    int r = strcmp(x->str, y->str);
    if (r)
        return r;
    return x->line != y->line ? (x->line < y->line ? -1 : 1)
                              : (x->col > y->col) - (x->col < y->col);
}

/* Go's strict YAML refuses a map that repeats a key; so do we. Sorting keeps it O(n log n) for
 * large maps such as a positions file. Returns 0, -EINVAL (message written) or -ENOMEM. */
static int check_duplicate_keys(struct parser *ps, const struct bt_node *map)
{
    if (map->n < 2)
        return 0;
    struct bt_node **keys = malloc(map->n * sizeof(*keys));
    if (!keys)
        return -ENOMEM;
    size_t nk = 0;
    for (size_t i = 0; i < map->n; i++)
        if (map->items[2 * i]->type == BT_NODE_SCALAR)
            keys[nk++] = map->items[2 * i];
    qsort(keys, nk, sizeof(*keys), cmp_key);
    int rc = 0;
    for (size_t i = 1; i < nk; i++) {
        if (strcmp(keys[i - 1]->str, keys[i]->str) == 0) {
            snprintf(ps->err, ps->errlen, "%s:%d:%d: duplicate key \"%s\" (first at line %d)",
                     ps->file, keys[i]->line, keys[i]->col, keys[i]->str, keys[i - 1]->line);
            rc = -EINVAL;
            break;
        }
    }
    free(keys);
    return rc;
}

static struct bt_node *parse_node(struct parser *ps, yaml_event_t *ev, int depth);

/* Frees a node whose children were only partly parsed (count items pushed). */
static void free_partial(struct bt_node *n, size_t count)
{
    for (size_t i = 0; i < count; i++)
        node_free_rec(n->items[i]);
    free(n->items);
    free(n);
}

static struct bt_node *parse_children(struct parser *ps, struct bt_node *n, yaml_event_type_t end,
                                      int depth)
{
    size_t count = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&ps->p, &ev)) {
            parse_error(ps);
            free_partial(n, count);
            return NULL;
        }
        if (ev.type == end) {
            yaml_event_delete(&ev);
            int rc = n->type == BT_NODE_MAP ? check_duplicate_keys(ps, n) : 0;
            if (rc == -ENOMEM)
                oom(ps, &ev.start_mark);
            if (rc) {
                free_partial(n, count);
                return NULL;
            }
            return n;
        }
        struct bt_node *c = parse_node(ps, &ev, depth + 1);
        if (c && push_item(n, &count, c) < 0) {
            oom(ps, &ev.start_mark);
            node_free_rec(c);
            c = NULL;
        }
        yaml_event_delete(&ev);
        if (!c) {
            free_partial(n, count);
            return NULL;
        }
    }
}

static struct bt_node *parse_node(struct parser *ps, yaml_event_t *ev, int depth)
{
    if (depth > BT_YAML_MAX_DEPTH) {
        snprintf(ps->err, ps->errlen, "%s:%zu:%zu: nesting deeper than %d levels", ps->file,
                 ev->start_mark.line + 1, ev->start_mark.column + 1, BT_YAML_MAX_DEPTH);
        return NULL;
    }
    struct bt_node *n;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n = node_new(BT_NODE_SCALAR, &ev->start_mark, ps->file);
        if (!n) {
            oom(ps, &ev->start_mark);
            return NULL;
        }
        n->len = ev->data.scalar.length;
        n->str = malloc(n->len + 1);
        if (!n->str) {
            oom(ps, &ev->start_mark);
            free(n);
            return NULL;
        }
        memcpy(n->str, ev->data.scalar.value, n->len);
        n->str[n->len] = '\0';
        n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_FOLDED_SCALAR_STYLE;
        return n;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        n = node_new(seq ? BT_NODE_SEQ : BT_NODE_MAP, &ev->start_mark, ps->file);
        if (!n) {
            oom(ps, &ev->start_mark);
            return NULL;
        }
        return parse_children(ps, n, seq ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT, depth);
    }
    case YAML_ALIAS_EVENT:
        snprintf(ps->err, ps->errlen, "%s:%zu:%zu: YAML aliases are not supported", ps->file,
                 ev->start_mark.line + 1, ev->start_mark.column + 1);
        return NULL;
    default:
        snprintf(ps->err, ps->errlen, "%s:%zu:%zu: unexpected YAML event", ps->file,
                 ev->start_mark.line + 1, ev->start_mark.column + 1);
        return NULL;
    }
}

struct bt_node *bt_yaml_parse(const char *text, size_t len, const char *name, char *err,
                              size_t errlen)
{
    struct doc *d = calloc(1, sizeof(*d));
    if (!d || !(d->file = strdup(name ? name : "<config>"))) {
        free(d);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct parser ps = {.file = d->file, .err = err, .errlen = errlen};
    struct bt_node *root = NULL;
    bool ok = false;
    yaml_parser_initialize(&ps.p);
    yaml_parser_set_input_string(&ps.p, (const unsigned char *)text, len);
    for (bool done = false; !done;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&ps.p, &ev)) {
            parse_error(&ps);
            goto out;
        }
        if (ev.type == YAML_STREAM_END_EVENT || ev.type == YAML_DOCUMENT_END_EVENT) {
            /* Later documents are ignored; an empty first one lets the next count. */
            done = ev.type == YAML_STREAM_END_EVENT || root != NULL;
        } else if (ev.type != YAML_STREAM_START_EVENT && ev.type != YAML_DOCUMENT_START_EVENT &&
                   !root) {
            root = parse_node(&ps, &ev, 0);
            if (!root) {
                yaml_event_delete(&ev);
                goto out;
            }
        }
        yaml_event_delete(&ev);
    }
    if (!root) {
        yaml_mark_t m = {0, 0, 0};
        root = node_new(BT_NODE_NULL, &m, d->file);
        if (!root) {
            snprintf(err, errlen, "%s: out of memory", d->file);
            goto out;
        }
    }
    root->doc = d;
    ok = true;
out:
    yaml_parser_delete(&ps.p);
    if (!ok) {
        node_free_rec(root);
        root = NULL;
        free(d->file);
        free(d);
    }
    return root;
}

struct bt_node *bt_yaml_parse_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > BT_YAML_MAX_FILE) {
        snprintf(err, errlen, "%s: not a regular file of at most %u bytes", path, BT_YAML_MAX_FILE);
        close(fd);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t off = 0;
    int rerr = 0;
    while (buf && off < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rerr = errno;
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    close(fd);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (rerr) {
        snprintf(err, errlen, "%s: %s", path, strerror(rerr));
        free(buf);
        return NULL;
    }
    struct bt_node *n = bt_yaml_parse(buf, off, path, err, errlen);
    free(buf);
    return n;
}
