/*
 * The json stage (stage/stage_json.c) over fuzzed lines, with expressions of every supported
 * shape, a source field read back as JSON, and drop_malformed; the first byte picks the config.
 */
#include "fuzz_common.h"

static const char *const configs[] = {
    "- json:\n"
    "    expressions: {level: level, msg: \"message\", first: 'items[0]', last: 'items[-1]',\n"
    "                  deep: 'a.\"b-c\".d[1]', whole: '\"\"'}\n"
    "- json:\n"
    "    source: deep\n"
    "    expressions: {inner: x}\n"
    "- labels: {level: }\n"
    "- output: {source: msg}\n",
    "- json:\n"
    "    expressions: {level: , ts: time}\n"
    "    drop_malformed: true\n"
    "- structured_metadata: {ts: }\n",
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
