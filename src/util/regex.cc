/*
 * regex: the C API of util/regex.h over RE2, the engine whose syntax and semantics Go's regexp
 * package shares. Compiled as C++ only because RE2 is a C++ library; nothing C++ crosses the API
 * and no exception leaves it.
 *
 * Choices (see util/regex.h for what callers see):
 *  - UTF-8 mode. Latin-1 would make `.` and \S match single bytes of a multibyte character and
 *    break \pL and (?i) over non-ASCII text. In UTF-8 mode a subject that is not valid UTF-8 still
 *    matches: an invalid byte is matched by nothing (\C, any byte, is refused), so `.` and classes
 * do not cross it (Go would read it as U+FFFD, which `.` matches).
 *  - max_mem is RE2's usual 8 MiB: a pattern whose program does not fit is refused when it is
 *    compiled (a config error), and a search whose DFA outgrows its share falls back to RE2's
 *    NFA, still linear in the subject.
 *  - Go accepts (?<name>re) as well as (?P<name>re); RE2 2022-06 knows only the second, so the
 *    first is rewritten before compiling. Go refuses \C (any byte) and duplicate group names,
 *    RE2 2022-06 does not: both are refused here.
 */
extern "C" {
#include "util/refast.h"
#include "util/regex.h"
}

#include <errno.h>
#include <re2/re2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>
#include <set>
#include <string>

