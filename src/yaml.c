/* Builds struct bt_node trees from YAML with libyaml. The one place that includes yaml.h. */
#include "node.h"

#include <errno.h>
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
            snprintf(ps->err, ps->errlen, "%s:%zu:%zu: %s", ps->file, ps->p.problem_mark.line + 1,
                     ps->p.problem_mark.column + 1, ps->p.problem ? ps->p.problem : "YAML error");
            free_partial(n, count);
            return NULL;
        }
        if (ev.type == end) {
            yaml_event_delete(&ev);
            return n;
        }
        struct bt_node *c = parse_node(ps, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (!c || push_item(n, &count, c) < 0) {
            if (c)
                node_free_rec(c);
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
        if (!n)
            return NULL;
        n->len = ev->data.scalar.length;
        n->str = malloc(n->len + 1);
        if (!n->str) {
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
        n = node_new(BT_NODE_SEQ, &ev->start_mark, ps->file);
        return n ? parse_children(ps, n, YAML_SEQUENCE_END_EVENT, depth) : NULL;
    case YAML_MAPPING_START_EVENT:
        n = node_new(BT_NODE_MAP, &ev->start_mark, ps->file);
        return n ? parse_children(ps, n, YAML_MAPPING_END_EVENT, depth) : NULL;
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
    yaml_parser_initialize(&ps.p);
    yaml_parser_set_input_string(&ps.p, (const unsigned char *)text, len);
    int done = 0;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&ps.p, &ev)) {
            snprintf(err, errlen, "%s:%zu:%zu: %s", ps.file, ps.p.problem_mark.line + 1,
                     ps.p.problem_mark.column + 1, ps.p.problem ? ps.p.problem : "YAML error");
            node_free_rec(root);
            root = NULL;
            goto fail;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            done = ev.type == YAML_STREAM_END_EVENT || root != NULL;
            break;
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_START_EVENT: break;
        default:
            if (!root) {
                root = parse_node(&ps, &ev, 0);
                if (!root) {
                    yaml_event_delete(&ev);
                    goto fail;
                }
            }
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&ps.p);
    if (!root) {
        yaml_mark_t m = {0, 0, 0};
        root = node_new(BT_NODE_NULL, &m, d->file);
        if (!root)
            goto fail_nop;
    }
    root->doc = d;
    return root;
fail:
    yaml_parser_delete(&ps.p);
fail_nop:
    free(d->file);
    free(d);
    return NULL;
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
    while (buf && off < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    close(fd);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    struct bt_node *n = bt_yaml_parse(buf, off, path, err, errlen);
    free(buf);
    return n;
}
