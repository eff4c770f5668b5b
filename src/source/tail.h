/*
 * tail: reads one open file from an offset, splits it into lines and hands each line to a sink.
 *
 * The tailer owns its descriptor, its read buffer (one allocation of a fixed size, the hard
 * cap of a held line) and the ack owner of its bytes (ack.h): every read chunk's complete lines
 * form one segment, so the committed offset only moves once whoever took the entries let go of
 * them. It knows nothing of globs, watchers or positions files: source_file decides when to
 * read, when a file rotated away, and where to start; the tailer says what it saw (growth,
 * truncation, deletion) from fstat and the file's fingerprint (its first BT_FP_MAX bytes).
 * Lines: '\n' ends a line, one trailing '\r' is removed, a trailing partial line is held until
 * completed or flushed; lines longer than max_line_size are truncated or dropped and counted,
 * without ever buffering more than the cap. On truncation (copytruncate), the bytes of the old
 * content not yet read are recovered from a copy in the same directory (a regular file, named
 * after the file first, whose head matches the old fingerprint and which is longer than the
 * read offset) under the old ack owner; what no copy holds is counted as lost. Loop thread only.
 */
#ifndef BT_TAIL_H
#define BT_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/ack.h"
#include "core/entry.h"

struct bt_labels;
struct bt_metrics;
struct bt_tail;

/* The most a line buffer may hold, whatever read_buffer/max_line_size say. */
#define BT_TAIL_MAX_BUFFER (64u << 20)

struct bt_tail_config {
    size_t read_buffer;         /* bytes per read(); 0 = 256 KiB */
    uint64_t max_line_size;     /* 0 = no limit (lines past the buffer are split and counted) */
    bool truncate;              /* over-long lines: truncate (true) or drop (false) */
    bool fingerprint_check;     /* compare the first bytes on every check */
    struct bt_metrics *metrics; /* may be NULL */
    /* Called (loop thread) when the committed offset advances; may be NULL. */
    bt_ack_commit_fn on_commit;
    void *commit_ctx;
    /* Copytruncate: if set, the unread bytes of the old content are not read inline from the
     * copy; a new tailer of the copy (taking over the old ack owner and held partial line, at
     * the old read offset, labelled as t) is given to on_copy, which owns it from then on. Its
     * caller can then record it, so a crash while it drains does not lose those bytes. */
    void (*on_copy)(void *ctx, struct bt_tail *t, struct bt_tail *copy);
    void *copy_ctx;
};

/* What bt_tail_check found. */
enum {
    BT_TAIL_GREW = 1 << 0,      /* bytes beyond the read offset */
    BT_TAIL_TRUNCATED = 1 << 1, /* size below the read offset or content replaced: now at 0 */
    BT_TAIL_DELETED = 1 << 2,   /* the file has no name left (st_nlink == 0) */
};

struct bt_tail;

/* Opens path (O_RDONLY|O_CLOEXEC) at offset 0 and reads its fingerprint. labels (borrowed) are
 * copied, "__" labels dropped, filename=path added. Entries go to sink(ctx). NULL with errno. */
struct bt_tail *bt_tail_open(const char *path, const struct bt_tail_config *cfg,
                             const struct bt_labels *labels, bt_entry_sink_fn sink, void *ctx);
/* The same for an open descriptor (taken, closed on failure too); path names the file in its
 * filename label, metrics and logs, and its directory is where copytruncate copies are looked
 * for. A file found by identity under another name keeps the name it was tailed as. */
struct bt_tail *bt_tail_open_fd(int fd, const char *path, const struct bt_tail_config *cfg,
                                const struct bt_labels *labels, bt_entry_sink_fn sink, void *ctx);
/* Sends later entries to sink(ctx) instead (config reload). */
void bt_tail_set_sink(struct bt_tail *t, bt_entry_sink_fn sink, void *ctx);
/* New labels for the entries read from now on (copied as bt_tail_open does). 0 or -ENOMEM
 * (the old labels stay). */
int bt_tail_set_labels(struct bt_tail *t, const struct bt_labels *labels);
/* Emits nothing; closes the fd and the ack owner (which lives on while segments are held). */
void bt_tail_close(struct bt_tail *t);

/* Sets the start offset before the first read (committed offset too). 0 or -EBUSY. */
int bt_tail_seek(struct bt_tail *t, uint64_t offset);
/* Copytruncate while not watched: the file was read up to offset when its head hashed to
 * fp_hash over fp_len bytes, and now holds other content. Like bt_tail_seek, then the next
 * bt_tail_check treats the file as truncated: [offset, copy EOF) is read from a copy in the same
 * directory whose first fp_len bytes hash to fp_hash, then the file from 0. 0 or -EBUSY. */
int bt_tail_resume_truncated(struct bt_tail *t, uint64_t offset, uint64_t fp_hash, uint32_t fp_len);
/* Counts every byte read from now on in bpftail_recovered_bytes_total (a rotated file found by
 * identity after a restart). */
void bt_tail_set_recovering(struct bt_tail *t, bool on);
/* fstat + fingerprint: returns BT_TAIL_* flags, resetting to offset 0 on truncation (unread
 * old bytes read from a copy if one exists, the held partial line flushed, the rest counted as
 * lost). -errno if fstat failed. */
int bt_tail_check(struct bt_tail *t);
/* Reads and emits up to about max_bytes. 1 if more may be waiting, 0 at EOF, or -errno. */
int bt_tail_read(struct bt_tail *t, size_t max_bytes);
/* Emits the held partial line, if any, as a line. */
void bt_tail_flush(struct bt_tail *t);

/* True if the stored identity (fingerprint hash over fp_len bytes) fits this file's content. */
/* True if st (a fresh stat of the file's path) shows the same file, size and ctime as the last
 * bt_tail_check and everything up to that size was read: a reconcile can skip it. */
struct stat;
bool bt_tail_unchanged(const struct bt_tail *t, const struct stat *st);
bool bt_tail_fp_matches(const struct bt_tail *t, uint64_t fp_hash, uint32_t fp_len);
/* Current fingerprint: hash of the first *len bytes known so far. */
uint64_t bt_tail_fingerprint(const struct bt_tail *t, uint32_t *len);

const char *bt_tail_path(const struct bt_tail *t); /* the path it was opened as */
int bt_tail_fd(const struct bt_tail *t);
dev_t bt_tail_dev(const struct bt_tail *t);
ino_t bt_tail_ino(const struct bt_tail *t);
uint64_t bt_tail_size(const struct bt_tail *t);         /* as of the last check */
uint64_t bt_tail_read_offset(const struct bt_tail *t);  /* bytes read (incl. the held partial) */
uint64_t bt_tail_committed(const struct bt_tail *t);    /* acknowledged offset */
size_t bt_tail_partial_len(const struct bt_tail *t);    /* bytes of the held partial line */
int64_t bt_tail_partial_since(const struct bt_tail *t); /* mono ns the partial last grew */
int64_t bt_tail_last_growth(const struct bt_tail *t);   /* mono ns the file last grew */
uint64_t bt_tail_lines(const struct bt_tail *t);        /* lines emitted */
/* Refreshes the per-file gauges (read offset, size, lag). */
void bt_tail_update_metrics(struct bt_tail *t);

#endif
