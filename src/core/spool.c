#include "core/spool_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "util/timeutil.h"

/* ---- groups and segment lists ---- */

struct bt_spool_group *bt_spool_group_new(uint64_t max_bytes)
{
    struct bt_spool_group *g = calloc(1, sizeof(*g));
    if (g)
        g->max = max_bytes;
    return g;
}

void bt_spool_group_free(struct bt_spool_group *g)
{
    if (!g)
        return;
    if (g->nspools)
        BT_ERROR("spool", "spool group freed with open spools; leaking it", "spools=%u",
                 g->nspools);
    else
        free(g);
}

uint64_t bt_spool_group_bytes(const struct bt_spool_group *g)
{
    return g ? g->bytes : 0;
}

static void group_insert(struct bt_spool_group *g, struct seg *seg)
{
    struct seg *after = g->tail;
    while (after && after->order > seg->order)
        after = after->gprev;
    seg->gprev = after;
    seg->gnext = after ? after->gnext : g->head;
    if (seg->gnext)
        seg->gnext->gprev = seg;
    else
        g->tail = seg;
    if (after)
        after->gnext = seg;
    else
        g->head = seg;
}

struct seg *sp_seg_add(struct bt_spool *s, uint64_t base, uint64_t size, int64_t order)
{
    struct seg *seg = calloc(1, sizeof(*seg));
    if (!seg)
        return NULL;
    seg->sp = s;
    seg->base = base;
    seg->size = seg->disk = size;
    seg->order = order;
    seg->prev = s->tail;
    if (s->tail)
        s->tail->next = seg;
    else
        s->head = seg;
    s->tail = seg;
    group_insert(s->g, seg);
    s->bytes += size;
    s->g->bytes += size;
    return seg;
}

/* Forgets a segment and deletes its file; the caller has counted what it held. */
void sp_seg_remove(struct bt_spool *s, struct seg *seg)
{
    char name[32];
    if (seg == s->active) {
        /* Only the bound (and destroy) remove an active segment: its buffer goes with it. */
        s->wlen = 0;
        if (s->wfd >= 0)
            close(s->wfd);
        s->wfd = -1;
        s->active = NULL;
    }
    if (seg == s->rseg) {
        close(s->rfd);
        s->rfd = -1;
        s->rseg = NULL;
    }
    if (seg == s->win_seg)
        s->win_seg = NULL;
    if (s->read_off < seg->base + seg->size && (!seg->prev || s->read_off >= seg->base))
        s->read_off = seg->base + seg->size; /* the reader jumps to what follows */
    seg_name(name, seg->base);
    if (unlinkat(s->dfd, name, 0) < 0 && errno != ENOENT)
        BT_WARN("spool", "cannot delete segment", "dir=%s file=%s err=\"%s\"", s->dir, name,
                strerror(errno));
    *(seg->prev ? &seg->prev->next : &s->head) = seg->next;
    *(seg->next ? &seg->next->prev : &s->tail) = seg->prev;
    *(seg->gprev ? &seg->gprev->gnext : &s->g->head) = seg->gnext;
    *(seg->gnext ? &seg->gnext->gprev : &s->g->tail) = seg->gprev;
    s->bytes -= seg->size;
    s->g->bytes -= seg->size;
    free(seg);
}

/* ---- reading bytes of a segment ---- */

/* Points *p at n bytes at offset off of seg (a part of the file, 0 <= off, off + n <= disk),
 * from the window in rbuf or after reading the file. 0 or -errno (-EIO: the file is short). */
