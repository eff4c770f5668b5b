/*
 * plugin: bpftail as a Docker logging plugin (`bpftail -docker-plugin`), a drop-in for Loki's
 * Docker driver that never blocks dockerd, even while Loki is down.
 *
 * It serves Docker's LogDriver protocol (HTTP over a unix socket, core/httpd.c) and, per
 * container, reads the FIFO dockerd writes to, decodes frames (source/docker_fifo.h), appends
 * every line to the container's on-disk spool (core/spool.h) and pumps the spool through the
 * container's pipeline into a push client shared by all containers with the same client
 * options. The FIFO is read whatever Loki does: when pushes fall behind, the spool grows up to
 * its bound and then drops its oldest records, counted. StartLogging and StopLogging answer at
 * once; neither waits for the network or for a disk sync. See docs/docker-plugin.md.
 *
 * Settings (environment, as `docker plugin set` sets them; the flags win for tests):
 *
 *   BPFTAIL_PLUGIN_SOCKET  -plugin.socket       /run/docker/plugins/bpftail.sock
 *   BPFTAIL_STATE_DIR      -plugin.state-dir    /var/lib/bpftail-plugin
 *   BPFTAIL_SPOOL_MAX      -plugin.spool-max    1GiB (all spools together; 512MiB, 10GB ...)
 *   BPFTAIL_METRICS_ADDR   -plugin.metrics-addr "" = off; "host:port" or ":port" for
 *                                               /metrics and /ready over TCP
 *   LOG_LEVEL              -log.level           info (debug, info, warn, error)
 *
 * State: each container has a directory under the state dir (named by a hash of its FIFO path)
 * holding its StartLogging request and its spool. At start every such directory is taken up
 * again: a FIFO that still exists is read on (dockerd still holds it: a plugin restarted after
 * a crash re-attaches), a gone one only has its spool drained. A container's directory goes
 * once its FIFO reached EOF and every spooled line is acknowledged.
 */
#ifndef BT_PLUGIN_H
#define BT_PLUGIN_H

struct bt_cli;

/* Runs the plugin until SIGTERM/SIGINT; returns the exit status (0 after a clean stop, 1 when
 * it cannot start). */
int bt_plugin_main(const struct bt_cli *cli);

#endif
