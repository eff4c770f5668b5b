#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpdir.h"
#include "watch/watch.h"

#define MAXEV 64

struct rec {
    struct bt_watch_event ev[MAXEV];
    char names[MAXEV][128];
    int n;
    int overflows;
};

static void on_event(void *ctx, const struct bt_watch_event *ev)
{
    struct rec *r = ctx;
    if (ev->mask & BT_WATCH_OVERFLOW)
        r->overflows++;
    if (r->n >= MAXEV)
        return;
    r->ev[r->n] = *ev;
    snprintf(r->names[r->n], 128, "%s", ev->name ? ev->name : "");
    r->ev[r->n].dir = NULL;
    r->ev[r->n].name = NULL;
    r->n++;
}

static bool seen(const struct rec *r, uint32_t mask, const char *name, ino_t ino)
{
    for (int i = 0; i < r->n; i++)
        if ((r->ev[i].mask & mask) && (!name || strcmp(r->names[i], name) == 0) &&
            (!ino || r->ev[i].ino == ino))
            return true;
    return false;
}

static char dir[256];

static void setup(void)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
}

static void teardown(void)
{
    bt_tmpdir_remove(dir);
}

TestSuite(watch, .init = setup, .fini = teardown);

static struct bt_watch *open_inotify(struct rec *r)
{
    struct bt_watch *w = bt_watch_open("inotify", on_event, r);
    cr_assert_not_null(w, "inotify: %s", strerror(errno));
    cr_assert_str_eq(bt_watch_name(w), "inotify");
    cr_assert_geq(bt_watch_fd(w), 0);
    struct stat st;
    stat(dir, &st);
    cr_assert_eq(bt_watch_add_dir(w, dir, st.st_dev, st.st_ino), 0);
    return w;
}

Test(watch, inotify_reports_create_modify_rename_and_delete)
{
    struct rec r = {0};
    struct bt_watch *w = open_inotify(&r);
    char p[512], q[512];
    snprintf(p, sizeof(p), "%s/a.log", dir);
    snprintf(q, sizeof(q), "%s/a.log.1", dir);
    bt_tmpdir_write(dir, "a.log", "x\n", 2);
    cr_assert_eq(bt_watch_dispatch(w), 0);
    cr_assert(seen(&r, BT_WATCH_CREATE, "a.log", 0));

    struct stat st;
    stat(p, &st);
    cr_assert_eq(bt_watch_add_file(w, p, st.st_dev, st.st_ino), 0);
    r.n = 0;
    bt_tmpdir_append(dir, "a.log", "y\n", 2);
    cr_assert_eq(bt_watch_dispatch(w), 0);
    cr_assert(seen(&r, BT_WATCH_MODIFY, NULL, st.st_ino));
    cr_assert(seen(&r, BT_WATCH_CLOSE, NULL, st.st_ino));

    r.n = 0;
    cr_assert_eq(rename(p, q), 0);
    cr_assert_eq(bt_watch_dispatch(w), 0);
    cr_assert(seen(&r, BT_WATCH_MOVED, "a.log", 0));      /* moved from */
    cr_assert(seen(&r, BT_WATCH_MOVED, "a.log.1", 0));    /* moved to */
    cr_assert(seen(&r, BT_WATCH_MOVED, NULL, st.st_ino)); /* the file itself */

    r.n = 0;
    cr_assert_eq(unlink(q), 0);
    cr_assert_eq(bt_watch_dispatch(w), 0);
    cr_assert(seen(&r, BT_WATCH_DELETE, "a.log.1", 0));
    cr_assert(seen(&r, BT_WATCH_DELETE, NULL, st.st_ino));
    cr_assert_geq(w->events, 7);
    bt_watch_close(w);
}

