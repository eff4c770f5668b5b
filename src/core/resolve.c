#include "core/resolve.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/metrics.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"

#define COMP "resolve"
#define DEFAULT_TTL (300 * BT_NS_PER_SEC)
#define DEFAULT_CACHE 4096
#define DEFAULT_QUEUE 1024
#define KEY_MAX 64 /* numeric form of an address */

struct req;

struct bt_resolve_wait {
    struct bt_resolver *r;
    struct req *req;
    uint64_t timer;
    bt_resolve_fn fn;
    void *arg;
    struct bt_resolve_wait *prev, *next;
};

/* One address being resolved. The worker writes name and ok between taking it from the queue
 * and putting it on the done list; the loop thread touches the rest. */
struct req {
    char key[KEY_MAX];
    struct sockaddr_storage ss;
    socklen_t sl;
    char name[BT_RESOLVE_NAME_MAX];
    bool ok;
    bool timed_out; /* a wait passed its deadline: later callers get "" at once */
    struct bt_resolve_wait *waits;
    struct req *qnext;
};

/* What the worker shares with the loop thread, under mu. The worker frees it if the loop side
 * went away while a lookup was running (detached). */
struct shared {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct req *qhead, *qtail; /* to resolve */
    struct req *done;          /* resolved, newest first */
    struct req *current;       /* being resolved */
    bool stop, orphan;
    int efd;
    bt_resolve_lookup_fn lookup;
};

struct centry {
    char *name;
    int64_t expires;
    char key[KEY_MAX];
    struct centry *older, *newer;
};

struct bt_resolver {
    struct bt_loop *loop;
    struct shared *sh;
    pthread_t th;
    struct bt_hmap inflight; /* key -> struct req */
    struct bt_hmap cache;    /* key -> struct centry */
    struct centry *oldest, *newest;
    int64_t ttl, neg_ttl;
    size_t max_cache, max_queue;
    struct bt_series *m_lookups, *m_fail, *m_timeout, *m_hits;
};

static int default_lookup(const struct sockaddr *sa, socklen_t len, char *name, size_t namelen)
{
    return getnameinfo(sa, len, name, (socklen_t)namelen, NULL, 0, NI_NAMEREQD);
}

static void shared_free(struct shared *sh)
{
    struct req *next;
    for (struct req *q = sh->qhead; q; q = next) {
        next = q->qnext;
        free(q);
    }
    for (struct req *q = sh->done; q; q = next) {
        next = q->qnext;
        free(q);
    }
    close(sh->efd);
    pthread_cond_destroy(&sh->cv);
    pthread_mutex_destroy(&sh->mu);
    free(sh);
}

