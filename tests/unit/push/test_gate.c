#include <criterion/criterion.h>
#include <string.h>

#include "core/entry.h"
#include "push/batch.h"
#include "push/gate.h"
#include "util/hmap.h"

/* A batch of tenant with one entry in each of the given streams (NULL-terminated). */
static struct bt_batch *mk(const char *tenant, const char *const *streams)
{
    struct bt_batch *b = bt_batch_new(tenant);
    cr_assert_not_null(b);
    for (size_t i = 0; streams[i]; i++) {
        struct bt_entry e = {.ts_ns = 1, .line = "x", .line_len = 1};
        const char *s = streams[i];
        cr_assert_eq(bt_batch_add(b, s, strlen(s), bt_hash64(s, strlen(s)), &e), 0);
    }
    return b;
}

#define S(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(gate, a_batch_sharing_a_stream_with_one_in_flight_waits)
{
    struct bt_gate g;
    bt_gate_init(&g);
    struct bt_batch *a = mk("", S("{app=\"a\"}", "{app=\"b\"}"));
    struct bt_batch *b = mk("", S("{app=\"b\"}"));
    struct bt_batch *c = mk("", S("{app=\"c\"}"));
    cr_assert_eq(bt_gate_hold(&g, a), 0);
    cr_assert(bt_gate_blocked(&g, b));
    cr_assert_not(bt_gate_blocked(&g, c));
    struct bt_batch *q[] = {b, c};
    cr_assert_eq(bt_gate_pick(&g, q, 2), 1, "c shares nothing with a: it goes");
    cr_assert_eq(bt_gate_held(&g), 2, "the scan leaves no hold behind");
    bt_gate_release(&g, a);
    cr_assert_eq(bt_gate_held(&g), 0);
    cr_assert_not(bt_gate_blocked(&g, b));
    cr_assert_eq(bt_gate_pick(&g, q, 2), 0, "once a is decided, b goes first");
    bt_batch_release(a);
    bt_batch_release(b);
    bt_batch_release(c);
    bt_gate_free(&g);
}

Test(gate, a_waiting_batch_is_not_overtaken_on_any_of_its_streams)
{
    struct bt_gate g;
    bt_gate_init(&g);
    struct bt_batch *a = mk("", S("{app=\"a\"}"));
    /* w waits for a (stream a) and also carries stream d; x carries only d: letting x go
     * would put a later d entry ahead of w's. y shares nothing with a or w. */
    struct bt_batch *w = mk("", S("{app=\"a\"}", "{app=\"d\"}"));
    struct bt_batch *x = mk("", S("{app=\"d\"}"));
    struct bt_batch *y = mk("", S("{app=\"y\"}"));
    cr_assert_eq(bt_gate_hold(&g, a), 0);
    struct bt_batch *q[] = {w, x, y};
    cr_assert_eq(bt_gate_pick(&g, q, 3), 2);
    struct bt_batch *q2[] = {w, x};
    cr_assert_eq(bt_gate_pick(&g, q2, 2), 2, "nothing may go");
    cr_assert_eq(bt_gate_held(&g), 1);
    bt_batch_release(a);
    bt_batch_release(w);
    bt_batch_release(x);
    bt_batch_release(y);
    bt_gate_free(&g);
}

Test(gate, a_stream_is_tenant_and_labels)
{
    struct bt_gate g;
    bt_gate_init(&g);
    struct bt_batch *a = mk("t1", S("{app=\"a\"}"));
    struct bt_batch *b = mk("t2", S("{app=\"a\"}"));
    struct bt_batch *c = mk("t1", S("{app=\"a\"}"));
    cr_assert_eq(bt_gate_hold(&g, a), 0);
    cr_assert_not(bt_gate_blocked(&g, b), "same labels, other tenant: another stream");
    cr_assert(bt_gate_blocked(&g, c));
    bt_batch_release(a);
    bt_batch_release(b);
    bt_batch_release(c);
    bt_gate_free(&g);
}

Test(gate, holds_are_counted_per_batch)
{
    struct bt_gate g;
    bt_gate_init(&g);
    struct bt_batch *a = mk("", S("{app=\"a\"}"));
    struct bt_batch *b = mk("", S("{app=\"a\"}", "{app=\"b\"}"));
    cr_assert_eq(bt_gate_hold(&g, a), 0);
    cr_assert_eq(bt_gate_hold(&g, b), 0);
    bt_gate_release(&g, a);
    cr_assert(bt_gate_blocked(&g, a), "b still holds stream a");
    bt_gate_release(&g, b);
    cr_assert_eq(bt_gate_held(&g), 0);
    struct bt_batch *q[] = {a};
    cr_assert_eq(bt_gate_pick(&g, q, 1), 0);
    cr_assert_eq(bt_gate_pick(&g, q, 0), 0, "an empty queue picks nothing");
    bt_batch_release(a);
    bt_batch_release(b);
    bt_gate_free(&g);
}
