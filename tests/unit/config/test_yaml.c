#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/node.h"
#include "tmpdir.h"
#include "util/buf.h"

static struct bt_node *parse(const char *text, char *err, size_t errlen)
{
    return bt_yaml_parse(text, strlen(text), "t.yaml", err, errlen);
}

Test(yaml, builds_nested_maps_and_lists_with_positions_and_key_order)
{
    char err[256] = "";
    struct bt_node *r = parse("b: 1\n"
                              "a:\n"
                              "  list:\n"
                              "    - x\n"
                              "    - {k: v}\n"
                              "  q: \"quoted\"\n",
                              err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(r->type, BT_NODE_MAP);
    cr_assert_eq(r->n, 2);
    cr_assert_str_eq(bt_node_key(r, 0)->str, "b", "key order kept");
    cr_assert_str_eq(bt_node_key(r, 1)->str, "a");
    const struct bt_node *a = bt_node_get(r, "a");
    cr_assert_eq(a->type, BT_NODE_MAP);
    const struct bt_node *list = bt_node_get(a, "list");
    cr_assert_eq(list->type, BT_NODE_SEQ);
    cr_assert_eq(list->n, 2);
    cr_assert_str_eq(list->items[0]->str, "x");
    cr_assert_eq(list->items[0]->line, 4);
    cr_assert_eq(list->items[0]->col, 7);
    cr_assert_str_eq(bt_node_get(list->items[1], "k")->str, "v");
    const struct bt_node *q = bt_node_get(a, "q");
    cr_assert(q->quoted);
    cr_assert_not(bt_node_get(r, "b")->quoted);
    cr_assert_str_eq(q->file, "t.yaml");
    char where[64];
    cr_assert_str_eq(bt_node_where(q, where, sizeof(where)), "t.yaml:6:6");
    cr_assert_null(bt_node_get(r, "missing"));
    cr_assert_null(bt_node_get(list, "x"), "get on a list is NULL");
    bt_node_free(r);
}

Test(yaml, null_scalars_are_recognised_but_quoted_ones_are_not)
{
    char err[256] = "";
    struct bt_node *r = parse("a:\nb: ~\nc: null\nd: \"\"\ne: 'null'\nf: NULL\n", err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    cr_assert(bt_node_is_null(bt_node_get(r, "a")));
    cr_assert(bt_node_is_null(bt_node_get(r, "b")));
    cr_assert(bt_node_is_null(bt_node_get(r, "c")));
    cr_assert(bt_node_is_null(bt_node_get(r, "f")));
    cr_assert_not(bt_node_is_null(bt_node_get(r, "d")));
    cr_assert_not(bt_node_is_null(bt_node_get(r, "e")));
    cr_assert(bt_node_is_null(NULL));
    bt_node_free(r);
}

Test(yaml, aliases_are_rejected_with_their_line)
{
    char err[256] = "";
    struct bt_node *r = parse("base: &b\n  x: 1\nother: *b\n", err, sizeof(err));
    cr_assert_null(r);
    cr_assert(strstr(err, "t.yaml:3:8:") && strstr(err, "alias"), "%s", err);
}

Test(yaml, syntax_error_names_the_line)
{
    char err[256] = "";
    struct bt_node *r = parse("a:\n  b: 1\n c: 2\n", err, sizeof(err));
    cr_assert_null(r);
    cr_assert(strncmp(err, "t.yaml:3:", 9) == 0, "%s", err);
    r = parse("a: [1, 2\n", err, sizeof(err));
    cr_assert_null(r);
    cr_assert(strstr(err, "t.yaml:2:") != NULL, "%s", err);
}

Test(yaml, duplicate_keys_are_rejected_naming_both_lines)
{
    char err[256] = "";
    struct bt_node *r = parse("a: 1\nb: 2\na: 3\n", err, sizeof(err));
    cr_assert_null(r);
    cr_assert(strstr(err, "t.yaml:3:1: duplicate key \"a\" (first at line 1)"), "%s", err);
    r = parse("x:\n  - {k: 1, k: 2}\n", err, sizeof(err));
    cr_assert_null(r, "nested maps are checked too");
    cr_assert(strstr(err, "t.yaml:2:") && strstr(err, "\"k\""), "%s", err);
}

Test(yaml, many_distinct_keys_parse)
{
    struct bt_buf b;
    bt_buf_init(&b, 1 << 20);
    for (int i = 0; i < 5000; i++)
        cr_assert_eq(bt_buf_addf(&b, "/var/log/f%d.log: \"%d\"\n", i, i), 0);
    char err[256] = "";
    struct bt_node *r = bt_yaml_parse(b.ptr, b.len, "p", err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(r->n, 5000);
    cr_assert_str_eq(bt_node_get(r, "/var/log/f4999.log")->str, "4999");
    bt_node_free(r);
    bt_buf_free(&b);
}

Test(yaml, empty_text_and_empty_document_give_a_null_root)
{
    char err[256] = "";
    struct bt_node *r = parse("", err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    cr_assert(bt_node_is_null(r));
    bt_node_free(r);
    r = parse("# only a comment\n---\n", err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    cr_assert(bt_node_is_null(r));
    bt_node_free(r);
}

Test(yaml, only_the_first_document_is_read)
{
    char err[256] = "";
    struct bt_node *r = parse("a: 1\n---\nb: 2\n", err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    cr_assert_not_null(bt_node_get(r, "a"));
    cr_assert_null(bt_node_get(r, "b"));
    bt_node_free(r);
}

static char *nested(int depth)
{
    size_t n = (size_t)depth * 2 + 2;
    char *s = malloc(n);
    for (int i = 0; i < depth; i++)
        s[i] = '[';
    for (int i = 0; i < depth; i++)
        s[depth + i] = ']';
    s[2 * depth] = '\n';
    s[2 * depth + 1] = '\0';
    return s;
}

Test(yaml, nesting_is_capped)
{
    char err[256] = "";
    char *ok = nested(60);
    struct bt_node *r = parse(ok, err, sizeof(err));
    cr_assert_not_null(r, "60 levels parse: %s", err);
    bt_node_free(r);
    char *deep = nested(5000);
    r = parse(deep, err, sizeof(err));
    cr_assert_null(r);
    cr_assert(strstr(err, "t.yaml:1:") && strstr(err, "nesting deeper than"), "%s", err);
    free(ok);
    free(deep);
}

Test(yaml, parse_file_reads_a_file_and_names_missing_ones)
{
    char dir[256], path[512], err[512] = "";
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "c.yaml", "k: v\n", 5), 0);
    snprintf(path, sizeof(path), "%s/c.yaml", dir);
    struct bt_node *r = bt_yaml_parse_file(path, err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    cr_assert_str_eq(bt_node_get(r, "k")->file, path);
    bt_node_free(r);
    snprintf(path, sizeof(path), "%s/none.yaml", dir);
    cr_assert_null(bt_yaml_parse_file(path, err, sizeof(err)));
    cr_assert(strstr(err, path) && strstr(err, "No such file"), "%s", err);
    cr_assert_null(bt_yaml_parse_file(dir, err, sizeof(err)), "a directory is refused");
    cr_assert(strstr(err, "regular file"), "%s", err);
    bt_tmpdir_remove(dir);
}

Test(yaml, scalar_conversions_check_their_text)
{
    char err[256] = "";
    struct bt_node *r = parse("b: yes\nf: off\ni: 0x10\nneg: -3\nd: 2.5\ndur: 1h30m\nsz: 2MiB\n"
                              "bad: 12x\nm: {}\n",
                              err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    bool bv;
    long long iv;
    double dv;
    unsigned long long uv;
    cr_assert_eq(bt_node_bool(bt_node_get(r, "b"), &bv), 0);
    cr_assert(bv);
    cr_assert_eq(bt_node_bool(bt_node_get(r, "f"), &bv), 0);
    cr_assert_not(bv);
    cr_assert_eq(bt_node_int(bt_node_get(r, "i"), &iv), 0);
    cr_assert_eq(iv, 16);
    cr_assert_eq(bt_node_int(bt_node_get(r, "neg"), &iv), 0);
    cr_assert_eq(iv, -3);
    cr_assert_eq(bt_node_double(bt_node_get(r, "d"), &dv), 0);
    cr_assert_float_eq(dv, 2.5, 1e-9);
    cr_assert_eq(bt_node_duration(bt_node_get(r, "dur"), &iv), 0);
    cr_assert_eq(iv, 5400LL * 1000000000LL);
    cr_assert_eq(bt_node_bytes(bt_node_get(r, "sz"), &uv), 0);
    cr_assert_eq(uv, 2ULL << 20);
    const struct bt_node *bad = bt_node_get(r, "bad");
    cr_assert_eq(bt_node_int(bad, &iv), -EINVAL);
    cr_assert_eq(bt_node_bool(bad, &bv), -EINVAL);
    cr_assert_eq(bt_node_duration(bad, &iv), -EINVAL);
    cr_assert_eq(bt_node_int(bt_node_get(r, "m"), &iv), -EINVAL, "a map is not an int");
    bt_node_free(r);
}

Test(yaml, invalid_utf8_is_an_error_not_a_crash)
{
    char err[256] = "";
    const char text[] = "a: \xff\xfe\n";
    struct bt_node *r = bt_yaml_parse(text, sizeof(text) - 1, "t.yaml", err, sizeof(err));
    cr_assert_null(r);
    cr_assert(strncmp(err, "t.yaml:", 7) == 0, "%s", err);
}