static int window(struct bt_spool *s, struct seg *seg, uint64_t off, size_t n,
                  const unsigned char **p)
{
    if (seg == s->win_seg && off >= s->win_off && off + n <= s->win_off + s->win_len) {
        *p = s->rbuf + (off - s->win_off);
        return 0;
    }
    if (s->rseg != seg) {
        char name[32];
        if (s->rfd >= 0)
            close(s->rfd);
        s->rseg = NULL;
        seg_name(name, seg->base);
        s->rfd = openat(s->dfd, name, O_RDONLY | O_CLOEXEC);
        if (s->rfd < 0)
            return -errno;
        s->rseg = seg;
    }
    size_t want = n > RBUF_MIN ? n : RBUF_MIN;
    if (want > s->rcap) {
        unsigned char *nb = realloc(s->rbuf, want);
        if (!nb)
            return -ENOMEM;
        s->rbuf = nb;
        s->rcap = want;
    }
    want = s->rcap;
    if (want > seg->disk - off)
        want = (size_t)(seg->disk - off);
    s->win_seg = NULL;
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(s->rfd, s->rbuf + got, want - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    s->win_seg = seg;
    s->win_off = off;
    s->win_len = got;
    if (got < n)
        return -EIO;
    *p = s->rbuf;
    return 0;
}

/* Points *p at n bytes at offset off of seg, in the file or in the write buffer. A record is
 * wholly in one or the other, since the buffer is written whole. */
static int seg_bytes(struct bt_spool *s, struct seg *seg, uint64_t off, size_t n,
                     const unsigned char **p)
{
    if (off >= seg->disk) {
        *p = s->wbuf + (off - seg->disk);
        return 0;
    }
    return window(s, seg, off, n, p);
}

/* Checks the record at offset off of seg. 1 with its payload length, 0 when it is torn or
 * corrupt, -errno when the file cannot be read. */
int sp_check_record(struct bt_spool *s, struct seg *seg, uint64_t off, const unsigned char **p,
                    uint32_t *len)
{
    if (seg->size - off < HDR)
        return 0;
    int rc = seg_bytes(s, seg, off, HDR, p);
    if (rc < 0) /* short or vanished file: what it held is gone */
        return rc == -EIO || rc == -ENOENT ? 0 : rc;
    *len = get_le32(*p);
    uint32_t crc = get_le32(*p + 4);
    if (*len > seg->size - off - HDR || (off < seg->disk && off + HDR + *len > seg->disk))
        return 0;
    rc = seg_bytes(s, seg, off, HDR + (size_t)*len, p);
    if (rc < 0) {
        *p = NULL; /* the header may have moved with the buffer */
        return rc == -EIO || rc == -ENOENT ? 0 : rc;
    }
    return bt_crc32c(0, *p + HDR, *len) == crc;
}

/* Records of seg from offset off (a record boundary) to its end: what the bound drops. Reads
 * headers through its own descriptor: the spool's read buffer may hold the record its reader
 * was last given, and the bound may act during another spool's append. */
static uint64_t count_from(struct bt_spool *s, struct seg *seg, uint64_t off)
{
    uint64_t n = 0;
    int fd = -1;
    if (off < seg->disk) {
        char name[32];
        seg_name(name, seg->base);
        fd = openat(s->dfd, name, O_RDONLY | O_CLOEXEC);
    }
    while (off + HDR <= seg->size) {
        unsigned char h[HDR];
        if (off >= seg->disk)
            memcpy(h, s->wbuf + (off - seg->disk), HDR);
        else if (fd < 0 || pread(fd, h, HDR, (off_t)off) != (ssize_t)HDR)
            break;
        off += HDR + get_le32(h);
        n++;
    }
    if (fd >= 0)
        close(fd);
    return n;
}

/* ---- the bound ---- */

/* Removes the oldest segment of s for a bound, counting what was not acknowledged. */
static void drop_oldest(struct bt_spool *s)
{
    struct seg *seg = s->head;
    uint64_t seg_end = seg->base + seg->size;
    if (s->commit < seg_end) {
        uint64_t from = s->commit > seg->base ? s->commit : seg->base;
        s->dropped += from == seg->base ? seg->nrec : count_from(s, seg, from);
        s->dropped_bytes += seg_end - from;
        s->commit = seg_end; /* a final, counted outcome: acks inside it are ignored */
    }
    sp_seg_remove(s, seg);
}

/* Makes room for rlen more bytes under the spool's and the group's limits. */
static void make_room(struct bt_spool *s, uint64_t rlen)
{
    while (s->max && s->head && s->bytes + rlen > s->max)
        drop_oldest(s);
    while (s->g->max && s->g->head && s->g->bytes + rlen > s->g->max)
        drop_oldest(s->g->head->sp);
}

/* ---- open and recovery ---- */

static int mkdirs(const char *dir)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s", dir) >= sizeof(path))
        return -ENAMETOOLONG;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

struct bt_spool *bt_spool_open(struct bt_spool_group *g, const struct bt_spool_config *cfg,
                               char *err, size_t errlen)
{
    if (!cfg || !cfg->dir || !cfg->dir[0]) {
        snprintf(err, errlen, "spool: no directory given");
        errno = EINVAL;
        return NULL;
    }
    struct bt_spool *s = calloc(1, sizeof(*s));
    int rc = -ENOMEM;
    if (!s || !(s->dir = strdup(cfg->dir))) {
        snprintf(err, errlen, "spool %s: out of memory", cfg->dir);
        goto fail;
    }
    s->dfd = s->wfd = s->rfd = -1;
    s->corrupt_rl = (struct bt_ratelimit)BT_RATELIMIT_INIT(10);
    s->sync_rl = (struct bt_ratelimit)BT_RATELIMIT_INIT(60);
    s->g = g ? g : bt_spool_group_new(0);
    if (!s->g) {
        snprintf(err, errlen, "spool %s: out of memory", cfg->dir);
        goto fail;
    }
    s->g->owned = !g;
    s->g->nspools++;
    s->max = cfg->max_bytes;
    s->seg_limit = cfg->segment_bytes ? cfg->segment_bytes : DEFAULT_SEGMENT;
    /* The bound deletes whole segments: keep them small next to it. */
    if (s->max && s->seg_limit > s->max / 4)
        s->seg_limit = s->max / 4;
    if (s->g->max && s->seg_limit > s->g->max / 4)
        s->seg_limit = s->g->max / 4;
    if ((rc = mkdirs(cfg->dir)) < 0) {
        snprintf(err, errlen, "spool %s: cannot create: %s", cfg->dir, strerror(-rc));
        goto fail;
    }
    s->dfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dfd < 0) {
        rc = -errno;
        snprintf(err, errlen, "spool %s: cannot open: %s", cfg->dir, strerror(errno));
        goto fail;
    }
    if ((rc = sp_recover(s, err, errlen)) < 0)
        goto fail;
    s->saved_ns = bt_mono_ns();
    return s;
fail:
    if (s && s->g)
        bt_spool_close(s);
    else if (s)
        free(s->dir), free(s);
    errno = -rc;
    return NULL;
}

