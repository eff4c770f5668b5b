#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/loop.h"
#include "util/timeutil.h"

struct counter {
    int n;
    uint64_t id;
    struct bt_loop *l;
    int other_fd;
};

static void count_timer(struct bt_loop *l, uint64_t id, void *arg)
{
    ((struct counter *)arg)->n++;
}

static void drain_fd(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0)
        cr_log_warn("read failed");
    ((struct counter *)arg)->n++;
}

static void drain_sig(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        ((struct counter *)arg)->n++;
}

static void run_for(struct bt_loop *l, int ms)
{
    int64_t end = bt_mono_ns() + (int64_t)ms * BT_NS_PER_MS;
    while (bt_mono_ns() < end)
        cr_assert_geq(bt_loop_run_once(l, 5 * BT_NS_PER_MS), 0);
}

Test(loop, readable_fd_runs_its_callback)
{
    struct bt_loop *l = bt_loop_new();
    struct counter c = {0};
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    cr_assert_eq(bt_loop_add_fd(l, fd, EPOLLIN, drain_fd, &c), 0);
    cr_assert_eq(bt_loop_add_fd(l, fd, EPOLLIN, drain_fd, &c), -EEXIST);
    uint64_t one = 1;
    cr_assert_eq(write(fd, &one, sizeof(one)), 8);
    cr_assert_eq(bt_loop_run_once(l, 1000 * BT_NS_PER_MS), 1);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(bt_loop_run_once(l, 0), 0);
    cr_assert_eq(bt_loop_del_fd(l, fd), 0);
    cr_assert_eq(bt_loop_del_fd(l, fd), -ENOENT);
    cr_assert_eq(write(fd, &one, sizeof(one)), 8);
    cr_assert_eq(bt_loop_run_once(l, 0), 0);
    close(fd);
    bt_loop_free(l);
}

Test(loop, one_shot_timer_fires_once_and_periodic_repeats)
{
    struct bt_loop *l = bt_loop_new();
    struct counter once = {0}, per = {0};
    cr_assert_gt(bt_loop_add_timer(l, 10 * BT_NS_PER_MS, 0, count_timer, &once), 0);
    cr_assert_gt(bt_loop_add_timer(l, 10 * BT_NS_PER_MS, 20 * BT_NS_PER_MS, count_timer, &per), 0);
    run_for(l, 120);
    cr_assert_eq(once.n, 1);
    cr_assert_geq(per.n, 2); /* loose: the machine may be busy */
    cr_assert_leq(per.n, 7);
    bt_loop_free(l);
}

Test(loop, deleted_timer_never_fires_and_reset_postpones)
{
    struct bt_loop *l = bt_loop_new();
    struct counter a = {0}, b = {0};
    uint64_t ia = bt_loop_add_timer(l, 20 * BT_NS_PER_MS, 0, count_timer, &a);
    uint64_t ib = bt_loop_add_timer(l, 20 * BT_NS_PER_MS, 0, count_timer, &b);
    cr_assert_eq(bt_loop_del_timer(l, ia), 0);
    cr_assert_eq(bt_loop_del_timer(l, ia), -ENOENT);
    cr_assert_eq(bt_loop_reset_timer(l, ib, 200 * BT_NS_PER_MS), 0);
    run_for(l, 60);
    cr_assert_eq(a.n, 0);
    cr_assert_eq(b.n, 0);
    run_for(l, 250);
    cr_assert_eq(b.n, 1);
    cr_assert_eq(bt_loop_reset_timer(l, ib, 0), -ENOENT);
    bt_loop_free(l);
}

static void delete_self(struct bt_loop *l, uint64_t id, void *arg)
{
    struct counter *c = arg;
    c->n++;
    cr_assert_eq(bt_loop_del_timer(l, id), 0);
}

Test(loop, periodic_timer_can_cancel_itself)
{
    struct bt_loop *l = bt_loop_new();
    struct counter c = {0};
    bt_loop_add_timer(l, 5 * BT_NS_PER_MS, 5 * BT_NS_PER_MS, delete_self, &c);
    run_for(l, 60);
    cr_assert_eq(c.n, 1);
    bt_loop_free(l);
}

static void add_zero_timer(struct bt_loop *l, uint64_t id, void *arg)
{
    struct counter *c = arg;
    c->n++;
    if (c->n < 1000)
        bt_loop_add_timer(l, 0, 0, add_zero_timer, c);
}

Test(loop, zero_delay_timer_added_by_a_timer_waits_for_the_next_round)
{
    struct bt_loop *l = bt_loop_new();
    struct counter c = {0};
    bt_loop_add_timer(l, 0, 0, add_zero_timer, &c);
    cr_assert_eq(bt_loop_run_once(l, 0), 1);
    cr_assert_eq(c.n, 1);
    cr_assert_eq(bt_loop_run_once(l, 0), 1);
    cr_assert_eq(c.n, 2);
    bt_loop_free(l);
}

static void delete_other(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct counter *c = arg;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0)
        cr_log_warn("read failed");
    c->n++;
    if (c->other_fd >= 0) {
        bt_loop_del_fd(l, c->other_fd);
        c->other_fd = -1;
    }
}

