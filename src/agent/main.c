/* bpftail: parses flags, loads the config and runs the agent (or, with -docker-plugin, the
 * Docker logging plugin). Exit status 1 on a bad config. */
#include "agent/agent.h"
#include "config/config.h"
#include "plugin/plugin.h"
#include "util/buf.h"
#include "util/log.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    struct bt_cli cli;
    char err[2048] = "";
    /* One malloc arena for all threads: glibc gives each thread that allocates its own arena
     * (the push threads encode and compress), each keeping its freed memory resident. The
     * threads allocate little concurrently (per-thread caches serve the small sizes), so
     * sharing costs no measurable time and saves about 1 MiB of RSS per push thread. */
    mallopt(M_ARENA_MAX, 1);
    if (bt_cli_parse(argc, argv, &cli, err, sizeof(err)) < 0) {
        fprintf(stderr, "bpftail: %s\n", err);
        bt_cli_usage();
        return 1;
    }
    if (cli.help) {
        bt_cli_usage();
        return 0;
    }
    if (cli.version) {
        printf("bpftail, version %s\n", BT_VERSION);
        return 0;
    }
    if (cli.docker_plugin)
        return bt_plugin_main(&cli);
    if (cli.log_level) {
        enum bt_log_level lvl;
        if (bt_log_parse_level(cli.log_level, &lvl) < 0) {
            fprintf(stderr,
                    "bpftail: -log.level: unknown level \"%s\" (debug, info, warn, error)\n",
                    cli.log_level);
            return 1;
        }
        bt_log_set_level(lvl);
    }
    struct bt_config *cfg = bt_config_load(&cli, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "bpftail: %s\n", err);
        return 1;
    }
    if (!cli.log_level && cfg->server.log_level) {
        enum bt_log_level lvl;
        if (bt_log_parse_level(cfg->server.log_level, &lvl) == 0)
            bt_log_set_level(lvl);
    }
    if (cfg->server.log_format && strcmp(cfg->server.log_format, "json") == 0)
        bt_log_set_format(BT_LOG_JSON);
    if (cfg->server.grpc_ignored)
        bt_log(BT_LOG_INFO, "config", "gRPC server settings ignored: bpftail serves no gRPC", NULL);
    if (cli.print_config) {
        struct bt_buf out;
        bt_buf_init(&out, 16u << 20);
        if (bt_config_dump(cfg, &out) == 0)
            fprintf(stderr, "%s", bt_buf_str(&out));
        bt_buf_free(&out);
    }
    err[0] = '\0';
    struct bt_agent *a = bt_agent_new(cfg, &cli, cli.check_syntax, err, sizeof(err));
    if (!a) {
        fprintf(stderr, "bpftail: %s\n", err[0] ? err : "cannot start");
        bt_config_free(cfg);
        return 1;
    }
    int rc = 0;
    if (cli.check_syntax) {
        printf("Valid config file! No syntax issues found\n");
    } else {
        rc = bt_agent_run(a);
    }
    bt_agent_free(a);
    bt_config_free(cfg);
    return rc;
}
