#include "source_file.h"

#include "labels.h"
#include "loop.h"
#include "metrics.h"
#include "positions.h"
#include "tail.h"
#include "util/buf.h"
#include "util/glob.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define POLL_PERIOD_NS (250 * BT_NS_PER_MS)
#define SAVE_SOON_NS (20 * BT_NS_PER_MS)
#define READ_BUDGET_CHUNKS 4 /* chunks per file per turn, so one busy file cannot starve others */
#define FD_RESERVE 64        /* descriptors kept for sockets, epoll, BPF maps, the positions file */
#define MIN_OPEN_FILES 16
#define OPEN_RETRY_NS (100 * BT_NS_PER_MS) /* re-walk after acks when opening was held back */

struct target;

/* One open file of a target. */
struct ftail {
    struct target *tg;
    struct bt_tail *t;
    char *path;    /* the name it is tailed under; NULL once that name left it (draining) */
    bool draining; /* renamed away or deleted: read to EOF, close after the grace period */
    bool dead;     /* closed, freed at the next sweep */
    bool more;     /* the last read stopped at the budget */
    bool dirty;    /* an event came while paused */
    uint64_t seen; /* generation of the last glob walk that matched it */
    uint64_t t_flush, t_grace;
};

/* A file left alone until it changes: too old for ignore_older, or closed after idle_close
 * ("parked": its position is recorded and its file watch kept, so a write reopens it). */
struct skipped {
    dev_t dev;
    ino_t ino;
    uint64_t size;
    struct timespec mtime;
    uint64_t seen;
    bool parked;
};

struct idkey {
    dev_t dev;
    ino_t ino;
};

struct target {
    struct bt_files *f;
    char *job, *glob, *exclude;
    struct bt_labels labels;
    enum bt_start_at start_at;
    int64_t ignore_older_ns;
    bt_entry_sink_fn sink;
    void *ctx;
    struct ftail **files;
    size_t n, cap;
    struct bt_hmap skipped; /* path -> struct skipped */
    struct bt_hmap by_id;   /* struct idkey -> live ftail */
    struct bt_hmap by_path; /* ft->path -> live ftail that holds that name */
    uint64_t gen;
    bool initial; /* first scan: start_at applies */
    bool stale;   /* reload: not yet re-added by the new config */
};

struct bt_files {
    struct bt_files_config cfg;
    struct bt_tail_config tcfg;
    struct bt_loop *loop;
    struct bt_positions *pos;
    struct bt_watch *watch;
    int watch_fd;
    struct target **targets;
    size_t ntargets;
    uint64_t t_reconcile, t_save, t_poll, t_kick, t_save_soon, t_open_retry;
    bool paused, need_sweep;
    bool open_blocked; /* a file was not opened for the budget: retry when acks free some */
    bool warned_beyond_eof;
    size_t nactive, max_open;
    int64_t flush_ns, grace_ns, idle_ns, psync_ns;
    size_t budget;
    struct bt_series *m_active;
    struct bt_ratelimit rl_open;
};

static void service(struct ftail *ft);
static void discover(struct target *tg);
static bool make_room(struct bt_files *f);

/* ---- tailer lifetime ---- */

static void update_active(struct bt_files *f)
{
    bt_gauge_set(f->m_active, (double)f->nactive);
}

/* Gives up ft's name (in the index too). */
static void drop_path(struct ftail *ft)
{
    if (!ft->path)
        return;
    struct bt_hmap *m = &ft->tg->by_path;
    if (bt_hmap_get(m, ft->path, strlen(ft->path)) == ft)
        bt_hmap_del(m, ft->path, strlen(ft->path));
    free(ft->path);
    ft->path = NULL;
}

/* Gives ft the name path (taking ownership of it). 0 or -ENOMEM. */
static int set_path(struct ftail *ft, char *path)
{
    drop_path(ft);
    if (bt_hmap_put(&ft->tg->by_path, path, strlen(path), ft, NULL) < 0) {
        free(path);
        return -ENOMEM;
    }
    ft->path = path;
    return 0;
}

/* Is any live tailer labelled with this filename (so its metric series must stay)? */
static bool label_in_use(struct bt_files *f, const char *path, const struct ftail *except)
{
    for (size_t i = 0; i < f->ntargets; i++)
        for (size_t j = 0; j < f->targets[i]->n; j++) {
            struct ftail *o = f->targets[i]->files[j];
            if (o != except && !o->dead && strcmp(bt_tail_path(o->t), path) == 0)
                return true;
        }
    return false;
}

/* Closes without emitting the held partial line: its bytes stay uncommitted, read again. */
static void ftail_release(struct ftail *ft, bool keep_watch)
{
    struct bt_files *f = ft->tg->f;
    if (ft->dead)
        return;
    ft->dead = true;
    f->nactive--;
    struct idkey k = {bt_tail_dev(ft->t), bt_tail_ino(ft->t)};
    if (bt_hmap_get(&ft->tg->by_id, &k, sizeof(k)) == ft)
        bt_hmap_del(&ft->tg->by_id, &k, sizeof(k));
    drop_path(ft);
    if (ft->t_flush)
        bt_loop_del_timer(f->loop, ft->t_flush);
    if (ft->t_grace)
        bt_loop_del_timer(f->loop, ft->t_grace);
    ft->t_flush = ft->t_grace = 0;
    if (!keep_watch)
        bt_watch_remove_file(f->watch, bt_tail_dev(ft->t), bt_tail_ino(ft->t));
    const char *lp = bt_tail_path(ft->t);
    if (f->cfg.metrics && !label_in_use(f, lp, ft)) {
        char esc[PATH_MAX + 64], lab[PATH_MAX + 80];
        snprintf(lab, sizeof(lab), "path=\"%s\"", bt_metrics_escape(esc, sizeof(esc), lp));
        bt_metrics_remove(f->cfg.metrics, "bpftail_read_bytes_total", lab);
        bt_metrics_remove(f->cfg.metrics, "bpftail_file_bytes_total", lab);
        bt_metrics_remove(f->cfg.metrics, "bpftail_read_lines_total", lab);
        bt_metrics_remove(f->cfg.metrics, "bpftail_position_lag_bytes", lab);
        bt_metrics_remove(f->cfg.metrics, "bpftail_position_lag_seconds", lab);
    }
    BT_INFO("tail", "stopped tailing file", "path=%s inode=%llu lines=%llu", lp,
            (unsigned long long)bt_tail_ino(ft->t), (unsigned long long)bt_tail_lines(ft->t));
    f->need_sweep = true;
}

