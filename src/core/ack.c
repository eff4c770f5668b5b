#include "core/ack.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

struct bt_segment {
    struct bt_segment *next;
    struct bt_ack_owner *owner;
    uint64_t start, end;
    uint32_t refs;
    bool abandoned; /* a holder gave it up undelivered: the committed offset stops before it */
};

struct bt_ack_owner {
    struct bt_segment *head, *tail; /* in offset order; released ones removed from the head */
    uint64_t committed;
    uint64_t pending;
    bt_ack_commit_fn fn;
    void *ctx;
    bool closed;
    bool frozen; /* an abandoned segment reached the head: committed never moves again */
};

struct bt_ack_owner *bt_ack_owner_new(uint64_t start, bt_ack_commit_fn fn, void *ctx)
{
    struct bt_ack_owner *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->committed = start;
    o->fn = fn;
    o->ctx = ctx;
    return o;
}

void bt_ack_owner_close(struct bt_ack_owner *o)
{
    if (!o)
        return;
    o->closed = true;
    o->fn = NULL;
    if (o->pending == 0)
        free(o);
}

uint64_t bt_ack_committed(const struct bt_ack_owner *o)
{
    return o->committed;
}

uint64_t bt_ack_pending(const struct bt_ack_owner *o)
{
    return o->pending;
}

void bt_ack_reset(struct bt_ack_owner *o, uint64_t offset)
{
    if (o->pending == 0 && !o->frozen)
        o->committed = offset;
}

struct bt_segment *bt_segment_new(struct bt_ack_owner *o, uint64_t start, uint64_t end)
{
    struct bt_segment *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->owner = o;
    s->start = start;
    s->end = end;
    s->refs = 1;
    if (o->tail)
        o->tail->next = s;
    else
        o->head = s;
    o->tail = s;
    o->pending++;
    return s;
}

void bt_segment_ref(struct bt_segment *s, uint32_t n)
{
    if (s)
        s->refs += n;
}

uint64_t bt_segment_end(const struct bt_segment *s)
{
    return s->end;
}

void bt_segment_abandon(struct bt_segment *s, uint32_t n)
{
    if (!s)
        return;
    s->abandoned = true;
    bt_segment_unref(s, n);
}

void bt_segment_unref(struct bt_segment *s, uint32_t n)
{
    if (!s)
        return;
    s->refs = s->refs > n ? s->refs - n : 0;
    if (s->refs)
        return;
    struct bt_ack_owner *o = s->owner;
    uint64_t before = o->committed;
    /* Release the prefix of segments that have no references left. */
    while (o->head && o->head->refs == 0) {
        struct bt_segment *h = o->head;
        o->head = h->next;
        if (!o->head)
            o->tail = NULL;
        if (h->abandoned)
            o->frozen = true;
        if (!o->frozen)
            o->committed = h->end;
        o->pending--;
        free(h);
    }
    if (o->closed) {
        if (o->pending == 0)
            free(o);
        return;
    }
    if (o->committed != before && o->fn)
        o->fn(o->ctx, o->committed);
}
