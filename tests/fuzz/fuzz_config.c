/*
 * The YAML config loader (config/yaml.c, config.c and its decoders): the input is a whole
 * config file. What parses is dumped back as YAML (as -print-config does), and each scrape
 * job's pipeline_stages and relabel_configs are built as the agent builds them, so every
 * stage's and relabel rule's option parser sees fuzzed values too. ${VAR} expansion runs on the
 * same bytes.
 */
#include "config/config.h"
#include "fuzz_common.h"
#include "source/relabel.h"
#include "util/buf.h"

static void sink(void *ctx, const struct bt_entry *e) {}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    setenv("FUZZ_HOST", "loki", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    char *text = malloc(size ? size : 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    err[0] = '\0';
    struct bt_config *c = bt_config_parse(text, size, "fuzz.yaml", err, sizeof(err));
    if (c) {
        struct bt_buf out;
        bt_buf_init(&out, 1 << 24);
        (void)bt_config_dump(c, &out);
        bt_buf_free(&out);
        struct bt_metrics *m = bt_metrics_new();
        for (size_t i = 0; i < c->n_scrapes; i++) {
            const struct bt_scrape_config *sc = &c->scrapes[i];
            struct bt_pipeline *p =
                bt_pipeline_new(sc->pipeline_stages, sc->job_name, m, sink, NULL, err, sizeof(err));
            bt_pipeline_free(p);
            struct bt_relabel *r = bt_relabel_new(sc->relabel_configs, err, sizeof(err));
            bt_relabel_free(r);
        }
        bt_metrics_free(m);
        bt_config_free(c);
    } else if (!err[0]) {
        abort(); /* a refused config says why */
    }
    char *x = bt_config_expand_env(text, size, err, sizeof(err));
    free(x);
    free(text);
    return 0;
}
