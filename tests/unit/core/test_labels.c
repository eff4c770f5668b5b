#include <criterion/criterion.h>
#include <string.h>

#include "core/labels.h"
#include "util/buf.h"

Test(labels, canonical_string_is_sorted_quoted_and_skips_reserved)
{
    struct bt_labels l;
    bt_labels_init(&l);
    cr_assert_eq(bt_labels_set(&l, "job", "varlogs"), 0);
    cr_assert_eq(bt_labels_set(&l, "filename", "/var/log/syslog"), 0);
    cr_assert_eq(bt_labels_set(&l, "__tenant_id__", "t1"), 0);
    cr_assert_eq(bt_labels_set(&l, "msg",
                               "a\"b\\c\n\x01\xff"
                               "é"),
                 0);
    size_t len;
    const char *c = bt_labels_canon(&l, &len);
    cr_assert_str_eq(c, "{filename=\"/var/log/syslog\", job=\"varlogs\", "
                        "msg=\"a\\\"b\\\\c\\n\\x01\\xffé\"}");
    cr_assert_eq(len, strlen(c));
    cr_assert_str_eq(bt_labels_get(&l, "__tenant_id__"), "t1");
    bt_labels_free(&l);
}

Test(labels, empty_value_deletes_and_cache_invalidates)
{
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "a", "1");
    bt_labels_set(&l, "b", "2");
    uint64_t h1 = bt_labels_hash(&l);
    cr_assert_str_eq(bt_labels_canon(&l, NULL), "{a=\"1\", b=\"2\"}");
    bt_labels_set(&l, "a", "");
    cr_assert_str_eq(bt_labels_canon(&l, NULL), "{b=\"2\"}");
    cr_assert_neq(bt_labels_hash(&l), h1);
    cr_assert_null(bt_labels_get(&l, "a"));
    bt_labels_free(&l);
}

Test(labels, merge_under_keeps_entry_values)
{
    struct bt_labels a, ext;
    bt_labels_init(&a);
    bt_labels_init(&ext);
    bt_labels_set(&a, "job", "x");
    bt_labels_set(&ext, "job", "ext");
    bt_labels_set(&ext, "host", "h1");
    bt_labels_merge_under(&a, &ext);
    cr_assert_str_eq(bt_labels_canon(&a, NULL), "{host=\"h1\", job=\"x\"}");
    struct bt_labels c;
    bt_labels_init(&c);
    bt_labels_copy(&c, &a);
    cr_assert(bt_labels_equal(&a, &c));
    cr_assert_str_eq(bt_labels_canon(&c, NULL), "{host=\"h1\", job=\"x\"}");
    bt_labels_free(&a);
    bt_labels_free(&ext);
    bt_labels_free(&c);
}

/* Equality answers from the stamps when both sets carry one, and compares otherwise: a set
 * changed after its copy was made is never taken for the copy. */
Test(labels, equal_by_stamp_or_by_content)
{
    struct bt_labels a, b, c;
    bt_labels_init(&a);
    bt_labels_init(&b);
    bt_labels_init(&c);
    bt_labels_set(&a, "job", "x");
    bt_labels_set(&b, "job", "x");
    bt_labels_canon(&a, NULL);
    bt_labels_canon(&b, NULL);
    cr_assert_neq(a.stamp, b.stamp);
    cr_assert(bt_labels_equal(&a, &b), "built apart, same labels");
    cr_assert_eq(bt_labels_copy(&c, &a), 0);
    cr_assert_eq(c.stamp, a.stamp);
    cr_assert(bt_labels_equal(&a, &c));
    bt_labels_set(&c, "job", "y"); /* dirty: its stamp no longer speaks for it */
    cr_assert(!bt_labels_equal(&a, &c));
    bt_labels_canon(&c, NULL);
    cr_assert(!bt_labels_equal(&a, &c));
    bt_labels_set(&c, "job", "x");
    cr_assert(bt_labels_equal(&a, &c), "back to the same labels, by content");
    bt_labels_free(&a);
    bt_labels_free(&b);
    bt_labels_free(&c);
}

Test(labels, name_validation)
{
    cr_assert(bt_label_name_valid("job", 3));
    cr_assert(bt_label_name_valid("_a1", 3));
    cr_assert_not(bt_label_name_valid("1a", 2));
    cr_assert_not(bt_label_name_valid("a-b", 3));
    cr_assert_not(bt_label_name_valid("", 0));
}
