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

static bool make_room(struct bt_files *f);

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
    if (sf_set_path(ft, name) < 0) {
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
    sf_update_active(f);
    sf_service(ft);
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
    struct ftail *old = sf_find_by_path(tg, path);
    if (old)
        sf_lose_path(old, false);
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
    if (sf_find_by_id(tg, bt_tail_dev(t), bt_tail_ino(t))) {
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
void sf_consider(struct target *tg, const char *path, const struct stat *st)
{
    if (excluded(tg, path))
        return;
    struct ftail *ft = sf_find_by_id(tg, st->st_dev, st->st_ino);
    if (ft && !ft->dead && !ft->dirty && ft->path && strcmp(ft->path, path) == 0 &&
        bt_tail_unchanged(ft->t, st)) {
        ft->seen = tg->gen; /* nothing happened to it since its last check */
        return;
    }
    if (ft) {
        ft->seen = tg->gen;
        if (!ft->path || strcmp(ft->path, path) != 0) {
            /* Same file under a new matching name: keep the one tailer, adopt the name. */
            struct ftail *holder = sf_find_by_path(tg, path);
            if (holder && holder != ft)
                sf_lose_path(holder, false);
            char *np = strdup(path);
            if (np && sf_set_path(ft, np) == 0) {
                ft->draining = false;
                if (ft->t_grace) {
                    bt_loop_del_timer(tg->f->loop, ft->t_grace);
                    ft->t_grace = 0;
                }
            }
        }
        sf_service(ft);
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
    sf_consider(tg, path, st);
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
    sf_ftail_close(ft, true);
    return true;
}

static void maybe_park(struct ftail *ft)
{
    park(ft, false);
}

void sf_on_open_retry(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_files *f = arg;
    f->t_open_retry = 0;
    if (!f->open_blocked || f->paused)
        return;
    f->open_blocked = false;
    for (size_t i = 0; i < f->ntargets; i++)
        sf_discover(f->targets[i]);
    sf_sweep(f);
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
void sf_unpark(struct target *tg, dev_t dev, ino_t ino)
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
void sf_discover(struct target *tg)
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
            sf_lose_path(ft, true); /* gone, or no longer matched: drain and forget */
        else if (!ft->path)
            sf_service(ft); /* draining: matched ones were serviced by the walk */
        else
            maybe_park(ft);
    }
    size_t it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&tg->skipped, &it)) != NULL)
        if (((struct skipped *)s->val)->seen != tg->gen)
            forget_skip(tg, s->key, s->klen);
}
