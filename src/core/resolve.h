/*
 * resolve: reverse DNS (address to host name) for the loop thread, without blocking it.
 *
 * getnameinfo blocks for as long as the system resolver likes, so it runs on ONE worker thread
 * of the resolver, fed by a bounded queue of distinct addresses. Answers come back to the loop
 * thread through an eventfd registered with the loop, fill a bounded cache (positive and
 * negative answers, both with a TTL), and are handed to every caller waiting for that address.
 * A caller waits at most its own timeout: then it gets "" (the lookup goes on, and its late
 * answer still fills the cache). While a timed-out lookup is still running, further callers
 * for that address get "" at once instead of waiting again.
 *
 * A name is the first one the system gives (getnameinfo with NI_NAMEREQD), without a trailing
 * dot; "" when there is none. Metrics: bpftail_resolver_lookups_total (lookups started),
 * bpftail_resolver_failures_total (answers without a name, and lookups refused because the
 * queue was full), bpftail_resolver_timeouts_total (waits that passed their deadline),
 * bpftail_resolver_cache_hits_total.
 *
 * Loop thread only, except the lookup function, which runs on the worker thread.
 */
#ifndef BT_CORE_RESOLVE_H
#define BT_CORE_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct bt_loop;
struct bt_metrics;
struct bt_resolver;
struct bt_resolve_wait;

/* Worker thread: writes the name of sa into name and returns 0, or returns non-zero when it
 * has none. */
typedef int (*bt_resolve_lookup_fn)(const struct sockaddr *sa, socklen_t len, char *name,
                                    size_t namelen);
/* Loop thread: the answer of one wait, "" for none or past the deadline. name is borrowed
 * for the call. The wait is over (its handle invalid) when this runs. */
typedef void (*bt_resolve_fn)(void *arg, const char *name);

struct bt_resolver_opts {
    int64_t ttl_ns;              /* a name is kept this long; 0: 5 minutes */
    int64_t neg_ttl_ns;          /* "no name" is kept this long; 0: ttl_ns */
    size_t max_cache;            /* answers kept; 0: 4096 (the oldest goes first) */
    size_t max_queue;            /* distinct addresses waiting or resolving; 0: 1024 */
    bt_resolve_lookup_fn lookup; /* NULL: getnameinfo (tests put a slow one in) */
};

#define BT_RESOLVE_NAME_MAX 1025 /* NI_MAXHOST */

/* Starts the worker thread and registers the eventfd with l. opts may be NULL. metrics may
 * be NULL. NULL with errno on failure. */
struct bt_resolver *bt_resolver_new(struct bt_loop *l, struct bt_metrics *metrics,
                                    const struct bt_resolver_opts *opts);
/* Unregisters and frees everything on the loop side; waits still pending are dropped without
 * their callbacks. A worker stuck in a lookup is detached and frees its part when the lookup
 * returns, so this never blocks on DNS. NULL is ignored. */
void bt_resolver_free(struct bt_resolver *r);

/* The name of sa (at most BT_RESOLVE_NAME_MAX bytes with the NUL into name):
 *   1  answered now (cache, or a lookup of that address already past a deadline): name set,
 *      maybe "";
 *   0  not known yet: fn(arg, name) will run once on the loop thread, with the answer or, after
 *      timeout_ns, ""; *wait names it for bt_resolver_cancel;
 *   <0 -EAGAIN (queue full), -ENOMEM, -EAFNOSUPPORT (not an address): name is "".
 * Never calls fn from inside this call. */
int bt_resolver_lookup(struct bt_resolver *r, const struct sockaddr *sa, socklen_t len,
                       int64_t timeout_ns, bt_resolve_fn fn, void *arg, char *name,
                       struct bt_resolve_wait **wait);
/* Ends a wait without its callback (the lookup goes on and fills the cache). */
void bt_resolver_cancel(struct bt_resolver *r, struct bt_resolve_wait *wait);

/* Addresses queued or being resolved, and answers cached (tests). */
size_t bt_resolver_pending(const struct bt_resolver *r);
size_t bt_resolver_cached(const struct bt_resolver *r);

#endif