static void ftail_close(struct ftail *ft, bool keep_watch)
{
    if (ft->dead)
        return;
    bt_tail_flush(ft->t);
    ftail_release(ft, keep_watch);
}

/* Frees closed tailers; called where no tailer pointer is held. */
static void sweep(struct bt_files *f)
{
    if (!f->need_sweep)
        return;
    f->need_sweep = false;
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *tg = f->targets[i];
        for (size_t j = 0; j < tg->n;) {
            struct ftail *ft = tg->files[j];
            if (!ft->dead) {
                j++;
                continue;
            }
            bt_tail_close(ft->t);
            free(ft);
            tg->files[j] = tg->files[--tg->n];
        }
    }
    update_active(f);
}

/* The name no longer leads to this file: keep reading what it has, then let it go. */
static void lose_path(struct ftail *ft, bool forget_position)
{
    struct bt_files *f = ft->tg->f;
    if (ft->path) {
        BT_INFO("tail", "file rotated away or deleted, draining", "path=%s inode=%llu", ft->path,
                (unsigned long long)bt_tail_ino(ft->t));
        const struct bt_position *p = bt_positions_get(f->pos, ft->path);
        if (forget_position && p && (!p->has_identity || p->ino == bt_tail_ino(ft->t)))
            bt_positions_remove(f->pos, ft->path);
        drop_path(ft);
    }
    ft->draining = true;
    service(ft);
}

static struct ftail *find_by_id(struct target *tg, dev_t dev, ino_t ino)
{
    struct idkey k = {dev, ino};
    return bt_hmap_get(&tg->by_id, &k, sizeof(k));
}

static struct ftail *find_by_path(struct target *tg, const char *path)
{
    return bt_hmap_get(&tg->by_path, path, strlen(path));
}

/* ---- timers of one tailer ---- */

static void on_flush_timer(struct bt_loop *l, uint64_t id, void *arg)
{
    struct ftail *ft = arg;
    struct bt_files *f = ft->tg->f;
    ft->t_flush = 0;
    if (!bt_tail_partial_len(ft->t))
        return;
    int64_t due = bt_tail_partial_since(ft->t) + f->flush_ns - bt_mono_ns();
    if (due > 0) {
        ft->t_flush = bt_loop_add_timer(l, due, 0, on_flush_timer, ft);
        return;
    }
    if (f->paused) {
        ft->dirty = true;
        return;
    }
    bt_tail_flush(ft->t);
}

static void on_grace_timer(struct bt_loop *l, uint64_t id, void *arg)
{
    struct ftail *ft = arg;
    struct bt_files *f = ft->tg->f;
    ft->t_grace = 0;
    if (f->paused) {
        ft->dirty = true;
        return;
    }
    service(ft); /* read what came since, and re-arm if it grew */
    if (!ft->dead && ft->draining && !ft->more &&
        bt_mono_ns() - bt_tail_last_growth(ft->t) >= f->grace_ns)
        ftail_close(ft, false);
    sweep(f);
}

static void on_kick(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_files *f = arg;
    f->t_kick = 0;
    for (size_t i = 0; i < f->ntargets && !f->paused; i++)
        for (size_t j = 0; j < f->targets[i]->n; j++) {
            struct ftail *ft = f->targets[i]->files[j];
            if (ft->more && !ft->dead)
                service(ft);
        }
    sweep(f);
}

static void arm_timers(struct ftail *ft, bool at_eof)
{
    struct bt_files *f = ft->tg->f;
    if (bt_tail_partial_len(ft->t) && !ft->t_flush) {
        int64_t due = bt_tail_partial_since(ft->t) + f->flush_ns - bt_mono_ns();
        ft->t_flush = bt_loop_add_timer(f->loop, due, 0, on_flush_timer, ft);
    }
    if (ft->draining && at_eof && !ft->t_grace) {
        int64_t due = bt_tail_last_growth(ft->t) + f->grace_ns - bt_mono_ns();
        ft->t_grace = bt_loop_add_timer(f->loop, due > 0 ? due : 0, 0, on_grace_timer, ft);
    }
    if (ft->more && !f->t_kick)
        f->t_kick = bt_loop_add_timer(f->loop, 0, 0, on_kick, f);
}

/* Checks the file (truncation, deletion, fingerprint) and reads a budget's worth of it. */
static void service(struct ftail *ft)
{
    struct bt_files *f = ft->tg->f;
    if (ft->dead)
        return;
    if (f->paused) {
        ft->dirty = true;
        return;
    }
    ft->dirty = false;
    int flags = bt_tail_check(ft->t);
    if (flags < 0) {
        BT_WARN("tail", "cannot stat open file", "path=%s err=%s", bt_tail_path(ft->t),
                strerror(-flags));
        ftail_close(ft, false);
        return;
    }
    if ((flags & BT_TAIL_DELETED) && !ft->draining) {
        /* Read what is left first, then give the name up (and its position with it). */
        ft->draining = true;
        if (ft->path) {
            const struct bt_position *p = bt_positions_get(f->pos, ft->path);
            if (p && (!p->has_identity || p->ino == bt_tail_ino(ft->t)))
                bt_positions_remove(f->pos, ft->path);
            drop_path(ft);
        }
    }
    int rc = bt_tail_read(ft->t, f->budget);
    if (rc < 0) {
        BT_WARN("tail", "read failed, closing file", "path=%s err=%s", bt_tail_path(ft->t),
                strerror(-rc));
        ftail_close(ft, false);
        return;
    }
    ft->more = rc == 1;
    arm_timers(ft, rc == 0);
}

