#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"
#include "util/gotemplate.h"

/* Data: NULL-terminated pairs of key, value. */
static int lookup(void *ctx, const char *name, size_t n, const char **val, size_t *vlen)
{
    const char *const *kv = ctx;
    for (; kv && kv[0]; kv += 2) {
        if (strlen(kv[0]) == n && memcmp(kv[0], name, n) == 0) {
            *val = kv[1];
            *vlen = strlen(kv[1]);
            return 1;
        }
    }
    return 0;
}

static char result[4096];
static char errmsg[256];

/* Compiles and runs text; returns the exec rc (compile failure asserts). */
static int run(const char *text, const char *const *data)
{
    char err[256];
    struct bt_gotmpl *t = bt_gotmpl_new(text, err, sizeof(err));
    cr_assert_not_null(t, "compile %s: %s", text, err);
    struct bt_buf out;
    bt_buf_init(&out, 1 << 20);
    errmsg[0] = '\0';
    int rc = bt_gotmpl_exec(t, lookup, (void *)data, &out, errmsg, sizeof(errmsg));
    snprintf(result, sizeof(result), "%s", bt_buf_str(&out));
    bt_buf_free(&out);
    bt_gotmpl_free(t);
    return rc;
}

static void expect(const char *text, const char *const *data, const char *want)
{
    int rc = run(text, data);
    cr_assert_eq(rc, 0, "template %s: rc %d %s", text, rc, errmsg);
    cr_assert_str_eq(result, want, "template %s: got [%s] want [%s]", text, result, want);
}

static void expect_compile_error(const char *text, const char *needle)
{
    char err[256] = "";
    struct bt_gotmpl *t = bt_gotmpl_new(text, err, sizeof(err));
    cr_assert_null(t, "template %s compiled", text);
    cr_assert(strstr(err, needle), "template %s: error \"%s\" lacks \"%s\"", text, err, needle);
}

#define D(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(gotemplate, promtail_doc_examples)
{
    expect("hello world!", NULL, "hello world!");
    expect("{{ .Value }}_some_suffix", D("Value", "loki"), "loki_some_suffix");
    expect("{{ ToLower .Value }}", D("Value", "LOKI"), "loki");
    expect("{{ .level }} for app {{ ToUpper .app }}", D("level", "warn", "app", "loki"),
           "warn for app LOKI");
    expect("{{ .level }} for app {{ ToUpper .Value }} in module {{.module}}",
           D("level", "warn", "Value", "loki", "module", "test"),
           "warn for app LOKI in module test");
    expect("{{ Replace .Value \"loki\" \"blokey\" 1 }}", D("Value", "loki loki"), "blokey loki");
    expect("{{.app }}: {{ .Entry }}", D("app", "api", "Entry", "GET / 200"), "api: GET / 200");
    expect("{{ .app | ToUpper }}", D("app", "loki"), "LOKI");
    expect("{{ Replace .Value \"loki\" \"Loki\" 2 }}", D("Value", "loki loki loki"),
           "Loki Loki loki");
    expect("{{ Trim .Value \",. \" }}", D("Value", ", .hello. ,"), "hello");
    expect("{{ TrimSpace .Value }}", D("Value", " \t hi \n"), "hi");
    expect("{{ TrimPrefix .Value \"--\" }}", D("Value", "--flag"), "flag");
    expect("{{ regexReplaceAll \"(a*)bc\" .Value \"${1}a\" }}", D("Value", "aabcxbc"), "aaaxa");
    expect("{{ regexReplaceAllLiteral \"(ts=)\" .Value \"timestamp=\" }}", D("Value", "ts=1 ts=2"),
           "timestamp=1 timestamp=2");
}

