/*
 * glob: path patterns of file targets (__path__, __path_exclude__) and the directory walk that
 * finds their matches.
 *
 * Syntax as doublestar (promtail's matcher): `*` any run of characters except '/', `?` one
 * character except '/', `[abc]`, `[a-z]`, `[!a]` / `[^a]` classes, `{a,b}` alternatives (may
 * nest), `**` as a whole path segment for any number of directories (zero included), and `\`
 * to quote the next character. Patterns and paths are plain C strings; the module allocates
 * nothing but what the walk needs and knows nothing of the rest of bpftail.
 */
#ifndef BT_UTIL_GLOB_H
#define BT_UTIL_GLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* Longest pattern accepted (bytes); longer ones never match. */
#define BT_GLOB_MAX 4096
/* Deepest directory level the walk descends to below the pattern's root. */
#define BT_GLOB_MAX_DEPTH 32
/* Most directory entries one walk looks at before it stops (and returns -E2BIG). */
#define BT_GLOB_MAX_ENTRIES 200000

/* True if the whole path matches pattern. */
bool bt_glob_match(const char *pattern, const char *path);
/* True if some path strictly below directory dir could match pattern (so dir needs a watch). */
bool bt_glob_match_dir(const char *pattern, const char *dir);
/* True if pattern has any metacharacter (* ? [ { \). */
bool bt_glob_has_meta(const char *pattern);
/* Writes the longest leading directory of pattern free of metacharacters ("/" at least for an
 * absolute pattern, "." for a relative one) to out. 0 or -ENAMETOOLONG. */
int bt_glob_root(const char *pattern, char *out, size_t outlen);

/* Called by bt_glob_walk for each directory that can hold matches (is_dir, the root first) and
 * each regular file (after following symlinks) that matches. st is the stat of path. A
 * non-zero return stops the walk and is returned by it. */
typedef int (*bt_glob_fn)(void *ctx, const char *path, bool is_dir, const struct stat *st);
/* Walks the file system for pattern. 0, the callback's non-zero value, -ENOENT when the root
 * does not exist, or -E2BIG when the entry cap was hit (matches found so far were reported). */
int bt_glob_walk(const char *pattern, bt_glob_fn fn, void *ctx);

#endif
