/*
 * BPF watcher tests: load the real programs, make real syscalls on real files in a temp
 * directory, and check what the ring buffer delivers. They need root (or CAP_BPF +
 * CAP_PERFMON) and a kernel with BTF; when the programs cannot load they FAIL and say why.
 * Built with -DBT_BPF=OFF, only the stub behaviour is checked and the rest is skipped loudly.
 * Also here, as they share the helpers: the fanotify backend (the next in the chain), the
 * capability drop, the fallback without capabilities, and the real tailers on the BPF watcher.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <linux/magic.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/statfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/caps.h"
#include "config/config.h"
#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "source/source_file.h"
#include "tmpdir.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "watch/watch.h"
#include "watch/watch_bpf.h"

#define MAX_EV 256

struct got {
    uint32_t mask, op;
    dev_t dev;
    ino_t ino;
    char dir[512], name[256], path[512], raw[256], raw2[256], comm[17];
    uint32_t pid, tgid, ppid, uid;
    int32_t ret;
    int64_t ts_ns;
    int rename_new;
};

static struct got g_ev[MAX_EV];
static int g_n;
static struct bt_watch g_w;
static char g_dir[256];

static void on_ev(void *ctx, const struct bt_watch_event *ev)
{
    /* ctx names the delivering watch when a test runs more than g_w */
    const struct bt_watch_bpf_info *info = bt_watch_bpf_current(ctx ? ctx : &g_w);
    struct got *g;

    if (g_n >= MAX_EV)
        return;
    g = &g_ev[g_n++];
    memset(g, 0, sizeof(*g));
    g->mask = ev->mask;
    g->dev = ev->dev;
    g->ino = ev->ino;
    snprintf(g->dir, sizeof(g->dir), "%s", ev->dir ? ev->dir : "");
    snprintf(g->name, sizeof(g->name), "%s", ev->name ? ev->name : "");
    snprintf(g->comm, sizeof(g->comm), "%s", ev->comm ? ev->comm : "");
    g->pid = ev->pid;
    g->tgid = ev->tgid;
    g->ppid = ev->ppid;
    g->uid = ev->uid;
    if (info) {
        g->op = info->op;
        g->ret = info->ret;
        g->ts_ns = info->ts_ns;
        g->rename_new = info->rename_new;
        snprintf(g->path, sizeof(g->path), "%s", info->path ? info->path : "");
        snprintf(g->raw, sizeof(g->raw), "%s", info->name);
        snprintf(g->raw2, sizeof(g->raw2), "%s", info->name2);
    }
}

/* Fallback tests: the watcher must refuse cleanly, with one clear log line. */
static int capture_log(void)
{
    static char tmpl[64];
    int fd;

    snprintf(tmpl, sizeof(tmpl), "/tmp/bpftail-log-XXXXXX");
    fd = mkstemp(tmpl);
    cr_assert_geq(fd, 0);
    unlink(tmpl);
    bt_log_set_fd(fd);
    return fd;
}

static void read_log(int fd, char *out, size_t n)
{
    ssize_t r = pread(fd, out, n - 1, 0);
    out[r > 0 ? r : 0] = '\0';
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void fallback_setup(void)
{
    memset(&g_w, 0, sizeof(g_w));
    g_w.ops = &bt_watch_bpf_ops;
    g_w.fn = on_ev;
}

#ifdef BT_HAVE_BPF

static void open_watch(void)
{
    int rc;

    g_n = 0;
    memset(&g_w, 0, sizeof(g_w));
    g_w.ops = &bt_watch_bpf_ops;
    g_w.fn = on_ev;
    rc = g_w.ops->open(&g_w);
    cr_assert_eq(rc, 0,
                 "the BPF programs did not load (rc=%d): these tests need root or CAP_BPF + "
                 "CAP_PERFMON and a kernel with /sys/kernel/btf/vmlinux",
                 rc);
}

static void setup(void)
{
    cr_assert_eq(bt_tmpdir_make(g_dir, sizeof(g_dir)), 0);
    bt_log_set_level(BT_LOG_WARN);
    open_watch();
}

static void teardown(void)
{
    if (g_w.impl)
        g_w.ops->close(&g_w);
    bt_tmpdir_remove(g_dir);
}

/* Dispatches until `want` events arrived or 2 s passed; then anything else pending. */
static void drain(int want)
{
    int64_t end = bt_mono_ns() + 2 * BT_NS_PER_SEC;
    struct pollfd p = {.fd = g_w.ops->fd(&g_w), .events = POLLIN};

    while (g_n < want && bt_mono_ns() < end) {
        poll(&p, 1, 50);
        cr_assert_eq(g_w.ops->dispatch(&g_w), 0);
    }
    poll(&p, 1, 20);
    cr_assert_eq(g_w.ops->dispatch(&g_w), 0);
}

static const struct got *find(uint32_t op, const char *name)
{
    for (int i = 0; i < g_n; i++)
        if (g_ev[i].op == op && (!name || strcmp(g_ev[i].name, name) == 0))
            return &g_ev[i];
    return NULL;
}

static int count(uint32_t op)
{
    int n = 0;
    for (int i = 0; i < g_n; i++)
        n += g_ev[i].op == op;
    return n;
}

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

TestSuite(watch_bpf, .init = setup, .fini = teardown, .timeout = 60);

Test(watch_bpf, reports_write_truncate_and_close_on_a_watched_file)
{
    char p[512];
    struct stat st;
    struct iovec iov[2] = {{"ab", 2}, {"cd\n", 3}};
    const struct got *e;
    int fd;

    path_of(p, sizeof(p), "app.log");
    cr_assert_eq(bt_tmpdir_write(g_dir, "app.log", "x\n", 2), 0);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, st.st_dev, st.st_ino), 0);

    fd = open(p, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    /* Each write is read before the next: writes are coalesced only while one is unread. */
    cr_assert_eq(write(fd, "hello\n", 6), 6);
    drain(g_n + 1);
    cr_assert_eq(writev(fd, iov, 2), 5);
    drain(g_n + 1);
    cr_assert_eq(pwrite(fd, "zz", 2, 0), 2);
    drain(g_n + 1);
    cr_assert_eq(ftruncate(fd, 1), 0);
    cr_assert_eq(close(fd), 0);
    fd = open(p, O_WRONLY | O_TRUNC);
    cr_assert_geq(fd, 0);
    close(fd);
    drain(7);

    cr_assert_eq(count(BT_FE_WRITE), 3, "3 writes, got %d", count(BT_FE_WRITE));
    e = find(BT_FE_WRITE, NULL);
    cr_assert_eq(e->mask, BT_WATCH_MODIFY);
    cr_assert_eq(e->dev, st.st_dev, "dev %lx vs %lx", (long)e->dev, (long)st.st_dev);
    cr_assert_eq(e->ino, st.st_ino);
    cr_assert_eq(e->ret, 6);
    cr_assert_str_eq(e->path, p);
    cr_assert_eq(e->pid, (uint32_t)getpid());
    cr_assert_eq(e->tgid, (uint32_t)getpid());
    cr_assert_eq(e->ppid, (uint32_t)getppid());
    cr_assert_eq(e->uid, (uint32_t)getuid());
    cr_assert(llabs(e->ts_ns - bt_now_ns()) < 5 * BT_NS_PER_SEC, "ts is wall clock");
    cr_assert_eq(count(BT_FE_TRUNCATE), 2, "ftruncate + O_TRUNC, got %d", count(BT_FE_TRUNCATE));
    cr_assert_eq(count(BT_FE_CLOSE_WRITE), 2);
    cr_assert_eq(find(BT_FE_CLOSE_WRITE, NULL)->mask, BT_WATCH_CLOSE);
}

