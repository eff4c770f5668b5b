/*
 * The GELF receiver (source/source_gelf.c): chunk reassembly (in any order, duplicates,
 * mismatched counts, too many pending messages, too large), gzip/zlib decompression with the
 * size cap, and the message parse into labels. The input is a run of datagrams, each a 2-byte
 * big-endian length and that many bytes; they are handed to the receiver as the socket would
 * (bt_gelf_datagram), then the loop runs once to read the queue back to the sink.
 * A receiver is made per input (listening on an ephemeral loopback port, its queue in a
 * scratch directory), so pending chunks never carry over from one input to the next.
 */
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/loop.h"
#include "fuzz_common.h"
#include "source/source_gelf.h"

static char qdir[256];
static struct bt_node *cfg;
static struct bt_loop *loop;
static struct bt_metrics *metrics;

static void sink(void *ctx, const struct bt_entry *e)
{
    struct fz_pipe dummy;
    fz_sink(&dummy, e);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    fz_quiet();
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(qdir, sizeof(qdir), "%s/bt-fuzz-gelf-%d", base, (int)getpid());
    static const char yaml[] = "listen_address: 127.0.0.1:0\n"
                               "labels: {job: gelf}\n"
                               "use_incoming_timestamp: true\n"
                               "max_message_bytes: 2KiB\n"
                               "max_pending: 3\n";
    cfg = bt_yaml_parse(yaml, sizeof(yaml) - 1, "gelf.yaml", err, sizeof(err));
    loop = bt_loop_new();
    metrics = bt_metrics_new();
    if (!cfg || !loop || !metrics)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct bt_receiver_env env = {.loop = loop,
                                  .metrics = metrics,
                                  .job = "gelf",
                                  .sink = sink,
                                  .queue_dir = qdir,
                                  .queue_bytes = 1 << 20};
    struct bt_receiver *g = bt_gelf_receiver.open(cfg, &env, err, sizeof(err));
    if (!g) {
        fprintf(stderr, "gelf receiver: %s\n", err);
        abort();
    }
    size_t off = 0;
    while (off + 2 <= size) {
        size_t n = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        if (n > size - off)
            n = size - off;
        /* An exact copy, so reading past the datagram is an ASan error. */
        unsigned char *d = malloc(n ? n : 1);
        if (!d)
            abort();
        memcpy(d, data + off, n);
        bt_gelf_datagram(g, d, n);
        free(d);
        off += n;
    }
    bt_loop_run_once(loop, 0);
    bt_receiver_free(g);
    /* The queue starts empty for the next input. */
    DIR *d = opendir(qdir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char path[600];
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", qdir, de->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    return 0;
}
