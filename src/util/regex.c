#define PCRE2_CODE_UNIT_WIDTH 8
#include "util/regex.h"

#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bt_regex {
    pcre2_code *code; /* matches any subject, valid UTF-8 or not */
    pcre2_code *fast; /* JIT-compiled, valid UTF-8 subjects only; NULL if not needed */
    pcre2_match_data *md;
    int ngroups;
    char **names; /* ngroups + 1 entries, NULL for unnamed */
};

struct bt_regex *bt_regex_new(const char *pattern, int flags, char *err, size_t errlen)
{
    char *wrapped = NULL;
    const char *pat = pattern;
    if (flags & BT_RE_ANCHORED) {
        size_t n = strlen(pattern) + 16;
        wrapped = malloc(n);
        if (!wrapped) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        snprintf(wrapped, n, "^(?:%s)$", pattern);
        pat = wrapped;
    }
    uint32_t opts = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DUPNAMES;
    if (flags & BT_RE_DOTALL)
        opts |= PCRE2_DOTALL;
    if (flags & BT_RE_CASELESS)
        opts |= PCRE2_CASELESS;
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opts, &ec, &eo, NULL);
    pcre2_code *fast = NULL;
    if (code) {
        /* 1. PCRE2 before 10.43 JIT-matches wrongly with PCRE2_MATCH_INVALID_UTF (non-ASCII text
         *    fails \S* and the like), so the JIT copy is compiled without that flag and used only
         *    for subjects PCRE2 finds to be valid UTF-8; invalid ones go to the interpreter.
         * 2. From 10.43 on, one JIT-compiled code object does both. */
        if (PCRE2_MAJOR > 10 || (PCRE2_MAJOR == 10 && PCRE2_MINOR >= 43)) {
            pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
        } else {
            fast = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                 opts & ~(uint32_t)PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
            if (fast && pcre2_jit_compile(fast, PCRE2_JIT_COMPLETE) != 0) {
                pcre2_code_free(fast); /* no JIT here: the interpreter on `code` does it all */
                fast = NULL;
            }
        }
    }
    free(wrapped);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        snprintf(err, errlen, "invalid regex %s: %s at offset %zu", pattern, (char *)msg,
                 (size_t)eo);
        return NULL;
    }
    struct bt_regex *re = calloc(1, sizeof(*re));
    if (!re)
        goto oom;
    re->code = code;
    re->fast = fast;
    uint32_t cap = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &cap);
    re->ngroups = (int)cap;
    re->md = pcre2_match_data_create_from_pattern(code, NULL);
    re->names = calloc(cap + 1, sizeof(char *));
    if (!re->md || !re->names)
        goto oom;
    uint32_t namecount = 0, entsize = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &namecount);
    pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, &entsize);
    pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, &table);
    for (uint32_t i = 0; i < namecount; i++) {
        const unsigned char *e = table + i * entsize;
        int idx = (e[0] << 8) | e[1];
        if (idx <= (int)cap && !re->names[idx] && !(re->names[idx] = strdup((const char *)e + 2)))
            goto oom;
    }
    return re;
oom:
    snprintf(err, errlen, "out of memory");
    if (re) {
        re->code = code;
        bt_regex_free(re);
    } else {
        pcre2_code_free(fast);
        pcre2_code_free(code);
    }
    return NULL;
}

void bt_regex_free(struct bt_regex *re)
{
    if (!re)
        return;
    if (re->names)
        for (int i = 0; i <= re->ngroups; i++)
            free(re->names[i]);
    free(re->names);
    pcre2_match_data_free(re->md);
    pcre2_code_free(re->fast);
    pcre2_code_free(re->code);
    free(re);
}

int bt_regex_match(struct bt_regex *re, const char *s, size_t len, size_t start)
{
    PCRE2_SPTR subj = (PCRE2_SPTR)(s ? s : "");
    int rc = PCRE2_ERROR_UTF8_ERR1;
    if (re->fast) {
        rc = pcre2_match(re->fast, subj, len, start, 0, re->md, NULL);
        /* UTF-8 errors are -3 .. -21: the subject is not valid UTF-8; retry tolerant. */
        if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
            rc = pcre2_match(re->code, subj, len, start, 0, re->md, NULL);
    } else {
        rc = pcre2_match(re->code, subj, len, start, 0, re->md, NULL);
    }
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0)
        return rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ? -E2BIG : -EINVAL;
    return rc == 0 ? re->ngroups + 1 : rc;
}

bool bt_regex_group(const struct bt_regex *re, int i, size_t *start, size_t *end)
{
    if (i < 0 || i > re->ngroups)
        return false;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    if (i >= (int)pcre2_get_ovector_count(re->md) || ov[2 * i] == PCRE2_UNSET)
        return false;
    *start = ov[2 * i];
    *end = ov[2 * i + 1];
    return true;
}

int bt_regex_ngroups(const struct bt_regex *re)
{
    return re->ngroups;
}

const char *bt_regex_group_name(const struct bt_regex *re, int i)
{
    return i >= 0 && i <= re->ngroups ? re->names[i] : NULL;
}

int bt_regex_group_index(const struct bt_regex *re, const char *name)
{
    for (int i = 1; i <= re->ngroups; i++)
        if (re->names[i] && strcmp(re->names[i], name) == 0)
            return i;
    return -1;
}
