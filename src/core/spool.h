/*
 * spool: a bounded, crash-safe, on-disk queue of records, for sources that must never stop
 * reading (the Docker plugin's FIFOs; later the receivers). Records are appended at the tail and
 * read back in order; the reader's acknowledgements (through core/ack.h, on the spool's logical
 * offsets) delete whole segment files once everything in them is acknowledged.
 *
 * On disk, a spool is a directory: segment files named by the logical offset of their first
 * byte (16 hex digits + ".seg"), and a "commit" file holding the committed offset (written
 * atomically: temp, fsync, rename). Each record is [u32 length][u32 crc32c of the payload]
 * [payload], little-endian. Opening a spool after a crash keeps every whole record, truncates
 * a torn or corrupt tail record (logged, counted), and starts reading at the saved commit, so
 * nothing acknowledged is read again and nothing appended is lost except a record that was
 * being written when the process died.
 *
 * Bound: spools share a group (struct bt_spool_group) with a byte limit over all their segment
 * files. An append that would pass it first deletes the oldest segment of the group, acked or
 * not (the oldest data anywhere goes first); the records of that segment not yet acknowledged
 * are counted as dropped (bt_spool_dropped). A spool may also have its own limit. The segment
 * being appended to is never deleted; a single record larger than the limit is refused.
 *
 * Appends are buffered in memory and written with one write(2) per bt_spool_flush (no fsync:
 * the page cache survives the process; a power loss may cost the last seconds). Reads are
 * served from the write buffer or the files without blocking on anything but the disk. Loop
 * thread only; no locks.
 */
#ifndef BT_SPOOL_H
#define BT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bt_spool;
struct bt_spool_group;

/* A group of spools sharing max_bytes (0 = unlimited) of segment files. */
struct bt_spool_group *bt_spool_group_new(uint64_t max_bytes);
/* Spools must be closed first. NULL is ignored. */
void bt_spool_group_free(struct bt_spool_group *g);
uint64_t bt_spool_group_bytes(const struct bt_spool_group *g);

struct bt_spool_config {
    const char *dir;        /* created when missing (0700) */
    uint64_t segment_bytes; /* start a new segment past this size (0 = 8 MiB); at most a
                               quarter of a limit, so that the bound drops little at a time */
    uint64_t max_bytes;     /* this spool's own limit (0 = only the group's) */
};

/* Opens (and recovers) the spool in cfg->dir, as part of group g (may be NULL: no shared
 * limit). NULL with a message in err on failure. */
struct bt_spool *bt_spool_open(struct bt_spool_group *g, const struct bt_spool_config *cfg,
                               char *err, size_t errlen);
/* Writes buffered appends and the commit file, closes the files. The directory stays. */
void bt_spool_close(struct bt_spool *s);
/* Closes and deletes the directory with everything in it (a container whose every record was
 * acknowledged). */
void bt_spool_destroy(struct bt_spool *s);

/* Appends one record (copied). 0, -EFBIG (larger than a limit), or -errno of a failed write. */
int bt_spool_append(struct bt_spool *s, const void *rec, size_t len);
/* Writes buffered appends to the segment file. 0 or -errno. */
int bt_spool_flush(struct bt_spool *s);

/* Reads the next unread record: 1 with *rec, *len (valid until the next call on this spool) and
 * the logical offsets [*start, *end) it covers; 0 when nothing is unread; -errno on error. */
int bt_spool_read(struct bt_spool *s, const void **rec, size_t *len, uint64_t *start,
                  uint64_t *end);
/* Moves the read cursor back to the committed offset (after a lost push: read again). */
void bt_spool_rewind(struct bt_spool *s);

/* Everything before offset is acknowledged: deletes the segments wholly before it and saves the
 * commit (at most every commit interval; always at close). Offsets below the current commit or
 * inside dropped segments are ignored. */
void bt_spool_commit(struct bt_spool *s, uint64_t offset);
uint64_t bt_spool_committed(const struct bt_spool *s);
/* Writes the commit file now if the commit moved since it was last saved. 0 or -errno. */
int bt_spool_sync(struct bt_spool *s);

/* Offsets: first byte still on disk, read cursor, and end of the last append. */
uint64_t bt_spool_start(const struct bt_spool *s);
uint64_t bt_spool_read_offset(const struct bt_spool *s);
uint64_t bt_spool_end(const struct bt_spool *s);
uint64_t bt_spool_bytes(const struct bt_spool *s);   /* segment bytes on disk + buffered */
uint64_t bt_spool_dropped(const struct bt_spool *s); /* unacknowledged records dropped by the
                                                        bound, since open */
uint64_t bt_spool_dropped_bytes(const struct bt_spool *s);
uint64_t bt_spool_corrupt(const struct bt_spool *s); /* torn or corrupt records cut at open
                                                        (or met while reading: the rest of
                                                        that segment is skipped) */
bool bt_spool_empty(const struct bt_spool *s);       /* everything appended is committed */

#endif
