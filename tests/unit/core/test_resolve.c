#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/metrics.h"
#include "core/resolve.h"
#include "util/timeutil.h"

/* Only 127.0.0.1 goes to the real getnameinfo (/etc/hosts answers it): the other addresses
 * use a stand-in lookup, so that no test sends a DNS query off this machine. */

struct answer {
    int n;
    char name[BT_RESOLVE_NAME_MAX];
};

static void on_answer(void *arg, const char *name)
{
    struct answer *a = arg;
    a->n++;
    snprintf(a->name, sizeof(a->name), "%s", name);
}

static struct sockaddr_in addr4(const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return sin;
}

static void run_until(struct bt_loop *l, const int *n, int want, int ms)
{
    int64_t end = bt_mono_ns() + (int64_t)ms * BT_NS_PER_MS;
    while (*n < want && bt_mono_ns() < end)
        cr_assert_geq(bt_loop_run_once(l, 5 * BT_NS_PER_MS), 0);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static atomic_int slow_ms;
static atomic_int calls;

/* 127.1.0.0/16: "h-<ip>." (the trailing dot must go); 192.0.2.0/24: no name. */
static int fake_lookup(const struct sockaddr *sa, socklen_t len, char *name, size_t namelen)
{
    char ip[INET6_ADDRSTRLEN];
    atomic_fetch_add(&calls, 1);
    if (atomic_load(&slow_ms))
        sleep_ms(atomic_load(&slow_ms));
    if (getnameinfo(sa, len, ip, sizeof(ip), NULL, 0, NI_NUMERICHOST))
        return EAI_FAIL;
    if (strncmp(ip, "192.0.2.", 8) == 0)
        return EAI_NONAME;
    snprintf(name, namelen, "h-%s.", ip);
    return 0;
}

Test(resolve, loopback_resolves_to_what_getnameinfo_says_then_from_the_cache)
{
    struct sockaddr_in sin = addr4("127.0.0.1");
    char want[NI_MAXHOST] = "";
    if (getnameinfo((struct sockaddr *)&sin, sizeof(sin), want, sizeof(want), NULL, 0, NI_NAMEREQD))
        want[0] = '\0';
    struct bt_loop *l = bt_loop_new();
    struct bt_metrics *m = bt_metrics_new();
    struct bt_resolver *r = bt_resolver_new(l, m, NULL);
    cr_assert_not_null(r);
    struct answer a = {0};
    char name[BT_RESOLVE_NAME_MAX];
    struct bt_resolve_wait *w;
    int rc = bt_resolver_lookup(r, (struct sockaddr *)&sin, sizeof(sin), 5 * BT_NS_PER_SEC,
                                on_answer, &a, name, &w);
    cr_assert_eq(rc, 0, "the first lookup waits for the worker");
    cr_assert_not_null(w);
    cr_assert_eq(a.n, 0, "no callback from inside the call");
    run_until(l, &a.n, 1, 5000);
    cr_assert_eq(a.n, 1);
    cr_assert_str_eq(a.name, want);
    cr_log_info("127.0.0.1 is \"%s\"", want);
    rc = bt_resolver_lookup(r, (struct sockaddr *)&sin, sizeof(sin), BT_NS_PER_SEC, on_answer, &a,
                            name, &w);
    cr_assert_eq(rc, 1, "cached");
    cr_assert_null(w);
    cr_assert_str_eq(name, want);
    cr_assert_eq(bt_metrics_sum(m, "bpftail_resolver_lookups_total", ""), 1);
    cr_assert_eq(bt_metrics_sum(m, "bpftail_resolver_cache_hits_total", ""), 1);
    cr_assert_eq(bt_metrics_sum(m, "bpftail_resolver_timeouts_total", ""), 0);
    bt_resolver_free(r);
    bt_metrics_free(m);
    bt_loop_free(l);
}

Test(resolve, no_name_is_empty_and_cached_as_such)
{
    struct bt_loop *l = bt_loop_new();
    struct bt_metrics *m = bt_metrics_new();
    struct bt_resolver_opts o = {.lookup = fake_lookup};
    struct bt_resolver *r = bt_resolver_new(l, m, &o);
    struct sockaddr_in bad = addr4("192.0.2.7"), good = addr4("127.1.0.9");
    struct answer a = {0}, b = {0};
    char name[BT_RESOLVE_NAME_MAX];
    struct bt_resolve_wait *w;
    cr_assert_eq(bt_resolver_lookup(r, (struct sockaddr *)&bad, sizeof(bad), BT_NS_PER_SEC,
                                    on_answer, &a, name, &w),
                 0);
    cr_assert_eq(bt_resolver_lookup(r, (struct sockaddr *)&good, sizeof(good), BT_NS_PER_SEC,
                                    on_answer, &b, name, &w),
                 0);
    run_until(l, &b.n, 1, 2000);
    run_until(l, &a.n, 1, 2000);
    cr_assert_eq(a.n, 1);
    cr_assert_str_eq(a.name, "");
    cr_assert_str_eq(b.name, "h-127.1.0.9", "the trailing dot is cut");
    strcpy(name, "x");
    cr_assert_eq(bt_resolver_lookup(r, (struct sockaddr *)&bad, sizeof(bad), BT_NS_PER_SEC,
                                    on_answer, &a, name, &w),
                 1);
    cr_assert_str_eq(name, "");
    cr_assert_eq(atomic_load(&calls), 2, "the negative answer is cached");
    cr_assert_eq(bt_metrics_sum(m, "bpftail_resolver_failures_total", ""), 1);
    /* not an address at all */
    struct sockaddr bogus = {.sa_family = AF_UNSPEC};
    cr_assert_eq(
        bt_resolver_lookup(r, &bogus, sizeof(bogus), BT_NS_PER_SEC, on_answer, &a, name, &w),
        -EAFNOSUPPORT);
    bt_resolver_free(r);
    bt_metrics_free(m);
    bt_loop_free(l);
}

Test(resolve, deadline_gives_empty_and_the_late_answer_fills_the_cache)
{
    atomic_store(&slow_ms, 300);
    struct bt_loop *l = bt_loop_new();
    struct bt_metrics *m = bt_metrics_new();
    struct bt_resolver_opts o = {.lookup = fake_lookup};
    struct bt_resolver *r = bt_resolver_new(l, m, &o);
    struct sockaddr_in sin = addr4("127.1.2.3");
    struct answer a = {0}, b = {0};
    char name[BT_RESOLVE_NAME_MAX];
    struct bt_resolve_wait *w;
    int64_t t0 = bt_mono_ns();
    cr_assert_eq(bt_resolver_lookup(r, (struct sockaddr *)&sin, sizeof(sin), 50 * BT_NS_PER_MS,
                                    on_answer, &a, name, &w),
                 0);
    run_until(l, &a.n, 1, 1000);
    int64_t waited = bt_mono_ns() - t0;
    cr_assert_eq(a.n, 1);
    cr_assert_str_eq(a.name, "");
    cr_assert_lt(waited, 2 * BT_NS_PER_SEC); /* "" already says the deadline won */
    cr_assert_eq(bt_metrics_sum(m, "bpftail_resolver_timeouts_total", ""), 1);
    /* still resolving: no second wait for the same slow address */
    cr_assert_eq(bt_resolver_lookup(r, (struct sockaddr *)&sin, sizeof(sin), BT_NS_PER_SEC,
                                    on_answer, &b, name, &w),
                 1);
    cr_assert_str_eq(name, "");
    int64_t end = bt_mono_ns() + 2 * BT_NS_PER_SEC;
    while (bt_resolver_pending(r) && bt_mono_ns() < end)
        bt_loop_run_once(l, 10 * BT_NS_PER_MS);
    cr_assert_eq(bt_resolver_pending(r), 0);
    cr_assert_eq(a.n, 1, "a wait is answered once");
    cr_assert_eq(bt_resolver_lookup(r, (struct sockaddr *)&sin, sizeof(sin), BT_NS_PER_SEC,
                                    on_answer, &b, name, &w),
                 1);
    cr_assert_str_eq(name, "h-127.1.2.3");
    cr_assert_eq(b.n, 0);
    bt_resolver_free(r);
    bt_metrics_free(m);
    bt_loop_free(l);
}

#define NADDR 300
#define NWAIT 3

Test(resolve, many_concurrent_waits_each_get_their_own_answer)
{
    struct bt_loop *l = bt_loop_new();
    struct bt_metrics *m = bt_metrics_new();
    struct bt_resolver_opts o = {.lookup = fake_lookup};
    struct bt_resolver *r = bt_resolver_new(l, m, &o);
    static struct answer a[NADDR][NWAIT];
    struct bt_resolve_wait *cancelled = NULL;
    char name[BT_RESOLVE_NAME_MAX];
    int total = 0;
    for (int w = 0; w < NWAIT; w++)
        for (int i = 0; i < NADDR; i++) {
            char ip[32];
            snprintf(ip, sizeof(ip), "127.1.%d.%d", i / 200, i % 200 + 1);
            struct sockaddr_in sin = addr4(ip);
            struct bt_resolve_wait *wt;
            cr_assert_eq(bt_resolver_lookup(r, (struct sockaddr *)&sin, sizeof(sin),
                                            10 * BT_NS_PER_SEC, on_answer, &a[i][w], name, &wt),
                         0);
            if (i == 7 && w == 1)
                cancelled = wt;
        }
    bt_resolver_cancel(r, cancelled);
    /* count answers as they come */
    int64_t end = bt_mono_ns() + 10 * BT_NS_PER_SEC;
    while (bt_resolver_pending(r) && bt_mono_ns() < end)
        bt_loop_run_once(l, 10 * BT_NS_PER_MS);
    for (int i = 0; i < NADDR; i++)
        for (int w = 0; w < NWAIT; w++) {
            if (i == 7 && w == 1) {
                cr_assert_eq(a[i][w].n, 0, "a cancelled wait has no callback");
                continue;
            }
            char want[64];
            snprintf(want, sizeof(want), "h-127.1.%d.%d", i / 200, i % 200 + 1);
            cr_assert_eq(a[i][w].n, 1, "%d/%d answered %d times", i, w, a[i][w].n);
            cr_assert_str_eq(a[i][w].name, want);
            total++;
        }
    cr_assert_eq(total, NADDR * NWAIT - 1);
    cr_assert_eq(bt_metrics_sum(m, "bpftail_resolver_lookups_total", ""), NADDR,
                 "one lookup per address, however many wait");
    cr_assert_eq(bt_resolver_cached(r), NADDR);
    bt_resolver_free(r);
    bt_metrics_free(m);
    bt_loop_free(l);
}

Test(resolve, many_waits_on_loopback_share_one_real_lookup)
{
    struct sockaddr_in sin = addr4("127.0.0.1");
    char want[NI_MAXHOST] = "";
    if (getnameinfo((struct sockaddr *)&sin, sizeof(sin), want, sizeof(want), NULL, 0, NI_NAMEREQD))
        want[0] = '\0';
    struct bt_loop *l = bt_loop_new();
    struct bt_metrics *m = bt_metrics_new();
    struct bt_resolver *r = bt_resolver_new(l, m, NULL);
    static struct answer a[200];
    char name[BT_RESOLVE_NAME_MAX];
    int n = 0;
    for (int i = 0; i < 200; i++) {
        struct bt_resolve_wait *w;
        cr_assert_eq(bt_resolver_lookup(r, (struct sockaddr *)&sin, sizeof(sin), 5 * BT_NS_PER_SEC,
                                        on_answer, &a[i], name, &w),
                     0);
    }
    int64_t end = bt_mono_ns() + 5 * BT_NS_PER_SEC;
    while (bt_resolver_pending(r) && bt_mono_ns() < end)
        bt_loop_run_once(l, 10 * BT_NS_PER_MS);
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(a[i].n, 1);
        cr_assert_str_eq(a[i].name, want);
        n++;
    }
    cr_assert_eq(n, 200);
    cr_assert_eq(bt_metrics_sum(m, "bpftail_resolver_lookups_total", ""), 1);
    bt_resolver_free(r);
    bt_metrics_free(m);
    bt_loop_free(l);
}

