/*
 * file_sd: Prometheus' file_sd_configs as promtail uses them, feeding file targets.
 *
 * Config (one item of the scrape job's `file_sd_configs:` list):
 *   files: [targets/app-*.json, ...]   path patterns (glob(3), like Go's filepath.Glob)
 *   refresh_interval: 5m
 * Each matching file (.json, .yml or .yaml; JSON is read as the YAML it also is) holds a list
 * of target groups {targets: [...], labels: {...}}. Every target of a group becomes a label set:
 * the group's labels, __address__ = the target and __meta_filepath = the file. The job's relabel
 * rules (borrowed) run over it; a set without __path__ afterwards is dropped, as promtail does.
 * The caller is told of each set that appears (add) and disappears (remove), exactly once each,
 * and decides how to tail (source_file). A file that cannot be read or parsed keeps the targets
 * it last gave (a half-written file does not remove them) and is logged. Re-reads happen on
 * inotify events in the directories of the globs (after a short settle delay) and every
 * refresh_interval. Loop thread only.
 */
#ifndef BT_FILE_SD_H
#define BT_FILE_SD_H

#include <stdbool.h>
#include <stddef.h>

struct bt_labels;
struct bt_loop;
struct bt_node;
struct bt_relabel;
struct bt_file_sd;

/* A target appeared (add true) or went away (add false). labels borrowed for the call. */
typedef void (*bt_file_sd_fn)(void *ctx, const struct bt_labels *labels, bool add);

/* Reads one file_sd_configs item and, with a loop, watches and reads the files (the first
 * read runs at once, inside this call). NULL loop: config check only. NULL on error with
 * "file:line:col: file_sd_configs: ..." in err. */
struct bt_file_sd *bt_file_sd_new(const struct bt_node *cfg, struct bt_loop *loop,
                                  struct bt_relabel *relabel, bt_file_sd_fn fn, void *ctx,
                                  char *err, size_t errlen);
/* Stops watching; reports nothing (the caller keeps or drops the targets). NULL is ignored. */
void bt_file_sd_free(struct bt_file_sd *sd);
/* Reads the files now and reports the changes. Returns the number of targets. */
size_t bt_file_sd_refresh(struct bt_file_sd *sd);
/* Targets currently reported. */
size_t bt_file_sd_count(const struct bt_file_sd *sd);

#endif
