#include "source/tail.h"

#include "core/ack.h"
#include "core/labels.h"
#include "core/metrics.h"
#include "source/positions.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "util/utf8.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_READ_BUFFER (256u << 10)
#define MIN_READ_BUFFER 4096u
/* Most directory entries looked at when searching for a copytruncate copy. */
#define COPY_SCAN_MAX 10000

struct bt_tail {
    char *path;
    int fd;
    dev_t dev;
    ino_t ino;
    struct bt_labels labels;
    bt_entry_sink_fn sink;
    void *ctx;
    struct bt_tail_config cfg;
    struct bt_ack_owner *owner;
    /* ctime and size at the last fingerprint check: unchanged means no byte was rewritten (any
     * write moves ctime), so the check can skip reading the head again. */
    struct timespec chk_ctime;
    uint64_t chk_size;
    bool chk_valid;

    char *buf; /* unconsumed bytes: buf[0] is at file offset cons; NULL while idle */
    size_t cap, len;
    uint64_t cons; /* end of the bytes turned into entries (or counted drops) */
    uint64_t size; /* file size at the last check */
    bool skipping; /* inside an over-long line: discard up to the next '\n' */
    bool emitted;  /* something was emitted (seek no longer allowed) */
    int64_t partial_ns, growth_ns;
    uint64_t lines;

    unsigned char fp[BT_FP_MAX];
    uint32_t fp_len;

    struct bt_series *m_read, *m_size, *m_lines, *m_lag, *m_lag_s;
    int64_t acked_ns; /* wall time when every byte of the file was last acknowledged */
    struct bt_series *m_trunc, *m_split, *m_drop, *m_drop_bytes, *m_utf8, *m_lost, *m_recovered;

    /* Copytruncate while stopped: the content before the truncation is known only by the
     * saved fingerprint hash; the next check treats the file as replaced. */
    bool stale_fp;
    uint64_t stale_hash;
    uint32_t stale_len;
    bool recovering; /* every byte read is a recovered one (a file found by identity) */
};

static void metrics_init(struct bt_tail *t)
{
    struct bt_metrics *m = t->cfg.metrics;
    if (!m)
        return;
    char esc[4096 + 64], lab[4096 + 80];
    snprintf(lab, sizeof(lab), "path=\"%s\"", bt_metrics_escape(esc, sizeof(esc), t->path));
    t->m_read =
        bt_metrics_gauge(m, "bpftail_read_bytes_total", "Read offset of a tailed file.", lab);
    t->m_size = bt_metrics_gauge(m, "bpftail_file_bytes_total", "Size of a tailed file.", lab);
    t->m_lines =
        bt_metrics_counter(m, "bpftail_read_lines_total", "Lines read from a tailed file.", lab);
    t->m_lag = bt_metrics_gauge(m, "bpftail_position_lag_bytes",
                                "Bytes of a file not yet acknowledged by Loki.", lab);
    t->m_lag_s = bt_metrics_gauge(
        m, "bpftail_position_lag_seconds",
        "Seconds since every byte of a file was last acknowledged by Loki (0 when caught up).",
        lab);
    t->m_trunc =
        bt_metrics_counter(m, "bpftail_truncated_entries_total",
                           "Entries shortened before sending.", "reason=\"line_too_long\"");
    t->m_split = bt_metrics_counter(m, "bpftail_truncated_entries_total",
                                    "Entries shortened before sending.", "reason=\"line_split\"");
    t->m_drop = bt_metrics_counter(m, "bpftail_dropped_entries_total",
                                   "Entries dropped, by reason.", "reason=\"line_too_long\"");
    t->m_drop_bytes =
        bt_metrics_counter(m, "bpftail_dropped_bytes_total", "Bytes of dropped entries, by reason.",
                           "reason=\"line_too_long\"");
    t->m_utf8 = bt_metrics_counter(m, "bpftail_invalid_utf8_entries_total",
                                   "Entries sent with invalid UTF-8.", NULL);
    t->m_lost = bt_metrics_counter(m, "bpftail_lost_bytes_total",
                                   "Bytes rotated away or truncated before they were read.", NULL);
    t->m_recovered = bt_metrics_counter(
        m, "bpftail_recovered_bytes_total",
        "Bytes read from a rotated file or a copytruncate copy after its name moved on.", NULL);
}