namespace
{

const int64_t kMaxMem = 8 << 20;

bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Go syntax to RE2 syntax: (?<name> becomes (?P<name>; \C and a group name used twice are
 * refused. Escapes, \Q...\E and
 * character classes are skipped over so that only real group openings are rewritten. With
 * keep, unnamed groups and named groups keep() refuses become non-capturing (?:, so RE2 tracks
 * only the submatches a caller reads. Returns false with a message in err for a construct Go
 * refuses. */
bool go_to_re2(const char *p, std::string *out, std::string *err, bt_regex_keep_fn keep,
               const void *ctx)
{
    size_t n = strlen(p);
    bool in_class = false;
    std::set<std::string> names; /* Go refuses a name used twice, RE2 2022-06 does not */
    out->reserve(n + 8);
    for (size_t i = 0; i < n;) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            if (d == 'Q') { /* literal text up to \E or the end */
                const char *e = strstr(p + i + 2, "\\E");
                size_t stop = e ? (size_t)(e - p) + 2 : n;
                out->append(p + i, stop - i);
                i = stop;
                continue;
            }
            if (d == 'C') {
                *err = "invalid escape sequence: \\C";
                return false;
            }
            out->append(p + i, 2);
            i += 2;
            continue;
        }
        if (in_class) {
            if (c == '[' && i + 1 < n && p[i + 1] == ':') { /* [:alpha:] */
                const char *e = strstr(p + i + 2, ":]");
                if (e) {
                    size_t stop = (size_t)(e - p) + 2;
                    out->append(p + i, stop - i);
                    i = stop;
                    continue;
                }
            }
            if (c == ']')
                in_class = false;
            out->push_back(c);
            i++;
            continue;
        }
        if (c == '[') {
            in_class = true;
            out->push_back(c);
            i++;
            if (i < n && p[i] == '^')
                out->push_back(p[i++]);
            if (i < n && p[i] == ']') /* a ] first in a class is a literal */
                out->push_back(p[i++]);
            continue;
        }
        if (c == '(' && i + 3 < n && p[i + 1] == '?' &&
            ((p[i + 2] == '<' && word_char(p[i + 3])) || (p[i + 2] == 'P' && p[i + 3] == '<'))) {
            size_t name = p[i + 2] == '<' ? i + 3 : i + 4;
            const char *gt = strchr(p + name, '>');
            if (gt && !names.insert(std::string(p + name, (size_t)(gt - p) - name)).second) {
                *err = "duplicate capture group name: " +
                       std::string(p + name, (size_t)(gt - p) - name);
                return false;
            }
            if (keep && gt && !keep(ctx, p + name, (size_t)(gt - p) - name)) {
                out->append("(?:");
                i = (size_t)(gt - p) + 1;
                continue;
            }
            out->append("(?P<");
            i = name;
            continue;
        }
        if (keep && c == '(' && (i + 1 >= n || p[i + 1] != '?')) { /* unnamed group */
            out->append("(?:");
            i++;
            continue;
        }
        out->push_back(c);
        i++;
    }
    return true;
}

} // namespace

struct bt_regex {
    re2::RE2 *re;
    int ngroups;
    char **names;          /* ngroups + 1 entries, NULL for unnamed */
    re2::StringPiece *sub; /* ngroups + 1 submatches, filled on demand */
    re2::StringPiece subj; /* the subject of the last match */
    size_t start;          /* and its start offset */
    bool matched, have_sub;
    struct bt_refast *fast; /* the one-pass matcher when the pattern is in its subset */
    ssize_t *caps;          /* its 2 * (ngroups + 1) offsets */
};

extern "C" {

struct bt_regex *bt_regex_new(const char *pattern, int flags, char *err, size_t errlen)
{
    return bt_regex_new_keep(pattern, flags, NULL, NULL, err, errlen);
}

struct bt_regex *bt_regex_new_keep(const char *pattern, int flags, bt_regex_keep_fn keep,
                                   const void *ctx, char *err, size_t errlen)
{
    struct bt_regex *re = NULL;
    try {
        std::string pat, why;
        if (!go_to_re2(pattern, &pat, &why, keep, ctx)) {
            snprintf(err, errlen, "invalid regex %s: %s", pattern, why.c_str());
            return NULL;
        }
        if (flags & BT_RE_ANCHORED) /* as Prometheus: ^(?:re)$ */
            pat = "^(?:" + pat + ")$";
        re2::RE2::Options o;
        o.set_encoding(re2::RE2::Options::EncodingUTF8);
        o.set_log_errors(false);
        o.set_max_mem(kMaxMem);
        o.set_dot_nl((flags & BT_RE_DOTALL) != 0);
        o.set_case_sensitive((flags & BT_RE_CASELESS) == 0);
        re = new (std::nothrow) bt_regex();
        if (!re)
            goto oom;
        re->re = new (std::nothrow) re2::RE2(pat, o);
        if (!re->re)
            goto oom;
        if (!re->re->ok()) {
            const char *msg = re->re->error_code() == re2::RE2::ErrorPatternTooLarge
                                  ? "pattern too large: its program exceeds 8 MiB"
                                  : re->re->error().c_str();
            snprintf(err, errlen, "invalid regex %s: %s", pattern, msg);
            bt_regex_free(re);
            return NULL;
        }
        re->ngroups = re->re->NumberOfCapturingGroups();
        re->names = (char **)calloc((size_t)re->ngroups + 1, sizeof(char *));
        re->sub = new (std::nothrow) re2::StringPiece[(size_t)re->ngroups + 1];
        if (!re->names || !re->sub)
            goto oom;
        for (const auto &kv : re->re->NamedCapturingGroups())
            if (kv.second <= re->ngroups && !(re->names[kv.second] = strdup(kv.first.c_str())))
                goto oom;
        /* The one-pass matcher reads RE2 syntax with RE2's default flags; it declines (NULL)
         * whatever is outside its subset, and a pattern it takes is still compiled by RE2,
         * which answers the subjects it leaves undecided and the searches from an offset. */
        if (!(flags & (BT_RE_ANCHORED | BT_RE_DOTALL | BT_RE_CASELESS | BT_RE_NOFAST)) &&
            (re->fast = bt_refast_new(pat.c_str(), re->ngroups)) &&
            !(re->caps = (ssize_t *)calloc(2 * ((size_t)re->ngroups + 1), sizeof(ssize_t))))
            goto oom;
        return re;
    } catch (...) {
    }
oom:
    snprintf(err, errlen, "out of memory");
    bt_regex_free(re);
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
    delete[] re->sub;
    bt_refast_free(re->fast);
    free(re->caps);
    delete re->re;
    delete re;
}

/* The one-pass matcher over all of s: true when it decided, with the outcome in re. */
static bool fast_match(struct bt_regex *re, const char *s, size_t len)
{
    int r = bt_refast_match(re->fast, s, len, re->caps);
    if (r < 0)
        return false;
    re->subj = re2::StringPiece(s ? s : "", s ? len : 0);
    re->start = 0;
    re->matched = re->have_sub = r > 0;
    for (int i = 0; r > 0 && i <= re->ngroups; i++)
        re->sub[i] = re->caps[2 * i] < 0
                         ? re2::StringPiece()
                         : re2::StringPiece(re->subj.data() + re->caps[2 * i],
                                            (size_t)(re->caps[2 * i + 1] - re->caps[2 * i]));
    return true;
}

int bt_regex_match(struct bt_regex *re, const char *s, size_t len, size_t start)
{
    if (re->fast && start == 0 && fast_match(re, s, len))
        return re->matched ? re->ngroups + 1 : 0;
    /* Whether it matches is a DFA search without submatches, the fast path of every filter;
     * the groups are found only when a caller asks for one (bt_regex_group). */
    re->subj = re2::StringPiece(s ? s : "", s ? len : 0);
    re->start = start;
    re->have_sub = false;
    re->matched = start <= re->subj.size() &&
                  re->re->Match(re->subj, start, re->subj.size(), re2::RE2::UNANCHORED, NULL, 0);
    return re->matched ? re->ngroups + 1 : 0;
}

int bt_regex_match_groups(struct bt_regex *re, const char *s, size_t len)
{
    /* One search with submatches: RE2 picks its engine (one-pass for an anchored, unambiguous
     * pattern of at most 4 groups, else a DFA pass to find the match then a submatch pass over
     * it), which costs less than a DFA search followed by bt_regex_group's second search. */
    if (re->fast && fast_match(re, s, len))
        return re->matched ? re->ngroups + 1 : 0;
    re->subj = re2::StringPiece(s ? s : "", s ? len : 0);
    re->start = 0;
    re->matched =
        re->re->Match(re->subj, 0, re->subj.size(), re2::RE2::UNANCHORED, re->sub, re->ngroups + 1);
    re->have_sub = re->matched;
    return re->matched ? re->ngroups + 1 : 0;
}

bool bt_regex_group(const struct bt_regex *cre, int i, size_t *start, size_t *end)
{
    struct bt_regex *re = const_cast<struct bt_regex *>(cre);
    if (i < 0 || i > re->ngroups || !re->matched)
        return false;
    if (!re->have_sub) {
        if (!re->re->Match(re->subj, re->start, re->subj.size(), re2::RE2::UNANCHORED, re->sub,
                           re->ngroups + 1)) {
            re->matched = false; /* cannot happen: the same search matched before */
            return false;
        }
        re->have_sub = true;
    }
    if (re->sub[i].data() == NULL)
        return false;
    *start = (size_t)(re->sub[i].data() - re->subj.data());
    *end = *start + re->sub[i].size();
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

} /* extern "C" */
