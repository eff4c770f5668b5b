/*
 * source_docker: finds Docker containers from Docker's data root, without any configuration,
 * and turns each one into a file target for its json-file log.
 *
 * It follows <path> (default /var/lib/docker/containers): every <id>/config.v2.json becomes a
 * label set with
 *   __path__          <path>/<id>/<id>-json.log* (the live file and Docker's rotated ones)
 *   __path_exclude__  the compressed rotated files (<path>/<id>/<name>.gz)
 *   container_id, container_name (without Docker's leading /), image, compose_project,
 *   compose_service (when set), the static `labels` of the block, and the __meta_docker_*
 *   labels promtail's docker_sd_configs sets (__meta_docker_container_id, _name with the /,
 *   __meta_docker_container_label_<sanitized name>) for relabel_configs.
 * The scrape job's relabel rules (borrowed) run over it; a dropped container is not reported.
 * The caller gets each container through a callback: labels when it appears or its labels
 * change, NULL when it is removed; it decides how to tail (source_file). Containers whose log
 * driver is not json-file (hostconfig.json LogConfig.Type) are skipped. Re-scans happen on inotify
 * events of the directory, quickly again while a new container has no config yet, and every
 * refresh_interval. Reading the directory never blocks the loop for long: a scan is a readdir plus
 * one stat per container, and a config is parsed only when its mtime changed. Loop thread only.
 *
 * Config (the scrape job's `docker:` block):
 *   path: /var/lib/docker/containers
 *   refresh_interval: 5s
 *   labels: {job: docker}
 */
#ifndef BT_SOURCE_DOCKER_H
#define BT_SOURCE_DOCKER_H

#include <stddef.h>

struct bt_labels;
struct bt_loop;
struct bt_node;
struct bt_relabel;
struct bt_docker_disc;

/* One container appeared or changed (labels set, borrowed for the call) or went away (NULL). */
typedef void (*bt_docker_target_fn)(void *ctx, const char *id, const struct bt_labels *labels);

/* Reads the `docker:` block cfg (a NULL node gives the defaults) and, when loop is not NULL,
 * watches the directory and scans on the loop (the first scan runs at once, inside this call).
 * relabel may be NULL; it is borrowed and must outlive the discovery. NULL on error with
 * "file:line:col: docker: ..." in err. */
struct bt_docker_disc *bt_docker_disc_new(const struct bt_node *cfg, struct bt_loop *loop,
                                          struct bt_relabel *relabel, bt_docker_target_fn fn,
                                          void *ctx, char *err, size_t errlen);
/* Stops watching; reports nothing. NULL is ignored. */
void bt_docker_disc_free(struct bt_docker_disc *d);
/* Scans now and reports changes. Returns the number of container directories still without a
 * readable config (worth a quick retry), or -errno when the directory cannot be read (a missing
 * directory is not an error: no containers). */
int bt_docker_disc_scan(struct bt_docker_disc *d);
/* Containers currently reported. */
size_t bt_docker_disc_count(const struct bt_docker_disc *d);
/* The directory followed (borrowed). */
const char *bt_docker_disc_path(const struct bt_docker_disc *d);

/* Prometheus' label-name sanitizer: every byte outside [a-zA-Z0-9_] becomes '_'. Writes
 * prefix + name into out (truncated to outlen). Returns out. */
char *bt_docker_label_name(char *out, size_t outlen, const char *prefix, const char *name);

#endif
