#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/labels.h"
#include "config/node.h"
#include "source/relabel.h"

static struct bt_node *doc;

static struct bt_relabel *build(const char *yaml)
{
    char err[512] = "";
    doc = bt_yaml_parse(yaml, strlen(yaml), "relabel.yaml", err, sizeof(err));
    cr_assert_not_null(doc, "%s", err);
    struct bt_relabel *r = bt_relabel_new(doc, err, sizeof(err));
    cr_assert_not_null(r, "%s", err);
    return r;
}

static void build_fails(const char *yaml, const char *want)
{
    char err[512] = "";
    struct bt_node *d = bt_yaml_parse(yaml, strlen(yaml), "relabel.yaml", err, sizeof(err));
    cr_assert_not_null(d, "%s", err);
    struct bt_relabel *r = bt_relabel_new(d, err, sizeof(err));
    cr_assert_null(r, "expected an error for %s", yaml);
    cr_assert(strstr(err, want), "error %s lacks %s", err, want);
    bt_node_free(d);
}

static void done(struct bt_relabel *r, struct bt_labels *l)
{
    bt_relabel_free(r);
    bt_labels_free(l);
    bt_node_free(doc);
    doc = NULL;
}

static void set(struct bt_labels *l, const char *k, const char *v)
{
    cr_assert_eq(bt_labels_set(l, k, v), 0);
}

static void hex(const unsigned char *d, char *out)
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

Test(relabel, md5_matches_rfc1321_vectors)
{
    unsigned char d[16];
    char h[33];
    bt_md5("", 0, d);
    hex(d, h);
    cr_assert_str_eq(h, "d41d8cd98f00b204e9800998ecf8427e");
    bt_md5("abc", 3, d);
    hex(d, h);
    cr_assert_str_eq(h, "900150983cd24fb0d6963f7d28e17f72");
    char a[200];
    memset(a, 'a', sizeof(a));
    bt_md5(a, sizeof(a), d); /* several blocks */
    hex(d, h);
    cr_assert_str_eq(h, "887f30b43b2867f4a9accceee7d16e6c");
    memset(a, 'b', 56); /* padding spills into a second block */
    bt_md5(a, 56, d);
    hex(d, h);
    cr_assert_str_eq(h, "b9d955696c7654cd20086bec31670b11");
}

Test(relabel, default_replace_copies_the_whole_joined_value)
{
    struct bt_relabel *r = build("- source_labels: [a, b]\n  target_label: c\n");
    struct bt_labels l;
    bt_labels_init(&l);
    set(&l, "a", "foo");
    set(&l, "b", "bar");
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_KEEP);
    cr_assert_str_eq(bt_labels_get(&l, "c"), "foo;bar");
    done(r, &l);
}

Test(relabel, replace_uses_groups_separator_and_anchoring)
{
    struct bt_relabel *r = build("- source_labels: [__meta_docker_container_name]\n"
                                 "  regex: '/(.*)'\n"
                                 "  target_label: container\n"
                                 "- source_labels: [a]\n"
                                 "  regex: 'oo'\n" /* anchored: does not match 'foo' */
                                 "  target_label: unanchored\n"
                                 "  replacement: hit\n"
                                 "- source_labels: [a, b]\n"
                                 "  separator: '|'\n"
                                 "  regex: '(?P<first>[^|]*)\\|(.*)'\n"
                                 "  target_label: swapped\n"
                                 "  replacement: '${2}-$first-$$-$1x-${1}x'\n");
    struct bt_labels l;
    bt_labels_init(&l);
    set(&l, "__meta_docker_container_name", "/web-1");
    set(&l, "a", "foo");
    set(&l, "b", "bar");
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_KEEP);
    cr_assert_str_eq(bt_labels_get(&l, "container"), "web-1");
    cr_assert_null(bt_labels_get(&l, "unanchored"));
    /* $1x names the group "1x", which does not exist: empty, as in Go. */
    cr_assert_str_eq(bt_labels_get(&l, "swapped"), "bar-foo-$--foox");
    done(r, &l);
}

Test(relabel, replace_with_empty_result_deletes_target_and_no_match_changes_nothing)
{
    struct bt_relabel *r = build("- source_labels: [x]\n"
                                 "  regex: '(.*)'\n"
                                 "  target_label: job\n"
                                 "- source_labels: [a]\n"
                                 "  regex: 'nomatch'\n"
                                 "  target_label: a\n"
                                 "  replacement: changed\n");
    struct bt_labels l;
    bt_labels_init(&l);
    set(&l, "job", "varlogs");
    set(&l, "a", "keepme");
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_KEEP);
    cr_assert_null(bt_labels_get(&l, "job"));
    cr_assert_str_eq(bt_labels_get(&l, "a"), "keepme");
    done(r, &l);
}

Test(relabel, target_label_expands_references)
{
    struct bt_relabel *r = build("- source_labels: [k]\n"
                                 "  regex: '(\\w+)=(.*)'\n"
                                 "  target_label: 'tag_$1'\n"
                                 "  replacement: '$2'\n");
    struct bt_labels l;
    bt_labels_init(&l);
    set(&l, "k", "env=prod");
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_KEEP);
    cr_assert_str_eq(bt_labels_get(&l, "tag_env"), "prod");
    done(r, &l);
}