Test(loop, fd_deleted_by_an_earlier_callback_is_not_delivered)
{
    struct bt_loop *l = bt_loop_new();
    int a = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC), b = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    struct counter ca = {.other_fd = b}, cb = {.other_fd = a};
    bt_loop_add_fd(l, a, EPOLLIN, delete_other, &ca);
    bt_loop_add_fd(l, b, EPOLLIN, delete_other, &cb);
    cr_assert_eq(bt_loop_run_once(l, 100 * BT_NS_PER_MS), 1);
    cr_assert_eq(ca.n + cb.n, 1, "exactly one of the two ran");
    close(a);
    close(b);
    bt_loop_free(l);
}

static void stop_loop(struct bt_loop *l, uint64_t id, void *arg)
{
    bt_loop_stop(l);
}

static void before(struct bt_loop *l, void *arg)
{
    ((struct counter *)arg)->n++;
}

Test(loop, run_returns_after_stop_and_before_sleep_runs_each_round)
{
    struct bt_loop *l = bt_loop_new();
    struct counter hook = {0};
    bt_loop_set_before_sleep(l, before, &hook);
    bt_loop_add_timer(l, 20 * BT_NS_PER_MS, 0, stop_loop, NULL);
    uint64_t w0 = bt_loop_wakeups(l);
    cr_assert_eq(bt_loop_run(l), 0);
    cr_assert_geq(hook.n, 1);
    cr_assert_geq(bt_loop_wakeups(l), w0 + 1);
    bt_loop_free(l);
}

Test(loop, idle_loop_sleeps_without_waking)
{
    struct bt_loop *l = bt_loop_new();
    struct counter c = {0};
    bt_loop_add_timer(l, 300 * BT_NS_PER_MS, 0, count_timer, &c);
    uint64_t w0 = bt_loop_wakeups(l);
    int64_t t0 = bt_mono_ns();
    while (c.n == 0)
        bt_loop_run_once(l, -1);
    cr_assert_geq(bt_mono_ns() - t0, 290 * BT_NS_PER_MS);
    cr_assert_leq(bt_loop_wakeups(l) - w0, 3, "a sleeping loop wakes only for its timer");
    bt_loop_free(l);
}

Test(loop, huge_timeout_waits_for_the_due_timer)
{
    struct bt_loop *l = bt_loop_new();
    struct counter c = {0};
    bt_loop_add_timer(l, 10 * BT_NS_PER_MS, 0, count_timer, &c);
    cr_assert_eq(bt_loop_run_once(l, INT64_MAX), 1);
    cr_assert_eq(c.n, 1);
    bt_loop_free(l);
}

Test(loop, timer_ids_are_unique_and_nonzero)
{
    struct bt_loop *l = bt_loop_new();
    struct counter c = {0};
    uint64_t prev = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t id = bt_loop_add_timer(l, BT_NS_PER_SEC, 0, count_timer, &c);
        cr_assert_gt(id, prev);
        prev = id;
    }
    bt_loop_free(l);
}

struct at_state {
    uint64_t id;
    int64_t at;
    int fired;
};

static void at_fired(struct bt_loop *l, uint64_t id, void *arg)
{
    struct at_state *s = arg;
    s->id = 0;
    s->at = INT64_MAX;
    s->fired++;
}

Test(loop, timer_at_rearms_only_when_the_deadline_moves)
{
    struct bt_loop *l = bt_loop_new();
    struct at_state s = {.at = INT64_MAX};
    bt_loop_timer_at(l, &s.id, &s.at, INT64_MAX, at_fired, &s);
    cr_assert_eq(s.id, 0, "no deadline, no timer");
    int64_t due = bt_mono_ns() + 30 * BT_NS_PER_MS;
    bt_loop_timer_at(l, &s.id, &s.at, due, at_fired, &s);
    uint64_t first = s.id;
    cr_assert_neq(first, 0);
    bt_loop_timer_at(l, &s.id, &s.at, due, at_fired, &s);
    cr_assert_eq(s.id, first, "same deadline: the same timer");
    bt_loop_timer_at(l, &s.id, &s.at, due + 10 * BT_NS_PER_MS, at_fired, &s);
    cr_assert_neq(s.id, first, "a later deadline replaces the timer");
    run_for(l, 80);
    cr_assert_eq(s.fired, 1, "the replaced timer never fired");
    bt_loop_timer_at(l, &s.id, &s.at, bt_mono_ns() + 20 * BT_NS_PER_MS, at_fired, &s);
    bt_loop_timer_at(l, &s.id, &s.at, INT64_MAX, at_fired, &s);
    run_for(l, 50);
    cr_assert_eq(s.fired, 1, "a deadline taken back cancels the timer");
    bt_loop_free(l);
}

Test(loop, signals_arrive_on_the_loop)
{
    struct bt_loop *l = bt_loop_new();
    struct counter c = {0};
    int fd = bt_loop_add_signals(l, drain_sig, &c);
    cr_assert_geq(fd, 0, "%s", strerror(-fd));
    cr_assert_eq(kill(getpid(), SIGHUP), 0);
    run_for(l, 50);
    cr_assert_eq(c.n, 1, "SIGHUP was blocked and delivered through the signalfd");
    cr_assert_eq(kill(getpid(), SIGPIPE), 0, "SIGPIPE is ignored");
    bt_loop_del_fd(l, fd);
    close(fd);
    bt_loop_free(l);
}
