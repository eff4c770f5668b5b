/*
 * The cri stage (stage/stage_cri.c) over fuzzed lines, each '\n'-separated line of the input one
 * log line, as the container runtime's log files hold them:
 *   2026-11-29T06:15:22.792112610Z stdout F hello
 * followed by stages that read what it extracted (stream, flags, time). The first byte picks
 * one of the configurations.
 */
#include "fuzz_common.h"

static const char *const configs[] = {
    "- cri: {}\n"
    "- labels: {stream: }\n"
    "- output: {source: content}\n",
    "- cri: {max_partial_line_size: 40, max_partial_lines: 2}\n"
    "- labels: {stream: , flags: }\n",
    "- cri: {max_partial_line_size: 40, max_partial_line_size_truncate: true, drop_malformed: "
    "true}\n",
};
#define N_CONFIGS (sizeof(configs) / sizeof(configs[0]))
static struct fz_pipe pipes[N_CONFIGS];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    for (size_t i = 0; i < N_CONFIGS; i++)
        fz_pipe_new(&pipes[i], configs[i]);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fz_pipe_lines(&pipes[data[0] % N_CONFIGS], data + 1, size - 1);
    return 0;
}