Test(watch, removed_file_watch_stops_its_events)
{
    struct rec r = {0};
    struct bt_watch *w = open_inotify(&r);
    char p[512];
    snprintf(p, sizeof(p), "%s/b.log", dir);
    bt_tmpdir_write(dir, "b.log", "x\n", 2);
    struct stat st;
    stat(p, &st);
    cr_assert_eq(bt_watch_add_file(w, p, st.st_dev, st.st_ino), 0);
    cr_assert_eq(bt_watch_add_file(w, p, st.st_dev, st.st_ino), 0); /* a second target */
    cr_assert_eq(bt_watch_remove_file(w, st.st_dev, st.st_ino), 0);
    r.n = 0;
    bt_tmpdir_append(dir, "b.log", "y\n", 2);
    cr_assert_eq(bt_watch_dispatch(w), 0);
    cr_assert(seen(&r, BT_WATCH_MODIFY, NULL, st.st_ino), "still watched for the other user");
    cr_assert_eq(bt_watch_remove_file(w, st.st_dev, st.st_ino), 0);
    cr_assert_eq(bt_watch_dispatch(w), 0);
    r.n = 0;
    bt_tmpdir_append(dir, "b.log", "y\n", 2);
    cr_assert_eq(bt_watch_dispatch(w), 0);
    cr_assert_not(seen(&r, BT_WATCH_MODIFY, NULL, 0));
    cr_assert_eq(bt_watch_remove_file(w, st.st_dev, st.st_ino), -ENOENT);
    bt_watch_close(w);
}

Test(watch, add_file_refuses_a_name_that_now_points_elsewhere)
{
    struct rec r = {0};
    struct bt_watch *w = open_inotify(&r);
    char p[512];
    snprintf(p, sizeof(p), "%s/c.log", dir);
    bt_tmpdir_write(dir, "c.log", "x\n", 2);
    struct stat st;
    stat(p, &st);
    cr_assert_eq(bt_watch_add_file(w, p, st.st_dev, st.st_ino + 12345), -ESTALE);
    bt_watch_close(w);
}

Test(watch, queue_overflow_becomes_an_overflow_event)
{
    struct rec r = {0};
    struct bt_watch *w = open_inotify(&r);
    FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
    int maxq = 16384;
    if (f) {
        if (fscanf(f, "%d", &maxq) != 1)
            maxq = 16384;
        fclose(f);
    }
    if (maxq > 100000)
        cr_skip_test("max_queued_events=%d is too large to overflow quickly", maxq);
    /* Writes alternating between two watched files: consecutive events differ, so the
     * kernel cannot merge them and the queue fills. */
    int fds[2];
    for (int k = 0; k < 2; k++) {
        char p[512];
        snprintf(p, sizeof(p), "%s/f%d", dir, k);
        fds[k] = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        cr_assert_geq(fds[k], 0);
        struct stat st;
        fstat(fds[k], &st);
        cr_assert_eq(bt_watch_add_file(w, p, st.st_dev, st.st_ino), 0);
    }
    for (int i = 0; i < maxq + 100; i++)
        cr_assert_eq(write(fds[i % 2], "x", 1), 1);
    close(fds[0]);
    close(fds[1]);
    cr_assert_eq(bt_watch_dispatch(w), 0);
    cr_assert_eq(r.overflows, 1);
    cr_assert_eq(w->lost, 1);
    bt_watch_close(w);
}

Test(watch, chain_opens_a_backend_and_rejects_unknown_names)
{
    struct rec r = {0};
    struct bt_watch *w = bt_watch_open("auto", on_event, &r);
    cr_assert_not_null(w);
    bt_watch_close(w);
    errno = 0;
    cr_assert_null(bt_watch_open("carrier-pigeon", on_event, &r));
    cr_assert_eq(errno, EINVAL);
}

Test(watch, poll_backend_has_no_fd_and_accepts_everything)
{
    struct rec r = {0};
    struct bt_watch *w = bt_watch_open("poll", on_event, &r);
    cr_assert_not_null(w);
    cr_assert_str_eq(bt_watch_name(w), "poll");
    cr_assert_eq(bt_watch_fd(w), -1);
    cr_assert_eq(bt_watch_add_dir(w, dir, 0, 0), 0);
    cr_assert_eq(bt_watch_add_file(w, dir, 0, 0), 0);
    cr_assert_eq(bt_watch_dispatch(w), 0);
    cr_assert_eq(r.n, 0);
    bt_watch_close(w);
}