Test(watch_bpf, reports_create_write_rename_truncate_unlink_in_a_watched_directory)
{
    char sub[512], a[512], b2[512], c[512];
    const struct got *e;
    int fd, dfd;

    path_of(sub, sizeof(sub), "logs");
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(g_w.ops->add_dir(&g_w, sub, 0, 0), 0);
    snprintf(a, sizeof(a), "%s/a.log", sub);
    snprintf(b2, sizeof(b2), "%s/b.log", sub);
    snprintf(c, sizeof(c), "%s/c.log", sub);

    fd = open(a, O_WRONLY | O_CREAT | O_EXCL, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "one\n", 4), 4);
    close(fd);
    cr_assert_eq(rename(a, b2), 0);   /* absolute paths */
    cr_assert_eq(truncate(b2, 0), 0); /* path truncate */
    dfd = open(sub, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(dfd, 0);
    cr_assert_eq(renameat(dfd, "b.log", dfd, "c.log"), 0); /* bare names, via dirfd */
    cr_assert_eq(unlinkat(dfd, "c.log", 0), 0);
    close(dfd);
    drain(8);

    e = find(BT_FE_CREATE, "a.log");
    cr_assert_not_null(e, "create event (got %d events)", g_n);
    cr_assert_eq(e->mask, BT_WATCH_CREATE);
    cr_assert_str_eq(e->dir, sub);
    cr_assert_str_eq(e->path, a);
    cr_assert_neq(e->ino, 0);
    e = find(BT_FE_WRITE, "a.log");
    cr_assert_not_null(e, "write via the parent directory");
    cr_assert_str_eq(e->dir, sub);
    e = find(BT_FE_RENAME, "a.log");
    cr_assert_not_null(e, "rename, old side");
    cr_assert_eq(e->mask, BT_WATCH_MOVED);
    cr_assert_str_eq(e->dir, sub);
    cr_assert_str_eq(e->raw2, b2);
    e = find(BT_FE_RENAME, "b.log");
    cr_assert_not_null(e, "rename, new side");
    cr_assert_eq(e->rename_new, 1);
    e = find(BT_FE_TRUNCATE, "b.log");
    cr_assert_not_null(e, "truncate(path)");
    cr_assert_eq(e->mask, BT_WATCH_TRUNCATE);
    e = find(BT_FE_RENAME, "c.log");
    cr_assert_not_null(e, "renameat with bare names");
    cr_assert_str_eq(e->dir, sub);
    cr_assert_str_eq(e->path, c);
    e = find(BT_FE_UNLINK, "c.log");
    cr_assert_not_null(e, "unlinkat with a bare name");
    cr_assert_eq(e->mask, BT_WATCH_DELETE);
    cr_assert_str_eq(e->dir, sub);
}

/* A file given a name in a watched directory by a hard link is a new file there, as inotify
 * and fanotify report it (a create): found at once, not by the reconcile seconds later. */
