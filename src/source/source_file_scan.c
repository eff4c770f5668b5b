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
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static bool make_room(struct bt_files *f);

/* Most directory entries looked at when searching a rotated file by identity. */
#define RECOVER_SCAN_MAX 100000

/* ---- discovery ---- */

static bool excluded(const struct target *tg, const char *path)
{
    return tg->exclude && bt_glob_match(tg->exclude, path);
}

/* Where a newly opened file starts, from its record, the identity index, or the policy.
 * *stale: the recorded file is still here but was truncated while not watched (copytruncate):
 * the caller resumes it with bt_tail_resume_truncated from the record it points to. */
static uint64_t start_offset(struct target *tg, struct bt_tail *t, const char *path, bool *known,
                             const struct bt_position **stale)
{
    struct bt_files *f = tg->f;
    uint64_t size = bt_tail_size(t);
    const struct bt_position *p = bt_positions_get(f->pos, path);
    *known = true;
    *stale = NULL;
    if (p && p->has_identity && p->dev == bt_tail_dev(t) && p->ino == bt_tail_ino(t) && p->fp_len &&
        (p->offset > size ||
         (f->tcfg.fingerprint_check && !bt_tail_fp_matches(t, p->fp_hash, p->fp_len)))) {
        BT_INFO("files", "file truncated while not watched, looking for its copy",
                "path=%s offset=%llu size=%llu", path, (unsigned long long)p->offset,
                (unsigned long long)size);
        *stale = p;
        return p->offset;
    }
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

/* Registers an opened tailer under path (NULL: a recovered file, draining from the start;
 * watch_path is where it is now) and starts reading it at off. stale: see start_offset. */
static void add_ftail(struct target *tg, struct bt_tail *t, const char *path,
                      const char *watch_path, uint64_t off, const struct bt_position *stale)
{
    struct bt_files *f = tg->f;
    struct ftail *ft = calloc(1, sizeof(*ft));
    char *name = path ? strdup(path) : NULL;
    struct idkey k = {bt_tail_dev(t), bt_tail_ino(t)};
    if (ft)
        ft->tg = tg;
    if (!ft || (path && !name) || grow(tg) < 0 ||
        bt_hmap_put(&tg->by_id, &k, sizeof(k), ft, NULL) < 0) {
        free(name);
        free(ft);
        bt_tail_close(t);
        BT_ERROR("tail", "out of memory opening file", "path=%s", path);
        return;
    }
    if (name && sf_set_path(ft, name) < 0) {
        bt_hmap_del(&tg->by_id, &k, sizeof(k));
        free(ft);
        bt_tail_close(t);
        BT_ERROR("tail", "out of memory opening file", "path=%s", path);
        return;
    }
    ft->t = t;
    ft->seen = tg->gen;
    ft->draining = !path;
    tg->files[tg->n++] = ft;
    f->nactive++;
    if (stale)
        bt_tail_resume_truncated(t, off, stale->fp_hash, stale->fp_len);
    else if (off != UINT64_MAX)
        bt_tail_seek(t, off);
    int rc =
        watch_path ? bt_watch_add_file(f->watch, watch_path, bt_tail_dev(t), bt_tail_ino(t)) : 0;
    if (rc < 0 && rc != -ESTALE)
        BT_DEBUG("tail", "no file watch", "path=%s err=%s", watch_path, strerror(-rc));
    struct statfs sfs;
    if (watch_path && !f->events_partial && fstatfs(bt_tail_fd(t), &sfs) == 0 &&
        (sfs.f_type == 0x9123683E || sfs.f_type == 0x794c7630)) {
        /* btrfs, overlayfs: BPF inode matches never fire there, the reconcile must be short */
        f->events_partial = true;
        sf_arm_reconcile(f);
    }
    if (path)
        BT_INFO("tail", "tailing file", "path=%s inode=%llu offset=%llu", path,
                (unsigned long long)bt_tail_ino(t), (unsigned long long)off);
    sf_update_active(f);
    if (off == UINT64_MAX) {
        /* A copy handed over from inside a check: its bytes go before the file's new ones. */
        int r = bt_tail_read(t, SIZE_MAX);
        ft->more = r != 0;
        if (r < 0)
            BT_WARN("files", "cannot read the copy of a truncated file", "path=%s err=%s",
                    bt_tail_path(t), strerror(-r));
        sf_kick(f);
        return;
    }
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
    const struct bt_position *stale;
    uint64_t off = start_offset(tg, t, path, &known, &stale);
    if (skip_from != UINT64_MAX && !known) {
        off = skip_from;
    } else if (!known && too_old(tg, st)) {
        bt_tail_close(t);
        remember_skip(tg, path, st);
        return;
    }
    add_ftail(tg, t, path, path, off, stale);
}

/* A truncated file's copy, holding unread bytes of the old content (tail.h on_copy): drain it
 * as a file without a name, recorded under sf_rotated_key until all of it is acknowledged. */
void sf_on_copy(void *ctx, struct bt_tail *t, struct bt_tail *copy)
{
    struct bt_files *f = ctx;
    for (size_t i = 0; i < f->ntargets; i++) {
        struct target *tg = f->targets[i];
        struct ftail *ft = sf_find_by_id(tg, bt_tail_dev(t), bt_tail_ino(t));
        if (!ft || ft->t != t)
            continue;
        if (sf_find_by_id(tg, bt_tail_dev(copy), bt_tail_ino(copy)))
            break; /* already tailed under a matching name: that tailer reads it */
        size_t n = tg->n;
        add_ftail(tg, copy, NULL, NULL, UINT64_MAX, NULL);
        if (tg->n > n && !tg->files[n]->dead)
            tg->files[n]->rot_key = sf_rotated_key(tg->files[n]);
        return;
    }
    bt_tail_close(copy);
}

/* ---- recovery of files that left their name while nobody watched ---- */

/* Looks in path's directory, whatever the names, for the regular file dev/ino: an fd with the
 * name it has now in name, or -1. */
static int find_by_identity(const char *path, uint64_t dev, uint64_t ino, char *name, size_t nlen)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash - path) >= sizeof(dir))
        return -1;
    size_t dl = slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, path, dl);
    dir[dl] = '\0';
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int fd = -1;
    struct dirent *de;
    for (int seen = 0; seen < RECOVER_SCAN_MAX && (de = readdir(d)); seen++) {
        struct stat st;
        if ((de->d_type != DT_REG && de->d_type != DT_UNKNOWN) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            (uint64_t)st.st_dev != dev || (uint64_t)st.st_ino != ino)
            continue;
        int cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
        if (cfd >= 0 && fstat(cfd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_dev == dev &&
            (uint64_t)st.st_ino == ino) {
            if ((size_t)snprintf(name, nlen, "%s/%s", dl == 1 && dir[0] == '/' ? "" : dir,
                                 de->d_name) < nlen) {
                fd = cfd;
                break;
            }
        }
        if (cfd >= 0)
            close(cfd);
    }
    closedir(d);
    return fd;
}

