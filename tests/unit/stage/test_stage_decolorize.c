#include "test_stage_harness.h"

Test(stage_decolorize, strips_sgr_and_cursor_sequences)
{
    struct harness h;
    h_new(&h, "- decolorize: {}\n");
    h_push(&h, "\x1b[0;32mINFO\x1b[0m started \x1b[1;31m\xc3\xa9rror\x1b[0m\x1b[2K done");
    cr_assert_str_eq(h.out[0].line, "INFO started \xc3\xa9rror done");
    h_free(&h);
}

Test(stage_decolorize, plain_and_utf8_lines_stay_byte_identical)
{
    struct harness h;
    h_new(&h, "- decolorize:\n");
    /* U+00C2 followed by other text must not be mistaken for a C1 CSI */
    const char *l = "caf\xc3\xa9 \xc3\x82\x21 \xe2\x82\xac plain";
    h_push(&h, l);
    cr_assert_str_eq(h.out[0].line, l);
    h_push(&h, "csi \xc2\x9b"
               "31mred");
    cr_assert_str_eq(h.out[1].line, "csi red");
    h_free(&h);
}

Test(stage_decolorize, takes_no_options_and_ignores_unknown_ones)
{
    struct harness h;
    cr_assert_eq(h_try(&h, "- decolorize: {mode: all}\n"), 0, "%s", h.err); /* a warning */
    h_free(&h);
    cr_assert_eq(h_try(&h, "- decolorize: [mode]\n"), -1);
    cr_assert(strstr(h.err, "expected a map of options") != NULL, "%s", h.err);
    h_free(&h);
}