Test(gotemplate, promtail_doc_multiline_time_conversion)
{
    /* The YAML example joined as YAML folds its escaped line breaks. */
    const char *tmpl =
        "{{ .date_local | substr 6 10 }}-{{ .date_local | substr 0 2 }}-{{ .date_local | substr "
        "3 5 }}T"
        "{{ if eq (.time_local | substr 0 2) \"12\" }}"
        "{{ if eq .hour_period \"AM\" }}00{{ else }}12{{ end }}{{ .time_local | substr 2 10}}Z"
        "{{ else }}"
        "{{ if eq .hour_period \"AM\" }}"
        "{{ if or (eq (.time_local | substr 0 2) \"11\") (eq (.time_local | substr 0 2) \"10\") "
        "}}{{ .time_local }}Z"
        "{{ else }}0{{ .time_local }}Z"
        "{{ end }}"
        "{{ else }}"
        "{{ if eq (.time_local | substr 0 2) \"11\" }}23{{ .time_local | substr 2 10 }}Z{{ end }}"
        "{{ if eq (.time_local | substr 0 2) \"10\" }}22{{ .time_local | substr 2 10 }}Z{{ end }}"
        "{{ if eq (.time_local | substr 0 2) \"9:\" }}21{{ .time_local | substr 1 10 }}Z{{ end }}"
        "{{ if eq (.time_local | substr 0 2) \"8:\" }}20{{ .time_local | substr 1 10 }}Z{{ end }}"
        "{{ if and (le (.time_local | substr 0 1) \"7\") (eq (.time_local | substr 1 2) \":\") "
        "}}1{{ add (.time_local | substr 0 1) 2 }}{{ .time_local | substr 1 10 }}Z{{ end }}"
        "{{ end }}"
        "{{ end }}";
    expect(tmpl, D("date_local", "11/08/2022", "time_local", "12:53:24", "hour_period", "PM"),
           "2022-11-08T12:53:24Z");
    expect(tmpl, D("date_local", "11/08/2022", "time_local", "12:53:24", "hour_period", "AM"),
           "2022-11-08T00:53:24Z");
    expect(tmpl, D("date_local", "11/08/2022", "time_local", "9:15:00", "hour_period", "PM"),
           "2022-11-08T21:15:00Z");
    expect(tmpl, D("date_local", "11/08/2022", "time_local", "7:05:00", "hour_period", "PM"),
           "2022-11-08T19:05:00Z");
    expect(tmpl, D("date_local", "11/08/2022", "time_local", "10:01:02", "hour_period", "AM"),
           "2022-11-08T10:01:02Z");
    expect(tmpl, D("date_local", "11/08/2022", "time_local", "3:01:02", "hour_period", "AM"),
           "2022-11-08T03:01:02Z");
}

Test(gotemplate, hash_functions_match_sha3_and_sha2)
{
    /* Hash(salt, input) hashes salt followed by input; the docs pass .Value first. */
    expect("{{ Hash .Value \"salt\" }}", D("Value", "loki"),
           "53ddc627682ed26d0e68af30eb180182ca15b5827126282dd0f76f3af49d742b");
    expect("{{ Sha2Hash .Value \"salt\" }}", D("Value", "loki"),
           "45a238ce9fdf019798e5c5e994198143baee0947d0c9d5c616e0b8f9ddacdc0f");
    expect("{{ Hash \"salt\" .ssn }}", D("ssn", "123-45-6789"),
           "3dd216f082c55f933cab97cc79e3d6b25607c8c0ce0133df8cf7232ae7de84e4");
    expect("{{ Hash \"\" \"\" }}", NULL,
           "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a");
    /* 200 bytes span more than one SHA3 block (136) and several SHA-256 blocks */
    char a200[201];
    memset(a200, 'a', 200);
    a200[200] = '\0';
    expect("{{ Hash \"\" .v }}", D("v", a200),
           "cce34485baf2bf2aca99b94833892a4f52896d3d153f7b840cc4f9fe695f1387");
    expect("{{ sha256sum .v }}", D("v", a200),
           "c2a908d98f5df987ade41b5fce213067efbcc21ef2240212a41e54b5e7c28ae5");
}

Test(gotemplate, missing_keys_behave_like_go)
{
    expect("[{{ .nope }}]", NULL, "[<no value>]");
    expect("{{ default \"x\" .nope }}", NULL, "x");
    expect("{{ default \"x\" .v }}", D("v", "set"), "set");
    expect("{{ .nope | default \"dflt\" }}", NULL, "dflt");
    expect("{{ if .nope }}yes{{ else }}no{{ end }}", NULL, "no");
    expect("{{ eq .nope \"x\" }}", NULL, "false");
    cr_assert_eq(run("{{ ToUpper .nope }}", NULL), -EINVAL);
    cr_assert(strstr(errmsg, "expected string"), "%s", errmsg);
    cr_assert_eq(run("{{ .v.field }}", D("v", "s")), -EINVAL);
    cr_assert(strstr(errmsg, "can't evaluate field field"), "%s", errmsg);
}

