/*
 * source_journal: promtail's `journal` scrape config, the systemd journal read through
 * libsystemd's sd-journal (the only file that includes it).
 *
 * Config (the scrape job's `journal:` block, promtail's keys):
 *   path: /var/log/journal   directory of journal files; unset: the system journal
 *                            (sd_journal_open, /run and /var, every machine id)
 *   json: false              true: the line is the entry as a JSON object of all its fields
 *                            (sorted keys, string values); false: the MESSAGE field
 *   max_age: 7h              never start further back than this (no cursor, or an older one)
 *   matches: "A=b C=d"       journal matches, space separated; "+" starts a disjunction
 *   labels: {job: systemd}   static labels
 * Each entry's labels are the static labels plus every field as __journal_<lower-cased name>
 * (e.g. __journal__systemd_unit, __journal_syslog_identifier), with __journal_priority_keyword
 * (emerg, alert, crit, error, warning, notice, info, debug) next to __journal_priority, as
 * promtail sets them. The job's relabel rules run over them, the "__" labels are removed, and
 * an entry left without labels is not sent (promtail does the same). An entry without MESSAGE
 * is skipped unless json is set. The timestamp is the entry's realtime timestamp. Metrics
 * (per job): bpftail_journal_target_lines_total (entries sent) and
 * bpftail_journal_target_parsing_errors_total{error="no_message"|"empty_labels"}, promtail's
 * journal metrics under bpftail's prefix.
 *
 * Delivery: entries get sequence numbers; each is one segment of an ack owner whose offsets are
 * those numbers. When the committed number passes an entry, that entry's cursor is stored under
 * promtail's positions key "journal-<job_name>" (skipped and dropped entries pass at once), so
 * the saved cursor only names entries Loki accepted. On start the journal resumes after that
 * cursor, unless it is older than max_age.
 *
 * Loop wiring: sd_journal_get_fd (inotify underneath) wakes the loop, sd_journal_process
 * absorbs the change, then up to a bounded number of entries is read per round; more are read
 * on the next round, and a timer honours sd_journal_get_timeout. New journal files (rotation)
 * are picked up by sd-journal itself. Paused (memory ceiling) it stops reading. Loop thread.
 */
#ifndef BT_SOURCE_JOURNAL_H
#define BT_SOURCE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/entry.h"

struct bt_loop;
struct bt_metrics;
struct bt_node;
struct bt_positions;
struct bt_relabel;
struct bt_journal;

struct bt_journal_env {
    struct bt_loop *loop;       /* NULL: parse the config only (-check-syntax) */
    struct bt_relabel *relabel; /* borrowed, may be NULL */
    const char *job;            /* job_name: the positions key and logs */
    bt_entry_sink_fn sink;      /* receives every entry (borrowed as in entry.h) */
    void *ctx;
    struct bt_positions *positions; /* borrowed, may be NULL */
    struct bt_metrics *metrics;     /* may be NULL */
};

/* Reads the `journal:` block and, with a loop, opens the journal and starts reading on the
 * loop (not inside this call). env is copied. NULL on error with "file:line:col: journal: ..."
 * in err. */
struct bt_journal *bt_journal_new(const struct bt_node *cfg, const struct bt_journal_env *env,
                                  char *err, size_t errlen);
/* Closes the journal. Entries still in batches keep their segments; their cursors are lost
 * (the saved cursor stays at the last committed one). NULL is ignored. */
void bt_journal_free(struct bt_journal *j);
/* Backpressure: stop reading / read again. */
void bt_journal_pause(struct bt_journal *j);
void bt_journal_resume(struct bt_journal *j);
/* Reads up to max entries now (tests). Returns the number of entries read or -errno. */
int bt_journal_read(struct bt_journal *j, size_t max);
/* The positions key of job into out ("journal-<job>"). Returns out. */
const char *bt_journal_position_key(char *out, size_t outlen, const char *job);
/* promtail's keyword of a PRIORITY value ("3" -> "error"); other values are returned as is. */
const char *bt_journal_priority_keyword(const char *priority);
/* Counters (tests, /targets). */
uint64_t bt_journal_entries(const struct bt_journal *j);
uint64_t bt_journal_committed(const struct bt_journal *j);

#endif