/* ---- discovery ---- */

static bool excluded(const struct target *tg, const char *path)
{
    return tg->exclude && bt_glob_match(tg->exclude, path);
}

/* Where a newly opened file starts, from its record, the identity index, or the policy. */
static uint64_t start_offset(struct target *tg, struct bt_tail *t, const char *path, bool *known)
{
    struct bt_files *f = tg->f;
    uint64_t size = bt_tail_size(t);
    const struct bt_position *p = bt_positions_get(f->pos, path);
    *known = true;
    bool same =
        p && (!p->has_identity || /* promtail's record: path and offset only */
              (p->dev == bt_tail_dev(t) && p->ino == bt_tail_ino(t) &&
               (!f->tcfg.fingerprint_check || bt_tail_fp_matches(t, p->fp_hash, p->fp_len))));
    if (same && p->offset > size) {
        /* A damaged positions file, or the file shrank while bpftail was stopped. */
        if (!f->warned_beyond_eof)
            BT_WARN("tail", "stored offset beyond the end of the file, reading from the start",
                    "path=%s offset=%llu size=%llu", path, (unsigned long long)p->offset,
                    (unsigned long long)size);
        f->warned_beyond_eof = true;
        return 0;
    }
    if (same)
        return p->offset;
    /* Renamed while we were away: the same file under another recorded name. */
    const struct bt_position *q = NULL;
    const char *other = bt_positions_find_inode(f->pos, bt_tail_dev(t), bt_tail_ino(t), &q);
    if (other && strcmp(other, path) != 0 && bt_tail_fp_matches(t, q->fp_hash, q->fp_len) &&
        q->offset <= size) {
        BT_INFO("tail", "resuming file renamed while stopped", "path=%s was=%s offset=%llu", path,
                other, (unsigned long long)q->offset);
        return q->offset;
    }
    if (p)
        return 0; /* recorded file replaced or inode reused */
    *known = false;
    return tg->initial && tg->start_at == BT_START_END ? size : 0;
}

static bool too_old(const struct target *tg, const struct stat *st)
{
    if (tg->ignore_older_ns <= 0)
        return false;
    int64_t mt = (int64_t)st->st_mtim.tv_sec * BT_NS_PER_SEC + st->st_mtim.tv_nsec;
    return bt_now_ns() - mt > tg->ignore_older_ns;
}

/* Drops path's skipped entry (and the watch a parked file kept). */
static void forget_skip(struct target *tg, const char *key, size_t klen)
{
    struct skipped *sk = bt_hmap_del(&tg->skipped, key, klen);
    if (!sk)
        return;
    if (sk->parked)
        bt_watch_remove_file(tg->f->watch, sk->dev, sk->ino);
    free(sk);
}

static int remember_skip(struct target *tg, const char *path, const struct stat *st)
{
    struct skipped *s = bt_hmap_get(&tg->skipped, path, strlen(path));
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s || bt_hmap_put(&tg->skipped, path, strlen(path), s, NULL) < 0) {
            free(s);
            return -ENOMEM;
        }
        s->dev = st->st_dev;
        s->ino = st->st_ino;
        s->size = (uint64_t)st->st_size;
        s->mtime = st->st_mtim;
        BT_DEBUG("tail", "ignoring old file until it changes", "path=%s", path);
    }
    s->seen = tg->gen;
    return 0;
}

static int grow(struct target *tg)
{
    if (tg->n < tg->cap)
        return 0;
    size_t nc = tg->cap ? tg->cap * 2 : 8;
    struct ftail **nf = realloc(tg->files, nc * sizeof(*nf));
    if (!nf)
        return -ENOMEM;
    tg->files = nf;
    tg->cap = nc;
    return 0;
}

/* Registers an opened tailer under path and starts reading it at off. */
static void add_ftail(struct target *tg, struct bt_tail *t, const char *path, uint64_t off)
{
    struct bt_files *f = tg->f;
    struct ftail *ft = calloc(1, sizeof(*ft));
    char *name = strdup(path);
    struct idkey k = {bt_tail_dev(t), bt_tail_ino(t)};
    if (ft)
        ft->tg = tg;
    if (!ft || !name || grow(tg) < 0 || bt_hmap_put(&tg->by_id, &k, sizeof(k), ft, NULL) < 0) {
        free(name);
        free(ft);
        bt_tail_close(t);
        BT_ERROR("tail", "out of memory opening file", "path=%s", path);
        return;
    }
    if (set_path(ft, name) < 0) {
        bt_hmap_del(&tg->by_id, &k, sizeof(k));
        free(ft);
        bt_tail_close(t);
        BT_ERROR("tail", "out of memory opening file", "path=%s", path);
        return;
    }
    ft->t = t;
    ft->seen = tg->gen;
    tg->files[tg->n++] = ft;
    f->nactive++;
    bt_tail_seek(t, off);
    int rc = bt_watch_add_file(f->watch, path, bt_tail_dev(t), bt_tail_ino(t));
    if (rc < 0 && rc != -ESTALE)
        BT_DEBUG("tail", "no file watch", "path=%s err=%s", path, strerror(-rc));
    BT_INFO("tail", "tailing file", "path=%s inode=%llu offset=%llu", path,
            (unsigned long long)bt_tail_ino(t), (unsigned long long)off);
    update_active(f);
    service(ft);
}

/* For a file left alone by ignore_older: false if it is still unchanged (leave it), else
 * true with *from set to where its new bytes start (UINT64_MAX: no such point). */
static bool skipped_changed(struct target *tg, const char *path, const struct stat *st,
                            uint64_t *from)
{
    *from = UINT64_MAX;
    struct skipped *sk = bt_hmap_get(&tg->skipped, path, strlen(path));
    if (!sk)
        return true;
    bool same = sk->dev == st->st_dev && sk->ino == st->st_ino;
    bool changed = !same || (uint64_t)st->st_size != sk->size ||
                   st->st_mtim.tv_sec != sk->mtime.tv_sec ||
                   st->st_mtim.tv_nsec != sk->mtime.tv_nsec;
    if (!changed) {
        sk->seen = tg->gen;
        return false;
    }
    if (same && (uint64_t)st->st_size >= sk->size && !sk->parked)
        *from = sk->size;
    forget_skip(tg, path, strlen(path));
    return true;
}

