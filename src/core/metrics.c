#include "core/metrics.h"
#include "util/buf.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bt_series {
    struct family *fam;
    char *labels;
    _Atomic uint64_t bits;    /* double value (counter, gauge) or histogram sum */
    _Atomic uint64_t *counts; /* histogram: one per bucket plus +Inf (non-cumulative) */
    _Atomic uint64_t count;
};

struct family {
    char *name;
    char *help;
    enum bt_metric_type type;
    double *buckets;
    size_t n_buckets;
    struct bt_series **series;
    size_t n, cap;
};

struct bt_metrics {
    pthread_mutex_t lock;
    struct family **fams;
    size_t n, cap;
};

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

static double bits_to_d(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

static uint64_t d_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, d_to_bits(bits_to_d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

struct bt_metrics *bt_metrics_new(void)
{
    struct bt_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void series_free(struct bt_series *s)
{
    free(s->labels);
    free(s->counts);
    free(s);
}

void bt_metrics_free(struct bt_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        struct family *f = m->fams[i];
        for (size_t j = 0; j < f->n; j++)
            series_free(f->series[j]);
        free(f->series);
        free(f->name);
        free(f->help);
        free(f->buckets);
        free(f);
    }
    free(m->fams);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static struct family *find_family(struct bt_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->fams[i]->name, name) == 0)
            return m->fams[i];
    return NULL;
}

static struct bt_series *get_series(struct bt_metrics *m, enum bt_metric_type type,
                                    const char *name, const char *help, const char *labels,
                                    const double *buckets, size_t nb)
{
    if (!labels)
        labels = "";
    struct bt_series *ret = NULL;
    pthread_mutex_lock(&m->lock);
    struct family *f = find_family(m, name);
    if (f && f->type != type)
        goto out;
    if (!f) {
        if (m->n == m->cap) {
            size_t nc = m->cap ? m->cap * 2 : 32;
            struct family **nf = realloc(m->fams, nc * sizeof(*nf));
            if (!nf)
                goto out;
            m->fams = nf;
            m->cap = nc;
        }
        f = calloc(1, sizeof(*f));
        if (!f)
            goto out;
        f->name = strdup(name);
        f->help = strdup(help ? help : "");
        f->type = type;
        if (type == BT_HISTOGRAM) {
            if (!buckets) {
                buckets = default_buckets;
                nb = sizeof(default_buckets) / sizeof(default_buckets[0]);
            }
            f->buckets = malloc((nb ? nb : 1) * sizeof(double));
            if (f->buckets)
                memcpy(f->buckets, buckets, nb * sizeof(double));
            f->n_buckets = nb;
        }
        if (!f->name || !f->help || (type == BT_HISTOGRAM && !f->buckets)) {
            free(f->name);
            free(f->help);
            free(f->buckets);
            free(f);
            goto out;
        }
        m->fams[m->n++] = f;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->series[i]->labels, labels) == 0) {
            ret = f->series[i];
            goto out;
        }
    }
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 8;
        struct bt_series **ns = realloc(f->series, nc * sizeof(*ns));
        if (!ns)
            goto out;
        f->series = ns;
        f->cap = nc;
    }
    struct bt_series *s = calloc(1, sizeof(*s));
    if (!s)
        goto out;
    s->fam = f;
    s->labels = strdup(labels);
    if (type == BT_HISTOGRAM)
        s->counts = calloc(f->n_buckets + 1, sizeof(*s->counts));
    if (!s->labels || (type == BT_HISTOGRAM && !s->counts)) {
        series_free(s);
        goto out;
    }
    f->series[f->n++] = s;
    ret = s;
out:
    pthread_mutex_unlock(&m->lock);
    return ret;
}

struct bt_series *bt_metrics_counter(struct bt_metrics *m, const char *name, const char *help,
                                     const char *labels)
{
    return m ? get_series(m, BT_COUNTER, name, help, labels, NULL, 0) : NULL;
}

struct bt_series *bt_metrics_gauge(struct bt_metrics *m, const char *name, const char *help,
                                   const char *labels)
{
    return m ? get_series(m, BT_GAUGE, name, help, labels, NULL, 0) : NULL;
}

struct bt_series *bt_metrics_histogram(struct bt_metrics *m, const char *name, const char *help,
                                       const char *labels, const double *buckets, size_t n)
{
    return m ? get_series(m, BT_HISTOGRAM, name, help, labels, buckets, n) : NULL;
}

