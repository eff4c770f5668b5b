#include "core/loop.h"
#include "util/timeutil.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct fdreg {
    int fd;
    bt_io_fn fn;
    void *arg;
    uint64_t gen; /* bumped on delete so stale events in a round are skipped */
    bool live;
};

struct timer {
    uint64_t id;
    int64_t when, period;
    bt_timer_fn fn;
    void *arg;
};

struct bt_loop {
    int epfd;
    struct fdreg *fds; /* indexed by fd */
    size_t nfds;
    struct timer *timers; /* binary min-heap on `when` */
    size_t ntimers, captimers;
    uint64_t next_id;
    bt_hook_fn before_sleep;
    void *before_arg;
    bool stop;
    uint64_t wakeups;
};

struct bt_loop *bt_loop_new(void)
{
    struct bt_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int e = errno;
        free(l);
        errno = e;
        return NULL;
    }
    l->next_id = 1;
    return l;
}

void bt_loop_free(struct bt_loop *l)
{
    if (!l)
        return;
    close(l->epfd);
    free(l->fds);
    free(l->timers);
    free(l);
}

int bt_loop_add_fd(struct bt_loop *l, int fd, uint32_t events, bt_io_fn fn, void *arg)
{
    if (fd < 0)
        return -EBADF;
    if ((size_t)fd >= l->nfds) {
        size_t n = l->nfds ? l->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct fdreg *nf = realloc(l->fds, n * sizeof(*nf));
        if (!nf)
            return -ENOMEM;
        memset(nf + l->nfds, 0, (n - l->nfds) * sizeof(*nf));
        l->fds = nf;
        l->nfds = n;
    }
    if (l->fds[fd].live)
        return -EEXIST;
    struct epoll_event ev = {.events = events, .data.u64 = 0};
    uint64_t gen = l->fds[fd].gen + 1;
    ev.data.u64 = ((uint64_t)(uint32_t)fd) | (gen << 32);
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    l->fds[fd] = (struct fdreg){fd, fn, arg, gen, true};
    return 0;
}

int bt_loop_mod_fd(struct bt_loop *l, int fd, uint32_t events)
{
    if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].live)
        return -ENOENT;
    struct epoll_event ev = {.events = events};
    ev.data.u64 = ((uint64_t)(uint32_t)fd) | (l->fds[fd].gen << 32);
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return -errno;
    return 0;
}

int bt_loop_del_fd(struct bt_loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].live)
        return -ENOENT;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    l->fds[fd].live = false;
    return 0;
}

static void heap_swap(struct bt_loop *l, size_t a, size_t b)
{
    struct timer t = l->timers[a];
    l->timers[a] = l->timers[b];
    l->timers[b] = t;
}

static void heap_up(struct bt_loop *l, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->timers[p].when <= l->timers[i].when)
            break;
        heap_swap(l, p, i);
        i = p;
    }
}

static void heap_down(struct bt_loop *l, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < l->ntimers && l->timers[c].when < l->timers[m].when)
            m = c;
        if (c + 1 < l->ntimers && l->timers[c + 1].when < l->timers[m].when)
            m = c + 1;
        if (m == i)
            break;
        heap_swap(l, i, m);
        i = m;
    }
}

static void heap_remove(struct bt_loop *l, size_t i)
{
    l->ntimers--;
    if (i == l->ntimers)
        return;
    l->timers[i] = l->timers[l->ntimers];
    heap_down(l, i);
    heap_up(l, i);
}

static ssize_t find_timer(struct bt_loop *l, uint64_t id)
{
    for (size_t i = 0; i < l->ntimers; i++)
        if (l->timers[i].id == id)
            return (ssize_t)i;
    return -1;
}

uint64_t bt_loop_add_timer(struct bt_loop *l, int64_t delay_ns, int64_t period_ns, bt_timer_fn fn,
                           void *arg)
{
    if (l->ntimers == l->captimers) {
        size_t n = l->captimers ? l->captimers * 2 : 16;
        struct timer *nt = realloc(l->timers, n * sizeof(*nt));
        if (!nt)
            return 0;
        l->timers = nt;
        l->captimers = n;
    }
    uint64_t id = l->next_id++;
    if (delay_ns > INT64_MAX / 4)
        delay_ns = INT64_MAX / 4; /* "never", without overflowing the deadline */
    l->timers[l->ntimers] =
        (struct timer){id, bt_mono_ns() + (delay_ns > 0 ? delay_ns : 0), period_ns, fn, arg};
    heap_up(l, l->ntimers++);
    return id;
}