void bt_tail_update_metrics(struct bt_tail *t)
{
    uint64_t c = bt_tail_committed(t);
    bt_gauge_set(t->m_read, (double)bt_tail_read_offset(t));
    bt_gauge_set(t->m_size, (double)t->size);
    bt_gauge_set(t->m_lag, t->size > c ? (double)(t->size - c) : 0);
    int64_t now = bt_now_ns();
    if (c >= t->size || !t->acked_ns)
        t->acked_ns = now;
    bt_gauge_set(t->m_lag_s, c >= t->size ? 0 : (double)(now - t->acked_ns) / 1e9);
}

static int read_fp(struct bt_tail *t, unsigned char *out, size_t want, size_t *got)
{
    size_t n = 0;
    while (n < want) {
        ssize_t r = pread(t->fd, out + n, want - n, (off_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *got = n;
    return 0;
}

struct bt_tail *bt_tail_open(const char *path, const struct bt_tail_config *cfg,
                             const struct bt_labels *labels, bt_entry_sink_fn sink, void *ctx)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO swapped in must not block */
    if (fd < 0)
        return NULL;
    return bt_tail_open_fd(fd, path, cfg, labels, sink, ctx);
}

struct bt_tail *bt_tail_open_fd(int fd, const char *path, const struct bt_tail_config *cfg,
                                const struct bt_labels *labels, bt_entry_sink_fn sink, void *ctx)
{
    struct bt_tail *t = calloc(1, sizeof(*t));
    int err = ENOMEM;
    if (!t) {
        close(fd);
        goto fail;
    }
    t->fd = fd;
    bt_labels_init(&t->labels);
    t->cfg = *cfg;
    t->sink = sink;
    t->ctx = ctx;
    size_t cap = cfg->read_buffer ? cfg->read_buffer : DEFAULT_READ_BUFFER;
    if (cap < MIN_READ_BUFFER)
        cap = MIN_READ_BUFFER;
    if (cfg->max_line_size && cfg->max_line_size + 2 > cap)
        cap = cfg->max_line_size + 2; /* a line of exactly max_line_size plus "\r\n" fits */
    if (cap > BT_TAIL_MAX_BUFFER)
        cap = BT_TAIL_MAX_BUFFER;
    if (t->cfg.max_line_size + 2 > cap)
        t->cfg.max_line_size = cap - 2;
    t->cap = cap;
    t->path = strdup(path);
    t->owner = bt_ack_owner_new(0, cfg->on_commit, cfg->commit_ctx);
    if (!t->path || !t->owner)
        goto fail;
    if (labels && bt_labels_copy(&t->labels, labels) < 0)
        goto fail;
    bt_labels_drop_reserved(&t->labels);
    if (bt_labels_set(&t->labels, "filename", path) < 0)
        goto fail;
    struct stat st;
    if (fstat(t->fd, &st) < 0) {
        err = errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        err = EINVAL;
        goto fail;
    }
    t->dev = st.st_dev;
    t->ino = st.st_ino;
    t->size = (uint64_t)st.st_size;
    t->growth_ns = bt_mono_ns();
    size_t got;
    if (read_fp(t, t->fp, BT_FP_MAX, &got) == 0)
        t->fp_len = (uint32_t)got;
    metrics_init(t);
    return t;
fail:
    bt_tail_close(t);
    errno = err;
    return NULL;
}

void bt_tail_close(struct bt_tail *t)
{
    if (!t)
        return;
    if (t->fd >= 0)
        close(t->fd);
    bt_ack_owner_close(t->owner);
    bt_labels_free(&t->labels);
    free(t->buf);
    free(t->path);
    free(t);
}

int bt_tail_set_labels(struct bt_tail *t, const struct bt_labels *labels)
{
    struct bt_labels n;
    bt_labels_init(&n);
    if (bt_labels_copy(&n, labels) < 0) {
        bt_labels_free(&n);
        return -ENOMEM;
    }
    bt_labels_drop_reserved(&n);
    if (bt_labels_set(&n, "filename", t->path) < 0) {
        bt_labels_free(&n);
        return -ENOMEM;
    }
    bt_labels_free(&t->labels);
    t->labels = n;
    return 0;
}

void bt_tail_set_sink(struct bt_tail *t, bt_entry_sink_fn sink, void *ctx)
{
    t->sink = sink;
    t->ctx = ctx;
}

int bt_tail_seek(struct bt_tail *t, uint64_t offset)
{
    if (t->emitted || t->len || bt_ack_pending(t->owner))
        return -EBUSY;
    t->cons = offset;
    bt_ack_reset(t->owner, offset);
    bt_tail_update_metrics(t);
    return 0;
}

static void emit(struct bt_tail *t, const char *line, size_t n, int64_t ts, struct bt_segment *seg,
                 bool over_long)
{
    if (n && line[n - 1] == '\r')
        n--;
    uint64_t max = t->cfg.max_line_size;
    if (over_long || (max && n > max)) {
        if (!max) {
            bt_counter_inc(t->m_split);
        } else if (t->cfg.truncate) {
            n = n > max ? max : n;
            bt_counter_inc(t->m_trunc);
        } else {
            bt_counter_inc(t->m_drop);
            bt_counter_add(t->m_drop_bytes, (double)n);
            return;
        }
    }
    if (!bt_utf8_valid(line, n))
        bt_counter_inc(t->m_utf8);
    struct bt_entry e = {
        .labels = &t->labels, .ts_ns = ts, .line = line, .line_len = n, .seg = seg};
    t->emitted = true;
    t->lines++;
    t->sink(t->ctx, &e);
}

/* Turns buf[0, upto) into entries under one segment and drops it from the buffer.
 * tail_piece: the last bytes have no '\n' (an over-long line piece or skipped bytes). */
static void consume(struct bt_tail *t, size_t upto, bool tail_piece)
{
    int64_t ts = bt_now_ns();
    struct bt_segment *seg = bt_segment_new(t->owner, t->cons, t->cons + upto);
    uint64_t before = t->lines;
    const char *p = t->buf, *end = t->buf + upto;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            if (t->skipping) {
                if (t->cfg.max_line_size && !t->cfg.truncate)
                    bt_counter_add(t->m_drop_bytes, (double)(end - p));
            } else if (tail_piece) {
                /* The buffer filled without a newline: the line is longer than the cap. */
                emit(t, p, (size_t)(end - p), ts, seg, true);
                t->skipping = t->cfg.max_line_size != 0;
            }
            break;
        }
        if (t->skipping) {
            if (t->cfg.max_line_size && !t->cfg.truncate)
                bt_counter_add(t->m_drop_bytes, (double)(nl - p));
            t->skipping = false;
        } else {
            emit(t, p, (size_t)(nl - p), ts, seg, false);
        }
        p = nl + 1;
    }
    bt_counter_add(t->m_lines, (double)(t->lines - before));
    if (t->recovering)
        bt_counter_add(t->m_recovered, (double)upto);
    bt_segment_unref(seg, 1);
    memmove(t->buf, t->buf + upto, t->len - upto);
    t->len -= upto;
    t->cons += upto;
}