Test(gotemplate, unsupported_or_unknown_functions_fail_at_compile)
{
    expect_compile_error("{{ nosuchfn .Value }}", "function \"nosuchfn\" not defined");
    expect_compile_error("{{ .Value | toJson }}", "function \"toJson\" is not supported");
    expect_compile_error("{{ range .x }}{{ end }}", "range");
    expect_compile_error("{{ define \"x\" }}{{ end }}", "define");
    expect_compile_error("{{ template \"x\" }}", "template");
    expect_compile_error("{{ regexReplaceAll \"(\" .Value \"\" }}", "bad regular expression");
    expect_compile_error("{{ ToUpper }}", "wrong number of args for ToUpper");
    expect_compile_error("{{ Replace .a \"x\" }}", "wrong number of args for Replace");
    expect_compile_error("{{ .Value ", "unclosed action");
    expect_compile_error("{{ if .x }}no end", "missing {{end}}");
    expect_compile_error("{{ end }}", "unexpected {{end}}");
    expect_compile_error("{{ \"abc }}", "unterminated quoted string");
    expect_compile_error("{{ $x }}", "undefined variable");
    expect_compile_error("{{ .a | .b }}", "non executable command");
    expect_compile_error("{{ (ToUpper .a }}", "unclosed left paren");
    expect_compile_error("{{ .a) }}", "unexpected right paren");
    expect_compile_error("{{ \"\\q\" }}", "unknown escape");
    expect_compile_error("line one\n{{ bogus }}", "line 2");
}

Test(gotemplate, trim_markers_and_comments)
{
    expect("a  {{- .v -}}  b", D("v", "X"), "aXb");
    expect("a \n {{- .v }} b", D("v", "X"), "aX b");
    expect("a {{/* a comment */}}b", NULL, "a b");
    expect("a {{- /* trimmed */ -}} b", NULL, "ab");
    expect("{{-3}}", NULL, "-3");
    expect("{{ 1.5 }} {{ true }} {{ nil | print }} {{ 'a' }} {{ 0x10 }}", NULL,
           "1.5 true <nil> 97 16");
}

Test(gotemplate, control_structures_and_variables)
{
    const char *t =
        "{{ if eq .lvl \"error\" }}E{{ else if eq .lvl \"warn\" }}W{{ else }}I{{ end }}";
    expect(t, D("lvl", "error"), "E");
    expect(t, D("lvl", "warn"), "W");
    expect(t, D("lvl", "debug"), "I");
    expect("{{ with .v }}<{{ . }}>{{ else }}none{{ end }}", D("v", "x"), "<x>");
    expect("{{ with .v }}<{{ . }}>{{ else }}none{{ end }}", D("v", ""), "none");
    expect("{{ with $x := .v }}{{ $x }}{{ $.w }}{{ end }}", D("v", "1", "w", "2"), "12");
    const char *ew = "{{ with .a }}A{{ . }}{{ else with .b }}B{{ . }}{{ else }}C{{ end }}";
    expect(ew, D("a", "1", "b", "2"), "A1");
    expect(ew, D("a", "", "b", "2"), "B2");
    expect(ew, D("b", ""), "C");
    expect("{{ $a := ToUpper .v }}{{ $a }}-{{ $a = \"z\" }}{{ $a }}", D("v", "q"), "Q-z");
    expect("{{ if and .a .b }}both{{ end }}{{ or .x .b }}", D("a", "1", "b", "2"), "both2");
    expect("{{ not .a }} {{ len .a }}", D("a", "héllo"), "false 6");
    expect("{{ if lt .a .b }}lt{{ end }}{{ if ge .b .a }}ge{{ end }}", D("a", "abc", "b", "abd"),
           "ltge");
    cr_assert_eq(run("{{ lt .a 3 }}", D("a", "x")), -EINVAL);
    cr_assert(strstr(errmsg, "incompatible types"), "%s", errmsg);
}

Test(gotemplate, string_literals_and_printf)
{
    expect("{{ \"a\\tb\\x41\\u00e9\\101\" }}", NULL,
           "a\tbA\xc3\xa9"
           "A");
    expect("{{ `raw \\n` }}", NULL, "raw \\n");
    expect(
        "{{ printf \"%s=%d|%5s|%-4s|%05d|%q|%x|%v|%t\" .k 42 \"ab\" \"c\" 7 .k \"hi\" 1.5 true }}",
        D("k", "key"), "key=42|   ab|c   |00007|\"key\"|6869|1.5|true");
    expect("{{ printf \"%d %s\" \"x\" }}", NULL, "%!d(string=x) %!s(MISSING)");
    expect("{{ printf \"%s\" \"a\" \"b\" }}", NULL, "a%!(EXTRA string=b)");
    expect("{{ print \"a\" 1 2 \"b\" }}", NULL, "a1 2b");
    expect("{{ println \"a\" 1 }}", NULL, "a 1\n");
    /* width and precision count runes, as in Go */
    expect("{{ printf \"%.2s|%3s|%-3s|\" \"\xc3\xa9"
           "ab\" \"\xc3\xa9\" \"\xc3\xa9\" }}",
           NULL,
           "\xc3\xa9"
           "a|  \xc3\xa9|\xc3\xa9  |");
}

