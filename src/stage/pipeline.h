/*
 * pipeline: runs a scrape job's pipeline_stages over each entry.
 *
 * Built once per job from the `pipeline_stages` YAML (a struct bt_node list); an unknown stage
 * or a bad option is an error naming file:line:col and the stage. Processing an entry runs the
 * stages in order; kept entries go to the sink given at creation, dropped ones are counted in
 * bpftail_dropped_entries_total{reason=...} and their segment reference is left to the caller
 * (nothing is taken). Stages that hold entries back (multiline, partial-line joins) take a
 * segment reference on what they hold and release it once the joined entry has gone to the
 * sink; bt_pipeline_tick flushes what waited long enough, bt_pipeline_flush everything.
 * Loop thread only.
 */
#ifndef BT_PIPELINE_H
#define BT_PIPELINE_H

#include <stdint.h>
#include <stdio.h>

#include "core/entry.h"

struct bt_node;
struct bt_metrics;
struct bt_pipeline;

/* stages may be NULL (no stages: entries pass unchanged). NULL on error, message in err. */
struct bt_pipeline *bt_pipeline_new(const struct bt_node *stages, const char *job,
                                    struct bt_metrics *m, bt_entry_sink_fn sink, void *ctx,
                                    char *err, size_t errlen);
void bt_pipeline_free(struct bt_pipeline *p);
/* Runs e through the stages. e and everything it points to are borrowed. */
void bt_pipeline_process(struct bt_pipeline *p, const struct bt_entry *e);
/* Monotonic deadline of the earliest held entry, or INT64_MAX. */
int64_t bt_pipeline_deadline(const struct bt_pipeline *p);
/* Emits held entries whose wait is over. */
void bt_pipeline_tick(struct bt_pipeline *p, int64_t now_mono);
/* Emits everything held (shutdown, or the source of held entries goes away). */
void bt_pipeline_flush(struct bt_pipeline *p);
/* With -inspect: print what each stage changed to f (NULL turns it off). */
void bt_pipeline_set_inspect(struct bt_pipeline *p, FILE *f);
/* For -dry-run: appends one line as promtail prints it,
 *   2006-01-02T15:04:05.999999999-0700<TAB>{labels}<TAB>line
 * (local time; labels in Loki's canonical form; structured metadata, when there is some, as a
 * {name="value"} column before the line). 0 or -ENOMEM/-E2BIG. */
struct bt_buf;
int bt_pipeline_format_entry(const struct bt_entry *e, struct bt_buf *out);

#endif
