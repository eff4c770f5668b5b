#include "source/source_file.h"
#include "source/source_file_int.h"

#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "source/positions.h"
#include "source/tail.h"
#include "util/buf.h"
#include "util/glob.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "watch/watch.h"

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

/* ---- tailer lifetime ---- */

void sf_update_active(struct bt_files *f)
{
    sf_positions_changed(f); /* a file opened or closed: its record changes */
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
int sf_set_path(struct ftail *ft, char *path)
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
    if (ft->rot_key) {
        /* Its record is what a restart would resume it from: only gone once all is acked. */
        if (bt_tail_committed(ft->t) >= bt_tail_read_offset(ft->t))
            bt_positions_remove(f->pos, ft->rot_key);
        free(ft->rot_key);
        ft->rot_key = NULL;
    }
    struct idkey k = {bt_tail_dev(ft->t), bt_tail_ino(ft->t)};
    struct stat cst;
    if (bt_tail_read_offset(ft->t) >= bt_tail_size(ft->t) && fstat(bt_tail_fd(ft->t), &cst) == 0 &&
        (uint64_t)cst.st_size == bt_tail_read_offset(ft->t)) {
        /* Read to its end: said so, for a late event about it (sf_follow_created). The mtime
         * tells it from a later file given the same inode number and size. */
        f->closed[f->closed_next++ % (sizeof(f->closed) / sizeof(f->closed[0]))] =
            (struct closed_file){k.dev, k.ino, (uint64_t)cst.st_size, cst.st_mtim};
    }
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

void sf_ftail_close(struct ftail *ft, bool keep_watch)
{
    if (ft->dead)
        return;
    bt_tail_flush(ft->t);
    ftail_release(ft, keep_watch);
}

/* Frees closed tailers; called where no tailer pointer is held. */
static void target_free(struct target *tg);

void sf_sweep(struct bt_files *f)
{
    if (!f->need_sweep)
        return;
    f->need_sweep = false;
    bool retired = false;
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *tg = f->targets[i];
        for (size_t j = 0; j < tg->n;) {
            struct ftail *ft = tg->files[j];
            if (!ft->dead) {
                j++;
                continue;
            }
            bt_tail_close(ft->t);
            free(ft->rot_key);
            free(ft);
            tg->files[j] = tg->files[--tg->n];
        }
        retired |= tg->retiring && tg->n == 0;
    }
    sf_update_active(f);
    if (!retired)
        return;
    /* A retired target whose last file is read to its end and acknowledged goes now. */
    size_t k = 0;
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *tg = f->targets[i];
        if (tg->retiring && tg->n == 0) {
            BT_INFO("tail", "retired target removed: its files were read to the end or handed on",
                    "job=%s glob=%s", tg->job, tg->glob);
            target_free(tg);
        } else {
            f->targets[k++] = tg;
        }
    }
    f->ntargets = k;
}

/* The name no longer leads to this file: keep reading what it has, then let it go. */
void sf_lose_path(struct ftail *ft, bool forget_position)
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
    sf_service(ft);
}

struct ftail *sf_find_by_id(struct target *tg, dev_t dev, ino_t ino)
{
    struct idkey k = {dev, ino};
    return bt_hmap_get(&tg->by_id, &k, sizeof(k));
}

struct ftail *sf_find_by_path(struct target *tg, const char *path)
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
    sf_service(ft); /* read what came since, and re-arm if it grew */
    if (!ft->dead && ft->draining && !ft->more &&
        bt_mono_ns() - bt_tail_last_growth(ft->t) >= f->grace_ns) {
        /* Read to EOF and quiet for the grace period. It is closed only once every byte read
         * is acknowledged, so its record (sf_rotated_key) survives a crash until then. */
        bt_tail_flush(ft->t);
        if (bt_tail_committed(ft->t) >= bt_tail_read_offset(ft->t))
            sf_ftail_close(ft, false);
        else {
            if (ft->t_grace)
                bt_loop_del_timer(l, ft->t_grace);
            ft->t_grace = bt_loop_add_timer(l, GRACE_RECHECK_NS, 0, on_grace_timer, ft);
        }
    }
    sf_sweep(f);
}

char *sf_rotated_key(const struct ftail *ft)
{
    char *k = NULL;
    if (asprintf(&k, SF_ROT_PREFIX "%llu:%llu:%s", (unsigned long long)bt_tail_dev(ft->t),
                 (unsigned long long)bt_tail_ino(ft->t), bt_tail_path(ft->t)) < 0)
        return NULL;
    return k;
}

