/*
 * agent: wires the parts together and runs them on the loop thread.
 *
 * It owns the loop, the metrics registry, one batcher and one push client per configured
 * client, one pipeline per scrape job, the file targets, FIM and the HTTP server. It applies
 * the backpressure rule (bytes held in batches and in flight stay under bpftail.memory_limit:
 * past it, file sources stop reading) and the shutdown rule (stop reading, flush for at most
 * bpftail.shutdown_timeout, save acknowledged positions, exit 0).
 */
#ifndef BT_AGENT_H
#define BT_AGENT_H

#include <stddef.h>

struct bt_config;
struct bt_cli;
struct bt_agent;

/* Builds every part from cfg (borrowed; must outlive the agent). With check_only, builds what
 * validates the config (pipelines, relabel rules, FIM policy) and opens nothing.
 * NULL on error with a message in err. */
struct bt_agent *bt_agent_new(struct bt_config *cfg, const struct bt_cli *cli, int check_only,
                              char *err, size_t errlen);
/* Runs until SIGTERM/SIGINT, then shuts down within the deadline. Returns the exit status. */
int bt_agent_run(struct bt_agent *a);
void bt_agent_free(struct bt_agent *a);

#endif
