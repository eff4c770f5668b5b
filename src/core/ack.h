/*
 * ack: tracks which read bytes of a source are safely delivered, so positions advance only
 * past lines that Loki accepted (or that were dropped for a counted, final reason).
 *
 * A source (one open file, one container stream) owns a struct bt_ack_owner. Each chunk of
 * complete lines it emits is a struct bt_segment covering byte range [start, end). Every holder
 * of an entry from that chunk (a batch, a stage that buffers lines) takes a reference; the source
 * holds one while emitting. When a segment's count drops to zero it is released, and the owner's
 * committed offset moves to the end of the longest released prefix of segments. So a segment
 * that is still referenced holds back the committed offset of everything after it, which is
 * what makes out-of-order acknowledgements (several tenants, several clients) safe.
 *
 * Loop thread only: no locking. The owner stays alive while it has segments, even after its
 * source closed it (bt_ack_owner_close); it frees itself when the last segment is released.
 */
#ifndef BT_ACK_H
#define BT_ACK_H

#include <stdint.h>

struct bt_ack_owner;
struct bt_segment;

/* Called when the committed offset advances (committed = new offset). */
typedef void (*bt_ack_commit_fn)(void *ctx, uint64_t committed);

/* Creates an owner whose committed offset starts at start. NULL with errno on failure. */
struct bt_ack_owner *bt_ack_owner_new(uint64_t start, bt_ack_commit_fn fn, void *ctx);
/* The source is gone: no more callbacks; the owner frees itself once no segment is pending. */
void bt_ack_owner_close(struct bt_ack_owner *o);
/* Offset up to which everything was acknowledged. */
uint64_t bt_ack_committed(const struct bt_ack_owner *o);
/* Number of segments not yet released. */
uint64_t bt_ack_pending(const struct bt_ack_owner *o);
/* Moves the committed offset when nothing is pending (e.g. after a truncation reset to 0). */
void bt_ack_reset(struct bt_ack_owner *o, uint64_t offset);

/* Starts a segment covering [start, end) with one reference held by the caller. Segments must
 * be created in offset order. NULL with errno on failure. */
struct bt_segment *bt_segment_new(struct bt_ack_owner *o, uint64_t start, uint64_t end);
/* Adds n references. NULL is ignored. */
void bt_segment_ref(struct bt_segment *s, uint32_t n);
/* Drops n references; may release the segment and advance the owner. NULL is ignored. */
void bt_segment_unref(struct bt_segment *s, uint32_t n);
/* Drops n references of a holder that gives its entries up undelivered (a batch abandoned at
 * a shutdown or reload deadline): the segment no longer keeps its owner alive, but the owner's
 * committed offset never moves past the segment's start again, so those bytes are read again
 * after a restart or reopen. NULL is ignored. */
void bt_segment_abandon(struct bt_segment *s, uint32_t n);
uint64_t bt_segment_end(const struct bt_segment *s);

#endif