static void on_kick(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_files *f = arg;
    f->t_kick = 0;
    for (size_t i = 0; i < f->ntargets && !f->paused; i++)
        for (size_t j = 0; j < f->targets[i]->n; j++) {
            struct ftail *ft = f->targets[i]->files[j];
            if (ft->more && !ft->dead)
                sf_service(ft);
        }
    sf_sweep(f);
}

/* Services the files with more to read from the loop, soon (not from inside a read). */
void sf_kick(struct bt_files *f)
{
    if (!f->t_kick)
        f->t_kick = bt_loop_add_timer(f->loop, 0, 0, on_kick, f);
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
void sf_service(struct ftail *ft)
{
    struct bt_files *f = ft->tg->f;
    if (ft->dead)
        return;
    if (f->paused || ft->busy) {
        ft->dirty = true;
        if (ft->busy) {
            ft->more = true; /* serviced again from the loop, once this one is done */
            sf_kick(f);
        }
        return;
    }
    ft->dirty = false;
    ft->busy = true;
    int flags = bt_tail_check(ft->t);
    ft->busy = false;
    if (flags < 0) {
        BT_WARN("tail", "cannot stat open file", "path=%s err=%s", bt_tail_path(ft->t),
                strerror(-flags));
        sf_ftail_close(ft, false);
        return;
    }
    if ((flags & BT_TAIL_DELETED) && (!ft->draining || ft->path)) {
        /* Read what is left first, then give the name up (and its position with it). A
         * retired target's file drains under its name until then. */
        ft->draining = true;
        if (ft->path) {
            const struct bt_position *p = bt_positions_get(f->pos, ft->path);
            if (p && (!p->has_identity || p->ino == bt_tail_ino(ft->t)))
                bt_positions_remove(f->pos, ft->path);
            drop_path(ft);
        }
    }
    ft->busy = true;
    int rc = bt_tail_read(ft->t, f->budget);
    ft->busy = false;
    if (rc < 0) {
        BT_WARN("tail", "read failed, closing file", "path=%s err=%s", bt_tail_path(ft->t),
                strerror(-rc));
        sf_ftail_close(ft, false);
        return;
    }
    ft->more = rc == 1;
    arm_timers(ft, rc == 0);
}

/* ---- events ---- */

static void on_name(struct bt_files *f, const char *dir, const char *name,
                    const struct bt_watch_event *ev)
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
                sf_discover(tg); /* a new directory that can hold matches */
            continue;
        }
        if (tg->retiring)
            continue;
        struct ftail *owner = sf_find_by_path(tg, path);
        if (owner &&
            (!exists || st.st_dev != bt_tail_dev(owner->t) || st.st_ino != bt_tail_ino(owner->t)))
            sf_lose_path(owner, !exists);
        if (exists && S_ISREG(st.st_mode) && bt_glob_match(tg->glob, path)) {
            tg->gen++;
            sf_consider(tg, path, &st);
        }
        /* Created here, and already renamed on (or deleted) when the event is handled: a
         * writer rotating faster than the events come (docker's json-file at max-size). */
        if ((ev->mask & BT_WATCH_CREATE) && ev->ino &&
            (!exists || st.st_dev != ev->dev || st.st_ino != ev->ino) &&
            bt_glob_match(tg->glob, path))
            sf_follow_created(tg, path, ev->dev, ev->ino);
    }
}

static void on_watch_event(void *ctx, const struct bt_watch_event *ev)
{
    struct bt_files *f = ctx;
    if (ev->mask & BT_WATCH_OVERFLOW) {
        BT_WARN("tail", "file events lost, rescanning", NULL);
        for (size_t i = 0; i < f->ntargets; i++)
            sf_discover(f->targets[i]);
        return;
    }
    if (ev->dir && ev->name) {
        on_name(f, ev->dir, ev->name, ev);
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
        struct ftail *ft = sf_find_by_id(f->targets[i], ev->dev, ev->ino);
        if (!ft) {
            if (ev->mask & BT_WATCH_MODIFY)
                sf_unpark(f->targets[i], ev->dev, ev->ino);
            continue;
        }
        if (ft->path && (ev->mask & (BT_WATCH_MOVED | BT_WATCH_DELETE))) {
            struct stat st;
            if (stat(ft->path, &st) < 0 || st.st_ino != ev->ino || st.st_dev != ev->dev)
                sf_lose_path(ft, false);
        }
        sf_service(ft);
    }
}

