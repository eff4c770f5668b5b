/* The log line formats: logfmt, and JSON for promtail's server.log_format: json. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"

static int fds[2];

static void setup(void)
{
    cr_assert_eq(pipe2(fds, O_NONBLOCK), 0);
    bt_log_set_fd(fds[1]);
    bt_log_set_level(BT_LOG_INFO);
}

static void teardown(void)
{
    bt_log_set_fd(2);
    bt_log_set_format(BT_LOG_LOGFMT);
    close(fds[0]);
    close(fds[1]);
}

TestSuite(log, .init = setup, .fini = teardown);

static char *read_line(void)
{
    static char buf[16384];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    cr_assert_eq(buf[n - 1], '\n');
    buf[n - 1] = '\0';
    return buf;
}

Test(log, logfmt_line_has_the_fixed_fields_then_the_callers)
{
    char q[64];
    bt_log(BT_LOG_WARN, "tail", "file rotated", "path=%s n=%d", bt_logq(q, sizeof(q), "/a b"), 3);
    const char *l = read_line();
    cr_assert(strstr(l, " level=warn component=tail msg=\"file rotated\" path=\"/a b\" n=3"), "%s",
              l);
    cr_assert_eq(strncmp(l, "ts=", 3), 0);
}

Test(log, json_format_gives_one_object_with_every_field)
{
    bt_log_set_format(BT_LOG_JSON);
    char q[64], q2[64];
    bt_log(BT_LOG_ERROR, "client", "batch dropped", "host=%s error=%s flag tab=%s", "loki:3100",
           bt_logq(q, sizeof(q), "say \"no\"\n"), bt_logq(q2, sizeof(q2), "a\tb"));
    const char *l = read_line();
    json_error_t je;
    json_t *o = json_loads(l, 0, &je);
    cr_assert_not_null(o, "not JSON: %s (%s)", l, je.text);
    cr_assert_str_eq(json_string_value(json_object_get(o, "level")), "error");
    cr_assert_str_eq(json_string_value(json_object_get(o, "component")), "client");
    cr_assert_str_eq(json_string_value(json_object_get(o, "msg")), "batch dropped");
    cr_assert_str_eq(json_string_value(json_object_get(o, "host")), "loki:3100");
    cr_assert_str_eq(json_string_value(json_object_get(o, "error")), "say \"no\"\n");
    cr_assert_str_eq(json_string_value(json_object_get(o, "flag")), "");
    /* bt_logq writes a tab as \x09, which is no JSON escape: kept as written, still JSON */
    cr_assert_str_eq(json_string_value(json_object_get(o, "tab")), "a\\x09b");
    cr_assert_not_null(json_string_value(json_object_get(o, "ts")));
    json_decref(o);
}

Test(log, json_format_keeps_text_it_cannot_read_in_rest)
{
    bt_log_set_format(BT_LOG_JSON);
    bt_log(BT_LOG_INFO, "x", "m", "ok=1 bad=\"unterminated");
    const char *l = read_line();
    json_t *o = json_loads(l, 0, NULL);
    cr_assert_not_null(o, "not JSON: %s", l);
    cr_assert_str_eq(json_string_value(json_object_get(o, "ok")), "1");
    cr_assert_str_eq(json_string_value(json_object_get(o, "_rest")), "bad=\"unterminated");
    json_decref(o);
}
