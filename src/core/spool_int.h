/*
 * spool_int.h: what spool.c (appending, reading, bounds, closing) and spool_recover.c (the
 * commit file, opening a spool left by a previous run) share. Not for other modules.
 */
#ifndef BT_CORE_SPOOL_INT_H
#define BT_CORE_SPOOL_INT_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/spool.h"
#include "util/log.h"

#define HDR 8u
#define DEFAULT_SEGMENT (8u << 20)
#define WBUF_FLUSH (256u << 10) /* an append past this much buffered writes it out */
#define RBUF_MIN (64u << 10)    /* bytes read from a segment file at a time */
#define COMMIT_INTERVAL_NS BT_NS_PER_SEC
#define COMMIT_FILE "commit"
#define COMMIT_TMP "commit.tmp"

/* One segment file. Its bytes [0, disk) are in the file; [disk, size) are the spool's write
 * buffer (only the active segment has any). disk is always a record boundary. */
struct seg {
    struct bt_spool *sp;
    uint64_t base, size, disk, nrec;
    int64_t order;             /* age in the group: creation time (mtime for recovered ones) */
    struct seg *prev, *next;   /* the spool's segments, by base */
    struct seg *gprev, *gnext; /* the group's segments, oldest first */
};

struct bt_spool_group {
    uint64_t max, bytes;
    int64_t last_order;
    struct seg *head, *tail;
    unsigned nspools;
    bool owned; /* private group of a spool opened without one */
};

struct bt_spool {
    struct bt_spool_group *g;
    char *dir;
    int dfd;
    uint64_t seg_limit, max;
    struct seg *head, *tail;
    struct seg *active; /* being appended to; NULL: the next append starts a segment */
    int wfd;
    unsigned char *wbuf;
    size_t wlen, wcap;
    /* Reading: the cursor, the open file of rseg, and a window of a file in rbuf. */
    uint64_t read_off;
    struct seg *rseg;
    int rfd;
    unsigned char *rbuf;
    size_t rcap;
    struct seg *win_seg;
    uint64_t win_off;
    size_t win_len;
    uint64_t end, commit, saved_commit;
    int64_t saved_ns;
    uint64_t bytes, dropped, dropped_bytes, corrupt;
    struct bt_ratelimit corrupt_rl, sync_rl;
};

static inline uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline void seg_name(char out[32], uint64_t base)
{
    snprintf(out, 32, "%016" PRIx64 ".seg", base);
}

/* spool.c */
/* Adds a segment at the end of s and in its group by order. NULL when out of memory. */
struct seg *sp_seg_add(struct bt_spool *s, uint64_t base, uint64_t size, int64_t order);
/* Forgets a segment and deletes its file; the caller has counted what it held. */
void sp_seg_remove(struct bt_spool *s, struct seg *seg);
/* Checks the record at offset off of seg. 1 with *p at its header and its payload length, 0 when
 * it is torn or corrupt (*p NULL if even the header could not be read), -errno on failure. */
int sp_check_record(struct bt_spool *s, struct seg *seg, uint64_t off, const unsigned char **p,
                    uint32_t *len);

/* spool_recover.c */
/* Saves s->commit to the commit file (temp, fsync, rename, fsync of the directory). 0 or -errno. */
int sp_save_commit(struct bt_spool *s);
/* Lists, verifies and loads the segments of a freshly opened spool, and its commit. 0 or -errno
 * with a message in err. */
int sp_recover(struct bt_spool *s, char *err, size_t errlen);

#endif