static void process(struct bt_tail *t)
{
    const char *last = memrchr(t->buf, '\n', t->len);
    size_t upto = last ? (size_t)(last - t->buf) + 1 : 0;
    if (!last && (t->len == t->cap || (t->skipping && t->len))) {
        consume(t, t->len, true);
        return;
    }
    if (upto)
        consume(t, upto, false);
    if (t->len)
        t->partial_ns = bt_mono_ns();
}

int bt_tail_read(struct bt_tail *t, size_t max_bytes)
{
    size_t total = 0;
    if (!t->buf) {
        /* Allocated per burst, so thousands of idle files hold no read buffers. */
        t->buf = malloc(t->cap);
        if (!t->buf)
            return -ENOMEM;
    }
    for (;;) {
        size_t room = t->cap - t->len;
        ssize_t r = pread(t->fd, t->buf + t->len, room, (off_t)(t->cons + t->len));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        t->len += (size_t)r;
        total += (size_t)r;
        if (t->cons + t->len > t->size)
            t->size = t->cons + t->len;
        t->growth_ns = bt_mono_ns();
        process(t);
        if (total >= max_bytes)
            return 1;
    }
    if (!t->len) {
        free(t->buf);
        t->buf = NULL;
    }
    bt_tail_update_metrics(t);
    return 0;
}