Test(resolve, bounds_queue_cache_and_ttl)
{
    atomic_store(&slow_ms, 20);
    struct bt_loop *l = bt_loop_new();
    struct bt_metrics *m = bt_metrics_new();
    struct bt_resolver_opts o = {
        .lookup = fake_lookup, .max_queue = 4, .max_cache = 3, .ttl_ns = 200 * BT_NS_PER_MS};
    struct bt_resolver *r = bt_resolver_new(l, m, &o);
    static struct answer a[6];
    char name[BT_RESOLVE_NAME_MAX];
    struct bt_resolve_wait *w;
    for (int i = 0; i < 5; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "127.1.9.%d", i + 1);
        struct sockaddr_in sin = addr4(ip);
        int rc = bt_resolver_lookup(r, (struct sockaddr *)&sin, sizeof(sin), 5 * BT_NS_PER_SEC,
                                    on_answer, &a[i], name, &w);
        cr_assert_eq(rc, i < 4 ? 0 : -EAGAIN, "lookup %d: %d", i, rc);
    }
    int64_t end = bt_mono_ns() + 3 * BT_NS_PER_SEC;
    while (bt_resolver_pending(r) && bt_mono_ns() < end)
        bt_loop_run_once(l, 10 * BT_NS_PER_MS);
    cr_assert_eq(bt_resolver_cached(r), 3, "the oldest answer made room");
    struct sockaddr_in last = addr4("127.1.9.4");
    cr_assert_eq(bt_resolver_lookup(r, (struct sockaddr *)&last, sizeof(last), 5 * BT_NS_PER_SEC,
                                    on_answer, &a[5], name, &w),
                 1);
    sleep_ms(250);
    cr_assert_eq(bt_resolver_lookup(r, (struct sockaddr *)&last, sizeof(last), 5 * BT_NS_PER_SEC,
                                    on_answer, &a[5], name, &w),
                 0, "expired: looked up again");
    bt_resolver_free(r); /* with a wait pending: dropped without its callback */
    cr_assert_eq(a[5].n, 0);
    bt_metrics_free(m);
    bt_loop_free(l);
}

Test(resolve, free_does_not_wait_for_a_stuck_lookup)
{
    atomic_store(&slow_ms, 500);
    struct bt_loop *l = bt_loop_new();
    struct bt_resolver_opts o = {.lookup = fake_lookup};
    struct bt_resolver *r = bt_resolver_new(l, NULL, &o);
    struct sockaddr_in sin = addr4("127.1.3.3");
    struct answer a = {0};
    char name[BT_RESOLVE_NAME_MAX];
    struct bt_resolve_wait *w;
    cr_assert_eq(bt_resolver_lookup(r, (struct sockaddr *)&sin, sizeof(sin), BT_NS_PER_SEC,
                                    on_answer, &a, name, &w),
                 0);
    while (atomic_load(&calls) == 0)
        sleep_ms(1);
    int64_t t0 = bt_mono_ns();
    bt_resolver_free(r);
    cr_assert_lt(bt_mono_ns() - t0, 100 * BT_NS_PER_MS);
    bt_loop_free(l);
    sleep_ms(700); /* the detached worker finishes and frees its part (ASan sees no leak) */
    cr_assert_eq(a.n, 0);
}