static void open_file(struct target *tg, const char *path, const struct stat *st)
{
    struct bt_files *f = tg->f;
    /* A name that now holds another file: the old one rotated away. */
    struct ftail *old = find_by_path(tg, path);
    if (old)
        lose_path(old, false);
    struct skipped *sk = bt_hmap_get(&tg->skipped, path, strlen(path));
    if (sk && sk->dev == st->st_dev && sk->ino == st->st_ino && (uint64_t)st->st_size == sk->size &&
        st->st_mtim.tv_sec == sk->mtime.tv_sec && st->st_mtim.tv_nsec == sk->mtime.tv_nsec) {
        sk->seen = tg->gen; /* unchanged: left alone, whatever the budget */
        return;
    }
    if (!make_room(f))
        return; /* at the open-file budget with nothing parkable: retried after acks */
    uint64_t skip_from;
    if (!skipped_changed(tg, path, st, &skip_from))
        return;
    struct bt_tail *t = bt_tail_open(path, &f->tcfg, &tg->labels, tg->sink, tg->ctx);
    if (!t && (errno == EMFILE || errno == ENFILE) && f->nactive >= MIN_OPEN_FILES) {
        /* Something else took descriptors: shrink the budget to what fits and retry later. */
        BT_WARN("tail", "out of descriptors, lowering the open-file budget",
                "max_open_files=%zu now=%zu", f->max_open, f->nactive);
        f->max_open = f->nactive;
        f->open_blocked = true;
        return;
    }
    if (!t) {
        uint64_t sup;
        if (bt_ratelimit_ok(&f->rl_open, &sup))
            BT_WARN("tail", "cannot open file", "path=%s err=%s suppressed=%llu", path,
                    strerror(errno), (unsigned long long)sup);
        return;
    }
    /* The descriptor is the truth: the name may have changed since the stat. */
    if (find_by_id(tg, bt_tail_dev(t), bt_tail_ino(t))) {
        bt_tail_close(t);
        return;
    }
    bool known;
    uint64_t off = start_offset(tg, t, path, &known);
    if (skip_from != UINT64_MAX && !known) {
        off = skip_from;
    } else if (!known && too_old(tg, st)) {
        bt_tail_close(t);
        remember_skip(tg, path, st);
        return;
    }
    add_ftail(tg, t, path, off);
}

/* A path that matches the target's glob exists as a regular file (st). */
static void consider(struct target *tg, const char *path, const struct stat *st)
{
    if (excluded(tg, path))
        return;
    struct ftail *ft = find_by_id(tg, st->st_dev, st->st_ino);
    if (ft && !ft->dead && !ft->dirty && ft->path && strcmp(ft->path, path) == 0 &&
        bt_tail_unchanged(ft->t, st)) {
        ft->seen = tg->gen; /* nothing happened to it since its last check */
        return;
    }
    if (ft) {
        ft->seen = tg->gen;
        if (!ft->path || strcmp(ft->path, path) != 0) {
            /* Same file under a new matching name: keep the one tailer, adopt the name. */
            struct ftail *holder = find_by_path(tg, path);
            if (holder && holder != ft)
                lose_path(holder, false);
            char *np = strdup(path);
            if (np && set_path(ft, np) == 0) {
                ft->draining = false;
                if (ft->t_grace) {
                    bt_loop_del_timer(tg->f->loop, ft->t_grace);
                    ft->t_grace = 0;
                }
            }
        }
        service(ft);
        return;
    }
    open_file(tg, path, st);
}

static int walk_cb(void *ctx, const char *path, bool is_dir, const struct stat *st)
{
    struct target *tg = ctx;
    if (is_dir) {
        int rc = bt_watch_add_dir(tg->f->watch, path, st->st_dev, st->st_ino);
        if (rc < 0 && rc != -ENOENT)
            BT_DEBUG("tail", "no directory watch", "path=%s err=%s", path, strerror(-rc));
        return 0;
    }
    consider(tg, path, st);
    return 0;
}

/* Closes a file idle for idle_close whose bytes are all acknowledged, keeping its record and
 * its watch so the next write (or the next walk seeing it changed) reopens it where it was. */
/* force: for the open-file budget, however recently it grew. True if it was closed. */
static bool park(struct ftail *ft, bool force)
{
    struct target *tg = ft->tg;
    struct bt_files *f = tg->f;
    struct bt_tail *t = ft->t;
    struct stat st;
    if ((!force && f->idle_ns <= 0) || ft->dead || !ft->path || ft->draining || ft->more ||
        bt_tail_partial_len(t) || bt_tail_committed(t) != bt_tail_read_offset(t) ||
        (!force && bt_mono_ns() - bt_tail_last_growth(t) < f->idle_ns) || stat(ft->path, &st) < 0 ||
        st.st_dev != bt_tail_dev(t) || st.st_ino != bt_tail_ino(t) ||
        (uint64_t)st.st_size != bt_tail_read_offset(t))
        return false;
    struct bt_position p = {.offset = bt_tail_committed(t),
                            .has_identity = true,
                            .dev = bt_tail_dev(t),
                            .ino = bt_tail_ino(t)};
    p.fp_hash = bt_tail_fingerprint(t, &p.fp_len);
    if (bt_positions_set(f->pos, ft->path, &p) < 0 || remember_skip(tg, ft->path, &st) < 0)
        return false;
    ((struct skipped *)bt_hmap_get(&tg->skipped, ft->path, strlen(ft->path)))->parked = true;
    BT_DEBUG("tail", force ? "closing file for the open-file budget" : "closing idle file",
             "path=%s", ft->path);
    ftail_close(ft, true);
    return true;
}

static void maybe_park(struct ftail *ft)
{
    park(ft, false);
}