Test(watch_bpf, hard_link_into_a_watched_directory_is_reported_as_a_create)
{
    char sub[512], src[512], a[600];
    const struct got *e;
    int dfd, sfd;

    path_of(sub, sizeof(sub), "logs");
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(bt_tmpdir_write(g_dir, "outside.log", "1\n", 2), 0);
    path_of(src, sizeof(src), "outside.log");
    cr_assert_eq(g_w.ops->add_dir(&g_w, sub, 0, 0), 0);
    snprintf(a, sizeof(a), "%s/a.log", sub);
    cr_assert_eq(link(src, a), 0); /* absolute paths */
    dfd = open(sub, O_RDONLY | O_DIRECTORY);
    sfd = open(g_dir, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(dfd, 0);
    cr_assert_geq(sfd, 0);
    cr_assert_eq(linkat(sfd, "outside.log", dfd, "b.log", 0), 0); /* bare names, via dirfds */
    close(dfd);
    close(sfd);
    drain(2);

    e = find(BT_FE_LINK, "a.log");
    cr_assert_not_null(e, "link(2) into the directory (got %d events)", g_n);
    cr_assert_eq(e->mask, BT_WATCH_CREATE);
    cr_assert_str_eq(e->dir, sub);
    e = find(BT_FE_LINK, "b.log");
    cr_assert_not_null(e, "linkat(2) with bare names");
    cr_assert_eq(e->mask, BT_WATCH_CREATE);
    cr_assert_str_eq(e->dir, sub);
}

Test(watch_bpf, unlink_by_absolute_path_of_a_watched_file_is_reported)
{
    char p[512];

    path_of(p, sizeof(p), "gone.log");
    cr_assert_eq(bt_tmpdir_write(g_dir, "gone.log", "x", 1), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    cr_assert_eq(unlink(p), 0);
    drain(1);
    cr_assert_not_null(find(BT_FE_UNLINK, "gone.log"), "got %d events", g_n);
}

Test(watch_bpf, hundred_thousand_writes_to_an_unwatched_file_produce_no_event)
{
    char w[512], u[512];
    uint64_t before = 0, after = 0, drops = 0;
    int fd;

    path_of(w, sizeof(w), "watched.log");
    path_of(u, sizeof(u), "other.log");
    cr_assert_eq(bt_tmpdir_write(g_dir, "watched.log", "", 0), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, w, 0, 0), 0);
    cr_assert_eq(bt_watch_bpf_stats(&g_w, &before, &drops), 0);
    fd = open(u, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    for (int i = 0; i < 100000; i++)
        cr_assert_eq(write(fd, "x", 1), 1);
    close(fd);
    /* A sentinel write to the watched file proves the pipe works while the others are quiet. */
    cr_assert_eq(bt_tmpdir_append(g_dir, "watched.log", "y", 1), 0);
    drain(1);
    cr_assert_eq(bt_watch_bpf_stats(&g_w, &after, &drops), 0);
    cr_assert_not_null(find(BT_FE_WRITE, NULL), "the watched write arrived");
    for (int i = 0; i < g_n; i++)
        cr_assert_str_neq(g_ev[i].name, "other.log", "event for the unwatched file");
    /* sentinel: write + close; the kernel sent nothing else. */
    cr_assert_leq(after - before, 2, "kernel sent %llu events",
                  (unsigned long long)(after - before));
    cr_assert_eq(drops, 0);
}

Test(watch_bpf, write_through_a_hard_link_to_a_watched_file_is_reported)
{
    char w[512], other[512], link_path[512];
    struct stat st;
    const struct got *e;
    int fd;

    path_of(w, sizeof(w), "secret");
    path_of(other, sizeof(other), "elsewhere");
    cr_assert_eq(mkdir(other, 0755), 0);
    snprintf(link_path, sizeof(link_path), "%s/alias", other);
    cr_assert_eq(bt_tmpdir_write(g_dir, "secret", "s\n", 2), 0);
    cr_assert_eq(stat(w, &st), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, w, 0, 0), 0);
    cr_assert_eq(link(w, link_path), 0);
    fd = open(link_path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "via link\n", 9), 9);
    close(fd);
    drain(1);
    e = find(BT_FE_WRITE, NULL);
    cr_assert_not_null(e, "write through the link");
    cr_assert_eq(e->ino, st.st_ino);
    cr_assert_str_eq(e->path, w, "reported under the watched path");
    cr_assert_str_eq(e->raw, "alias", "and names the link used");
}

Test(watch_bpf, removed_file_and_directory_stop_reporting)
{
    char p[512], sub[512];
    struct stat st;

    path_of(p, sizeof(p), "f.log");
    path_of(sub, sizeof(sub), "d");
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(bt_tmpdir_write(g_dir, "f.log", "", 0), 0);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, st.st_dev, st.st_ino), 0);
    cr_assert_eq(g_w.ops->add_dir(&g_w, sub, 0, 0), 0);
    cr_assert_eq(g_w.ops->remove_file(&g_w, st.st_dev, st.st_ino), 0);
    cr_assert_eq(g_w.ops->remove_dir(&g_w, sub), 0);
    cr_assert_eq(g_w.ops->remove_dir(&g_w, sub), -ENOENT);
    cr_assert_eq(bt_tmpdir_append(g_dir, "f.log", "x", 1), 0);
    cr_assert_eq(bt_tmpdir_write(sub, "new.log", "x", 1), 0);
    /* a still-watched sentinel */
    cr_assert_eq(bt_tmpdir_write(g_dir, "s.log", "", 0), 0);
    path_of(p, sizeof(p), "s.log");
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    cr_assert_eq(bt_tmpdir_append(g_dir, "s.log", "x", 1), 0);
    drain(1);
    for (int i = 0; i < g_n; i++)
        cr_assert_str_eq(g_ev[i].path, p, "only the sentinel reports, got %s", g_ev[i].path);
    cr_assert_gt(g_n, 0);
}

