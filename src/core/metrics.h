/*
 * metrics: bpftail's Prometheus registry.
 *
 * Families (name, help, type) hold series keyed by a rendered label string such as
 * `path="/var/log/syslog"` or `reason="rate_limited",tenant=""` (without braces; "" for none).
 * Getting a series creates it; the returned pointer stays valid until the series is removed
 * or the registry freed, so hot paths look a series up once and keep the pointer.
 * Updates are lock-free atomics and may come from any thread; creation, removal and rendering
 * take the registry lock. Rendering follows the Prometheus text exposition format 0.0.4.
 */
#ifndef BT_METRICS_H
#define BT_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct bt_buf;
struct bt_metrics;
struct bt_series; /* one counter, gauge or histogram with a fixed label set */

enum bt_metric_type { BT_COUNTER, BT_GAUGE, BT_HISTOGRAM };

struct bt_metrics *bt_metrics_new(void);
void bt_metrics_free(struct bt_metrics *m);

/* Returns the series (created on first use) or NULL on ENOMEM or a type clash with an existing
 * family of the same name. labels may be NULL or "". For histograms, buckets (upper bounds,
 * ascending, without +Inf) are taken from the first call for that family; NULL gives
 * Prometheus' default buckets. */
struct bt_series *bt_metrics_counter(struct bt_metrics *m, const char *name, const char *help,
                                     const char *labels);
struct bt_series *bt_metrics_gauge(struct bt_metrics *m, const char *name, const char *help,
                                   const char *labels);
struct bt_series *bt_metrics_histogram(struct bt_metrics *m, const char *name, const char *help,
                                       const char *labels, const double *buckets, size_t n);
/* Removes a series (e.g. the per-file series of a file no longer tailed). Pointers to it
 * become invalid. Returns 1 if removed. */
int bt_metrics_remove(struct bt_metrics *m, const char *name, const char *labels);

/* Updates; NULL series are ignored so callers need no checks. */
void bt_counter_add(struct bt_series *s, double v);
void bt_counter_inc(struct bt_series *s);
void bt_gauge_set(struct bt_series *s, double v);
void bt_gauge_add(struct bt_series *s, double v);
void bt_histogram_observe(struct bt_series *s, double v);
/* Current value of a counter or gauge (sum for a histogram). */
double bt_series_value(const struct bt_series *s);

/* Sum of all series of a family whose rendered labels contain match ("" for all). Tests. */
double bt_metrics_sum(struct bt_metrics *m, const char *name, const char *match);

/* Renders every family into out. 0 or -ENOMEM. */
int bt_metrics_render(struct bt_metrics *m, struct bt_buf *out);

/* Escapes a label value for the exposition format (\\, \", \n) into out. Returns out. */
const char *bt_metrics_escape(char *out, size_t outlen, const char *value);

#endif
