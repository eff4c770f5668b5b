/*
 * gate: which sealed batches of one client may be pushed now without reordering a stream.
 *
 * Loki keeps a stream's entries in the order its requests land (and rejects older ones unless
 * the server allows unordered writes), so while a request is undecided (in flight or waiting
 * out a retry backoff) no other request may carry any of its streams: a later batch of the
 * same stream must wait until the earlier one is accepted or finally dropped. A stream is the
 * tenant plus the labels string as sent. The gate counts, per stream, the batches in flight
 * that hold it, and picks from the queue the first batch that touches no held stream and no
 * stream of an earlier batch still waiting (so a waiting batch is never overtaken on any of
 * its streams). Batches with disjoint streams (other tenants, other batcher lanes) go at once.
 *
 * Pure bookkeeping, no locking: the client calls it under its own lock.
 */
#ifndef BT_GATE_H
#define BT_GATE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/hmap.h"

struct bt_batch;

struct bt_gate {
    struct bt_hmap held; /* tenant\0labels -> number of in-flight batches holding it */
    struct bt_buf key;   /* scratch */
};

void bt_gate_init(struct bt_gate *g);
void bt_gate_free(struct bt_gate *g);
/* Marks b's streams held (b goes in flight). 0, or -ENOMEM (nothing held). */
int bt_gate_hold(struct bt_gate *g, const struct bt_batch *b);
/* Releases what bt_gate_hold(b) held. */
void bt_gate_release(struct bt_gate *g, const struct bt_batch *b);
/* True if one of b's streams is held. */
bool bt_gate_blocked(const struct bt_gate *g, const struct bt_batch *b);
/* Index of the first of q[0..n) that may start: none of its streams held, none in an earlier
 * element of q. n if none may (or on ENOMEM: waiting is always safe). */
size_t bt_gate_pick(struct bt_gate *g, struct bt_batch *const *q, size_t n);
/* Streams held (for tests). */
size_t bt_gate_held(const struct bt_gate *g);

#endif