static void on_watch_resume(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_files *f = arg;
    f->t_coalesce = 0;
    if (f->watch_fd >= 0)
        bt_loop_mod_fd(l, f->watch_fd, EPOLLIN); /* level-triggered: what came meanwhile fires */
}

static void arm_reconcile_in(struct bt_files *f, int64_t ns);

static void on_watch_fd(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_files *f = arg;
    sf_positions_changed(f); /* whatever the events did (rotation, truncation) */
    f->nevents++;
    if (f->reconcile_next_ns > f->reconcile_ns)
        arm_reconcile_in(f, f->reconcile_ns); /* files are busy again: the safety net is too */
    int rc = bt_watch_dispatch(f->watch);
    if (rc < 0)
        BT_WARN("watch", "reading file events failed", "err=%s", strerror(-rc));
    sf_sweep(f);
    /* A file written in small pieces would wake the loop once per write: stop listening for
     * coalesce_ns (a tenth of the shortest batchwait), so the events of that time, which the
     * watchers queue (BPF and fanotify merge those of one file), are handled in one wake-up. */
    if (f->cfg.coalesce_ns > 0 && !f->t_coalesce && fd == f->watch_fd &&
        bt_loop_mod_fd(l, fd, 0) == 0)
        f->t_coalesce = bt_loop_add_timer(l, f->cfg.coalesce_ns, 0, on_watch_resume, f);
}

static size_t default_max_open(size_t open_files);

/* The watch settled: it moved from its interim backend to bpf (every watch is already
 * registered there), or BPF failed and the interim backend stays (same fd):
 * listen on the new fd, then re-check every target and tailed file once, which covers whatever
 * the interim backend saw or had queued. */
static void on_watch_switch(void *ctx, struct bt_watch *w, int old_fd)
{
    struct bt_files *f = ctx;

    if (old_fd >= 0 && f->watch_fd == old_fd)
        bt_loop_del_fd(f->loop, old_fd);
    f->watch_fd = bt_watch_fd(w);
    if (f->watch_fd >= 0 && bt_loop_add_fd(f->loop, f->watch_fd, EPOLLIN, on_watch_fd, f) < 0) {
        BT_ERROR("watch", "cannot add the file watcher to the event loop", NULL);
        f->watch_fd = -1;
    }
    if (f->watch_fd >= 0 && f->t_poll) {
        bt_loop_del_timer(f->loop, f->t_poll);
        f->t_poll = 0;
    }
    sf_arm_reconcile(f);
    if (f->max_open_auto) {
        /* The BPF object now holds its descriptors: the budget is what is really left. */
        f->max_open = default_max_open(f->nactive);
        BT_DEBUG("tail", "open-file budget", "max_open_files=%zu", f->max_open);
    }
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *tg = f->targets[i];
        sf_discover(tg);
        for (size_t k = 0; k < tg->n; k++)
            if (!tg->files[k]->dead)
                sf_service(tg->files[k]);
    }
    sf_sweep(f);
}

/* ---- periodic work ---- */

static int save_positions(struct bt_files *f, bool sweep);

static void on_reconcile(struct bt_loop *l, uint64_t id, void *arg);

static void arm_reconcile_in(struct bt_files *f, int64_t ns)
{
    if (f->t_reconcile)
        bt_loop_del_timer(f->loop, f->t_reconcile);
    f->reconcile_next_ns = ns;
    f->t_reconcile = bt_loop_add_timer(f->loop, ns, 0, on_reconcile, f);
}

static void on_reconcile(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_files *f = arg;
    f->t_reconcile = 0;
    uint64_t gen = f->pos_gen;
    for (size_t i = 0; i < f->ntargets; i++) {
        sf_recover(f->targets[i], false);
        sf_discover(f->targets[i]);
    }
    sf_sweep(f);
    /* Nothing came and nothing was found (no file opened, closed or moved): wait longer. */
    bool quiet = f->nevents == f->reconcile_events && f->pos_gen == gen;
    f->reconcile_events = f->nevents;
    int64_t next = f->reconcile_ns;
    if (quiet && f->reconcile_max_ns > f->reconcile_ns) {
        next = f->reconcile_next_ns * 2;
        if (next > f->reconcile_max_ns)
            next = f->reconcile_max_ns;
    }
    save_positions(f, true); /* and drop the records of files that are gone */
    arm_reconcile_in(f, next);
}