static void on_open_retry(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_files *f = arg;
    f->t_open_retry = 0;
    if (!f->open_blocked || f->paused)
        return;
    f->open_blocked = false;
    for (size_t i = 0; i < f->ntargets; i++)
        discover(f->targets[i]);
    sweep(f);
}

/* Open-file budget: true if one more file may be opened, parking the least recently grown
 * fully acknowledged file if the budget is used up. Files with unacknowledged bytes are never
 * parked; if all are, opening waits (open_blocked) until an acknowledgement frees one. */
static bool make_room(struct bt_files *f)
{
    if (f->open_blocked && f->nactive >= f->max_open)
        return false; /* nothing was acknowledged since the last look */
    while (f->nactive >= f->max_open) {
        struct ftail *lru = NULL;
        for (size_t i = 0; i < f->ntargets; i++)
            for (size_t j = 0; j < f->targets[i]->n; j++) {
                struct ftail *ft = f->targets[i]->files[j];
                struct bt_tail *t = ft->t;
                if (ft->dead || !ft->path || ft->draining || ft->more || bt_tail_partial_len(t) ||
                    bt_tail_committed(t) != bt_tail_read_offset(t))
                    continue;
                if (!lru || bt_tail_last_growth(t) < bt_tail_last_growth(lru->t))
                    lru = ft;
            }
        if (!lru || !park(lru, true)) {
            if (!f->open_blocked)
                BT_DEBUG("tail", "open-file budget used up, waiting for acknowledgements",
                         "max_open_files=%zu", f->max_open);
            f->open_blocked = true;
            return false;
        }
    }
    return true;
}

/* A write to a parked file: reopen it if its name still leads to it. */
static void unpark(struct target *tg, dev_t dev, ino_t ino)
{
    size_t it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&tg->skipped, &it)) != NULL) {
        struct skipped *sk = s->val;
        if (!sk->parked || sk->dev != dev || sk->ino != ino)
            continue;
        char path[PATH_MAX];
        struct stat st;
        snprintf(path, sizeof(path), "%s", s->key);
        if (stat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino &&
            bt_glob_match(tg->glob, path))
            open_file(tg, path, &st);
        return;
    }
}

/* The glob's root does not exist yet: watch the nearest directory above it that does, so its
 * creation is an event rather than something the next reconcile notices. */
static void watch_ancestor(struct target *tg)
{
    char dir[PATH_MAX];
    struct stat st;
    if (bt_glob_root(tg->glob, dir, sizeof(dir)) < 0)
        return;
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            return;
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
            bt_watch_add_dir(tg->f->watch, dir, st.st_dev, st.st_ino);
            return;
        }
        if (slash == dir)
            return;
    }
}

/* Re-globs the target, opens new matches and lets go of files no longer matched. */
static void discover(struct target *tg)
{
    tg->gen++;
    int rc = bt_glob_walk(tg->glob, walk_cb, tg);
    if (rc == -ENOENT)
        watch_ancestor(tg);
    if (rc < 0 && rc != -ENOENT && rc != -ENOTDIR)
        BT_WARN("tail", "glob walk incomplete", "glob=%s err=%s", tg->glob, strerror(-rc));
    if (rc == -E2BIG)
        return; /* partial view: do not close files that were merely not reached */
    for (size_t i = 0; i < tg->n; i++) {
        struct ftail *ft = tg->files[i];
        if (ft->dead)
            continue;
        if (ft->path && ft->seen != tg->gen)
            lose_path(ft, true); /* gone, or no longer matched: drain and forget */
        else if (!ft->path)
            service(ft); /* draining: matched ones were serviced by the walk */
        else
            maybe_park(ft);
    }
    size_t it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&tg->skipped, &it)) != NULL)
        if (((struct skipped *)s->val)->seen != tg->gen)
            forget_skip(tg, s->key, s->klen);
}

/* ---- events ---- */

static void on_name(struct bt_files *f, const char *dir, const char *name)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", strcmp(dir, "/") ? dir : "", name) >=
        sizeof(path))
        return;
    struct stat st;
    bool exists = stat(path, &st) == 0;
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *tg = f->targets[i];
        if (exists && S_ISDIR(st.st_mode)) {
            if (bt_glob_match_dir(tg->glob, path))
                discover(tg); /* a new directory that can hold matches */
            continue;
        }
        struct ftail *owner = find_by_path(tg, path);
        if (owner &&
            (!exists || st.st_dev != bt_tail_dev(owner->t) || st.st_ino != bt_tail_ino(owner->t)))
            lose_path(owner, !exists);
        if (exists && S_ISREG(st.st_mode) && bt_glob_match(tg->glob, path)) {
            tg->gen++;
            consider(tg, path, &st);
        }
    }
}

static void on_watch_event(void *ctx, const struct bt_watch_event *ev)
{
    struct bt_files *f = ctx;
    if (ev->mask & BT_WATCH_OVERFLOW) {
        BT_WARN("tail", "file events lost, rescanning", NULL);
        for (size_t i = 0; i < f->ntargets; i++)
            discover(f->targets[i]);
        return;
    }
    if (ev->dir && ev->name) {
        on_name(f, ev->dir, ev->name);
        return;
    }
    if (ev->dir && !ev->name && (ev->mask & (BT_WATCH_MOVED | BT_WATCH_DELETE))) {
        char d[PATH_MAX];
        snprintf(d, sizeof(d), "%s", ev->dir);
        bt_watch_remove_dir(f->watch, d); /* re-added by the next walk if it comes back */
        return;
    }
    if (!ev->ino)
        return;
    for (size_t i = 0; i < f->ntargets; i++) {
        struct ftail *ft = find_by_id(f->targets[i], ev->dev, ev->ino);
        if (!ft) {
            if (ev->mask & BT_WATCH_MODIFY)
                unpark(f->targets[i], ev->dev, ev->ino);
            continue;
        }
        if (ft->path && (ev->mask & (BT_WATCH_MOVED | BT_WATCH_DELETE))) {
            struct stat st;
            if (stat(ft->path, &st) < 0 || st.st_ino != ev->ino || st.st_dev != ev->dev)
                lose_path(ft, false);
        }
        service(ft);
    }
}