Test(gotemplate, sprig_string_functions)
{
    expect("{{ .v | upper }} {{ .v | lower }} {{ trim \"  x  \" }}", D("v", "MiXed"),
           "MIXED mixed x");
    expect("{{ contains \"ell\" .v }} {{ hasPrefix \"he\" .v }} {{ hasSuffix \"lo\" .v }}",
           D("v", "hello"), "true true true");
    expect("{{ trimAll \"$\" \"$5.00$\" }} {{ trimPrefix \"-\" \"-x\" }} {{ trimSuffix \"-\" "
           "\"x-\" }}",
           NULL, "5.00 x x");
    expect("{{ replace \" \" \"_\" .v }}", D("v", "a b c"), "a_b_c");
    expect("{{ repeat 3 \"ab\" }} {{ trunc 3 \"abcdef\" }} {{ trunc -2 \"abcdef\" }}", NULL,
           "ababab abc ef");
    expect("{{ substr 1 3 \"hello\" }} {{ substr 2 99 \"hello\" }}", NULL, "el llo");
    expect("{{ nospace \" a b\\tc \" }} {{ quote .v 1 }} {{ squote .v }}", D("v", "x\"y"),
           "abc \"x\\\"y\" \"1\" 'x\"y'");
    expect("{{ cat \"a\" .nope 2 }} {{ toString 12 }}", NULL, "a 2 12");
    expect("{{ add 1 \"2\" 3 }} {{ sub 10 4 }} {{ mul 2 3 }} {{ div 7 2 }} {{ mod 7 2 }} {{ add1 "
           ".n }}",
           D("n", "41"), "6 6 6 3 1 42");
    expect("{{ atoi \"12\" }} {{ int \"0x10\" }} {{ empty \"\" }} {{ coalesce .a \"\" \"c\" }}",
           NULL, "12 16 true c");
    expect("{{ ternary \"y\" \"n\" (eq .a \"1\") }}", D("a", "1"), "y");
    expect("{{ regexMatch \"^a+$\" .v }} {{ regexFind \"[0-9]+\" .v }}", D("v", "aaa"), "true ");
    expect("{{ regexFind \"[0-9]+\" \"ab123cd\" }}", NULL, "123");
    cr_assert_eq(run("{{ div 1 0 }}", NULL), -EINVAL);
    cr_assert_eq(run("{{ substr 4 2 \"hello\" }}", NULL), -EINVAL);
}

Test(gotemplate, regex_replace_matches_go_semantics)
{
    /* empty matches abutting a previous match are ignored */
    expect("{{ regexReplaceAll \"a*\" .v \"-\" }}", D("v", "baaac"), "-b-c-");
    /* $1a is the group named \"1a\" (empty), ${1}a is group 1 then a */
    expect("{{ regexReplaceAll \"(x)\" .v \"$1a\" }}|{{ regexReplaceAll \"(x)\" .v \"${1}a\" }}",
           D("v", "x"), "|xa");
    expect("{{ regexReplaceAll \"(?P<w>[a-z]+)\" .v \"<$w>$$\" }}", D("v", "ab 12"), "<ab>$ 12");
    expect("{{ regexReplaceAllLiteral \"b\" .v \"$1\" }}", D("v", "abc"), "a$1c");
    /* a regex that is not a literal is compiled when executed */
    expect("{{ regexReplaceAll .re .v \"_\" }}", D("re", "[0-9]", "v", "a1b2"), "a_b_");
    cr_assert_eq(run("{{ regexReplaceAll .re .v \"_\" }}", D("re", "(", "v", "x")), -EINVAL);
    /* UTF-8: empty matches advance by a whole rune */
    expect("{{ regexReplaceAll \"\" .v \".\" }}", D("v", "\xc3\xa9t\xc3\xa9"),
           ".\xc3\xa9.t.\xc3\xa9.");
}