/* With a watcher that reports events, new and renamed names arrive as directory events and
 * writes as file events: the reconcile is a safety net for a lost event. It runs every 10 s
 * while files are busy (sync_period if longer; idle_close if shorter, as it closes idle files)
 * and less often while nothing happens (RECONCILE_IDLE_FACTOR), so an idle agent is not woken
 * every few seconds to stat every file. It runs every sync_period with the poll watcher (no
 * events), once a file on a filesystem whose inode events the BPF programs cannot match is
 * tailed (docs/bpf.md), and with ignore_older (a file left alone has no watch: only the
 * reconcile sees it change). */
static int64_t reconcile_period(const struct bt_files *f, int64_t *max)
{
    if (f->watch_fd < 0 || f->events_partial)
        return *max = f->sync_ns;
    for (size_t i = 0; i < f->ntargets; i++)
        if (f->targets[i]->ignore_older_ns > 0)
            return *max = f->sync_ns;
    int64_t p = f->cfg.reconcile_ns > 0 ? f->cfg.reconcile_ns : RECONCILE_EVENTS_NS;
    if (f->idle_ns > 0 && f->idle_ns < p)
        return *max = f->idle_ns;
    if (f->sync_ns > p)
        p = f->sync_ns;
    /* Idle files are closed by the reconcile: at most idle_close late. */
    *max = p * RECONCILE_IDLE_FACTOR;
    if (f->idle_ns > 0 && f->idle_ns < *max)
        *max = f->idle_ns > p ? f->idle_ns : p;
    return p;
}

void sf_arm_reconcile(struct bt_files *f)
{
    int64_t p = reconcile_period(f, &f->reconcile_max_ns);
    if (f->t_reconcile && p == f->reconcile_ns)
        return;
    f->reconcile_ns = p;
    arm_reconcile_in(f, p);
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
                    sf_lose_path(ft, false);
                    rotated = true;
                    continue;
                }
            }
            sf_service(ft);
        }
        if (rotated)
            sf_discover(tg); /* pick up the new file now rather than at the next reconcile */
    }
    sf_sweep(f);
}

/* Records the tailed files' committed offsets and writes the file if it changed. With sweep,
 * records of files that no longer exist are dropped first (a stat per record): done at exit,
 * on demand and on the reconcile, not on every periodic save, which in an idle agent would
 * stat every file each positions.sync_period. */
static int save_positions(struct bt_files *f, bool sweep)
{
    f->saved_gen = f->pos_gen;
    for (size_t i = 0; i < f->ntargets; i++)
        for (size_t j = 0; j < f->targets[i]->n; j++) {
            struct ftail *ft = f->targets[i]->files[j];
            if (ft->dead)
                continue;
            if (ft->path && ft->rot_key) {
                /* Adopted by a matching name again: its plain record takes over. */
                bt_positions_remove(f->pos, ft->rot_key);
                free(ft->rot_key);
                ft->rot_key = NULL;
            }
            if (!ft->path && !ft->rot_key && !(ft->rot_key = sf_rotated_key(ft)))
                return -ENOMEM;
            const char *key = ft->path ? ft->path : ft->rot_key;
            struct bt_position p = {.offset = bt_tail_committed(ft->t),
                                    .has_identity = true,
                                    .dev = bt_tail_dev(ft->t),
                                    .ino = bt_tail_ino(ft->t)};
            p.fp_hash = bt_tail_fingerprint(ft->t, &p.fp_len);
            if (bt_positions_set(f->pos, key, &p) < 0)
                return -ENOMEM;
            bt_tail_update_metrics(ft->t);
        }
    /* As promtail: records of files that no longer exist are dropped. */
    size_t it = 0;
    const char *path;
    const struct bt_position *p;
    while (sweep && bt_positions_next(f->pos, &it, &path, &p)) {
        struct stat st;
        if (path[0] == '/' && stat(path, &st) < 0 && errno == ENOENT)
            bt_positions_remove(f->pos, path);
    }
    sf_prune_rotated(f);
    return bt_positions_save(f->pos);
}

