#include "util/glob.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Matching is a small backtracking matcher over the pattern text. Alternatives are handled by
 * substituting each one into a copy of the pattern, so `{a,b}` may hold any other syntax.
 * In prefix mode (dir matching) reaching the end of the path at a segment boundary of the
 * pattern, with pattern left over, counts as a match. */

static bool match(const char *p, const char *s, bool prefix, bool seg_start);

/* Returns the end of the [...] class starting at p ('[') or NULL if unterminated. */
static const char *class_end(const char *p)
{
    const char *q = p + 1;
    if (*q == '!' || *q == '^')
        q++;
    if (*q == ']')
        q++;
    for (; *q; q++) {
        if (*q == '\\' && q[1])
            q++;
        else if (*q == ']')
            return q;
    }
    return NULL;
}

static bool class_match(const char *p, const char *end, char c)
{
    const char *q = p + 1;
    bool neg = false, hit = false;
    if (*q == '!' || *q == '^') {
        neg = true;
        q++;
    }
    bool first = true;
    while (q < end) {
        if (*q == ']' && !first)
            break;
        first = false;
        char lo = *q;
        if (lo == '\\' && q + 1 < end)
            lo = *++q;
        char hi = lo;
        if (q[1] == '-' && q + 2 < end) {
            hi = q[2];
            if (hi == '\\' && q + 3 < end) {
                hi = q[3];
                q++;
            }
            q += 2;
        }
        if ((unsigned char)c >= (unsigned char)lo && (unsigned char)c <= (unsigned char)hi)
            hit = true;
        q++;
    }
    return hit != neg;
}

/* Returns the '}' closing the '{' at p, or NULL. */
static const char *brace_end(const char *p)
{
    int depth = 0;
    for (const char *q = p; *q; q++) {
        if (*q == '\\' && q[1])
            q++;
        else if (*q == '{')
            depth++;
        else if (*q == '}' && --depth == 0)
            return q;
    }
    return NULL;
}

static bool match_braces(const char *p, const char *s, bool prefix, bool seg_start)
{
    const char *end = brace_end(p);
    if (!end)
        return *s == '{' && match(p + 1, s + 1, prefix, false);
    size_t rest_len = strlen(end + 1);
    char tmp[BT_GLOB_MAX + 1];
    const char *alt = p + 1;
    int depth = 0;
    for (const char *q = p + 1; q <= end; q++) {
        if (*q == '\\' && q + 1 < end) {
            q++;
            continue;
        }
        if (*q == '{')
            depth++;
        else if (*q == '}' && depth > 0 && q != end)
            depth--;
        else if ((*q == ',' && depth == 0) || q == end) {
            size_t alen = (size_t)(q - alt);
            if (alen + rest_len > BT_GLOB_MAX)
                return false;
            memcpy(tmp, alt, alen);
            memcpy(tmp + alen, end + 1, rest_len + 1);
            if (match(tmp, s, prefix, seg_start))
                return true;
            alt = q + 1;
        }
    }
    return false;
}

static bool match(const char *p, const char *s, bool prefix, bool seg_start)
{
    for (;;) {
        if (*s == '\0' && prefix) {
            /* The directory ends here: anything below it may still match if the pattern
             * continues with a new segment. */
            if (*p == '/' && p[1])
                return true;
            if (seg_start && p[0] == '*' && p[1] == '*' && (p[2] == '/' || p[2] == '\0'))
                return true;
            if (*p == '{')
                return match_braces(p, s, prefix, seg_start);
            if (*p != '*')
                return false;
        }
        switch (*p) {
        case '\0': return *s == '\0';
        case '*':
            if (seg_start && p[1] == '*' && (p[2] == '/' || p[2] == '\0')) {
                if (p[2] == '\0' || prefix)
                    return true; /* any depth below here can hold matches */
                /* `**` + '/': zero or more whole directories. */
                if (match(p + 3, s, prefix, true))
                    return true;
                for (const char *q = s; *q; q++)
                    if (*q == '/' && match(p + 3, q + 1, prefix, true))
                        return true;
                return false;
            }
            while (p[1] == '*')
                p++;
            for (const char *q = s;; q++) {
                if (match(p + 1, q, prefix, false))
                    return true;
                if (*q == '\0' || *q == '/')
                    return false;
            }
        case '?':
            if (*s == '\0' || *s == '/')
                return false;
            break;
        case '[': {
            const char *end = class_end(p);
            if (!end) {
                if (*s != '[')
                    return false;
                break;
            }
            if (*s == '\0' || *s == '/' || !class_match(p, end, *s))
                return false;
            p = end;
            break;
        }
        case '{': return match_braces(p, s, prefix, seg_start);
        case '\\':
            if (p[1])
                p++;
            /* fall through */
        default:
            if (*p != *s)
                return false;
            break;
        }
        seg_start = *p == '/';
        p++;
        s++;
    }
}