static bool live_anywhere(struct bt_files *f, uint64_t dev, uint64_t ino)
{
    for (size_t i = 0; i < f->ntargets; i++) {
        struct ftail *ft = sf_find_by_id(f->targets[i], (dev_t)dev, (ino_t)ino);
        if (ft && !ft->dead)
            return true;
    }
    return false;
}

/* Whether the file dev/ino, last known as path, is certainly gone: its directory is, or was
 * read to its end without a file of that identity. Unreadable or huge directories: not known. */
static bool gone_from_dir(const char *path, uint64_t dev, uint64_t ino)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash - path) >= sizeof(dir))
        return false;
    size_t dl = slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, path, dl);
    dir[dl] = '\0';
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT || errno == ENOTDIR;
    bool gone = false;
    struct dirent *de;
    for (int seen = 0;; seen++) {
        if (seen == RECOVER_SCAN_MAX)
            break;
        errno = 0;
        if (!(de = readdir(d))) {
            gone = errno == 0; /* the end, not an error */
            break;
        }
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino)
            break;
    }
    closedir(d);
    return gone;
}

void sf_prune_rotated(struct bt_files *f)
{
    size_t it = 0, n = 0;
    const char *key;
    const struct bt_position *p;
    char *gone[64];
    while (n < sizeof(gone) / sizeof(gone[0]) && bt_positions_next(f->pos, &it, &key, &p)) {
        if (strncmp(key, SF_ROT_PREFIX, SF_ROT_PREFIX_LEN) != 0 || !p->has_identity ||
            live_anywhere(f, p->dev, p->ino))
            continue;
        const char *c = strchr(key + SF_ROT_PREFIX_LEN, ':');
        const char *orig = c ? strchr(c + 1, ':') : NULL;
        if (orig && orig[1] == '/' && gone_from_dir(orig + 1, p->dev, p->ino) &&
            (gone[n] = strdup(key)))
            n++;
    }
    for (size_t i = 0; i < n; i++) {
        const char *c = strchr(gone[i] + SF_ROT_PREFIX_LEN, ':');
        BT_INFO("files", "dropped the position of a rotated file that is gone", "path=%s",
                strchr(c + 1, ':') + 1);
        bt_positions_remove(f->pos, gone[i]);
        free(gone[i]);
    }
}

