#include "push/gate.h"
#include "push/batch.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

void bt_gate_init(struct bt_gate *g)
{
    bt_hmap_init(&g->held);
    bt_buf_init(&g->key, (size_t)1 << 30);
}

void bt_gate_free(struct bt_gate *g)
{
    bt_hmap_free(&g->held);
    bt_buf_free(&g->key);
}

static const char *stream_key(struct bt_gate *g, const struct bt_batch *b, size_t i, size_t *len)
{
    bt_buf_reset(&g->key);
    const char *t = b->tenant ? b->tenant : "";
    if (bt_buf_add(&g->key, t, strlen(t) + 1) ||
        bt_buf_add(&g->key, b->streams[i].labels, b->streams[i].labels_len))
        return NULL;
    *len = g->key.len;
    return g->key.ptr;
}

/* Drops one hold on each of the first n streams of b. */
static void release_n(struct bt_gate *g, const struct bt_batch *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *k = stream_key(g, b, i, &len);
        if (!k)
            continue;
        uintptr_t c = (uintptr_t)bt_hmap_get(&g->held, k, len);
        if (c > 1)
            bt_hmap_put(&g->held, k, len, (void *)(c - 1), NULL); /* replaces: no allocation */
        else if (c == 1)
            bt_hmap_del(&g->held, k, len);
    }
}

int bt_gate_hold(struct bt_gate *g, const struct bt_batch *b)
{
    for (size_t i = 0; i < b->n_streams; i++) {
        size_t len;
        const char *k = stream_key(g, b, i, &len);
        uintptr_t c = k ? (uintptr_t)bt_hmap_get(&g->held, k, len) : 0;
        if (!k || bt_hmap_put(&g->held, k, len, (void *)(c + 1), NULL)) {
            release_n(g, b, i);
            return -ENOMEM;
        }
    }
    return 0;
}

void bt_gate_release(struct bt_gate *g, const struct bt_batch *b)
{
    release_n(g, b, b->n_streams);
}

bool bt_gate_blocked(const struct bt_gate *g, const struct bt_batch *b)
{
    struct bt_gate *mg = (struct bt_gate *)g; /* the key scratch only */
    for (size_t i = 0; i < b->n_streams; i++) {
        size_t len;
        const char *k = stream_key(mg, b, i, &len);
        if (!k || bt_hmap_get(&g->held, k, len))
            return true;
    }
    return false;
}

size_t bt_gate_pick(struct bt_gate *g, struct bt_batch *const *q, size_t n)
{
    /* Each blocked batch is held for the rest of the scan, so that no later batch overtakes
     * it on any of its streams; the temporary holds go again before returning. */
    size_t found = n, held = 0;
    for (size_t i = 0; i < n; i++) {
        if (!bt_gate_blocked(g, q[i])) {
            found = i;
            break;
        }
        if (i + 1 == n || bt_gate_hold(g, q[i]))
            break; /* the last one, or no memory to scan further: wait */
        held = i + 1;
    }
    for (size_t j = 0; j < held; j++)
        bt_gate_release(g, q[j]);
    return found;
}

size_t bt_gate_held(const struct bt_gate *g)
{
    return g->held.n;
}