bool bt_glob_match(const char *pattern, const char *path)
{
    if (strlen(pattern) > BT_GLOB_MAX)
        return false;
    return match(pattern, path, false, true);
}

bool bt_glob_match_dir(const char *pattern, const char *dir)
{
    if (strlen(pattern) > BT_GLOB_MAX)
        return false;
    if (strcmp(dir, "/") == 0)
        return pattern[0] == '/' || pattern[0] == '{' || pattern[0] == '*';
    size_t n = strlen(dir);
    if (n > 1 && dir[n - 1] == '/') {
        char tmp[PATH_MAX];
        if (n >= sizeof(tmp))
            return false;
        memcpy(tmp, dir, n - 1);
        tmp[n - 1] = '\0';
        return match(pattern, tmp, true, true);
    }
    return match(pattern, dir, true, true);
}

bool bt_glob_has_meta(const char *pattern)
{
    return strpbrk(pattern, "*?[{\\") != NULL;
}

int bt_glob_root(const char *pattern, char *out, size_t outlen)
{
    size_t meta = strcspn(pattern, "*?[{\\");
    size_t cut = 0; /* length of the directory part before the first meta segment */
    for (size_t i = 0; i < meta; i++)
        if (pattern[i] == '/')
            cut = i;
    if (pattern[meta] == '\0') {
        /* No meta at all: the parent directory of the path. */
        const char *slash = strrchr(pattern, '/');
        cut = slash ? (size_t)(slash - pattern) : 0;
    }
    const char *src = pattern;
    if (cut == 0) {
        src = pattern[0] == '/' ? "/" : ".";
        cut = 1;
    }
    if (cut + 1 > outlen)
        return -ENAMETOOLONG;
    memcpy(out, src, cut);
    out[cut] = '\0';
    return 0;
}

struct walk {
    const char *pattern;
    bt_glob_fn fn;
    void *ctx;
    size_t entries;
};

static int walk_dir(struct walk *w, char *path, size_t len, int depth)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT || errno == ENOTDIR || errno == EACCES ? 0 : -errno;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (++w->entries > BT_GLOB_MAX_ENTRIES) {
            rc = -E2BIG;
            break;
        }
        size_t nlen = strlen(de->d_name);
        bool root = len == 1 && path[0] == '/';
        if (len + 1 + nlen + 1 > PATH_MAX)
            continue;
        size_t nl = len;
        if (!root)
            path[nl++] = '/';
        memcpy(path + nl, de->d_name, nlen + 1);
        struct stat st;
        if (stat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode) && depth < BT_GLOB_MAX_DEPTH &&
                bt_glob_match_dir(w->pattern, path)) {
                rc = w->fn(w->ctx, path, true, &st);
                if (rc == 0)
                    rc = walk_dir(w, path, nl + nlen, depth + 1);
            } else if (S_ISREG(st.st_mode) && bt_glob_match(w->pattern, path)) {
                rc = w->fn(w->ctx, path, false, &st);
            }
        }
        path[len] = '\0';
        if (rc)
            break;
    }
    closedir(d);
    return rc;
}

int bt_glob_walk(const char *pattern, bt_glob_fn fn, void *ctx)
{
    char path[PATH_MAX];
    struct stat st;
    if (strlen(pattern) > BT_GLOB_MAX)
        return -ENAMETOOLONG;
    int rc = bt_glob_root(pattern, path, sizeof(path));
    if (rc)
        return rc;
    if (stat(path, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    rc = fn(ctx, path, true, &st);
    if (rc)
        return rc;
    if (!bt_glob_has_meta(pattern)) {
        /* A plain path: no walk, just the file itself. */
        if (stat(pattern, &st) == 0 && S_ISREG(st.st_mode))
            return fn(ctx, pattern, false, &st);
        return 0;
    }
    struct walk w = {pattern, fn, ctx, 0};
    return walk_dir(&w, path, strlen(path), 0);
}