Test(relabel, keep_and_drop_decide_on_full_match)
{
    struct bt_relabel *r = build("- source_labels: [env]\n  regex: 'prod|staging'\n  action: keep\n"
                                 "- source_labels: [app]\n  regex: 'debug.*'\n  action: DROP\n");
    struct bt_labels l;
    bt_labels_init(&l);
    set(&l, "env", "prod");
    set(&l, "app", "web");
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_KEEP);
    set(&l, "env", "production"); /* anchored: no longer matches */
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_DROP);
    set(&l, "env", "staging");
    set(&l, "app", "debugger");
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_DROP);
    bt_labels_del(&l, "env"); /* a missing label is the empty string */
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_DROP);
    done(r, &l);
}

Test(relabel, hashmod_is_md5_tail_big_endian_mod_modulus)
{
    struct bt_relabel *r = build("- source_labels: [a, b]\n"
                                 "  modulus: 1000\n"
                                 "  target_label: shard\n"
                                 "  action: hashmod\n"
                                 "- source_labels: [addr]\n"
                                 "  modulus: 10\n"
                                 "  target_label: shard10\n"
                                 "  action: hashmod\n");
    struct bt_labels l;
    bt_labels_init(&l);
    set(&l, "a", "foo");
    set(&l, "b", "bar");
    set(&l, "addr", "10.0.0.1:9100");
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_KEEP);
    /* expected values computed independently from md5("foo;bar") and md5("10.0.0.1:9100") */
    cr_assert_str_eq(bt_labels_get(&l, "shard"), "750");
    cr_assert_str_eq(bt_labels_get(&l, "shard10"), "5");
    done(r, &l);
}

Test(relabel, labelmap_copies_matching_names_keeping_originals)
{
    struct bt_relabel *r = build("- action: labelmap\n"
                                 "  regex: __meta_docker_container_label_(.+)\n");
    struct bt_labels l;
    bt_labels_init(&l);
    set(&l, "__meta_docker_container_label_com_example_team", "core");
    set(&l, "__meta_docker_container_label_tier", "web");
    set(&l, "job", "docker");
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_KEEP);
    cr_assert_str_eq(bt_labels_get(&l, "com_example_team"), "core");
    cr_assert_str_eq(bt_labels_get(&l, "tier"), "web");
    cr_assert_str_eq(bt_labels_get(&l, "__meta_docker_container_label_tier"), "web");
    cr_assert_str_eq(bt_labels_get(&l, "job"), "docker");
    cr_assert_eq(l.n, 5);
    done(r, &l);
}

Test(relabel, labeldrop_and_labelkeep_filter_names)
{
    struct bt_relabel *r = build("- action: labeldrop\n  regex: 'tmp_.*'\n"
                                 "- action: labelkeep\n  regex: 'job|env|__.*'\n");
    struct bt_labels l;
    bt_labels_init(&l);
    set(&l, "tmp_a", "1");
    set(&l, "job", "x");
    set(&l, "env", "prod");
    set(&l, "other", "y");
    set(&l, "__path__", "/var/log/*.log");
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_KEEP);
    cr_assert_eq(l.n, 3);
    cr_assert_str_eq(bt_labels_get(&l, "job"), "x");
    cr_assert_str_eq(bt_labels_get(&l, "env"), "prod");
    cr_assert_str_eq(bt_labels_get(&l, "__path__"), "/var/log/*.log");
    done(r, &l);
}

Test(relabel, lowercase_uppercase_and_keepequal)
{
    struct bt_relabel *r = build("- source_labels: [a]\n  target_label: lo\n  action: lowercase\n"
                                 "- source_labels: [a]\n  target_label: up\n  action: uppercase\n"
                                 "- source_labels: [lo]\n  target_label: want\n"
                                 "  action: keepequal\n");
    struct bt_labels l;
    bt_labels_init(&l);
    set(&l, "a", "MiXed-1");
    set(&l, "want", "mixed-1");
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_KEEP);
    cr_assert_str_eq(bt_labels_get(&l, "lo"), "mixed-1");
    cr_assert_str_eq(bt_labels_get(&l, "up"), "MIXED-1");
    set(&l, "want", "other");
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_DROP);
    done(r, &l);
}

Test(relabel, no_rules_keep_everything)
{
    struct bt_labels l;
    bt_labels_init(&l);
    set(&l, "a", "1");
    cr_assert_eq(bt_relabel_apply(NULL, &l), BT_RELABEL_KEEP);
    char err[64];
    struct bt_relabel *r = bt_relabel_new(NULL, err, sizeof(err));
    cr_assert_not_null(r);
    cr_assert_eq(bt_relabel_apply(r, &l), BT_RELABEL_KEEP);
    cr_assert_eq(l.n, 1);
    bt_relabel_free(r);
    bt_labels_free(&l);
}

Test(relabel, bad_rules_are_errors_with_position)
{
    build_fails("- action: explode\n",
                "relabel.yaml:1:11: relabel_configs: unknown relabel action");
    build_fails("- source_labels: [a]\n  action: replace\n", "target_label is required");
    build_fails("- source_labels: [a]\n  target_label: 'bad-name'\n", "invalid target_label");
    build_fails("- source_labels: [a]\n  target_label: s\n  action: hashmod\n",
                "modulus is required");
    build_fails("- action: labeldrop\n  regex: x\n  target_label: y\n", "only regex may be set");
    build_fails("- source_labels: [a]\n  target_label: b\n  regex: '(unclosed'\n",
                "relabel.yaml:3:10: relabel_configs: invalid regex");
    build_fails("- source_labels: [a]\n  target_label: b\n  colour: red\n", "unknown key colour");
    build_fails("action: keep\n", "must be a list of rules");
}