static void *worker(void *arg)
{
    struct shared *sh = arg;
    pthread_mutex_lock(&sh->mu);
    for (;;) {
        while (!sh->stop && !sh->qhead)
            pthread_cond_wait(&sh->cv, &sh->mu);
        if (sh->stop)
            break;
        struct req *q = sh->qhead;
        sh->qhead = q->qnext;
        if (!sh->qhead)
            sh->qtail = NULL;
        sh->current = q;
        pthread_mutex_unlock(&sh->mu);

        q->ok = sh->lookup((const struct sockaddr *)&q->ss, q->sl, q->name, sizeof(q->name)) == 0;
        if (!q->ok)
            q->name[0] = '\0';
        size_t n = strnlen(q->name, sizeof(q->name) - 1);
        q->name[n] = '\0';
        if (n && q->name[n - 1] == '.')
            q->name[n - 1] = '\0';
        q->ok = q->ok && q->name[0];

        pthread_mutex_lock(&sh->mu);
        sh->current = NULL;
        if (sh->stop) {
            free(q);
            break;
        }
        q->qnext = sh->done;
        sh->done = q;
        uint64_t one = 1;
        if (write(sh->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            BT_WARN(COMP, "eventfd write failed", "err=%s", strerror(errno));
    }
    bool orphan = sh->orphan;
    pthread_mutex_unlock(&sh->mu);
    if (orphan)
        shared_free(sh);
    return NULL;
}

/* ---- cache ---- */

static void cache_unlink(struct bt_resolver *r, struct centry *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        r->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        r->newest = e->older;
    bt_hmap_del(&r->cache, e->key, strlen(e->key));
    free(e->name);
    free(e);
}

static void cache_put(struct bt_resolver *r, const char *key, const char *name)
{
    struct centry *e = bt_hmap_get(&r->cache, key, strlen(key));
    if (e)
        cache_unlink(r, e);
    while (r->oldest && r->cache.n >= r->max_cache)
        cache_unlink(r, r->oldest);
    e = calloc(1, sizeof(*e));
    if (!e || !(e->name = strdup(name))) {
        free(e);
        return;
    }
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->expires = bt_mono_ns() + (name[0] ? r->ttl : r->neg_ttl);
    if (bt_hmap_put(&r->cache, e->key, strlen(e->key), e, NULL) < 0) {
        free(e->name);
        free(e);
        return;
    }
    e->older = r->newest;
    if (r->newest)
        r->newest->newer = e;
    else
        r->oldest = e;
    r->newest = e;
}

/* ---- waits ---- */

static void wait_unlink(struct bt_resolve_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        w->req->waits = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (w->timer)
        bt_loop_del_timer(w->r->loop, w->timer);
}

static void wait_deadline(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_resolve_wait *w = arg;
    (void)l;
    (void)id;
    w->timer = 0; /* one-shot: already gone */
    wait_unlink(w);
    w->req->timed_out = true;
    bt_counter_inc(w->r->m_timeout);
    bt_resolve_fn fn = w->fn;
    void *a = w->arg;
    free(w);
    fn(a, "");
}

void bt_resolver_cancel(struct bt_resolver *r, struct bt_resolve_wait *w)
{
    (void)r;
    if (!w)
        return;
    wait_unlink(w);
    free(w);
}

/* ---- answers ---- */

static void answer(struct bt_resolver *r, struct req *q)
{
    bt_hmap_del(&r->inflight, q->key, strlen(q->key));
    if (!q->ok)
        bt_counter_inc(r->m_fail);
    cache_put(r, q->key, q->ok ? q->name : "");
    /* A callback may cancel other waits of this request: take them one at a time. */
    while (q->waits) {
        struct bt_resolve_wait *w = q->waits;
        wait_unlink(w);
        bt_resolve_fn fn = w->fn;
        void *a = w->arg;
        free(w);
        fn(a, q->ok ? q->name : "");
    }
    free(q);
}

static void efd_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_resolver *r = arg;
    uint64_t v;
    (void)l;
    (void)events;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        BT_WARN(COMP, "eventfd read failed", "err=%s", strerror(errno));
    pthread_mutex_lock(&r->sh->mu);
    struct req *done = r->sh->done;
    r->sh->done = NULL;
    pthread_mutex_unlock(&r->sh->mu);
    /* oldest first */
    struct req *rev = NULL, *next;
    for (struct req *q = done; q; q = next) {
        next = q->qnext;
        q->qnext = rev;
        rev = q;
    }
    for (struct req *q = rev; q; q = next) {
        next = q->qnext;
        answer(r, q);
    }
}

/* ---- public ---- */

int bt_resolver_lookup(struct bt_resolver *r, const struct sockaddr *sa, socklen_t len,
                       int64_t timeout_ns, bt_resolve_fn fn, void *arg, char *name,
                       struct bt_resolve_wait **wait)
{
    char key[KEY_MAX];
    name[0] = '\0';
    *wait = NULL;
    if (len > sizeof(struct sockaddr_storage) ||
        getnameinfo(sa, len, key, sizeof(key), NULL, 0, NI_NUMERICHOST) != 0)
        return -EAFNOSUPPORT;
    size_t kl = strlen(key);
    struct centry *e = bt_hmap_get(&r->cache, key, kl);
    if (e && e->expires <= bt_mono_ns()) {
        cache_unlink(r, e);
        e = NULL;
    }
    if (e) {
        bt_counter_inc(r->m_hits);
        snprintf(name, BT_RESOLVE_NAME_MAX, "%s", e->name);
        return 1;
    }
    struct req *q = bt_hmap_get(&r->inflight, key, kl);
    if (q && q->timed_out)
        return 1;
    bool fresh = !q;
    if (fresh) {
        if (r->inflight.n >= r->max_queue) {
            bt_counter_inc(r->m_fail);
            return -EAGAIN;
        }
        if (!(q = calloc(1, sizeof(*q))))
            return -ENOMEM;
        memcpy(q->key, key, kl + 1);
        memcpy(&q->ss, sa, len);
        q->sl = len;
    }
    struct bt_resolve_wait *w = calloc(1, sizeof(*w));
    if (!w || (fresh && bt_hmap_put(&r->inflight, q->key, kl, q, NULL) < 0))
        goto nomem;
    w->r = r;
    w->req = q;
    w->fn = fn;
    w->arg = arg;
    if (!(w->timer =
              bt_loop_add_timer(r->loop, timeout_ns > 0 ? timeout_ns : 1, 0, wait_deadline, w))) {
        if (fresh)
            bt_hmap_del(&r->inflight, q->key, kl);
        goto nomem;
    }
    w->next = q->waits;
    if (q->waits)
        q->waits->prev = w;
    q->waits = w;
    if (fresh) {
        bt_counter_inc(r->m_lookups);
        pthread_mutex_lock(&r->sh->mu);
        if (r->sh->qtail)
            r->sh->qtail->qnext = q;
        else
            r->sh->qhead = q;
        r->sh->qtail = q;
        pthread_cond_signal(&r->sh->cv);
        pthread_mutex_unlock(&r->sh->mu);
    }
    *wait = w;
    return 0;
nomem:
    free(w);
    if (fresh)
        free(q);
    return -ENOMEM;
}

struct bt_resolver *bt_resolver_new(struct bt_loop *l, struct bt_metrics *metrics,
                                    const struct bt_resolver_opts *opts)
{
    struct bt_resolver_opts o = opts ? *opts : (struct bt_resolver_opts){0};
    struct bt_resolver *r = calloc(1, sizeof(*r));
    struct shared *sh = calloc(1, sizeof(*sh));
    if (!r || !sh)
        goto fail_alloc;
    r->loop = l;
    r->ttl = o.ttl_ns > 0 ? o.ttl_ns : DEFAULT_TTL;
    r->neg_ttl = o.neg_ttl_ns > 0 ? o.neg_ttl_ns : r->ttl;
    r->max_cache = o.max_cache ? o.max_cache : DEFAULT_CACHE;
    r->max_queue = o.max_queue ? o.max_queue : DEFAULT_QUEUE;
    bt_hmap_init(&r->inflight);
    bt_hmap_init(&r->cache);
    sh->lookup = o.lookup ? o.lookup : default_lookup;
    sh->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sh->efd < 0)
        goto fail_alloc;
    pthread_mutex_init(&sh->mu, NULL);
    pthread_cond_init(&sh->cv, NULL);
    int rc = bt_loop_add_fd(l, sh->efd, EPOLLIN, efd_io, r);
    if (rc < 0) {
        errno = -rc;
        goto fail_sh;
    }
    /* The worker takes no signals: they are the loop thread's. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&r->th, NULL, worker, sh);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        bt_loop_del_fd(l, sh->efd);
        errno = rc;
        goto fail_sh;
    }
    r->sh = sh;
    if (metrics) {
        r->m_lookups = bt_metrics_counter(metrics, "bpftail_resolver_lookups_total",
                                          "Reverse DNS lookups started.", NULL);
        r->m_fail = bt_metrics_counter(
            metrics, "bpftail_resolver_failures_total",
            "Reverse DNS lookups without a name, or refused (queue full).", NULL);
        r->m_timeout =
            bt_metrics_counter(metrics, "bpftail_resolver_timeouts_total",
                               "Waits for a reverse DNS answer past their deadline.", NULL);
        r->m_hits = bt_metrics_counter(metrics, "bpftail_resolver_cache_hits_total",
                                       "Reverse DNS answers taken from the cache.", NULL);
    }
    return r;
fail_sh:
    shared_free(sh);
    sh = NULL;
fail_alloc:
    free(sh);
    free(r);
    return NULL;
}

void bt_resolver_free(struct bt_resolver *r)
{
    if (!r)
        return;
    size_t pos = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&r->inflight, &pos))) {
        struct req *q = s->val;
        while (q->waits) {
            struct bt_resolve_wait *w = q->waits;
            wait_unlink(w);
            free(w);
        }
    }
    while (r->oldest)
        cache_unlink(r, r->oldest);
    bt_hmap_free(&r->cache);
    bt_loop_del_fd(r->loop, r->sh->efd);
    struct shared *sh = r->sh;
    pthread_mutex_lock(&sh->mu);
    sh->stop = true;
    /* The queued and done requests are in inflight too: shared_free or the list walk below
     * frees them, never both. */
    bool busy = sh->current != NULL;
    sh->orphan = busy;
    pthread_cond_signal(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
    if (busy) {
        pthread_detach(r->th);
    } else {
        pthread_join(r->th, NULL);
        shared_free(sh);
    }
    bt_hmap_free(&r->inflight);
    free(r);
}

size_t bt_resolver_pending(const struct bt_resolver *r)
{
    return r->inflight.n;
}

size_t bt_resolver_cached(const struct bt_resolver *r)
{
    return r->cache.n;
}
