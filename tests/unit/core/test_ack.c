#include <criterion/criterion.h>

#include "core/ack.h"

struct commits {
    uint64_t last;
    int calls;
};

static void on_commit(void *ctx, uint64_t committed)
{
    struct commits *c = ctx;
    c->last = committed;
    c->calls++;
}

Test(ack, committed_offset_follows_released_segments_in_order)
{
    struct commits c = {0};
    struct bt_ack_owner *o = bt_ack_owner_new(100, on_commit, &c);
    cr_assert_eq(bt_ack_committed(o), 100);
    struct bt_segment *a = bt_segment_new(o, 100, 150);
    struct bt_segment *b = bt_segment_new(o, 150, 200);
    cr_assert_eq(bt_ack_pending(o), 2);
    cr_assert_eq(bt_segment_end(b), 200);
    bt_segment_unref(a, 1);
    cr_assert_eq(bt_ack_committed(o), 150);
    cr_assert_eq(c.calls, 1);
    cr_assert_eq(c.last, 150);
    bt_segment_unref(b, 1);
    cr_assert_eq(bt_ack_committed(o), 200);
    cr_assert_eq(c.calls, 2);
    cr_assert_eq(bt_ack_pending(o), 0);
    bt_ack_owner_close(o);
}

Test(ack, later_segment_released_first_waits_for_the_earlier_one)
{
    struct commits c = {0};
    struct bt_ack_owner *o = bt_ack_owner_new(0, on_commit, &c);
    struct bt_segment *a = bt_segment_new(o, 0, 10);
    struct bt_segment *b = bt_segment_new(o, 10, 20);
    struct bt_segment *d = bt_segment_new(o, 20, 30);
    bt_segment_unref(d, 1);
    bt_segment_unref(b, 1);
    cr_assert_eq(bt_ack_committed(o), 0);
    cr_assert_eq(c.calls, 0);
    cr_assert_eq(bt_ack_pending(o), 3);
    bt_segment_unref(a, 1);
    cr_assert_eq(bt_ack_committed(o), 30);
    cr_assert_eq(c.calls, 1, "one callback for the whole released prefix");
    cr_assert_eq(bt_ack_pending(o), 0);
    bt_ack_owner_close(o);
}

Test(ack, every_holder_must_let_go_before_release)
{
    struct bt_ack_owner *o = bt_ack_owner_new(0, NULL, NULL);
    struct bt_segment *a = bt_segment_new(o, 0, 10);
    bt_segment_ref(a, 2);   /* two batches (two tenants) hold lines of it */
    bt_segment_unref(a, 1); /* the source lets go */
    cr_assert_eq(bt_ack_committed(o), 0);
    bt_segment_unref(a, 1);
    cr_assert_eq(bt_ack_committed(o), 0);
    bt_segment_unref(a, 1);
    cr_assert_eq(bt_ack_committed(o), 10);
    bt_ack_owner_close(o);
}

Test(ack, null_segments_are_ignored)
{
    bt_segment_ref(NULL, 1);
    bt_segment_unref(NULL, 1);
}

Test(ack, closed_owner_gets_no_callbacks_and_outlives_its_source)
{
    struct commits c = {0};
    struct bt_ack_owner *o = bt_ack_owner_new(0, on_commit, &c);
    struct bt_segment *a = bt_segment_new(o, 0, 10);
    struct bt_segment *b = bt_segment_new(o, 10, 20);
    bt_ack_owner_close(o); /* the file was closed while batches still hold its lines */
    bt_segment_unref(a, 1);
    bt_segment_unref(b, 1); /* frees the owner: no crash, no callback */
    cr_assert_eq(c.calls, 0);
}

Test(ack, reset_moves_the_offset_only_when_nothing_is_pending)
{
    struct bt_ack_owner *o = bt_ack_owner_new(50, NULL, NULL);
    struct bt_segment *a = bt_segment_new(o, 50, 60);
    bt_ack_reset(o, 0);
    cr_assert_eq(bt_ack_committed(o), 50);
    bt_segment_unref(a, 1);
    cr_assert_eq(bt_ack_committed(o), 60);
    bt_ack_reset(o, 0);
    cr_assert_eq(bt_ack_committed(o), 0);
    bt_ack_owner_close(o);
}

static struct bt_segment *reentrant_next;

static void unref_other(void *ctx, uint64_t committed)
{
    (void)committed;
    struct commits *c = ctx;
    c->calls++;
    if (reentrant_next) {
        struct bt_segment *s = reentrant_next;
        reentrant_next = NULL;
        bt_segment_unref(s, 1);
    }
}

Test(ack, callback_may_release_further_segments)
{
    struct commits c = {0};
    struct bt_ack_owner *o = bt_ack_owner_new(0, unref_other, &c);
    struct bt_segment *a = bt_segment_new(o, 0, 10);
    reentrant_next = bt_segment_new(o, 10, 20);
    bt_segment_unref(a, 1);
    cr_assert_eq(bt_ack_committed(o), 20);
    cr_assert_eq(c.calls, 2);
    bt_ack_owner_close(o);
}

Test(ack, abandoned_segment_stops_the_offset_at_its_start_and_frees_the_owner)
{
    struct commits c = {0};
    struct bt_ack_owner *o = bt_ack_owner_new(0, on_commit, &c);
    struct bt_segment *a = bt_segment_new(o, 0, 10);
    struct bt_segment *b = bt_segment_new(o, 10, 20);
    struct bt_segment *d = bt_segment_new(o, 20, 30);
    bt_segment_ref(b, 1); /* two holders of b: one delivers, one gives up */
    bt_segment_unref(a, 1);
    cr_assert_eq(bt_ack_committed(o), 10);
    bt_segment_abandon(b, 1);
    cr_assert_eq(bt_ack_committed(o), 10, "still held by the other holder");
    bt_segment_unref(b, 1);
    cr_assert_eq(bt_ack_committed(o), 10, "an abandoned segment is never committed");
    bt_segment_unref(d, 1); /* later lines delivered: still not past the abandoned ones */
    cr_assert_eq(bt_ack_committed(o), 10);
    cr_assert_eq(bt_ack_pending(o), 0, "released segments are freed all the same");
    bt_ack_reset(o, 0);
    cr_assert_eq(bt_ack_committed(o), 10, "a reset does not thaw it");
    cr_assert_eq(c.calls, 1);
    struct bt_segment *e = bt_segment_new(o, 30, 40);
    bt_ack_owner_close(o);
    bt_segment_abandon(e, 1); /* the last segment frees the closed owner (ASan checks) */
}