int bt_metrics_remove(struct bt_metrics *m, const char *name, const char *labels)
{
    if (!m)
        return 0;
    int removed = 0;
    pthread_mutex_lock(&m->lock);
    struct family *f = find_family(m, name);
    for (size_t i = 0; f && i < f->n; i++) {
        if (strcmp(f->series[i]->labels, labels ? labels : "") == 0) {
            series_free(f->series[i]);
            f->series[i] = f->series[--f->n];
            removed = 1;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return removed;
}

void bt_counter_add(struct bt_series *s, double v)
{
    if (s && v > 0)
        atomic_add_double(&s->bits, v);
}

void bt_counter_inc(struct bt_series *s)
{
    bt_counter_add(s, 1);
}

void bt_gauge_set(struct bt_series *s, double v)
{
    if (s)
        atomic_store_explicit(&s->bits, d_to_bits(v), memory_order_relaxed);
}

void bt_gauge_add(struct bt_series *s, double v)
{
    if (s)
        atomic_add_double(&s->bits, v);
}

void bt_histogram_observe(struct bt_series *s, double v)
{
    if (!s || !s->counts)
        return;
    struct family *f = s->fam;
    size_t i = 0;
    while (i < f->n_buckets && v > f->buckets[i])
        i++;
    atomic_fetch_add_explicit(&s->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    atomic_add_double(&s->bits, v);
}

double bt_series_value(const struct bt_series *s)
{
    return s ? bits_to_d(atomic_load_explicit(&s->bits, memory_order_relaxed)) : 0;
}

double bt_metrics_sum(struct bt_metrics *m, const char *name, const char *match)
{
    double sum = 0;
    if (!m)
        return 0;
    pthread_mutex_lock(&m->lock);
    struct family *f = find_family(m, name);
    for (size_t i = 0; f && i < f->n; i++)
        if (!match || strstr(f->series[i]->labels, match))
            sum += bt_series_value(f->series[i]);
    pthread_mutex_unlock(&m->lock);
    return sum;
}

const char *bt_metrics_escape(char *out, size_t outlen, const char *value)
{
    size_t o = 0;
    for (const char *p = value; *p && o + 2 < outlen; p++) {
        if (*p == '\\' || *p == '"') {
            out[o++] = '\\';
            out[o++] = *p;
        } else if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *p;
        }
    }
    if (outlen)
        out[o < outlen ? o : outlen - 1] = '\0';
    return out;
}

/* Shortest text that reads back as the same double, as Prometheus clients print values;
 * infinities and NaN in the exposition spelling. */
static int fmt_double(char *out, size_t n, double v)
{
    if (isnan(v))
        return snprintf(out, n, "NaN");
    if (isinf(v))
        return snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
        return snprintf(out, n, "%lld", (long long)v);
    int rc = 0;
    for (int prec = 15; prec <= 17; prec++) {
        rc = snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return rc;
}

/* HELP text escapes backslash and newline (label values also escape the double quote). */
static int add_help(struct bt_buf *out, const char *help)
{
    int rc = 0;
    for (const char *p = help; rc == 0 && *p; p++) {
        if (*p == '\\')
            rc = bt_buf_add(out, "\\\\", 2);
        else if (*p == '\n')
            rc = bt_buf_add(out, "\\n", 2);
        else
            rc = bt_buf_add(out, p, 1);
    }
    return rc;
}

static int render_family(struct family *f, struct bt_buf *out)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    if (f->n == 0) /* every series removed: omit the family, as Prometheus clients do */
        return 0;
    int rc = bt_buf_addf(out, "# HELP %s ", f->name);
    if (rc == 0)
        rc = add_help(out, f->help);
    if (rc == 0)
        rc = bt_buf_addf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
    char num[64];
    for (size_t i = 0; rc == 0 && i < f->n; i++) {
        struct bt_series *s = f->series[i];
        const char *l = s->labels;
        if (f->type != BT_HISTOGRAM) {
            fmt_double(num, sizeof(num), bt_series_value(s));
            rc = *l ? bt_buf_addf(out, "%s{%s} %s\n", f->name, l, num)
                    : bt_buf_addf(out, "%s %s\n", f->name, num);
            continue;
        }
        uint64_t cum = 0;
        for (size_t b = 0; rc == 0 && b <= f->n_buckets; b++) {
            cum += atomic_load_explicit(&s->counts[b], memory_order_relaxed);
            if (b < f->n_buckets)
                fmt_double(num, sizeof(num), f->buckets[b]);
            else
                snprintf(num, sizeof(num), "+Inf");
            rc = bt_buf_addf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, l, *l ? "," : "", num,
                             (unsigned long long)cum);
        }
        fmt_double(num, sizeof(num), bt_series_value(s));
        if (rc == 0)
            rc = *l ? bt_buf_addf(out, "%s_sum{%s} %s\n%s_count{%s} %llu\n", f->name, l, num,
                                  f->name, l, (unsigned long long)cum)
                    : bt_buf_addf(out, "%s_sum %s\n%s_count %llu\n", f->name, num, f->name,
                                  (unsigned long long)cum);
    }
    return rc;
}

int bt_metrics_render(struct bt_metrics *m, struct bt_buf *out)
{
    int rc = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; rc == 0 && i < m->n; i++)
        rc = render_family(m->fams[i], out);
    pthread_mutex_unlock(&m->lock);
    return rc;
}
