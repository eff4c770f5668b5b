/*
 * fim: file-integrity monitoring. Turns accesses to sensitive files into Loki log entries.
 *
 * The `fim:` config section names paths, directories and globs and the operations to
 * report. They become inode and directory sets in the kernel (a BPF watcher of its own, see
 * watch_bpf.h), so hard links to a watched file are caught. Each matching access becomes one
 * entry in its own stream, labels {job="fim", op="write", host="..."} plus configured labels,
 * a logfmt line with path, inode, process (pid, ppid, uid, gid, comm, exe) and cgroup /
 * container id, and the kernel's event time. Entries go to a sink (the agent's pipeline or
 * batcher); they need no acknowledgement (seg = NULL).
 *
 *   fim:
 *     job: fim                # default
 *     host: web-1             # default: gethostname()
 *     labels: {env: prod}
 *     reconcile_period: 60s   # re-resolve paths and globs (files replaced, new matches)
 *     rules:
 *       - paths: [/etc/passwd, /etc/shadow, "/etc/ssh/sshd_config.d/[a-z]*.conf", /etc/sudoers.d/]
 *         ops: [write, create, rename, unlink, truncate, chmod, chown, read]
 *   (`paths` and `ops` directly under fim: are a one-rule shorthand.)
 *
 * Ops: read (opens that can read), open (any open), write, create, rename, unlink, rmdir, delete
 * (unlink+rmdir), truncate, close_write, chmod, chown, attrib (chmod+chown). Default: every op but
 * read/open and close_write. A renamed watched file is followed under its new name until that name
 * no longer holds it. Accesses by bpftail itself are not reported. Without BPF, FIM reports
 * nothing: it logs one line and bt_fim_backend() says "none".
 */
#ifndef BT_FIM_H
#define BT_FIM_H

#include <stddef.h>

#include "core/entry.h"

struct bt_fim;
struct bt_loop;
struct bt_metrics;
struct bt_node;

/* Builds the monitor from the `fim:` node and registers its fd and reconcile timer on loop.
 * NULL cfg gives NULL without an error. A bad config gives NULL with "file:line:col: ..." in
 * err. BPF being unavailable is not an error (backend "none"). NULL loop only validates the
 * config (-check-syntax): nothing is loaded, backend "none". While a background BPF load runs
 * (bt_watch_bpf_load_async) the monitor waits for it and starts from its callback, backend
 * "starting" until then. The sink is borrowed. */
struct bt_fim *bt_fim_new(const struct bt_node *fim_cfg, struct bt_loop *loop, struct bt_metrics *m,
                          bt_entry_sink_fn sink, void *ctx, char *err, size_t errlen);
/* Unregisters from the loop, detaches the programs, frees. NULL is ignored. */
void bt_fim_free(struct bt_fim *f);
/* "bpf", "starting" while waiting for the background BPF load, or "none" when BPF could not be
 * used. */
const char *bt_fim_backend(const struct bt_fim *f);
/* Re-resolves paths and globs now (also done after create/rename/unlink events and on the
 * reconcile timer). 0 or -errno. */
int bt_fim_reconcile(struct bt_fim *f);
/* Number of file inodes currently watched. */
size_t bt_fim_watched_files(const struct bt_fim *f);

#endif