/* ---- appending ---- */

static int flush_active(struct bt_spool *s)
{
    size_t done = 0;
    while (done < s->wlen) {
        ssize_t w = write(s->wfd, s->wbuf + done, s->wlen - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int rc = w < 0 ? -errno : -EIO;
            /* Keep every record wholly in the file or wholly in the buffer. */
            if (done && ftruncate(s->wfd, (off_t)s->active->disk) < 0)
                BT_WARN("spool", "cannot undo a partial write", "dir=%s err=\"%s\"", s->dir,
                        strerror(errno));
            return rc;
        }
        done += (size_t)w;
    }
    s->active->disk += s->wlen;
    s->wlen = 0;
    if (s->wcap > 4 * WBUF_FLUSH) { /* after a huge record */
        free(s->wbuf);
        s->wbuf = NULL;
        s->wcap = 0;
    }
    return 0;
}

int bt_spool_flush(struct bt_spool *s)
{
    return s->active ? flush_active(s) : 0;
}

/* Deletes the closed segments whose every byte is acknowledged. */
static void delete_committed(struct bt_spool *s)
{
    while (s->head && s->head != s->active && s->head->base + s->head->size <= s->commit)
        sp_seg_remove(s, s->head);
}

/* Closes the active segment and starts a new one at the end. */
static int roll(struct bt_spool *s)
{
    if (s->active) {
        int rc = flush_active(s);
        if (rc)
            return rc;
        close(s->wfd);
        s->wfd = -1;
        s->active = NULL;
        delete_committed(s);
    }
    char name[32];
    seg_name(name, s->end);
    s->wfd = openat(s->dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (s->wfd < 0)
        return -errno;
    int64_t order = bt_now_ns();
    if (order <= s->g->last_order)
        order = s->g->last_order + 1;
    s->g->last_order = order;
    s->active = sp_seg_add(s, s->end, 0, order);
    if (!s->active) {
        close(s->wfd);
        s->wfd = -1;
        unlinkat(s->dfd, name, 0);
        return -ENOMEM;
    }
    return 0;
}

int bt_spool_append(struct bt_spool *s, const void *rec, size_t len)
{
    uint64_t rlen = HDR + (uint64_t)len;
    if (len > UINT32_MAX || (s->max && rlen > s->max) || (s->g->max && rlen > s->g->max))
        return -EFBIG;
    int rc;
    if (s->wlen && s->wlen + rlen > WBUF_FLUSH && (rc = flush_active(s)) < 0)
        return rc;
    make_room(s, rlen);
    if (!s->active || (s->active->size && s->active->size + rlen > s->seg_limit))
        if ((rc = roll(s)) < 0)
            return rc;
    if (s->wlen + rlen > s->wcap) {
        size_t cap = s->wcap ? s->wcap : WBUF_FLUSH;
        while (cap < s->wlen + rlen)
            cap *= 2;
        unsigned char *nb = realloc(s->wbuf, cap);
        if (!nb)
            return -ENOMEM;
        s->wbuf = nb;
        s->wcap = cap;
    }
    unsigned char *p = s->wbuf + s->wlen;
    put_le32(p, (uint32_t)len);
    put_le32(p + 4, bt_crc32c(0, rec, len));
    if (len)
        memcpy(p + HDR, rec, len);
    s->wlen += rlen;
    s->active->size += rlen;
    s->active->nrec++;
    s->bytes += rlen;
    s->g->bytes += rlen;
    s->end += rlen;
    if (s->wlen >= WBUF_FLUSH)
        flush_active(s); /* the record is buffered; a failure shows at the next flush */
    return 0;
}

/* ---- reading ---- */

/* The segment holding the read cursor (moved past gaps), or NULL when everything is read. */
static struct seg *read_segment(struct bt_spool *s)
{
    struct seg *seg = s->rseg && s->read_off >= s->rseg->base ? s->rseg : s->head;
    while (seg && s->read_off >= seg->base + seg->size)
        seg = seg->next;
    if (seg && s->read_off < seg->base)
        s->read_off = seg->base;
    return seg;
}

int bt_spool_read(struct bt_spool *s, const void **rec, size_t *len, uint64_t *start, uint64_t *end)
{
    struct seg *seg;
    while ((seg = read_segment(s))) {
        const unsigned char *p;
        uint32_t n;
        uint64_t off = s->read_off - seg->base;
        int rc = sp_check_record(s, seg, off, &p, &n);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            *rec = p + HDR;
            *len = n;
            *start = s->read_off;
            s->read_off += HDR + n;
            *end = s->read_off;
            return 1;
        }
        /* Verified at open or written by us: the file changed under us. Skip the segment. */
        uint64_t sup = 0;
        s->corrupt++;
        if (bt_ratelimit_ok(&s->corrupt_rl, &sup))
            BT_WARN("spool", "corrupt record while reading; skipping the rest of the segment",
                    "dir=%s offset=%" PRIu64 " suppressed=%" PRIu64, s->dir, s->read_off, sup);
        s->read_off = seg->base + seg->size;
    }
    return 0;
}