int64_t bt_files_reconcile_wait(const struct bt_files *f)
{
    return f->t_reconcile ? f->reconcile_next_ns : 0;
}

int bt_files_save_positions(struct bt_files *f)
{
    return save_positions(f, true);
}

static void on_save(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_files *f = arg;
    f->t_save = 0;
    if (f->pos_gen != f->saved_gen) /* nothing happened since the last save: nothing to write */
        save_positions(f, false);
}

void sf_positions_changed(struct bt_files *f)
{
    f->pos_gen++;
    if (!f->t_save && f->psync_ns > 0) /* one save a sync_period at most, none while idle */
        f->t_save = bt_loop_add_timer(f->loop, f->psync_ns, 0, on_save, f);
}

static void on_save_soon(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_files *f = arg;
    f->t_save_soon = 0;
    save_positions(f, false);
}

/* Acknowledgements moved a committed offset: save soon, so a crash re-sends little. The delay
 * grows with the number of records (100 ms per 100), capped at sync_period, so a host with
 * thousands of files does not rewrite a large file many times a second. */
static void on_commit(void *ctx, uint64_t committed)
{
    struct bt_files *f = ctx;
    sf_positions_changed(f);
    if (f->open_blocked && !f->t_open_retry)
        f->t_open_retry = bt_loop_add_timer(f->loop, OPEN_RETRY_NS, 0, sf_on_open_retry, f);
    if (f->t_save_soon || f->cfg.positions_readonly || !bt_positions_filename(f->pos)[0])
        return;
    int64_t delay = SAVE_SOON_NS * (int64_t)(1 + bt_positions_count(f->pos) / 100);
    if (delay > f->psync_ns)
        delay = f->psync_ns;
    f->t_save_soon = bt_loop_add_timer(f->loop, delay, 0, on_save_soon, f);
}

/* The open-file budget from the soft RLIMIT_NOFILE: what is left once the descriptors open now
 * (the watcher's, BPF programs and maps, the loop) and a reserve for sockets are set aside. */
/* The open-file budget when none is configured: the soft descriptor limit less what the process
 * holds besides its own open_files tailed files, less a reserve. */
static size_t default_max_open(size_t open_files)
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
        used = used > open_files ? used - open_files : 0;
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
    f->rl_missed = (struct bt_ratelimit)BT_RATELIMIT_INIT(10);
    const struct bt_agent_config *a = cfg->agent;
    f->tcfg.read_buffer = a && a->read_buffer ? a->read_buffer : 256u << 10;
    f->tcfg.fingerprint_check = a ? a->fingerprint_check : true;
    f->tcfg.metrics = cfg->metrics;
    f->tcfg.on_commit = on_commit;
    f->tcfg.commit_ctx = f;
    f->tcfg.on_copy = sf_on_copy;
    f->tcfg.copy_ctx = f;
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
    f->watch = bt_watch_open_loop(wname, f->loop, on_watch_event, f, on_watch_switch);
    if (!f->watch) {
        snprintf(err, errlen, "file watcher %s: %s", wname ? wname : "auto",
                 errno == EINVAL ? "unknown backend (auto|bpf|fanotify|inotify|poll)"
                                 : strerror(errno));
        goto fail;
    }
    f->watch_fd = bt_watch_fd(f->watch);
    f->max_open_auto = !(a && a->max_open_files);
    f->max_open = f->max_open_auto ? default_max_open(0) : a->max_open_files;
    if (f->max_open_auto && bt_watch_interim(f->watch)) {
        /* BPF is loading in the background and will need its own descriptors (programs, links,
         * maps: about 170 once attached, nearly 300 at the peak of the load); the budget is
         * computed again once it is attached. */
        f->max_open = f->max_open > BPF_LOAD_RESERVE + MIN_OPEN_FILES
                          ? f->max_open - BPF_LOAD_RESERVE
                          : MIN_OPEN_FILES;
        if (f->max_open > INTERIM_MAX_OPEN)
            f->max_open = INTERIM_MAX_OPEN;
    }
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
    f->sync_ns = sync;
    sf_arm_reconcile(f);
    f->psync_ns = psync;
    if (f->pos_gen != f->saved_gen)
        sf_positions_changed(f); /* what the first scan opened */
    if (f->watch_fd < 0)
        f->t_poll = bt_loop_add_timer(f->loop, POLL_PERIOD_NS, POLL_PERIOD_NS, on_poll, f);
    if (cfg->metrics) {
        f->m_active = bt_metrics_gauge(cfg->metrics, "bpftail_files_active_total",
                                       "Files being tailed.", NULL);
        f->m_unrecovered = bt_metrics_counter(
            cfg->metrics, "bpftail_unrecovered_files_total",
            "Files that left their name before being read to the end and were not found again "
            "after a restart (their unread bytes are lost, in an unknown amount).",
            NULL);
        f->m_missed = bt_metrics_counter(
            cfg->metrics, "bpftail_files_missed_total",
            "Files created under a watched name that were deleted, or renamed out of their "
            "directory, before bpftail could open them, or found but not readable for want of "
            "memory: whatever they held was never read.",
            NULL);
    }
    sf_update_active(f);
    return f;