static void on_watch_fd(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_files *f = arg;
    int rc = bt_watch_dispatch(f->watch);
    if (rc < 0)
        BT_WARN("watch", "reading file events failed", "err=%s", strerror(-rc));
    sweep(f);
}

/* ---- periodic work ---- */

static void on_reconcile(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_files *f = arg;
    for (size_t i = 0; i < f->ntargets; i++)
        discover(f->targets[i]);
    sweep(f);
}

static void on_poll(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_files *f = arg;
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *tg = f->targets[i];
        bool rotated = false;
        for (size_t j = 0; j < tg->n; j++) {
            struct ftail *ft = tg->files[j];
            if (ft->path && !ft->draining) {
                /* No events: notice a replaced name here too. */
                struct stat st;
                if (stat(ft->path, &st) < 0 || st.st_ino != bt_tail_ino(ft->t) ||
                    st.st_dev != bt_tail_dev(ft->t)) {
                    lose_path(ft, false);
                    rotated = true;
                    continue;
                }
            }
            service(ft);
        }
        if (rotated)
            discover(tg); /* pick up the new file now rather than at the next reconcile */
    }
    sweep(f);
}

int bt_files_save_positions(struct bt_files *f)
{
    for (size_t i = 0; i < f->ntargets; i++)
        for (size_t j = 0; j < f->targets[i]->n; j++) {
            struct ftail *ft = f->targets[i]->files[j];
            if (ft->dead || !ft->path)
                continue;
            struct bt_position p = {.offset = bt_tail_committed(ft->t),
                                    .has_identity = true,
                                    .dev = bt_tail_dev(ft->t),
                                    .ino = bt_tail_ino(ft->t)};
            p.fp_hash = bt_tail_fingerprint(ft->t, &p.fp_len);
            if (bt_positions_set(f->pos, ft->path, &p) < 0)
                return -ENOMEM;
            bt_tail_update_metrics(ft->t);
        }
    /* As promtail: records of files that no longer exist are dropped. */
    size_t it = 0;
    const char *path;
    const struct bt_position *p;
    while (bt_positions_next(f->pos, &it, &path, &p)) {
        struct stat st;
        if (path[0] == '/' && stat(path, &st) < 0 && errno == ENOENT)
            bt_positions_remove(f->pos, path);
    }
    return bt_positions_save(f->pos);
}

static void on_save(struct bt_loop *l, uint64_t id, void *arg)
{
    bt_files_save_positions(arg);
}

static void on_save_soon(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_files *f = arg;
    f->t_save_soon = 0;
    bt_files_save_positions(f);
}

/* Acknowledgements moved a committed offset: save soon, so a crash re-sends little. The delay
 * grows with the number of records (100 ms per 100), capped at sync_period, so a host with
 * thousands of files does not rewrite a large file many times a second. */
static void on_commit(void *ctx, uint64_t committed)
{
    struct bt_files *f = ctx;
    if (f->open_blocked && !f->t_open_retry)
        f->t_open_retry = bt_loop_add_timer(f->loop, OPEN_RETRY_NS, 0, on_open_retry, f);
    if (f->t_save_soon || f->cfg.positions_readonly || !bt_positions_filename(f->pos)[0])
        return;
    int64_t delay = SAVE_SOON_NS * (int64_t)(1 + bt_positions_count(f->pos) / 100);
    if (delay > f->psync_ns)
        delay = f->psync_ns;
    f->t_save_soon = bt_loop_add_timer(f->loop, delay, 0, on_save_soon, f);
}

/* The open-file budget from the soft RLIMIT_NOFILE: what is left once the descriptors open now
 * (the watcher's, BPF programs and maps, the loop) and a reserve for sockets are set aside. */
static size_t default_max_open(void)
{
    struct rlimit rl;
    rlim_t cur = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    if (cur == RLIM_INFINITY || cur > (rlim_t)1 << 20)
        cur = (rlim_t)1 << 20;
    size_t used = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        while (readdir(d))
            used++;
        closedir(d);
        used = used > 3 ? used - 3 : 0; /* ".", ".." and the directory's own descriptor */
    }
    size_t spare = used + FD_RESERVE + MIN_OPEN_FILES;
    return (size_t)cur > spare ? (size_t)cur - used - FD_RESERVE : MIN_OPEN_FILES;
}

/* ---- public ---- */