void bt_tail_flush(struct bt_tail *t)
{
    if (!t->len)
        return;
    if (t->skipping) {
        consume(t, t->len, true);
        t->skipping = false;
        return;
    }
    int64_t ts = bt_now_ns();
    struct bt_segment *seg = bt_segment_new(t->owner, t->cons, t->cons + t->len);
    uint64_t before = t->lines;
    emit(t, t->buf, t->len, ts, seg, false);
    bt_counter_add(t->m_lines, (double)(t->lines - before));
    if (t->recovering)
        bt_counter_add(t->m_recovered, (double)t->len);
    bt_segment_unref(seg, 1);
    t->cons += t->len;
    t->len = 0;
}

static void reset_to_zero(struct bt_tail *t, uint64_t lost)
{
    bt_tail_flush(t);
    bt_counter_add(t->m_lost, (double)lost);
    /* The old content's segments stay with the old owner, which frees itself once they are
     * released; the new content is acknowledged from 0 by a fresh owner. */
    struct bt_ack_owner *o = bt_ack_owner_new(0, t->cfg.on_commit, t->cfg.commit_ctx);
    if (o) {
        bt_ack_owner_close(t->owner);
        t->owner = o;
    } else {
        BT_ERROR("tail", "out of memory resetting a truncated file", "path=%s", t->path);
    }
    t->cons = 0;
    t->len = 0;
    t->skipping = false;
    t->fp_len = 0;
    t->stale_fp = false;
}

/* Opens the regular file dir/name if it is not t's own file, is larger than min_size and starts
 * with t's fingerprint. The fd (size in *size) or -1. */
static int open_copy(const struct bt_tail *t, int dfd, const char *name, uint64_t min_size,
                     uint64_t *size)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
    if (fd < 0)
        return -1;
    struct stat st;
    unsigned char head[BT_FP_MAX];
    size_t n = 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (st.st_dev == t->dev && st.st_ino == t->ino) || (uint64_t)st.st_size <= min_size)
        goto no;
    /* The fingerprint may have grown past what the copy holds: compare what both have. A
     * fingerprint known only by its hash needs all of its bytes. */
    uint32_t fplen = t->stale_fp ? t->stale_len : t->fp_len;
    size_t want = (uint64_t)st.st_size < fplen ? (size_t)st.st_size : fplen;
    if (t->stale_fp && want < fplen)
        goto no;
    while (n < want) {
        ssize_t r = pread(fd, head + n, want - n, (off_t)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto no;
        n += (size_t)r;
    }
    if (t->stale_fp ? bt_hash64(head, want) != t->stale_hash : memcmp(head, t->fp, want) != 0)
        goto no;
    *size = (uint64_t)st.st_size;
    return fd;
no:
    close(fd);
    return -1;
}

/* Copytruncate: finds a sibling of t's path that is a copy of the old content, longer than what
 * was read (roff). Siblings named after the file come first. The fd (size in *size) or -1. */
static int find_copy(const struct bt_tail *t, uint64_t roff, uint64_t *size)
{
    if (!(t->stale_fp ? t->stale_len : t->fp_len))
        return -1; /* nothing identifies the old content */
    char dir[4096];
    const char *slash = strrchr(t->path, '/');
    const char *base = slash ? slash + 1 : t->path;
    size_t dlen = slash ? (size_t)(slash - t->path) : 0;
    if (dlen >= sizeof(dir))
        return -1;
    if (slash && dlen == 0)
        dlen = 1; /* "/name" */
    memcpy(dir, slash ? t->path : ".", slash ? dlen : 1);
    dir[slash ? dlen : 1] = '\0';
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    size_t blen = strlen(base);
    int best = -1;
    uint64_t best_size = 0;
    bool best_named = false;
    struct dirent *de;
    for (int seen = 0; seen < COPY_SCAN_MAX && (de = readdir(d)); seen++) {
        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
            continue;
        if (!strcmp(de->d_name, base))
            continue;
        bool named = !strncmp(de->d_name, base, blen);
        if (best >= 0 && best_named && !named)
            continue;
        uint64_t sz;
        int fd = open_copy(t, dirfd(d), de->d_name, roff, &sz);
        if (fd < 0)
            continue;
        /* Prefer a name derived from the file's, then the longest copy. */
        if (best < 0 || (named && !best_named) || sz > best_size) {
            if (best >= 0)
                close(best);
            best = fd;
            best_size = sz;
            best_named = named;
        } else {
            close(fd);
        }
    }
    closedir(d);
    *size = best_size;
    return best;
}

