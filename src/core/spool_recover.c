#include "core/spool_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "util/timeutil.h"

/* ---- the commit file ---- */

int sp_save_commit(struct bt_spool *s)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "%016" PRIx64, s->commit);
    n += snprintf(line + n, sizeof(line) - (size_t)n, " %08" PRIx32 "\n",
                  bt_crc32c(0, line, (size_t)n));
    int rc = 0, fd = openat(s->dfd, COMMIT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    errno = 0;
    if (write(fd, line, (size_t)n) != n || fsync(fd) < 0) {
        rc = errno ? -errno : -EIO;
        close(fd);
        unlinkat(s->dfd, COMMIT_TMP, 0);
        return rc;
    }
    close(fd);
    if (renameat(s->dfd, COMMIT_TMP, s->dfd, COMMIT_FILE) < 0) {
        rc = -errno;
        unlinkat(s->dfd, COMMIT_TMP, 0);
        return rc;
    }
    fsync(s->dfd);
    s->saved_commit = s->commit;
    s->saved_ns = bt_mono_ns();
    return 0;
}

/* The saved commit, or -1 when the file is missing or not one we wrote. */
static int64_t load_commit(struct bt_spool *s)
{
    char line[64];
    int fd = openat(s->dfd, COMMIT_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, line, sizeof(line) - 1);
    close(fd);
    if (n != 26 || line[16] != ' ' || line[25] != '\n')
        return -1;
    line[n] = '\0';
    char *endp;
    errno = 0;
    unsigned long long crc = strtoull(line + 17, &endp, 16);
    if (errno || endp != line + 25 || crc != bt_crc32c(0, line, 16))
        return -1;
    line[16] = '\0';
    unsigned long long off = strtoull(line, &endp, 16);
    if (errno || endp != line + 16 || off > INT64_MAX)
        return -1;
    return (int64_t)off;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Bases of the segment files in the directory, sorted. -errno on failure. */
static int list_segments(struct bt_spool *s, uint64_t **out, size_t *count)
{
    int fd = openat(s->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -errno;
    }
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        char *endp;
        if (strlen(e->d_name) != 20 || strcmp(e->d_name + 16, ".seg") != 0 ||
            !strchr("0123456789abcdef", e->d_name[0]))
            continue;
        uint64_t base = strtoull(e->d_name, &endp, 16);
        if (endp != e->d_name + 16)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                rc = -ENOMEM;
                break;
            }
            v = nv;
        }
        v[n++] = base;
    }
    closedir(d);
    if (rc) {
        free(v);
        return rc;
    }
    if (n)
        qsort(v, n, sizeof(*v), cmp_u64);
    *out = v;
    *count = n;
    return 0;
}

/* Cuts seg (and its file) at off, where a torn or corrupt record starts. */
static void cut_segment(struct bt_spool *s, struct seg *seg, uint64_t off, const char *why)
{
    char name[32];
    seg_name(name, seg->base);
    s->corrupt++;
    BT_WARN("spool", "torn or corrupt record cut",
            "dir=%s file=%s offset=%" PRIu64 " cut_bytes=%" PRIu64 " reason=%s", s->dir, name,
            seg->base + off, seg->size - off, why);
    int fd = openat(s->dfd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)off) < 0)
        BT_WARN("spool", "cannot truncate segment", "dir=%s file=%s err=\"%s\"", s->dir, name,
                strerror(errno));
    if (fd >= 0)
        close(fd);
    if (seg == s->win_seg)
        s->win_seg = NULL;
    s->bytes -= seg->size - off;
    s->g->bytes -= seg->size - off;
    seg->size = seg->disk = off;
}

/* Verifies every record of seg, counting them and cutting a bad tail; snaps *commit to the
 * record boundary at or before it when it falls inside. 0 or -errno. */
static int scan_segment(struct bt_spool *s, struct seg *seg, uint64_t *commit)
{
    uint64_t off = 0;
    while (off < seg->size) {
        const unsigned char *p = NULL;
        uint32_t len;
        int rc = sp_check_record(s, seg, off, &p, &len);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            const char *why = "bad_checksum";
            if (seg->size - off < HDR)
                why = "torn_header";
            else if (!p || seg->size - off - HDR < get_le32(p))
                why = "torn_or_bad_length";
            cut_segment(s, seg, off, why);
            break;
        }
        if (*commit > seg->base + off && *commit < seg->base + off + HDR + len)
            *commit = seg->base + off;
        off += HDR + len;
        seg->nrec++;
    }
    return 0;
}

int sp_recover(struct bt_spool *s, char *err, size_t errlen)
{
    uint64_t *bases = NULL;
    size_t n = 0;
    int rc = list_segments(s, &bases, &n);
    if (rc) {
        snprintf(err, errlen, "spool %s: cannot list: %s", s->dir, strerror(-rc));
        return rc;
    }
    unlinkat(s->dfd, COMMIT_TMP, 0);
    int64_t saved = load_commit(s);
    if (saved < 0 && (n || faccessat(s->dfd, COMMIT_FILE, F_OK, 0) == 0))
        BT_WARN("spool", "commit file missing or unreadable; reading from the first segment",
                "dir=%s", s->dir);
    uint64_t commit = saved >= 0 ? (uint64_t)saved : n ? bases[0] : 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char name[32];
        struct stat st;
        seg_name(name, bases[i]);
        if (fstatat(s->dfd, name, &st, 0) < 0 || !S_ISREG(st.st_mode))
            continue;
        uint64_t size = (uint64_t)st.st_size;
        bool overlaps = s->tail && bases[i] < s->tail->base + s->tail->size;
        if (bases[i] + size <= commit || overlaps) {
            if (overlaps) {
                s->corrupt++;
                BT_WARN("spool", "segment overlaps the one before; deleted", "dir=%s file=%s",
                        s->dir, name);
            }
            unlinkat(s->dfd, name, 0);
            continue;
        }
        int64_t order = (int64_t)st.st_mtim.tv_sec * BT_NS_PER_SEC + st.st_mtim.tv_nsec;
        struct seg *seg = sp_seg_add(s, bases[i], size, order);
        if (!seg) {
            rc = -ENOMEM;
            break;
        }
        rc = scan_segment(s, seg, &commit);
        if (rc == 0 && seg->size == 0)
            sp_seg_remove(s, seg);
        else if (rc == 0 && seg->base + seg->size <= commit)
            sp_seg_remove(s, seg);
    }
    free(bases);
    if (rc) {
        snprintf(err, errlen, "spool %s: cannot read segments: %s", s->dir, strerror(-rc));
        return rc;
    }
    if (s->tail && commit > s->tail->base + s->tail->size)
        commit = s->tail->base + s->tail->size; /* acked from the buffer, never written */
    s->commit = commit;
    s->end = s->tail ? s->tail->base + s->tail->size : commit;
    s->read_off = s->head && s->head->base > commit ? s->head->base : commit;
    if (saved < 0 || (uint64_t)saved != commit)
        sp_save_commit(s);
    else
        s->saved_commit = commit;
    return 0;
}
