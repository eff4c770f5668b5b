/*
 * loop: the single-threaded epoll event loop that runs sources, watchers, timers and the
 * hand-back from push threads.
 *
 * Lifetime: bt_loop_new → register fds and timers → bt_loop_run (returns after bt_loop_stop) →
 * bt_loop_free. Callbacks run on the loop thread only. An fd callback may delete any fd or
 * timer, including its own; a deleted fd's pending events in the same round are not delivered.
 * Timers are one-shot or periodic, on the monotonic clock. Nothing polls: with no fds ready and
 * no timer due, the thread sleeps in epoll_wait.
 */
#ifndef BT_LOOP_H
#define BT_LOOP_H

#include <stdint.h>

struct bt_loop;

typedef void (*bt_io_fn)(struct bt_loop *l, int fd, uint32_t events, void *arg);
typedef void (*bt_timer_fn)(struct bt_loop *l, uint64_t id, void *arg);
typedef void (*bt_hook_fn)(struct bt_loop *l, void *arg);

/* NULL with errno on failure. */
struct bt_loop *bt_loop_new(void);
/* Frees the loop; fds are not closed (their owners close them). */
void bt_loop_free(struct bt_loop *l);

/* Watches fd for events (EPOLLIN, EPOLLOUT ...). One registration per fd. 0 or -errno. */
int bt_loop_add_fd(struct bt_loop *l, int fd, uint32_t events, bt_io_fn fn, void *arg);
int bt_loop_mod_fd(struct bt_loop *l, int fd, uint32_t events);
/* Stops watching fd. 0 or -ENOENT. */
int bt_loop_del_fd(struct bt_loop *l, int fd);

/* Runs fn after delay_ns, then every period_ns if period_ns > 0. Returns an id > 0, or 0. */
uint64_t bt_loop_add_timer(struct bt_loop *l, int64_t delay_ns, int64_t period_ns, bt_timer_fn fn,
                           void *arg);
/* Moves a timer to fire after delay_ns from now. 0 or -ENOENT. */
int bt_loop_reset_timer(struct bt_loop *l, uint64_t id, int64_t delay_ns);
/* Cancels a timer (safe from its own callback). 0 or -ENOENT. */
int bt_loop_del_timer(struct bt_loop *l, uint64_t id);

/* Keeps one one-shot timer due at the monotonic time `at` (INT64_MAX: none), re-arming it
 * only when `at` changes. *id and *cur hold the armed timer and its time (0 and INT64_MAX when
 * none); fn must reset them to 0 and INT64_MAX when it runs. For before-sleep hooks that wake
 * up for the earliest of many deadlines. */
void bt_loop_timer_at(struct bt_loop *l, uint64_t *id, int64_t *cur, int64_t at, bt_timer_fn fn,
                      void *arg);

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call it before any thread starts,
 * so that threads inherit the mask), ignores SIGPIPE, and calls fn when one of them is pending
 * on the returned signalfd (read struct signalfd_siginfo from it). The caller closes the fd
 * after the loop is freed. fd or -errno. */
int bt_loop_add_signals(struct bt_loop *l, bt_io_fn fn, void *arg);

/* Called before every sleep (e.g. to flush work gathered during the round). */
void bt_loop_set_before_sleep(struct bt_loop *l, bt_hook_fn fn, void *arg);

/* Runs until bt_loop_stop. 0, or -errno if epoll failed. */
int bt_loop_run(struct bt_loop *l);
/* Runs one round: waits at most timeout_ns (-1 forever) for events, dispatches them and due
 * timers. Returns the number of callbacks run, or -errno. */
int bt_loop_run_once(struct bt_loop *l, int64_t timeout_ns);
void bt_loop_stop(struct bt_loop *l);
/* Number of wake-ups (epoll_wait returns) so far; the idle benchmark reads it. */
uint64_t bt_loop_wakeups(const struct bt_loop *l);

#endif
