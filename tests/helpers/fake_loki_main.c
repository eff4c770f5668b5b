/*
 * bt-fake-loki: the test Loki server (fake_loki.h) as a standalone process, for integration
 * tests in other languages and for benchmarks. Runs until SIGINT or SIGTERM.
 *
 *   bt-fake-loki [--port N] [--port-file F] [--discard] [--quiet]
 *
 * Prints "listening on 127.0.0.1:PORT" on stdout once ready; --port-file also writes the port
 * number to F (written to a temporary name, then renamed, so readers never see half a file).
 */
#include "fake_loki.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr, "usage: bt-fake-loki [--port N] [--port-file FILE] [--discard] [--quiet]\n");
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

int main(int argc, char **argv)
{
    struct bt_fake_loki_opts o = {0};
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
        fprintf(stderr, "bt-fake-loki: signal %d, %zu requests, %zu entries\n", sig,
                bt_fake_loki_requests(f), bt_fake_loki_entries(f));
    bt_fake_loki_stop(f);
    return 0;
}
