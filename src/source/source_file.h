/*
 * source_file: file targets. Finds the files a target's glob matches, tails each one, follows
 * rotation, and keeps the positions file.
 *
 * It owns the watcher (watch.h), one tailer (tail.h) per open file and the positions store
 * (positions.h). Watch events are hints: on each event and on the reconcile timer
 * (sync_period) the truth is fstat and the fingerprint. A file renamed or deleted under us is
 * read to EOF and closed after rotate_grace of no growth, while a new file at the path is read
 * from 0; a truncated file restarts at 0; a file whose identity is already tailed (renamed
 * under another matching name) is never read twice. Positions saved are the committed offsets
 * (what Loki accepted), every positions sync_period and at free. Entries carry the target's
 * labels without "__" ones plus filename=<absolute path>, and are borrowed by the sink as in
 * entry.h. Loop thread only.
 *
 * Start policy for a file without a usable record: start_at end applies to files found by a
 * target's first scan only (files that appear later are new and read from 0); ignore_older
 * leaves a file alone while its mtime is older than the limit and, once it changes, reads
 * only what was added after it was first seen. With the poll watcher a 250 ms timer checks
 * the open files; with event watchers nothing wakes the loop but events and the slow
 * reconcile and positions timers.
 *
 * Open-file budget: at most max_open_files tailers are open (0 = the soft RLIMIT_NOFILE less
 * the descriptors open when the module starts and a reserve of 64). Past it, the least
 * recently grown file whose bytes are all acknowledged is parked (closed, position and watch
 * kept, reopened by identity on its next change or walk); files with unacknowledged bytes are
 * never parked, and if all are, opening waits for an acknowledgement. EMFILE lowers the budget.
 */
#ifndef BT_SOURCE_FILE_H
#define BT_SOURCE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/entry.h"

struct bt_buf;
struct bt_labels;
struct bt_loop;
struct bt_metrics;
struct bt_positions;

struct bt_files_config {
    struct bt_loop *loop;
    struct bt_metrics *metrics;
    const struct bt_agent_config *agent;
    const struct bt_limits_config *limits;
    const struct bt_positions_config *positions;
    bool positions_readonly; /* -dry-run */
    int64_t sync_period_ns;  /* target_config.sync_period: reconcile (re-glob) timer */
    const char *watcher;     /* agent->watcher: auto|bpf|fanotify|inotify|poll */
    /* File events that come within this long after a batch of them was handled wait for its
     * end and are handled together (one wake-up instead of one per write); 0: at once. */
    int64_t coalesce_ns;
    /* The reconcile's period with an event watcher while files are busy; 0: 10 s. */
    int64_t reconcile_ns;
};

struct bt_files;

/* Loads the positions file and opens the watcher. The config is borrowed for the module's
 * life. NULL with a message in err on failure (an unusable watcher name, no memory). */
struct bt_files *bt_files_new(const struct bt_files_config *cfg, char *err, size_t errlen);
/* labels: the target's labels incl. __path__ (glob) and optional __path_exclude__; copied.
 * Entries (labels = target labels minus "__" ones, plus filename=<abs path>) go to sink.
 * Scans at once. 0, -EINVAL (no __path__) or -ENOMEM. */
int bt_files_add_target(struct bt_files *f, const char *job, const struct bt_labels *labels,
                        enum bt_start_at start_at, int64_t ignore_older_ns, bt_entry_sink_fn sink,
                        void *ctx);
/* Reload, step 1: every target becomes stale. A later bt_files_add_target with the same job,
 * labels (incl. __path__), start_at and ignore_older takes the stale one back, open files,
 * offsets and held partial lines included, with the new sink. */
void bt_files_mark_targets(struct bt_files *f);
/* Reload, step 2: saves positions, then closes and forgets the targets still stale (held
 * partial lines are not emitted; their bytes stay uncommitted). */
void bt_files_drop_stale_targets(struct bt_files *f);
/* Discovery: the target added with these arguments is gone. Saves positions, closes its files
 * (their unacknowledged bytes stay uncommitted) and forgets it. 0 or -ENOENT. */
int bt_files_remove_target(struct bt_files *f, const char *job, const struct bt_labels *labels,
                           enum bt_start_at start_at, int64_t ignore_older_ns);
/* Discovery, for sources whose files outlive their target (a deleted pod's log): the target
 * added with these arguments is gone, but what its files still get is read. It takes no new
 * files; each open one is read to EOF and closed after rotate_grace without growth once every
 * byte read is acknowledged; then the target is freed. Added again before that, it is a live
 * target again with its open files. 0 or -ENOENT. */
int bt_files_retire_target(struct bt_files *f, const char *job, const struct bt_labels *labels,
                           enum bt_start_at start_at, int64_t ignore_older_ns);
/* Reload, between steps 1 and 2, for a job whose targets come from a discovery that finds them
 * again only later (Kubernetes lists asynchronously): its stale targets are retired instead of
 * dropped, with entries going to the new sink, so that a target listed again goes on where it
 * was and one that is not is read to its end first. Returns how many were retired. */
size_t bt_files_retire_stale_targets(struct bt_files *f, const char *job, bt_entry_sink_fn sink,
                                     void *ctx);
void bt_files_pause(struct bt_files *f);         /* backpressure: stop reading (memory ceiling) */
void bt_files_resume(struct bt_files *f);        /* read again, catching up on what was written */
void bt_files_flush(struct bt_files *f);         /* emit held partial lines (shutdown) */
int bt_files_save_positions(struct bt_files *f); /* atomic write now; 0 or -errno */
/* How long the reconcile armed now waits (it grows while nothing happens); 0: none armed. */
int64_t bt_files_reconcile_wait(const struct bt_files *f);
int bt_files_render_targets(struct bt_files *f, struct bt_buf *out); /* JSON for /targets */
size_t bt_files_active(const struct bt_files *f);            /* files being tailed (for /ready) */
const char *bt_files_watcher(const struct bt_files *f);      /* backend name in use */
int bt_files_watcher_interim(const struct bt_files *f);      /* 1 until BPF takes over */
struct bt_positions *bt_files_positions(struct bt_files *f); /* borrowed */
void bt_files_free(struct bt_files *f); /* saves positions first (unless readonly) */

#endif