fail:
    bt_files_free(f);
    return NULL;
}

/* A new target with the glob of a retiring one (a pod whose labels changed: the old label set
 * went, the new one came) takes its open files over, offsets, unacknowledged bytes and held
 * partial lines included: they go on under the new labels and are not read twice. */
static void adopt_retiring(struct target *tg)
{
    struct bt_files *f = tg->f;
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *o = f->targets[i];
        if (o == tg || !o->retiring || o->stale || strcmp(o->job, tg->job) != 0 ||
            strcmp(o->glob, tg->glob) != 0 ||
            strcmp(o->exclude ? o->exclude : "", tg->exclude ? tg->exclude : "") != 0)
            continue;
        for (size_t j = 0; j < o->n;) {
            struct ftail *ft = o->files[j];
            struct idkey k = {bt_tail_dev(ft->t), bt_tail_ino(ft->t)};
            if (ft->dead || sf_find_by_id(tg, k.dev, k.ino) ||
                (ft->path && sf_find_by_path(tg, ft->path))) {
                j++;
                continue;
            }
            if (tg->n == tg->cap) {
                size_t nc = tg->cap ? tg->cap * 2 : 8;
                struct ftail **nf = realloc(tg->files, nc * sizeof(*nf));
                if (!nf)
                    return;
                tg->files = nf;
                tg->cap = nc;
            }
            if (bt_hmap_put(&tg->by_id, &k, sizeof(k), ft, NULL) < 0 ||
                (ft->path && bt_hmap_put(&tg->by_path, ft->path, strlen(ft->path), ft, NULL) < 0)) {
                bt_hmap_del(&tg->by_id, &k, sizeof(k));
                return;
            }
            if (bt_hmap_get(&o->by_id, &k, sizeof(k)) == ft)
                bt_hmap_del(&o->by_id, &k, sizeof(k));
            if (ft->path && bt_hmap_get(&o->by_path, ft->path, strlen(ft->path)) == ft)
                bt_hmap_del(&o->by_path, ft->path, strlen(ft->path));
            o->files[j] = o->files[--o->n];
            tg->files[tg->n++] = ft;
            ft->tg = tg;
            ft->seen = tg->gen;
            ft->draining = !ft->path;
            if (bt_tail_set_labels(ft->t, &tg->labels) < 0)
                BT_WARN("tail", "out of memory: the file keeps its old labels", "path=%s",
                        bt_tail_path(ft->t));
            bt_tail_set_sink(ft->t, tg->sink, tg->ctx);
            BT_INFO("tail", "file handed to the target's new labels", "path=%s",
                    bt_tail_path(ft->t));
        }
        f->need_sweep = true; /* an emptied retiring target goes at the next sweep */
    }
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
    /* Discovery: a retiring target listed again is a live one again (a re-list, a pod back). */
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *o = f->targets[i];
        if (!o->retiring || o->stale || strcmp(o->job, job ? job : "") != 0 ||
            o->start_at != start_at || o->ignore_older_ns != ignore_older_ns ||
            !bt_labels_equal(&o->labels, labels))
            continue;
        o->retiring = false;
        o->sink = sink;
        o->ctx = ctx;
        for (size_t j = 0; j < o->n; j++) {
            struct ftail *ft = o->files[j];
            if (!ft->dead && ft->path)
                ft->draining = false; /* still under its name: tailed as before */
            if (!ft->dead)
                bt_tail_set_sink(ft->t, sink, ctx);
        }
        sf_discover(o);
        sf_sweep(f);
        return 0;
    }
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
    if (ignore_older_ns > 0)
        sf_arm_reconcile(f); /* every sync_period now */
    tg->initial = true;
    adopt_retiring(tg);
    sf_recover(tg, true); /* before the walk: a new file at a recorded name replaces its record */
    sf_discover(tg);
    tg->initial = false;
    sf_sweep(f);
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
    sf_sweep(f);
    size_t k = 0;
    for (size_t i = 0; i < f->ntargets; i++) {
        if (f->targets[i]->stale)
            target_free(f->targets[i]);
        else
            f->targets[k++] = f->targets[i];
    }
    f->ntargets = k;
}