int bt_loop_reset_timer(struct bt_loop *l, uint64_t id, int64_t delay_ns)
{
    ssize_t i = find_timer(l, id);
    if (i < 0)
        return -ENOENT;
    if (delay_ns > INT64_MAX / 4)
        delay_ns = INT64_MAX / 4;
    l->timers[i].when = bt_mono_ns() + (delay_ns > 0 ? delay_ns : 0);
    heap_down(l, (size_t)i);
    heap_up(l, (size_t)i);
    return 0;
}

int bt_loop_del_timer(struct bt_loop *l, uint64_t id)
{
    ssize_t i = find_timer(l, id);
    if (i < 0)
        return -ENOENT;
    heap_remove(l, (size_t)i);
    return 0;
}

void bt_loop_set_before_sleep(struct bt_loop *l, bt_hook_fn fn, void *arg)
{
    l->before_sleep = fn;
    l->before_arg = arg;
}

static int run_timers(struct bt_loop *l)
{
    int ran = 0;
    int64_t now = bt_mono_ns();
    /* Bounded so a periodic timer with a tiny period cannot starve the fds. */
    for (int guard = 0; l->ntimers && l->timers[0].when <= now && guard < 1024; guard++) {
        struct timer t = l->timers[0];
        if (t.period > 0) {
            l->timers[0].when = now + t.period;
            heap_down(l, 0);
        } else {
            heap_remove(l, 0);
        }
        t.fn(l, t.id, t.arg);
        ran++;
    }
    return ran;
}

int bt_loop_run_once(struct bt_loop *l, int64_t timeout_ns)
{
    if (l->before_sleep)
        l->before_sleep(l, l->before_arg);
    int64_t wait = timeout_ns;
    if (l->ntimers) {
        int64_t due = l->timers[0].when - bt_mono_ns();
        if (due < 0)
            due = 0;
        if (wait < 0 || due < wait)
            wait = due;
    }
    /* Clamp before rounding up: a huge timeout must not overflow into "forever" or worse. */
    int ms = -1;
    if (wait >= (int64_t)INT_MAX * 1000000)
        ms = INT_MAX;
    else if (wait >= 0)
        ms = (int)((wait + 999999) / 1000000);
    struct epoll_event evs[64];
    int n = epoll_wait(l->epfd, evs, 64, ms);
    l->wakeups++;
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        return -errno;
    }
    int ran = 0;
    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)evs[i].data.u64;
        uint64_t gen = evs[i].data.u64 >> 32;
        if ((size_t)fd >= l->nfds)
            continue;
        struct fdreg *r = &l->fds[fd];
        if (!r->live || r->gen != gen)
            continue;
        r->fn(l, fd, evs[i].events, r->arg);
        ran++;
    }
    ran += run_timers(l);
    return ran;
}

int bt_loop_run(struct bt_loop *l)
{
    l->stop = false;
    while (!l->stop) {
        int rc = bt_loop_run_once(l, -1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void bt_loop_stop(struct bt_loop *l)
{
    l->stop = true;
}

uint64_t bt_loop_wakeups(const struct bt_loop *l)
{
    return l->wakeups;
}

void bt_loop_timer_at(struct bt_loop *l, uint64_t *id, int64_t *cur, int64_t at, bt_timer_fn fn,
                      void *arg)
{
    if (at == *cur)
        return;
    if (*id)
        bt_loop_del_timer(l, *id);
    *id = 0;
    *cur = at;
    if (at != INT64_MAX) {
        int64_t delay = at - bt_mono_ns();
        *id = bt_loop_add_timer(l, delay > 0 ? delay : 0, 0, fn, arg);
    }
}

int bt_loop_add_signals(struct bt_loop *l, bt_io_fn fn, void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0)
        return -rc;
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = bt_loop_add_fd(l, fd, EPOLLIN, fn, arg);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}