struct bt_files *bt_files_new(const struct bt_files_config *cfg, char *err, size_t errlen)
{
    struct bt_files *f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->cfg = *cfg;
    f->loop = cfg->loop;
    f->watch_fd = -1;
    f->rl_open = (struct bt_ratelimit)BT_RATELIMIT_INIT(10);
    const struct bt_agent_config *a = cfg->agent;
    f->tcfg.read_buffer = a && a->read_buffer ? a->read_buffer : 256u << 10;
    f->tcfg.fingerprint_check = a ? a->fingerprint_check : true;
    f->tcfg.metrics = cfg->metrics;
    f->tcfg.on_commit = on_commit;
    f->tcfg.commit_ctx = f;
    if (cfg->limits) {
        f->tcfg.max_line_size = cfg->limits->max_line_size;
        f->tcfg.truncate = cfg->limits->max_line_size_truncate;
    }
    f->flush_ns = a && a->line_flush_timeout_ns > 0 ? a->line_flush_timeout_ns : 5 * BT_NS_PER_SEC;
    f->grace_ns = a && a->rotate_grace_ns > 0 ? a->rotate_grace_ns : 5 * BT_NS_PER_SEC;
    f->idle_ns = a ? a->idle_close_ns : 0;
    f->budget = READ_BUDGET_CHUNKS * f->tcfg.read_buffer;
    const char *fname = cfg->positions && cfg->positions->filename ? cfg->positions->filename : "";
    f->pos = bt_positions_new(fname, cfg->positions_readonly);
    if (!f->pos) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (fname[0] && bt_positions_load(f->pos, NULL) < 0) {
        snprintf(err, errlen, "out of memory reading positions file %s", fname);
        goto fail;
    }
    const char *wname = cfg->watcher ? cfg->watcher : (a ? a->watcher : NULL);
    f->watch = bt_watch_open(wname, on_watch_event, f);
    if (!f->watch) {
        snprintf(err, errlen, "file watcher %s: %s", wname ? wname : "auto",
                 errno == EINVAL ? "unknown backend (auto|bpf|fanotify|inotify|poll)"
                                 : strerror(errno));
        goto fail;
    }
    f->watch_fd = bt_watch_fd(f->watch);
    f->max_open = a && a->max_open_files ? a->max_open_files : default_max_open();
    BT_DEBUG("tail", "open-file budget", "max_open_files=%zu", f->max_open);
    if (f->watch_fd >= 0 && bt_loop_add_fd(f->loop, f->watch_fd, EPOLLIN, on_watch_fd, f) < 0) {
        snprintf(err, errlen, "cannot add the file watcher to the event loop");
        f->watch_fd = -1;
        goto fail;
    }
    int64_t sync = cfg->sync_period_ns > 0 ? cfg->sync_period_ns : 10 * BT_NS_PER_SEC;
    int64_t psync = cfg->positions && cfg->positions->sync_period_ns > 0
                        ? cfg->positions->sync_period_ns
                        : 10 * BT_NS_PER_SEC;
    f->t_reconcile = bt_loop_add_timer(f->loop, sync, sync, on_reconcile, f);
    f->psync_ns = psync;
    f->t_save = bt_loop_add_timer(f->loop, psync, psync, on_save, f);
    if (f->watch_fd < 0)
        f->t_poll = bt_loop_add_timer(f->loop, POLL_PERIOD_NS, POLL_PERIOD_NS, on_poll, f);
    if (cfg->metrics)
        f->m_active = bt_metrics_gauge(cfg->metrics, "bpftail_files_active_total",
                                       "Files being tailed.", NULL);
    update_active(f);
    return f;
fail:
    bt_files_free(f);
    return NULL;
}

static void target_free(struct target *tg)
{
    if (!tg)
        return;
    size_t it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&tg->skipped, &it)) != NULL)
        free(s->val);
    bt_hmap_free(&tg->skipped);
    bt_hmap_free(&tg->by_id);
    bt_hmap_free(&tg->by_path);
    bt_labels_free(&tg->labels);
    free(tg->files);
    free(tg->job);
    free(tg->glob);
    free(tg->exclude);
    free(tg);
}

static char *absolute(const char *p)
{
    if (p[0] == '/')
        return strdup(p);
    char cwd[PATH_MAX], out[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)))
        return NULL;
    if ((size_t)snprintf(out, sizeof(out), "%s/%s", cwd, p) >= sizeof(out))
        return NULL;
    return strdup(out);
}

int bt_files_add_target(struct bt_files *f, const char *job, const struct bt_labels *labels,
                        enum bt_start_at start_at, int64_t ignore_older_ns, bt_entry_sink_fn sink,
                        void *ctx)
{
    const char *glob = bt_labels_get(labels, "__path__");
    const char *excl = bt_labels_get(labels, "__path_exclude__");
    if (!glob || !glob[0])
        return -EINVAL;
    /* Reload: the same target again keeps its open files, offsets and partial lines. */
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *o = f->targets[i];
        if (!o->stale || strcmp(o->job, job ? job : "") != 0 || o->start_at != start_at ||
            o->ignore_older_ns != ignore_older_ns || !bt_labels_equal(&o->labels, labels))
            continue;
        o->stale = false;
        o->sink = sink;
        o->ctx = ctx;
        for (size_t j = 0; j < o->n; j++)
            if (!o->files[j]->dead)
                bt_tail_set_sink(o->files[j]->t, sink, ctx);
        return 0;
    }
    struct target *tg = calloc(1, sizeof(*tg));
    if (!tg)
        return -ENOMEM;
    bt_labels_init(&tg->labels);
    bt_hmap_init(&tg->skipped);
    bt_hmap_init(&tg->by_id);
    bt_hmap_init(&tg->by_path);
    tg->f = f;
    tg->job = strdup(job ? job : "");
    tg->glob = absolute(glob);
    tg->exclude = excl && excl[0] ? absolute(excl) : NULL;
    tg->start_at = start_at;
    tg->ignore_older_ns = ignore_older_ns;
    tg->sink = sink;
    tg->ctx = ctx;
    struct target **nt = realloc(f->targets, (f->ntargets + 1) * sizeof(*nt));
    if (!tg->job || !tg->glob || (excl && excl[0] && !tg->exclude) || !nt ||
        bt_labels_copy(&tg->labels, labels) < 0) {
        if (nt)
            f->targets = nt;
        target_free(tg);
        return -ENOMEM;
    }
    f->targets = nt;
    f->targets[f->ntargets++] = tg;
    tg->initial = true;
    discover(tg);
    tg->initial = false;
    sweep(f);
    return 0;
}

void bt_files_mark_targets(struct bt_files *f)
{
    for (size_t i = 0; i < f->ntargets; i++)
        f->targets[i]->stale = true;
}

void bt_files_drop_stale_targets(struct bt_files *f)
{
    bool any = false;
    for (size_t i = 0; i < f->ntargets; i++)
        any |= f->targets[i]->stale;
    if (!any)
        return;
    if (bt_files_save_positions(f) < 0)
        BT_WARN("tail", "could not save positions before removing targets", NULL);
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *tg = f->targets[i];
        if (!tg->stale)
            continue;
        BT_INFO("tail", "target removed", "job=%s glob=%s", tg->job, tg->glob);
        for (size_t j = 0; j < tg->n; j++)
            ftail_release(tg->files[j], false);
    }
    sweep(f);
    size_t k = 0;
    for (size_t i = 0; i < f->ntargets; i++) {
        if (f->targets[i]->stale)
            target_free(f->targets[i]);
        else
            f->targets[k++] = f->targets[i];
    }
    f->ntargets = k;
}