void bt_spool_rewind(struct bt_spool *s)
{
    s->read_off = s->head && s->head->base > s->commit ? s->head->base : s->commit;
}

/* ---- acknowledgements ---- */

void bt_spool_commit(struct bt_spool *s, uint64_t offset)
{
    if (offset <= s->commit || offset > s->end)
        return;
    s->commit = offset;
    if (s->read_off < offset)
        s->read_off = offset;
    delete_committed(s);
    if (bt_mono_ns() - s->saved_ns >= COMMIT_INTERVAL_NS)
        bt_spool_sync(s);
}

uint64_t bt_spool_committed(const struct bt_spool *s)
{
    return s->commit;
}

int bt_spool_sync(struct bt_spool *s)
{
    if (s->commit == s->saved_commit)
        return 0;
    int rc = sp_save_commit(s);
    uint64_t sup = 0;
    if (rc) {
        s->saved_ns = bt_mono_ns(); /* bt_spool_commit tries again in a second */
        if (bt_ratelimit_ok(&s->sync_rl, &sup))
            BT_WARN("spool", "cannot save the commit file", "dir=%s err=\"%s\" suppressed=%" PRIu64,
                    s->dir, strerror(-rc), sup);
    }
    return rc;
}

/* ---- closing ---- */

static void release(struct bt_spool *s, bool remove_files)
{
    while (s->head) {
        if (!remove_files) {
            /* Forget without deleting the file. */
            struct seg *seg = s->head;
            s->head = seg->next;
            *(seg->gprev ? &seg->gprev->gnext : &s->g->head) = seg->gnext;
            *(seg->gnext ? &seg->gnext->gprev : &s->g->tail) = seg->gprev;
            s->g->bytes -= seg->size;
            free(seg);
        } else {
            sp_seg_remove(s, s->head);
        }
    }
    if (s->wfd >= 0)
        close(s->wfd);
    if (s->rfd >= 0)
        close(s->rfd);
    if (s->dfd >= 0)
        close(s->dfd);
    if (--s->g->nspools == 0 && s->g->owned)
        free(s->g);
    free(s->wbuf);
    free(s->rbuf);
    free(s->dir);
    free(s);
}