/* One rotated record (key, pos) of a file tailed as orig: read it from its offset to EOF under
 * orig's labels, or say once that it is gone. */
static void recover_one(struct target *tg, const char *key, const struct bt_position *pos,
                        const char *orig)
{
    struct bt_files *f = tg->f;
    char now[PATH_MAX];
    int fd = find_by_identity(orig, pos->dev, pos->ino, now, sizeof(now));
    struct bt_tail *t = NULL;
    if (fd >= 0 && !make_room(f)) {
        close(fd); /* at the open-file budget: the next reconcile tries again */
        return;
    }
    if (fd >= 0)
        t = bt_tail_open_fd(fd, orig, &f->tcfg, &tg->labels, tg->sink, tg->ctx);
    if (t && (!bt_tail_fp_matches(t, pos->fp_hash, pos->fp_len) || bt_tail_size(t) < pos->offset)) {
        bt_tail_close(t); /* same inode, other content: the file we knew is gone */
        t = NULL;
        fd = -1;
    }
    if (!t) {
        if (fd < 0 || errno != ENOMEM) {
            BT_WARN("files", "rotated file not found again, its unread bytes are lost",
                    "path=%s inode=%llu offset=%llu", orig, (unsigned long long)pos->ino,
                    (unsigned long long)pos->offset);
            bt_counter_inc(f->m_unrecovered);
            bt_positions_remove(f->pos, key);
        }
        return;
    }
    if (bt_tail_size(t) == pos->offset) {
        bt_tail_close(t); /* nothing left to read */
        bt_positions_remove(f->pos, key);
        return;
    }
    BT_INFO("files", "recovering rotated file", "path=%s now=%s inode=%llu offset=%llu size=%llu",
            orig, now, (unsigned long long)pos->ino, (unsigned long long)pos->offset,
            (unsigned long long)bt_tail_size(t));
    bt_tail_set_recovering(t, true);
    size_t n = tg->n;
    add_ftail(tg, t, NULL, now, pos->offset, NULL);
    if (tg->n > n && !tg->files[n]->dead && !(tg->files[n]->rot_key = strdup(key)))
        BT_ERROR("files", "out of memory recovering a rotated file", "path=%s", orig);
}

/* Files that left the target's names while bpftail was not watching them. startup: also the
 * plain records of the target whose file is no longer at the recorded path (renamed while
 * stopped, possibly out of the glob); they become rotated records first. Then every rotated
 * record of the target whose file is not open is looked for by identity in its directory. */