/* Hands the copy (cfd, csize bytes) to cfg.on_copy as a tailer of its own that continues the
 * old content: same owner (so its committed offset is the old one's), same held partial line,
 * read offset roff. t keeps the fresh owner the new tailer came with. False if it could not. */
static bool hand_over_copy(struct bt_tail *t, int cfd, uint64_t csize)
{
    struct bt_tail *n = bt_tail_open_fd(cfd, t->path, &t->cfg, &t->labels, t->sink, t->ctx);
    if (!n)
        return false;
    struct bt_ack_owner *o = n->owner;
    n->owner = t->owner;
    t->owner = o;
    free(n->buf);
    n->buf = t->buf;
    n->len = t->len;
    n->cons = t->cons;
    n->skipping = t->skipping;
    n->partial_ns = t->partial_ns;
    n->emitted = true;
    n->size = csize;
    n->recovering = true;
    t->buf = NULL;
    t->len = 0;
    t->skipping = false;
    BT_INFO("files", "truncated file: reading its unread bytes from the copy",
            "path=%s offset=%llu copy_size=%llu", t->path, (unsigned long long)n->cons,
            (unsigned long long)csize);
    t->cfg.on_copy(t->cfg.copy_ctx, t, n);
    return true;
}

/* Reads the old content's tail [read offset, copy size) from the copy, under the old owner, as
 * if the file had not been truncated (or hands it over, see bt_tail_config.on_copy). Returns the
 * copy's size, or 0 if there was no copy. */
static uint64_t recover_from_copy(struct bt_tail *t, uint64_t roff)
{
    uint64_t csize;
    /* Handed over, a copy holding exactly what was read is still worth it while some of it is
     * unacknowledged: its record keeps those bytes safe from a crash. */
    bool keep = t->cfg.on_copy && roff > 0 && bt_ack_committed(t->owner) < roff;
    int cfd = find_copy(t, keep ? roff - 1 : roff, &csize);
    if (cfd < 0)
        return 0;
    if (t->cfg.on_copy)
        return hand_over_copy(t, cfd, csize) ? csize : 0;
    int fd = t->fd;
    uint64_t size = t->size;
    t->fd = cfd;
    t->size = csize;
    bool was = t->recovering;
    t->recovering = true;
    int rc = bt_tail_read(t, SIZE_MAX);
    uint64_t got = t->cons + t->len;
    t->recovering = was;
    t->fd = fd;
    t->size = size;
    close(cfd);
    if (rc < 0) {
        BT_WARN("tail", "cannot read the copy of a truncated file", "path=%s err=%s", t->path,
                strerror(-rc));
        return got > roff ? got : 0;
    }
    BT_INFO("tail", "truncated file: unread bytes recovered from its copy",
            "path=%s offset=%llu copy_size=%llu", t->path, (unsigned long long)roff,
            (unsigned long long)csize);
    return got;
}