void bt_files_pause(struct bt_files *f)
{
    f->paused = true;
}

void bt_files_resume(struct bt_files *f)
{
    if (!f->paused)
        return;
    f->paused = false;
    /* Catch up on every file: events that came while paused were only noted. */
    for (size_t i = 0; i < f->ntargets; i++)
        for (size_t j = 0; j < f->targets[i]->n; j++)
            service(f->targets[i]->files[j]);
    sweep(f);
}

void bt_files_flush(struct bt_files *f)
{
    for (size_t i = 0; i < f->ntargets; i++)
        for (size_t j = 0; j < f->targets[i]->n; j++)
            if (!f->targets[i]->files[j]->dead)
                bt_tail_flush(f->targets[i]->files[j]->t);
}

size_t bt_files_active(const struct bt_files *f)
{
    return f->nactive;
}

const char *bt_files_watcher(const struct bt_files *f)
{
    return bt_watch_name(f->watch);
}

struct bt_positions *bt_files_positions(struct bt_files *f)
{
    return f->pos;
}

static int json_str(struct bt_buf *b, const char *s)
{
    int rc = bt_buf_add(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; rc == 0 && *c; c++) {
        if (*c == '"' || *c == '\\')
            rc = bt_buf_addf(b, "\\%c", *c);
        else if (*c < 0x20)
            rc = bt_buf_addf(b, "\\u%04x", *c);
        else
            rc = bt_buf_add(b, c, 1);
    }
    return rc ? rc : bt_buf_add(b, "\"", 1);
}

static int render_file(struct bt_buf *b, const char *path, unsigned long long ino,
                       unsigned long long roff, unsigned long long comm, unsigned long long size,
                       const char *state)
{
    int rc = bt_buf_adds(b, "{\"path\":");
    rc = rc ? rc : json_str(b, path);
    return rc ? rc
              : bt_buf_addf(b,
                            ",\"inode\":%llu,\"read_offset\":%llu,\"committed_offset\":%llu,"
                            "\"size\":%llu,\"lag_bytes\":%llu,\"state\":\"%s\"}",
                            ino, roff, comm, size, size > comm ? size - comm : 0, state);
}

static int render_target(struct target *tg, struct bt_buf *b)
{
    int rc = bt_buf_adds(b, "{\"job\":");
    rc = rc ? rc : json_str(b, tg->job);
    rc = rc ? rc : bt_buf_adds(b, ",\"labels\":{");
    bool first = true;
    for (size_t i = 0; rc == 0 && i < tg->labels.n; i++) {
        const struct bt_label *l = &tg->labels.v[i];
        if (l->name[0] == '_' && l->name[1] == '_')
            continue;
        rc = first ? 0 : bt_buf_adds(b, ",");
        first = false;
        rc = rc ? rc : json_str(b, l->name);
        rc = rc ? rc : bt_buf_adds(b, ":");
        rc = rc ? rc : json_str(b, l->value);
    }
    rc = rc ? rc : bt_buf_adds(b, "},\"path_glob\":");
    rc = rc ? rc : json_str(b, tg->glob);
    rc = rc ? rc : bt_buf_adds(b, ",\"files\":[");
    first = true;
    for (size_t i = 0; rc == 0 && i < tg->n; i++) {
        struct ftail *ft = tg->files[i];
        if (ft->dead)
            continue;
        rc = first ? 0 : bt_buf_adds(b, ",");
        first = false;
        const char *state = ft->draining || !ft->path ? "draining" : "tailing";
        rc = rc ? rc
                : render_file(b, ft->path ? ft->path : bt_tail_path(ft->t),
                              (unsigned long long)bt_tail_ino(ft->t),
                              (unsigned long long)bt_tail_read_offset(ft->t),
                              (unsigned long long)bt_tail_committed(ft->t),
                              (unsigned long long)bt_tail_size(ft->t), state);
    }
    size_t it = 0;
    struct bt_hmap_slot *s;
    while (rc == 0 && (s = bt_hmap_next(&tg->skipped, &it)) != NULL) {
        struct skipped *sk = s->val;
        rc = first ? 0 : bt_buf_adds(b, ",");
        first = false;
        rc = rc ? rc
                : render_file(b, s->key, (unsigned long long)sk->ino, (unsigned long long)sk->size,
                              (unsigned long long)sk->size, (unsigned long long)sk->size, "idle");
    }
    return rc ? rc : bt_buf_adds(b, "]}");
}

int bt_files_render_targets(struct bt_files *f, struct bt_buf *out)
{
    int rc = bt_buf_adds(out, "[");
    for (size_t i = 0; rc == 0 && i < f->ntargets; i++) {
        rc = i ? bt_buf_adds(out, ",") : 0;
        rc = rc ? rc : render_target(f->targets[i], out);
    }
    return rc ? rc : bt_buf_adds(out, "]");
}

void bt_files_free(struct bt_files *f)
{
    if (!f)
        return;
    if (f->pos && f->ntargets)
        bt_files_save_positions(f);
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *tg = f->targets[i];
        for (size_t j = 0; j < tg->n; j++) {
            struct ftail *ft = tg->files[j];
            if (ft->t_flush)
                bt_loop_del_timer(f->loop, ft->t_flush);
            if (ft->t_grace)
                bt_loop_del_timer(f->loop, ft->t_grace);
            bt_tail_close(ft->t);
            free(ft->path);
            free(ft);
        }
        target_free(tg);
    }
    free(f->targets);
    uint64_t timers[] = {f->t_reconcile, f->t_save,      f->t_poll,
                         f->t_kick,      f->t_save_soon, f->t_open_retry};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
        if (timers[i])
            bt_loop_del_timer(f->loop, timers[i]);
    if (f->watch_fd >= 0)
        bt_loop_del_fd(f->loop, f->watch_fd);
    bt_watch_close(f->watch);
    bt_positions_free(f->pos);
    free(f);
}