int bt_files_remove_target(struct bt_files *f, const char *job, const struct bt_labels *labels,
                           enum bt_start_at start_at, int64_t ignore_older_ns)
{
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *o = f->targets[i];
        if (o->stale || strcmp(o->job, job ? job : "") != 0 || o->start_at != start_at ||
            o->ignore_older_ns != ignore_older_ns || !bt_labels_equal(&o->labels, labels))
            continue;
        /* Only reloads mark targets stale, and they drop them before returning to the loop,
         * so this one is the only stale target now. */
        o->stale = true;
        bt_files_drop_stale_targets(f);
        return 0;
    }
    return -ENOENT;
}

int bt_files_retire_target(struct bt_files *f, const char *job, const struct bt_labels *labels,
                           enum bt_start_at start_at, int64_t ignore_older_ns)
{
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *o = f->targets[i];
        if (o->stale || o->retiring || strcmp(o->job, job ? job : "") != 0 ||
            o->start_at != start_at || o->ignore_older_ns != ignore_older_ns ||
            !bt_labels_equal(&o->labels, labels))
            continue;
        /* A last walk first: files that appeared or grew while parked are opened now. */
        sf_discover(o);
        o->retiring = true;
        BT_INFO("tail", "target retired, reading its files to the end", "job=%s glob=%s files=%zu",
                o->job, o->glob, o->n);
        /* Each open file drains: closed after rotate_grace without growth at EOF and once all
         * it read is acknowledged (on_grace_timer); the last one closed frees the target. */
        for (size_t j = 0; j < o->n; j++) {
            struct ftail *ft = o->files[j];
            if (ft->dead)
                continue;
            ft->draining = true;
            sf_service(ft);
        }
        f->need_sweep = true;
        sf_sweep(f);
        return 0;
    }
    return -ENOENT;
}

size_t bt_files_retire_stale_targets(struct bt_files *f, const char *job, bt_entry_sink_fn sink,
                                     void *ctx)
{
    size_t n = 0;
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *o = f->targets[i];
        if (!o->stale || strcmp(o->job, job ? job : "") != 0)
            continue;
        o->stale = false;
        o->sink = sink;
        o->ctx = ctx;
        o->retire_now = !o->retiring;
        for (size_t j = 0; j < o->n; j++)
            if (!o->files[j]->dead)
                bt_tail_set_sink(o->files[j]->t, sink, ctx);
    }
    /* Retiring may free a target without files (a sweep): look again from the start. */
    for (bool again = true; again;) {
        again = false;
        for (size_t i = 0; i < f->ntargets && !again; i++) {
            struct target *o = f->targets[i];
            if (!o->retire_now)
                continue;
            o->retire_now = false;
            if (bt_files_retire_target(f, o->job, &o->labels, o->start_at, o->ignore_older_ns) == 0)
                n++;
            again = true;
        }
    }
    return n;
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
            sf_service(f->targets[i]->files[j]);
    sf_sweep(f);
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

int bt_files_watcher_interim(const struct bt_files *f)
{
    return bt_watch_interim(f->watch);
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
    if (tg->retiring) /* its discovery let it go: its open files are read to their end */
        rc = rc ? rc : bt_buf_adds(b, ",\"retiring\":true");
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
            free(ft->rot_key);
            free(ft);
        }
        target_free(tg);
    }
    free(f->targets);
    uint64_t timers[] = {f->t_reconcile, f->t_save,       f->t_poll,    f->t_kick,
                         f->t_save_soon, f->t_open_retry, f->t_coalesce};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
        if (timers[i])
            bt_loop_del_timer(f->loop, timers[i]);
    if (f->watch_fd >= 0)
        bt_loop_del_fd(f->loop, f->watch_fd);
    bt_watch_close(f->watch);
    bt_positions_free(f->pos);
    free(f);
}