void bt_spool_close(struct bt_spool *s)
{
    if (!s)
        return;
    if (s->dfd >= 0) {
        int rc = bt_spool_flush(s);
        if (rc)
            BT_ERROR("spool", "cannot write buffered records at close; they are lost",
                     "dir=%s bytes=%zu err=\"%s\"", s->dir, s->wlen, strerror(-rc));
        bt_spool_sync(s);
    }
    release(s, false);
}

void bt_spool_destroy(struct bt_spool *s)
{
    if (!s)
        return;
    char *dir = strdup(s->dir);
    int dfd = dup(s->dfd);
    release(s, true);
    if (dfd >= 0) {
        int fd = dup(dfd);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlinkat(dfd, e->d_name, 0);
        if (d)
            closedir(d);
        else if (fd >= 0)
            close(fd);
        close(dfd);
    }
    if (dir && rmdir(dir) < 0)
        BT_WARN("spool", "cannot remove the spool directory", "dir=%s err=\"%s\"", dir,
                strerror(errno));
    free(dir);
}

/* ---- offsets and counters ---- */

uint64_t bt_spool_start(const struct bt_spool *s)
{
    return s->head ? s->head->base : s->end;
}

uint64_t bt_spool_read_offset(const struct bt_spool *s)
{
    return s->read_off;
}

uint64_t bt_spool_end(const struct bt_spool *s)
{
    return s->end;
}

uint64_t bt_spool_bytes(const struct bt_spool *s)
{
    return s->bytes;
}

uint64_t bt_spool_dropped(const struct bt_spool *s)
{
    return s->dropped;
}

uint64_t bt_spool_dropped_bytes(const struct bt_spool *s)
{
    return s->dropped_bytes;
}

uint64_t bt_spool_corrupt(const struct bt_spool *s)
{
    return s->corrupt;
}

bool bt_spool_empty(const struct bt_spool *s)
{
    return s->commit >= s->end;
}