Test(gotemplate, utf8_case_mapping_and_trimming)
{
    expect("{{ ToUpper .v }}", D("v", "h\xc3\xa9llo w\xc3\xb6rld \xc3\xb1"),
           "H\xc3\x89LLO W\xc3\x96RLD \xc3\x91");
    expect("{{ ToLower .v }}", D("v", "\xce\x91\xce\x92\xce\x93 \xd0\x96"),
           "\xce\xb1\xce\xb2\xce\xb3 \xd0\xb6");
    /* invalid UTF-8 becomes U+FFFD once the string is not pure ASCII */
    expect("{{ ToUpper .v }}",
           D("v", "a\xff"
                  "b"),
           "A\xef\xbf\xbd"
           "B");
    /* pure ASCII keeps its bytes; CJK has no case and passes unchanged */
    expect("{{ ToUpper .v }}", D("v", "\xe6\x97\xa5\xe6\x9c\xac"), "\xe6\x97\xa5\xe6\x9c\xac");
    /* cutsets are runes, not bytes: trimming \xc3\xa9 must not split \xc3\xa8 */
    expect("{{ Trim .v \"\xc3\xa9\" }}", D("v", "\xc3\xa9\xc3\xa8x\xc3\xa9"), "\xc3\xa8x");
    expect("{{ TrimLeft .v \"ab\" }}|{{ TrimRight .v \"ab\" }}", D("v", "abxab"), "xab|abx");
    /* non-breaking and ideographic spaces are white space */
    expect("[{{ TrimSpace .v }}]", D("v", "\xc2\xa0x\xe3\x80\x80"), "[x]");
    /* Replace with an empty old inserts around every rune */
    expect("{{ Replace .v \"\" \"-\" -1 }}",
           D("v", "\xc3\xa9"
                  "a"),
           "-\xc3\xa9-a-");
    expect("{{ Replace .v \"\" \"-\" 2 }}", D("v", "abc"), "-a-bc");
    /* truncated multibyte at the end is trimmed as U+FFFD only if the cutset holds it */
    expect("{{ TrimRight .v \"x\" }}", D("v", "ax\xc3"), "ax\xc3");
}

Test(gotemplate, output_cap_is_enforced_and_reuse_is_stable)
{
    char err[128];
    struct bt_gotmpl *t = bt_gotmpl_new("{{ repeat 100 .v }}", err, sizeof(err));
    cr_assert_not_null(t);
    struct bt_buf out;
    bt_buf_init(&out, 50);
    cr_assert_eq(bt_gotmpl_exec(t, lookup, (void *)D("v", "x"), &out, err, sizeof(err)), -E2BIG);
    bt_buf_free(&out);
    bt_buf_init(&out, 4096);
    for (int i = 0; i < 1000; i++) {
        bt_buf_reset(&out);
        cr_assert_eq(bt_gotmpl_exec(t, lookup, (void *)D("v", "ab"), &out, err, sizeof(err)), 0);
        cr_assert_eq(out.len, 200);
    }
    bt_buf_free(&out);
    bt_gotmpl_free(t);
    cr_assert_eq(run("{{ repeat 5000000 \"ab\" }}", NULL), -E2BIG);
}

/* Found by fuzzing: an empty string repeated 30e12 times looped 30e12 times to make nothing.
 * Without the fix this test runs for hours and hits the timeout. */
Test(gotemplate, empty_string_repeated_any_number_of_times_is_empty_at_once, .timeout = 10)
{
    expect("[{{ repeat 30000000000000 \"\" }}]", NULL, "[]");
    expect("[{{ repeat 9223372036854775807 .v }}]", D("v", ""), "[]");
}

/* Mutated template texts compile or fail cleanly, and what compiles executes without a crash
 * (run under the sanitizers in CI). Deterministic: a fixed LCG. */
/* Found by fuzzing: a float constant or argument outside int64's range was converted to int64
 * (undefined in C) to see whether it was integral. */
Test(gotemplate, floats_outside_int64_range_stay_floats)
{
    expect("{{ 1e30 }}", NULL, "1e+30");
    expect("{{ -1e19 }}", NULL, "-10000000000000000000");
    expect("{{ 2.0 }}", NULL, "2");
    /* sprig's cast.ToInt64 of an out-of-range float: Go's conversion gives the smallest int64 */
    expect("{{ add 1e30 1 }}", NULL, "-9223372036854775807");
    expect("{{ add 2.0 1 }}", NULL, "3");
}