void sf_recover(struct target *tg, bool startup)
{
    struct bt_files *f = tg->f;
    size_t n = 0, cap = 0, it = 0;
    char **keys = NULL;
    const char *key;
    const struct bt_position *p;
    while (bt_positions_next(f->pos, &it, &key, &p)) {
        bool rot = strncmp(key, SF_ROT_PREFIX, SF_ROT_PREFIX_LEN) == 0;
        if (!p->has_identity || (!rot && (!startup || key[0] != '/')))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nk = realloc(keys, nc * sizeof(*nk));
            if (!nk)
                break;
            keys = nk;
            cap = nc;
        }
        if (!(keys[n] = strdup(key)))
            break;
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i], *orig = k;
        struct bt_position pos;
        p = bt_positions_get(f->pos, k);
        if (!p)
            continue;
        pos = *p;
        if (strncmp(k, SF_ROT_PREFIX, SF_ROT_PREFIX_LEN) == 0) {
            /* "<dev>:<ino>:<path>" */
            const char *c = strchr(k + SF_ROT_PREFIX_LEN, ':');
            orig = c ? strchr(c + 1, ':') : NULL;
            if (!orig++)
                continue;
        }
        if (orig[0] != '/' || !bt_glob_match(tg->glob, orig) || excluded(tg, orig) ||
            live_anywhere(f, pos.dev, pos.ino))
            continue;
        if (k == orig) {
            struct stat st;
            if (stat(orig, &st) == 0 && (uint64_t)st.st_dev == pos.dev &&
                (uint64_t)st.st_ino == pos.ino)
                continue; /* still there: resumed (or found truncated) by the walk */
            char *rk = NULL;
            if (asprintf(&rk, SF_ROT_PREFIX "%llu:%llu:%s", (unsigned long long)pos.dev,
                         (unsigned long long)pos.ino, orig) < 0)
                continue;
            /* The plain record stays: it tells the walk that a new file at orig is new. */
            if (!bt_positions_get(f->pos, rk) && bt_positions_set(f->pos, rk, &pos) == 0)
                recover_one(tg, rk, &pos, orig);
            free(rk);
            continue;
        }
        recover_one(tg, k, &pos, orig);
    }
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* Whether st is one of the last files closed after being read to their end: same identity,
 * size and modification time. */
static bool closed_read(const struct bt_files *f, const struct stat *st)
{
    for (size_t i = 0; i < sizeof(f->closed) / sizeof(f->closed[0]); i++)
        if (f->closed[i].ino == st->st_ino && f->closed[i].dev == st->st_dev &&
            f->closed[i].size == (uint64_t)st->st_size && st->st_ino &&
            f->closed[i].mtime.tv_sec == st->st_mtim.tv_sec &&
            f->closed[i].mtime.tv_nsec == st->st_mtim.tv_nsec)
            return true;
    return false;
}

void sf_follow_created(struct target *tg, const char *path, dev_t dev, ino_t ino)
{
    struct bt_files *f = tg->f;
    if (tg->retiring || excluded(tg, path) || sf_find_by_id(tg, dev, ino))
        return;
    char now[PATH_MAX];
    struct stat st;
    int fd = find_by_identity(path, dev, ino, now, sizeof(now));
    if (fd < 0) {
        uint64_t sup;
        bt_counter_inc(f->m_missed);
        if (bt_ratelimit_ok(&f->rl_missed, &sup))
            BT_WARN("tail",
                    "a file created under a watched name was gone before it could be opened",
                    "path=%s inode=%llu suppressed=%llu", path, (unsigned long long)ino,
                    (unsigned long long)sup);
        return;
    }
    if (fstat(fd, &st) < 0 || closed_read(f, &st)) {
        close(fd); /* read to its end already, under some name, and closed since */
        return;
    }
    make_room(f); /* the descriptor is open already: losing the file is worse than the budget */
    struct bt_tail *t = bt_tail_open_fd(fd, path, &f->tcfg, &tg->labels, tg->sink, tg->ctx);
    if (!t) { /* out of memory: the file is not read, and says so in the count */
        bt_counter_inc(f->m_missed);
        BT_WARN("tail", "cannot read a file that left its name", "path=%s now=%s err=%s", path, now,
                strerror(errno));
        return;
    }
    BT_INFO("tail", "reading a file that left its name before it was opened",
            "path=%s now=%s inode=%llu size=%llu", path, now, (unsigned long long)ino,
            (unsigned long long)bt_tail_size(t));
    bt_tail_set_recovering(t, true);
    size_t n = tg->n;
    add_ftail(tg, t, NULL, now, 0, NULL);
    if (tg->n > n && !tg->files[n]->dead)
        tg->files[n]->rot_key = sf_rotated_key(tg->files[n]);
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
    if (tg->retiring) { /* no new files: only the ones open are read on to their end */
        for (size_t i = 0; i < tg->n; i++)
            sf_service(tg->files[i]);
        return;
    }
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