int bt_tail_check(struct bt_tail *t)
{
    struct stat st;
    if (fstat(t->fd, &st) < 0)
        return -errno;
    int flags = 0;
    uint64_t size = (uint64_t)st.st_size;
    uint64_t roff = t->cons + t->len;
    if (st.st_nlink == 0)
        flags |= BT_TAIL_DELETED;
    bool replaced = size < roff || t->stale_fp;
    unsigned char cur[BT_FP_MAX];
    size_t got = 0;
    bool unchanged = t->chk_valid && size == t->chk_size &&
                     st.st_ctim.tv_sec == t->chk_ctime.tv_sec &&
                     st.st_ctim.tv_nsec == t->chk_ctime.tv_nsec;
    t->chk_ctime = st.st_ctim;
    t->chk_size = size;
    t->chk_valid = true;
    if (!replaced && !unchanged && t->cfg.fingerprint_check &&
        (t->fp_len < BT_FP_MAX || roff > 0)) {
        if (read_fp(t, cur, size < BT_FP_MAX ? (size_t)size : BT_FP_MAX, &got) == 0) {
            size_t common = got < t->fp_len ? got : t->fp_len;
            replaced = memcmp(cur, t->fp, common) != 0;
        }
    }
    if (replaced) {
        uint64_t upto = roff, c = recover_from_copy(t, roff);
        if (c > upto)
            upto = c;
        uint64_t lost = t->size > upto ? t->size - upto : 0;
        if (t->stale_fp && c == 0)
            BT_WARN("files", "file truncated while not watched and no copy of it found",
                    "path=%s offset=%llu lost=unknown", t->path, (unsigned long long)roff);
        BT_INFO("tail", "file truncated, reading from the start", "path=%s offset=%llu size=%llu",
                t->path, (unsigned long long)roff, (unsigned long long)size);
        reset_to_zero(t, lost);
        flags |= BT_TAIL_TRUNCATED;
        got = 0;
        read_fp(t, cur, size < BT_FP_MAX ? (size_t)size : BT_FP_MAX, &got);
    }
    if (got > t->fp_len) {
        memcpy(t->fp, cur, got);
        t->fp_len = (uint32_t)got;
    }
    if (size > t->size)
        t->growth_ns = bt_mono_ns();
    t->size = size;
    if (size > t->cons + t->len)
        flags |= BT_TAIL_GREW;
    return flags;
}

bool bt_tail_unchanged(const struct bt_tail *t, const struct stat *st)
{
    return t->chk_valid && st->st_dev == t->dev && st->st_ino == t->ino && st->st_nlink > 0 &&
           (uint64_t)st->st_size == t->chk_size && st->st_ctim.tv_sec == t->chk_ctime.tv_sec &&
           st->st_ctim.tv_nsec == t->chk_ctime.tv_nsec && t->cons + t->len >= t->chk_size;
}

bool bt_tail_fp_matches(const struct bt_tail *t, uint64_t fp_hash, uint32_t fp_len)
{
    if (fp_len > t->fp_len)
        return false; /* the file is shorter than its recorded fingerprint: not the same */
    return bt_hash64(t->fp, fp_len) == fp_hash;
}

uint64_t bt_tail_fingerprint(const struct bt_tail *t, uint32_t *len)
{
    *len = t->fp_len;
    return bt_hash64(t->fp, t->fp_len);
}

const char *bt_tail_path(const struct bt_tail *t)
{
    return t->path;
}
int bt_tail_fd(const struct bt_tail *t)
{
    return t->fd;
}
dev_t bt_tail_dev(const struct bt_tail *t)
{
    return t->dev;
}
ino_t bt_tail_ino(const struct bt_tail *t)
{
    return t->ino;
}
uint64_t bt_tail_size(const struct bt_tail *t)
{
    return t->size;
}
uint64_t bt_tail_read_offset(const struct bt_tail *t)
{
    return t->cons + t->len;
}
uint64_t bt_tail_committed(const struct bt_tail *t)
{
    return bt_ack_committed(t->owner);
}
size_t bt_tail_partial_len(const struct bt_tail *t)
{
    return t->len;
}
int64_t bt_tail_partial_since(const struct bt_tail *t)
{
    return t->partial_ns;
}
int64_t bt_tail_last_growth(const struct bt_tail *t)
{
    return t->growth_ns;
}
uint64_t bt_tail_lines(const struct bt_tail *t)
{
    return t->lines;
}

int bt_tail_resume_truncated(struct bt_tail *t, uint64_t offset, uint64_t fp_hash, uint32_t fp_len)
{
    int rc = bt_tail_seek(t, offset);
    if (rc < 0)
        return rc;
    t->stale_fp = true;
    t->stale_hash = fp_hash;
    t->stale_len = fp_len;
    t->size = offset; /* the old size is unknown: what the copy lacks cannot be counted */
    return 0;
}

void bt_tail_set_recovering(struct bt_tail *t, bool on)
{
    t->recovering = on;
}