Test(gotemplate, mutated_templates_never_crash)
{
    static const char *const seeds[] = {
        "{{ if eq .a \"x\" }}{{ ToUpper .b }}{{ else if .c }}{{ $v := .a }}{{ $v }}{{ end }}",
        "{{- range .x -}} {{/* c */}} {{ printf \"%5.2s|%d\" .a 3 }}",
        "{{ regexReplaceAll \"(a+)\" .a \"${1}x$2\" | trunc 3 | quote }}",
        "{{ with $x := (Replace .a \"\" \"-\" -1) }}{{ . }}{{ $.b }}{{ end }}"};
    static const char alphabet[] = "{}()|$.-\"'`\\ abx12=:,/*\xc3\xa9\xff";
    uint32_t r = 777;
    char text[256], err[256];
    const char *data[] = {"a", "aaa\xc3\xa9", "b", "", "c", "1", NULL};
    struct bt_buf out;
    bt_buf_init(&out, 1 << 16);
    for (int iter = 0; iter < 4000; iter++) {
        const char *seed = seeds[iter % 4];
        size_t n = strlen(seed);
        memcpy(text, seed, n + 1);
        for (int k = 0; k < 4; k++) {
            r = r * 1103515245u + 12345u;
            size_t pos = (r >> 8) % n;
            r = r * 1103515245u + 12345u;
            text[pos] = alphabet[(r >> 8) % (sizeof(alphabet) - 1)];
        }
        struct bt_gotmpl *t = bt_gotmpl_new(text, err, sizeof(err));
        if (!t) {
            cr_assert(err[0] != '\0', "no message for %s", text);
            continue;
        }
        bt_buf_reset(&out);
        int rc = bt_gotmpl_exec(t, lookup, (void *)data, &out, err, sizeof(err));
        cr_assert(rc == 0 || rc == -EINVAL || rc == -E2BIG, "rc %d for %s", rc, text);
        bt_gotmpl_free(t);
    }
    bt_buf_free(&out);
}

#if !defined(__SANITIZE_ADDRESS__)
/* Counting allocations: the executable's malloc family forwards to glibc's and counts while
 * armed. (Skipped under ASan, which owns malloc.) */
#include "util/gotime.h"
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static volatile int alloc_armed;
static volatile long alloc_count;
void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void *malloc(size_t n)
{
    if (alloc_armed)
        alloc_count++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    if (alloc_armed)
        alloc_count++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    if (alloc_armed)
        alloc_count++;
    return __libc_realloc(p, n);
}

Test(gotemplate, steady_state_execution_and_parsing_do_not_allocate)
{
    static const char *const tmpls[] = {
        "{{ .Value | ToUpper }}", "{{ .level }} for {{ Replace .Value \"o\" \"0\" -1 | ToLower }}",
        "{{ Hash .Value \"salt\" }} {{ Sha2Hash \"s\" .Value }}",
        "{{ regexReplaceAll \"(o+)\" .Value \"<${1}>\" }}",
        "{{ if eq .level \"warn\" }}{{ printf \"%s-%d\" .Value 3 }}{{ else }}x{{ end }}"};
    const char *data[] = {"Value", "Hello W\xc3\xb6rld from loki", "level", "warn", NULL};
    char err[256];
    struct bt_buf out;
    bt_buf_init(&out, 1 << 16);
    for (size_t k = 0; k < sizeof(tmpls) / sizeof(tmpls[0]); k++) {
        struct bt_gotmpl *t = bt_gotmpl_new(tmpls[k], err, sizeof(err));
        cr_assert_not_null(t, "%s", err);
        cr_assert_eq(bt_gotmpl_exec(t, lookup, (void *)data, &out, err, sizeof(err)), 0, "%s",
                     err); /* warm-up: the arena and out grow here */
        alloc_count = 0;
        alloc_armed = 1;
        for (int i = 0; i < 100; i++) {
            bt_buf_reset(&out);
            bt_gotmpl_exec(t, lookup, (void *)data, &out, err, sizeof(err));
        }
        alloc_armed = 0;
        cr_assert_eq(alloc_count, 0, "template %s allocated %ld times", tmpls[k], alloc_count);
        bt_gotmpl_free(t);
    }
    bt_buf_free(&out);
    struct bt_gotime *f = bt_gotime_new("RFC3339Nano", NULL, err, sizeof(err));
    int64_t ns;
    alloc_count = 0;
    alloc_armed = 1;
    for (int i = 0; i < 100; i++)
        bt_gotime_parse(f, "2019-04-30T02:12:41.8443515Z", 28, 0, &ns);
    alloc_armed = 0;
    cr_assert_eq(alloc_count, 0);
    bt_gotime_free(f);
}
#endif
