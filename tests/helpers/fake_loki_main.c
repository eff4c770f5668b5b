/*
 * bt-fake-loki: the test Loki server (fake_loki.h) as a standalone process, for integration
 * tests in other languages and for benchmarks. Runs until SIGINT or SIGTERM.
 *
 *   bt-fake-loki [--port N] [--port-file F] [--discard] [--quiet] [--listen-any] [--delay-ms MS]
 *                [--max-line-size BYTES] [--max-line-size-truncate] [--max-chunk-age-ms MS]
 *                [--max-label-names-per-series N] [--max-label-name-length BYTES]
 *                [--max-label-value-length BYTES]
 *
 * The limits default to Loki's (fake_loki.h) and keep Loki's meanings: --max-line-size 0 and
 * --max-chunk-age-ms 0 mean unlimited.
 *
 * --delay-ms answers every push MS milliseconds late (a slow Loki; requests on other
 * connections are served meanwhile).
 *
 * --listen-any listens on every address instead of loopback only (the server in a container of
 * the compose stack test).
 *
 * Prints "listening on 127.0.0.1:PORT" on stdout once ready; --port-file also writes the port
 * number to F (written to a temporary name, then renamed, so readers never see half a file).
 */
#include "fake_loki.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr, "usage: bt-fake-loki [--port N] [--port-file FILE] [--discard] [--quiet]\n"
                    "                    [--listen-any] [--delay-ms MS]\n"
                    "                    [--max-line-size BYTES] [--max-line-size-truncate]\n"
                    "                    [--max-chunk-age-ms MS] [--max-label-names-per-series N]\n"
                    "                    [--max-label-name-length BYTES] "
                    "[--max-label-value-length BYTES]\n");
}

static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    FILE *fp = fopen(tmp, "w");
    if (!fp)
        return -errno;
    fprintf(fp, "%u\n", port);
    if (fclose(fp) != 0 || rename(tmp, path) != 0)
        return -errno;
    return 0;
}

/* A non-negative decimal up to max; false if a is not one. */
static bool parse_num(const char *a, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(a, &end, 10);
    if (!*a || *a == '-' || *end || errno || v > max)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    struct bt_fake_loki_limits lim = bt_fake_loki_default_limits();
    struct bt_fake_loki_opts o = {.limits = &lim};
    const char *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] == '-')
            a++; /* accept -flag and --flag */
        if (strcmp(a, "-port") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*argv[i] == '\0' || *end || v < 0 || v > 65535) {
                fprintf(stderr, "bt-fake-loki: bad port %s\n", argv[i]);
                return 2;
            }
            o.port = (uint16_t)v;
        } else if (strcmp(a, "-port-file") == 0 && i + 1 < argc) {
            port_file = argv[++i];
        } else if (strcmp(a, "-discard") == 0) {
            o.discard = true;
        } else if (strcmp(a, "-quiet") == 0) {
            o.quiet = true;
        } else if (strcmp(a, "-listen-any") == 0) {
            o.any_addr = true;
        } else if (strcmp(a, "-delay-ms") == 0 && i + 1 < argc) {
            unsigned long long v;
            if (!parse_num(argv[++i], 3600000, &v)) {
                fprintf(stderr, "bt-fake-loki: bad value for --delay-ms: %s\n", argv[i]);
                return 2;
            }
            o.delay_ms = (int)v;
        } else if (strcmp(a, "-max-line-size-truncate") == 0) {
            lim.max_line_size_truncate = true;
        } else if (i + 1 < argc &&
                   (strcmp(a, "-max-line-size") == 0 || strcmp(a, "-max-chunk-age-ms") == 0 ||
                    strcmp(a, "-max-label-names-per-series") == 0 ||
                    strcmp(a, "-max-label-name-length") == 0 ||
                    strcmp(a, "-max-label-value-length") == 0)) {
            unsigned long long v;
            bool chunk_age = strcmp(a, "-max-chunk-age-ms") == 0;
            unsigned long long max = strcmp(a, "-max-line-size") == 0 ? UINT64_MAX
                                     : chunk_age                      ? INT64_MAX / 1000000
                                     : strcmp(a, "-max-label-names-per-series") == 0
                                         ? BT_FAKE_LOKI_MAX_LABELS
                                         : UINT32_MAX;
            if (!parse_num(argv[++i], max, &v)) {
                fprintf(stderr, "bt-fake-loki: bad value for %s: %s\n", argv[i - 1], argv[i]);
                return 2;
            }
            if (strcmp(a, "-max-line-size") == 0)
                lim.max_line_size = v;
            else if (chunk_age)
                lim.max_chunk_age_ns = (int64_t)v * 1000000;
            else if (strcmp(a, "-max-label-names-per-series") == 0)
                lim.max_label_names_per_series = (uint32_t)v;
            else if (strcmp(a, "-max-label-name-length") == 0)
                lim.max_label_name_length = (uint32_t)v;
            else
                lim.max_label_value_length = (uint32_t)v;
        } else {
            usage();
            return 2;
        }
    }

    /* Block the stop signals before any server thread exists, then wait for them here. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct bt_fake_loki *f = bt_fake_loki_start_opts(&o);
    if (!f) {
        fprintf(stderr, "bt-fake-loki: cannot listen on 127.0.0.1:%u: %s\n", o.port,
                strerror(errno));
        return 1;
    }
    unsigned port = bt_fake_loki_port(f);
    if (port_file) {
        int rc = write_port_file(port_file, port);
        if (rc) {
            fprintf(stderr, "bt-fake-loki: cannot write %s: %s\n", port_file, strerror(-rc));
            bt_fake_loki_stop(f);
            return 1;
        }
    }
    printf("listening on 127.0.0.1:%u\n", port);
    fflush(stdout);

    int sig = 0;
    sigwait(&set, &sig);
    if (!o.quiet)
        fprintf(stderr, "bt-fake-loki: signal %d, %zu requests, %zu entries received, %zu stored\n",
                sig, bt_fake_loki_requests(f), bt_fake_loki_received(f), bt_fake_loki_entries(f));
    bt_fake_loki_stop(f);
    return 0;
}