Test(watch_bpf, rotation_keeps_the_path_watched_while_either_inode_is)
{
    char p[512], old[512];
    struct stat st1, st2;

    path_of(p, sizeof(p), "rot.log");
    path_of(old, sizeof(old), "rot.log.1");
    cr_assert_eq(bt_tmpdir_write(g_dir, "rot.log", "a", 1), 0);
    cr_assert_eq(stat(p, &st1), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    cr_assert_eq(rename(p, old), 0);
    cr_assert_eq(bt_tmpdir_write(g_dir, "rot.log", "b", 1), 0);
    cr_assert_eq(stat(p, &st2), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    cr_assert_eq(g_w.ops->remove_file(&g_w, st1.st_dev, st1.st_ino), 0);
    cr_assert_eq(unlink(p), 0); /* matched by the path, still referenced by the new inode */
    drain(2);
    cr_assert_not_null(find(BT_FE_RENAME, "rot.log"));
    cr_assert_not_null(find(BT_FE_UNLINK, "rot.log"),
                       "path watch survived removal of the old inode");
}

Test(watch_bpf, map_updates_keep_working_after_capabilities_are_dropped)
{
    char p[512];

    /* Criterion runs each test in its own process: dropping here affects only this test. */
    cr_assert_eq(bt_caps_drop_except(bt_caps_keep_logs()), 0);
    cr_assert_not(bt_caps_can_bpf());
    path_of(p, sizeof(p), "late.log");
    cr_assert_eq(bt_tmpdir_write(g_dir, "late.log", "", 0), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0, "add after the drop");
    cr_assert_eq(bt_tmpdir_append(g_dir, "late.log", "x\n", 2), 0);
    drain(1);
    cr_assert_not_null(find(BT_FE_WRITE, NULL), "events still flow after the drop");
}

Test(watch_bpf, ignored_process_causes_no_event)
{
    char p[512];

    path_of(p, sizeof(p), "self.log");
    cr_assert_eq(bt_tmpdir_write(g_dir, "self.log", "", 0), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    cr_assert_eq(bt_watch_bpf_ignore_tgid(&g_w, (uint32_t)getpid()), 0);
    cr_assert_eq(bt_tmpdir_append(g_dir, "self.log", "x", 1), 0);
    drain(1);
    cr_assert_eq(g_n, 0, "own write delivered while ignored");
    cr_assert_eq(bt_watch_bpf_ignore_tgid(&g_w, 0), 0);
    cr_assert_eq(bt_tmpdir_append(g_dir, "self.log", "y", 1), 0);
    drain(2);
    cr_assert_eq(count(BT_FE_WRITE), 1, "only the second write, got %d", count(BT_FE_WRITE));
}

/* ---- page-cache writes that bypass write(2) ---- */

Test(watch_bpf, store_into_a_shared_mapping_of_a_watched_file_is_reported)
{
    char p[512];
    char page[4096];
    struct statfs sfs;
    struct stat st;
    const struct got *e;
    char *map;
    int fd;

    cr_assert_eq(statfs(g_dir, &sfs), 0);
    if (sfs.f_type == TMPFS_MAGIC)
        cr_skip_test("temp dir is on tmpfs, which never reports page-cache dirtying: set TMPDIR "
                     "to a disk filesystem (ext4, xfs) to run this test");
    memset(page, 'a', sizeof(page));
    cr_assert_eq(bt_tmpdir_write(g_dir, "mapped.log", page, sizeof(page)), 0);
    path_of(p, sizeof(p), "mapped.log");
    fd = open(p, O_RDWR);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fsync(fd), 0); /* clean pages: the next store dirties them again */
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, st.st_dev, st.st_ino), 0);
    map = mmap(NULL, sizeof(page), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    cr_assert_neq(map, MAP_FAILED);
    map[10] = 'Z';
    cr_assert_eq(munmap(map, sizeof(page)), 0);
    close(fd);
    drain(1);
    e = find(BT_FE_DIRTY, NULL);
    cr_assert_not_null(e, "no page-cache event (got %d events)", g_n);
    cr_assert_eq(e->mask, BT_WATCH_MODIFY);
    cr_assert_eq(e->ino, st.st_ino);
    cr_assert_str_eq(e->path, p);
    cr_assert_eq(e->pid, (uint32_t)getpid());
    cr_assert_eq(count(BT_FE_WRITE), 0, "no write(2) happened");
}

Test(watch_bpf, write_syscalls_are_not_reported_twice_by_the_page_cache_hook)
{
    char p[512];

    path_of(p, sizeof(p), "once.log");
    cr_assert_eq(bt_tmpdir_write(g_dir, "once.log", "", 0), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    cr_assert_eq(bt_tmpdir_append(g_dir, "once.log", "x\n", 2), 0);
    drain(2);
    cr_assert_eq(count(BT_FE_WRITE), 1);
    cr_assert_eq(count(BT_FE_DIRTY), 0, "write(2) already reported");
}

Test(watch_bpf_fallback, refused_load_returns_eperm_with_one_log_line, .init = fallback_setup)
{
    char log[4096];
    int fd = capture_log();

    bt_watch_bpf_refuse(-EPERM);
    cr_assert_eq(g_w.ops->open(&g_w), -EPERM);
    cr_assert_null(g_w.impl);
    bt_watch_bpf_refuse(0);
    read_log(fd, log, sizeof(log));
    cr_assert_eq(count_lines(log), 1, "one line, got: %s", log);
    cr_assert(strstr(log, "bpf watcher unavailable"), "%s", log);
    cr_assert(strstr(log, "err=-1"), "%s", log);
}

Test(watch_bpf_fallback, environment_option_refuses_the_load, .init = fallback_setup)
{
    setenv("BPFTAIL_BPF_REFUSE", "1", 1);
    cr_assert_eq(g_w.ops->open(&g_w), -EPERM);
    unsetenv("BPFTAIL_BPF_REFUSE");
}

Test(watch_bpf_fallback, without_bpf_capabilities_open_says_eperm, .init = fallback_setup)
{
    char log[4096];
    int fd;

    cr_assert_eq(bt_caps_drop_except(bt_caps_keep_logs()), 0);
    fd = capture_log();
    cr_assert_eq(g_w.ops->open(&g_w), -EPERM);
    read_log(fd, log, sizeof(log));
    cr_assert_eq(count_lines(log), 1, "one line, got: %s", log);
    cr_assert(strstr(log, "CAP_BPF"), "%s", log);
}

Test(watch_bpf_fallback, refused_load_can_be_retried_when_allowed, .init = fallback_setup)
{
    bt_log_set_level(BT_LOG_ERROR);
    bt_watch_bpf_refuse(-EPERM);
    cr_assert_eq(g_w.ops->open(&g_w), -EPERM);
    bt_watch_bpf_refuse(0);
    cr_assert_eq(g_w.ops->open(&g_w), 0, "BPF must load as root (need CAP_BPF + CAP_PERFMON)");
    g_w.ops->close(&g_w);
}

Test(watch_bpf, writes_are_coalesced_until_the_event_is_read_and_none_is_missed)
{
    char p[512];
    uint64_t before = 0, after = 0;
    int fd;

    path_of(p, sizeof(p), "busy.log");
    cr_assert_eq(bt_tmpdir_write(g_dir, "busy.log", "", 0), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    fd = open(p, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    cr_assert_eq(bt_watch_bpf_stats(&g_w, &before, NULL), 0);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(write(fd, "x", 1), 1);
    cr_assert_eq(bt_watch_bpf_stats(&g_w, &after, NULL), 0);
    cr_assert_eq(after - before, 1, "1000 unread writes make one record, got %llu",
                 (unsigned long long)(after - before));
    drain(1);
    cr_assert_eq(count(BT_FE_WRITE), 1);
    /* Once read, the next write is reported again. */
    cr_assert_eq(write(fd, "y", 1), 1);
    drain(2);
    cr_assert_eq(count(BT_FE_WRITE), 2, "the write after the read was not reported");
    close(fd);
}

Test(watch_bpf, every_write_is_reported_when_asked)
{
    char p[512];
    int fd;

    path_of(p, sizeof(p), "audit.log");
    cr_assert_eq(bt_tmpdir_write(g_dir, "audit.log", "", 0), 0);
    cr_assert_eq(bt_watch_bpf_set_ops(&g_w, BT_FE_OPBIT(BT_FE_WRITE) | BT_FE_EVERY_WRITE), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    fd = open(p, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(write(fd, "x", 1), 1);
    close(fd);
    drain(100);
    cr_assert_eq(count(BT_FE_WRITE), 100);
}

Test(watch_bpf, a_file_watched_again_is_not_left_muted)
{
    char p[512];
    struct stat st;

    path_of(p, sizeof(p), "again.log");
    cr_assert_eq(bt_tmpdir_write(g_dir, "again.log", "", 0), 0);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    cr_assert_eq(bt_tmpdir_append(g_dir, "again.log", "x", 1), 0); /* mutes, unread */
    cr_assert_eq(g_w.ops->remove_file(&g_w, st.st_dev, st.st_ino), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    cr_assert_eq(g_w.ops->dispatch(&g_w), 0); /* the old record: not ours any more */
    g_n = 0;
    cr_assert_eq(bt_tmpdir_append(g_dir, "again.log", "y", 1), 0);
    drain(1);
    cr_assert_eq(count(BT_FE_WRITE), 1, "write after re-adding was not reported");
}

Test(watch_bpf, new_subdirectory_in_a_watched_directory_is_reported)
{
    char sub[512], d[600];
    const struct got *e;

    path_of(sub, sizeof(sub), "w");
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(g_w.ops->add_dir(&g_w, sub, 0, 0), 0);
    snprintf(d, sizeof(d), "%s/app", sub);
    cr_assert_eq(mkdir(d, 0755), 0);
    drain(1);
    e = find(BT_FE_CREATE, "app");
    cr_assert_not_null(e, "mkdir in a watched directory (got %d events)", g_n);
    cr_assert_str_eq(e->dir, sub);
}

/* The real tailers on the BPF watcher: woken by events, no polling. */

struct lines {
    char text[64][64];
    int n;
};

static void collect_line(void *ctx, const struct bt_entry *e)
{
    struct lines *ls = ctx;
    if (ls->n < 64)
        snprintf(ls->text[ls->n++], sizeof(ls->text[0]), "%.*s", (int)e->line_len, e->line);
}

static int has_line(const struct lines *ls, const char *t)
{
    for (int i = 0; i < ls->n; i++)
        if (strcmp(ls->text[i], t) == 0)
            return 1;
    return 0;
}

static void pump_until(struct bt_loop *l, const struct lines *ls, int n)
{
    int64_t end = bt_mono_ns() + 3 * BT_NS_PER_SEC;
    while (ls->n < n && bt_mono_ns() < end)
        bt_loop_run_once(l, 20 * BT_NS_PER_MS);
}

Test(watch_bpf, tailers_follow_new_and_rotated_files_woken_by_bpf_events)
{
    struct bt_agent_config agent = {.line_flush_timeout_ns = 150 * BT_NS_PER_MS,
                                    .rotate_grace_ns = 100 * BT_NS_PER_MS,
                                    .read_buffer = 65536,
                                    .fingerprint_check = true};
    struct bt_limits_config limits = {0};
    struct bt_positions_config pos = {.sync_period_ns = 10 * BT_NS_PER_SEC};
    struct bt_loop *l = bt_loop_new();
    struct bt_metrics *m = bt_metrics_new();
    struct bt_files_config fc = {.loop = l,
                                 .metrics = m,
                                 .agent = &agent,
                                 .limits = &limits,
                                 .positions = &pos,
                                 .sync_period_ns = 10 * BT_NS_PER_SEC,
                                 .watcher = "bpf"};
    char err[256], logs[512], glob[600], posfile[600], a[600], a1[600];
    struct lines ls = {0};
    struct bt_labels lb;
    struct bt_files *f;
    uint64_t w0;

    g_w.ops->close(&g_w); /* the files module opens its own */
    g_w.impl = NULL;
    snprintf(logs, sizeof(logs), "%s/logs", g_dir);
    cr_assert_eq(mkdir(logs, 0755), 0);
    snprintf(posfile, sizeof(posfile), "%s/positions.yaml", g_dir);
    pos.filename = posfile;
    cr_assert_eq(bt_tmpdir_write(logs, "a.log", "", 0), 0);
    f = bt_files_new(&fc, err, sizeof(err));
    cr_assert_not_null(f, "%s", err);
    cr_assert_str_eq(bt_files_watcher(f), "bpf");
    bt_labels_init(&lb);
    snprintf(glob, sizeof(glob), "%s/*.log", logs);
    bt_labels_set(&lb, "__path__", glob);
    bt_labels_set(&lb, "job", "app");
    cr_assert_eq(bt_files_add_target(f, "app", &lb, BT_START_BEGINNING, 0, collect_line, &ls), 0);
    bt_labels_free(&lb);
    bt_loop_run_once(l, 50 * BT_NS_PER_MS);

    cr_assert_eq(bt_tmpdir_append(logs, "a.log", "one\n", 4), 0);
    pump_until(l, &ls, 1);
    cr_assert(has_line(&ls, "one"), "append to an existing file");
    cr_assert_eq(bt_tmpdir_write(logs, "b.log", "two\n", 4), 0);
    pump_until(l, &ls, 2);
    cr_assert(has_line(&ls, "two"), "a new file in the directory");
    snprintf(a, sizeof(a), "%s/a.log", logs);
    snprintf(a1, sizeof(a1), "%s/a.log.1", logs);
    cr_assert_eq(bt_tmpdir_append(logs, "a.log", "three\n", 6), 0);
    cr_assert_eq(rename(a, a1), 0);
    cr_assert_eq(bt_tmpdir_write(logs, "a.log", "four\n", 5), 0);
    pump_until(l, &ls, 4);
    cr_assert(has_line(&ls, "three"), "the rotated file read to its end");
    cr_assert(has_line(&ls, "four"), "the new file at the path");
    cr_assert_eq(ls.n, 4, "no duplicates, got %d lines", ls.n);

    /* Idle: nothing written, so nothing wakes the loop (the slow timers are 10 s). */
    bt_loop_run_once(l, 300 * BT_NS_PER_MS); /* let rotate grace and flush timers settle */
    bt_loop_run_once(l, 300 * BT_NS_PER_MS);
    w0 = bt_loop_wakeups(l);
    cr_assert_eq(bt_loop_run_once(l, 1500 * BT_NS_PER_MS), 0, "a callback ran while idle");
    cr_assert_eq(bt_loop_wakeups(l) - w0, 1, "only the timeout ended the wait");
    bt_files_free(f);
    bt_metrics_free(m);
    bt_loop_free(l);
}

/* The tail watcher and FIM share one set of programs: one kernel record per syscall, offered
 * to each watch, which keeps what it asked for. */
Test(watch_bpf, two_watches_share_the_programs_and_each_gets_what_it_asked_for)
{
    struct bt_watch w2 = {.ops = &bt_watch_bpf_ops, .fn = on_ev};
    uint64_t before = 0, after = 0;
    char p[512];
    int fd;

    w2.ctx = &w2;
    cr_assert_eq(w2.ops->open(&w2), 0);
    path_of(p, sizeof(p), "both.log");
    cr_assert_eq(bt_tmpdir_write(g_dir, "both.log", "", 0), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0); /* tail ops */
    cr_assert_eq(bt_watch_bpf_set_ops(&w2, BT_FE_OPBIT(BT_FE_CHMOD)), 0);
    cr_assert_eq(w2.ops->add_file(&w2, p, 0, 0), 0); /* chmod only */
    cr_assert_eq(bt_watch_bpf_stats(&g_w, &before, NULL), 0);
    fd = open(p, O_WRONLY | O_APPEND);
    cr_assert_eq(write(fd, "x", 1), 1);
    cr_assert_eq(fchmod(fd, 0640), 0);
    cr_assert_eq(close(fd), 0);
    drain(3);
    cr_assert_eq(bt_watch_bpf_stats(&g_w, &after, NULL), 0);
    cr_assert_eq(after - before, 3, "one record per syscall (write, fchmod, close), got %llu",
                 (unsigned long long)(after - before));
    cr_assert_eq(count(BT_FE_WRITE), 1, "the tail watch gets the write once");
    cr_assert_eq(count(BT_FE_CLOSE_WRITE), 1);
    cr_assert_eq(count(BT_FE_CHMOD), 1, "only the second watch asked for chmod");
    /* Closing one watch withdraws its wishes and leaves the other working. */
    w2.ops->close(&w2);
    g_n = 0;
    cr_assert_eq(chmod(p, 0600), 0);
    cr_assert_eq(bt_tmpdir_append(g_dir, "both.log", "y", 1), 0);
    drain(2);
    cr_assert_eq(count(BT_FE_WRITE), 1);
    cr_assert_eq(count(BT_FE_CHMOD), 0);
}

static void loop_dispatch(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_watch *w = arg;

    (void)l;
    (void)fd;
    (void)events;
    cr_assert_eq(w->ops->dispatch(w), 0);
}

Test(watch_bpf, two_watches_in_one_loop_both_get_the_event_and_the_loop_settles)
{
    struct bt_watch w2 = {.ops = &bt_watch_bpf_ops, .fn = on_ev};
    struct bt_loop *l = bt_loop_new();
    int64_t end;
    char p[512];

    w2.ctx = &w2;
    cr_assert_eq(w2.ops->open(&w2), 0);
    cr_assert_neq(g_w.ops->fd(&g_w), w2.ops->fd(&w2), "each watch has its own fd");
    cr_assert_eq(bt_loop_add_fd(l, g_w.ops->fd(&g_w), EPOLLIN, loop_dispatch, &g_w), 0);
    cr_assert_eq(bt_loop_add_fd(l, w2.ops->fd(&w2), EPOLLIN, loop_dispatch, &w2), 0);
    path_of(p, sizeof(p), "shared.log");
    cr_assert_eq(bt_tmpdir_write(g_dir, "shared.log", "", 0), 0);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    cr_assert_eq(w2.ops->add_file(&w2, p, 0, 0), 0);
    cr_assert_eq(bt_tmpdir_append(g_dir, "shared.log", "x", 1), 0);
    end = bt_mono_ns() + 2 * BT_NS_PER_SEC;
    while (g_n < 4 && bt_mono_ns() < end) /* write + close, for each watch */
        bt_loop_run_once(l, 50 * BT_NS_PER_MS);
    cr_assert_eq(count(BT_FE_WRITE), 2, "one write event per watch, got %d", count(BT_FE_WRITE));
    cr_assert_eq(bt_loop_run_once(l, 100 * BT_NS_PER_MS), 0, "the loop spins after consuming");
    bt_loop_del_fd(l, g_w.ops->fd(&g_w));
    bt_loop_del_fd(l, w2.ops->fd(&w2));
    w2.ops->close(&w2);
    bt_loop_free(l);
}

Test(watch_bpf_overflow, a_full_ring_is_reported_as_overflow, .init = fallback_setup)
{
    char dir[256], p[512];
    uint64_t events = 0, drops = 0;
    int overflow = 0;

    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    bt_log_set_level(BT_LOG_WARN);
    bt_watch_bpf_set_ring_size(4096); /* room for a handful of records */
    cr_assert_eq(g_w.ops->open(&g_w), 0, "BPF must load as root (need CAP_BPF + CAP_PERFMON)");
    bt_watch_bpf_set_ring_size(0);
    cr_assert_eq(bt_tmpdir_write(dir, "busy.log", "", 0), 0);
    snprintf(p, sizeof(p), "%s/busy.log", dir);
    cr_assert_eq(g_w.ops->add_file(&g_w, p, 0, 0), 0);
    g_n = 0;
    for (int i = 0; i < 50; i++)
        cr_assert_eq(bt_tmpdir_append(dir, "busy.log", "x", 1), 0);
    cr_assert_eq(bt_watch_bpf_stats(&g_w, &events, &drops), 0);
    cr_assert_gt(drops, 0, "the kernel counted no lost records");
    cr_assert_eq(g_w.ops->dispatch(&g_w), 0);
    for (int i = 0; i < g_n; i++)
        overflow += (g_ev[i].mask & BT_WATCH_OVERFLOW) != 0;
    cr_assert_eq(overflow, 1, "one overflow event tells the tailers to rescan");
    cr_assert_eq(g_w.lost, 1);
    cr_assert_lt(g_n, 50, "most records were lost, as intended");
    g_w.ops->close(&g_w);
    bt_tmpdir_remove(dir);
}

/* The background start: an interim backend serves at once; when the load ends the watch is on
 * bpf with the file it had, and a write after the switch is an event from bpf. */
static int g_switched;

static void on_loop_ev(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    (void)l;
    (void)fd;
    (void)events;
    bt_watch_dispatch(arg);
}

static void on_switched(void *ctx, struct bt_watch *w, int old_fd)
{
    struct bt_loop *l = ctx;

    if (old_fd >= 0)
        bt_loop_del_fd(l, old_fd);
    cr_assert_eq(bt_loop_add_fd(l, bt_watch_fd(w), EPOLLIN, on_loop_ev, w), 0);
    g_switched = 1;
}

static void on_sw_ev(void *ctx, const struct bt_watch_event *ev)
{
    (void)ctx;
    on_ev(NULL, ev);
}

Test(watch_bpf_start, background_load_hands_the_watches_over_from_the_interim_backend,
     .init = fallback_setup, .timeout = 60)
{
    struct bt_loop *l = bt_loop_new();
    struct bt_watch *w;
    char dir[256], p[512];
    struct stat st;
    int64_t end;

    bt_log_set_level(BT_LOG_ERROR);
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "app.log", "", 0), 0);
    snprintf(p, sizeof(p), "%s/app.log", dir);
    cr_assert_eq(stat(p, &st), 0);
    w = bt_watch_open_loop(NULL, l, on_sw_ev, l, on_switched);
    cr_assert_not_null(w);
    cr_assert(bt_watch_interim(w), "backend %s", bt_watch_name(w));
    cr_assert_str_neq(bt_watch_name(w), "bpf");
    cr_assert_eq(bt_loop_add_fd(l, bt_watch_fd(w), EPOLLIN, on_loop_ev, w), 0);
    cr_assert_eq(bt_watch_add_file(w, p, st.st_dev, st.st_ino), 0);
    g_n = 0;
    cr_assert_eq(bt_tmpdir_append(dir, "app.log", "a\n", 2), 0);
    end = bt_mono_ns() + 30 * BT_NS_PER_SEC;
    while (!g_switched && bt_mono_ns() < end)
        bt_loop_run_once(l, 50 * BT_NS_PER_MS);
    cr_assert(g_switched, "the background load did not finish");
    cr_assert_str_eq(bt_watch_name(w), "bpf");
    cr_assert(!bt_watch_interim(w));
    g_n = 0;
    cr_assert_eq(bt_tmpdir_append(dir, "app.log", "b\n", 2), 0);
    end = bt_mono_ns() + 5 * BT_NS_PER_SEC;
    while (g_n == 0 && bt_mono_ns() < end)
        bt_loop_run_once(l, 50 * BT_NS_PER_MS);
    cr_assert_gt(g_n, 0, "no event after the switch");
    cr_assert(g_ev[0].mask & BT_WATCH_MODIFY);
    cr_assert_eq(g_ev[0].ino, st.st_ino);
    bt_loop_del_fd(l, bt_watch_fd(w));
    bt_watch_close(w);
    bt_loop_free(l);
    bt_tmpdir_remove(dir);
}

#else /* built without BPF */

Test(watch_bpf, stub_says_not_supported)
{
    struct bt_watch w = {.ops = &bt_watch_bpf_ops, .fn = on_ev};

    cr_assert_eq(w.ops->open(&w), -ENOTSUP);
    cr_assert_eq(bt_watch_bpf_set_ops(&w, 1), -ENOTSUP);
    cr_assert_null(bt_watch_bpf_current(&w));
}

Test(watch_bpf, real_program_tests_skipped)
{
    cr_skip_test("built with -DBT_BPF=OFF: the BPF watcher tests that load real programs are "
                 "skipped; configure with -DBT_BPF=ON to run them");
}

#endif

/* ---- fanotify backend (second in the chain): same kernel objects, fewer details ---- */

static struct bt_watch g_fw;

static void fan_setup(void)
{
    int rc;

    g_n = 0;
    cr_assert_eq(bt_tmpdir_make(g_dir, sizeof(g_dir)), 0);
    bt_log_set_level(BT_LOG_WARN);
    memset(&g_fw, 0, sizeof(g_fw));
    g_fw.ops = &bt_watch_fanotify_ops;
    g_fw.fn = on_ev;
    rc = g_fw.ops->open(&g_fw);
    cr_assert_eq(rc, 0, "fanotify with FAN_REPORT_DFID_NAME did not open (rc=%d): needs 5.9+", rc);
}

static void fan_teardown(void)
{
    if (g_fw.impl)
        g_fw.ops->close(&g_fw);
    bt_tmpdir_remove(g_dir);
}

static void fan_drain(int want)
{
    int64_t end = bt_mono_ns() + 2 * BT_NS_PER_SEC;
    struct pollfd p = {.fd = g_fw.ops->fd(&g_fw), .events = POLLIN};

    while (g_n < want && bt_mono_ns() < end) {
        poll(&p, 1, 50);
        cr_assert_eq(g_fw.ops->dispatch(&g_fw), 0);
    }
}

static const struct got *fan_find(uint32_t mask, const char *name)
{
    for (int i = 0; i < g_n; i++)
        if ((g_ev[i].mask & mask) && (!name || strcmp(g_ev[i].name, name) == 0))
            return &g_ev[i];
    return NULL;
}

TestSuite(watch_fanotify, .init = fan_setup, .fini = fan_teardown, .timeout = 30);

Test(watch_fanotify, reports_writes_to_a_watched_file_by_identity)
{
    char p[512];
    struct stat st;
    const struct got *e;

    snprintf(p, sizeof(p), "%s/f.log", g_dir);
    cr_assert_eq(bt_tmpdir_write(g_dir, "f.log", "", 0), 0);
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(g_fw.ops->add_file(&g_fw, p, st.st_dev, st.st_ino), 0);
    cr_assert_eq(bt_tmpdir_append(g_dir, "f.log", "x\n", 2), 0);
    fan_drain(1);
    e = fan_find(BT_WATCH_MODIFY, NULL);
    cr_assert_not_null(e, "modify event (got %d)", g_n);
    cr_assert_eq(e->dev, st.st_dev);
    cr_assert_eq(e->ino, st.st_ino);
    cr_assert_eq(e->pid, (uint32_t)getpid());
}

Test(watch_fanotify, reports_create_rename_delete_in_a_watched_directory)
{
    char sub[512], a[600], b[600];

    snprintf(sub, sizeof(sub), "%s/d", g_dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(g_fw.ops->add_dir(&g_fw, sub, 0, 0), 0);
    snprintf(a, sizeof(a), "%s/a.log", sub);
    snprintf(b, sizeof(b), "%s/b.log", sub);
    cr_assert_eq(bt_tmpdir_write(sub, "a.log", "1\n", 2), 0);
    cr_assert_eq(rename(a, b), 0);
    cr_assert_eq(unlink(b), 0);
    fan_drain(4);
    cr_assert_not_null(fan_find(BT_WATCH_CREATE, "a.log"), "create (got %d)", g_n);
    cr_assert_not_null(fan_find(BT_WATCH_MOVED, "a.log"), "moved from");
    cr_assert_not_null(fan_find(BT_WATCH_MOVED, "b.log"), "moved to");
    cr_assert_not_null(fan_find(BT_WATCH_DELETE, "b.log"), "delete");
    cr_assert_str_eq(fan_find(BT_WATCH_CREATE, "a.log")->dir, sub);
}

Test(watch_fanotify, new_subdirectory_in_a_watched_directory_is_reported)
{
    char sub[512], d[600];
    const struct got *e;

    snprintf(sub, sizeof(sub), "%s/w", g_dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(g_fw.ops->add_dir(&g_fw, sub, 0, 0), 0);
    snprintf(d, sizeof(d), "%s/app", sub);
    cr_assert_eq(mkdir(d, 0755), 0);
    fan_drain(1);
    e = fan_find(BT_WATCH_CREATE, "app");
    cr_assert_not_null(e, "mkdir in a watched directory (got %d events)", g_n);
    cr_assert_str_eq(e->dir, sub);
}

Test(watch_fanotify, removed_watch_of_a_rotated_file_leaves_the_new_file_watched)
{
    char p[512], old[512];
    struct stat st1, st2;

    snprintf(p, sizeof(p), "%s/r.log", g_dir);
    snprintf(old, sizeof(old), "%s/r.log.1", g_dir);
    cr_assert_eq(bt_tmpdir_write(g_dir, "r.log", "", 0), 0);
    cr_assert_eq(stat(p, &st1), 0);
    cr_assert_eq(g_fw.ops->add_file(&g_fw, p, 0, 0), 0);
    cr_assert_eq(rename(p, old), 0);
    cr_assert_eq(bt_tmpdir_write(g_dir, "r.log", "", 0), 0);
    cr_assert_eq(stat(p, &st2), 0);
    cr_assert_eq(g_fw.ops->add_file(&g_fw, p, 0, 0), 0);
    cr_assert_eq(g_fw.ops->remove_file(&g_fw, st1.st_dev, st1.st_ino), 0);
    g_n = 0;
    cr_assert_eq(bt_tmpdir_append(g_dir, "r.log", "x", 1), 0);
    cr_assert_eq(bt_tmpdir_append(g_dir, "r.log.1", "x", 1), 0);
    fan_drain(1);
    cr_assert_not_null(fan_find(BT_WATCH_MODIFY, NULL));
    for (int i = 0; i < g_n; i++)
        cr_assert_eq(g_ev[i].ino, st2.st_ino, "only the new inode reports");
}

/* ---- capabilities: what bpftail keeps after loading ---- */

Test(caps, drop_keeps_only_what_reading_logs_needs, .init = fallback_setup)
{
    char dir[256], p[512];
    uint64_t eff = 0, prm = 0;
    int fd;

    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "private.log", "x\n", 2), 0);
    snprintf(p, sizeof(p), "%s/private.log", dir);
    cr_assert_eq(chmod(p, 0), 0);
    cr_assert_eq(bt_caps_drop_except(bt_caps_keep_logs()), 0);
    cr_assert_eq(bt_caps_get(&eff, &prm), 0);
    cr_assert_eq(eff, bt_caps_keep_logs(), "effective %llx", (unsigned long long)eff);
    cr_assert_eq(prm, bt_caps_keep_logs());
    cr_assert_eq(prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0), 0, "gone from the bounding set");
    cr_assert_eq(prctl(PR_CAPBSET_READ, CAP_DAC_READ_SEARCH, 0, 0, 0), 1);
    fd = open(p, O_RDONLY);
    cr_assert_geq(fd, 0, "a mode-000 log is still readable: %s", strerror(errno));
    close(fd);
    cr_assert_lt(open(p, O_WRONLY), 0, "but not writable (no CAP_DAC_OVERRIDE)");
    cr_assert_eq(errno, EACCES);
    /* Dropping never adds: asking to keep everything changes nothing now. */
    cr_assert_eq(bt_caps_drop_except(~0ULL), 0);
    cr_assert_eq(bt_caps_get(&eff, NULL), 0);
    cr_assert_eq(eff, bt_caps_keep_logs());
    cr_assert_not(bt_caps_can_bpf());
    chmod(p, 0600);
    bt_tmpdir_remove(dir);
}

/* A container without capabilities: BPF refuses, fanotify in FID mode still works. */
Test(watch_fallback, without_any_capability_fanotify_still_reports_writes)
{
    struct bt_watch bw = {.ops = &bt_watch_bpf_ops, .fn = on_ev};
    struct bt_watch fw = {.ops = &bt_watch_fanotify_ops, .fn = on_ev};
    struct pollfd pfd;
    char dir[256], p[512];
    int64_t end;

    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "app.log", "", 0), 0);
    snprintf(p, sizeof(p), "%s/app.log", dir);
    bt_log_set_level(BT_LOG_ERROR);
    cr_assert_eq(bt_caps_drop_except(0), 0);
#ifdef BT_HAVE_BPF
    cr_assert_eq(bw.ops->open(&bw), -EPERM, "BPF must refuse without capabilities");
#else
    cr_assert_eq(bw.ops->open(&bw), -ENOTSUP, "compiled out");
#endif
    cr_assert_eq(fw.ops->open(&fw), 0, "unprivileged fanotify (FID mode, 5.13+)");
    cr_assert_eq(fw.ops->add_file(&fw, p, 0, 0), 0);
    g_n = 0;
    cr_assert_eq(bt_tmpdir_append(dir, "app.log", "x\n", 2), 0);
    pfd.fd = fw.ops->fd(&fw);
    pfd.events = POLLIN;
    end = bt_mono_ns() + 2 * BT_NS_PER_SEC;
    while (g_n == 0 && bt_mono_ns() < end) {
        poll(&pfd, 1, 50);
        cr_assert_eq(fw.ops->dispatch(&fw), 0);
    }
    cr_assert_gt(g_n, 0, "no fanotify event without capabilities");
    cr_assert(g_ev[0].mask & BT_WATCH_MODIFY);
    fw.ops->close(&fw);
    bt_tmpdir_remove(dir);
}
