#include "source/positions.h"

#include "config/node.h"
#include "util/buf.h"
#include "util/hmap.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ID_PREFIX "bpftail-id:"
#define ID_PREFIX_LEN (sizeof(ID_PREFIX) - 1)

struct rec {
    struct bt_position pos;
    bool has_offset;
    char *raw; /* value of a key that is not a file path (cursor-..., journal-...): kept as is */
};

struct bt_positions {
    char *filename;
    bool readonly;
    struct bt_hmap map;          /* path -> struct rec */
    struct bt_ratelimit rl_save; /* a failing save repeats with every sync: log it sparingly */
    /* What the file on disk holds, so an idle agent does not rewrite and fsync it every
     * sync_period for nothing. */
    uint64_t saved_hash;
    size_t saved_len;
    bool saved;
};

struct bt_positions *bt_positions_new(const char *filename, bool readonly)
{
    struct bt_positions *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->filename = strdup(filename ? filename : "");
    if (!p->filename) {
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    p->readonly = readonly;
    p->rl_save = (struct bt_ratelimit)BT_RATELIMIT_INIT(60);
    bt_hmap_init(&p->map);
    return p;
}

static void free_recs(struct bt_positions *p)
{
    size_t it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&p->map, &it)) != NULL) {
        struct rec *r = s->val;
        free(r->raw);
        free(r);
    }
    bt_hmap_free(&p->map);
    bt_hmap_init(&p->map);
}

void bt_positions_free(struct bt_positions *p)
{
    if (!p)
        return;
    free_recs(p);
    bt_hmap_free(&p->map);
    free(p->filename);
    free(p);
}

const char *bt_positions_filename(const struct bt_positions *p)
{
    return p->filename;
}

static struct rec *get_or_add(struct bt_positions *p, const char *key, size_t klen)
{
    struct rec *r = bt_hmap_get(&p->map, key, klen);
    if (r)
        return r;
    r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (bt_hmap_put(&p->map, key, klen, r, NULL) < 0) {
        free(r);
        return NULL;
    }
    return r;
}

const struct bt_position *bt_positions_get(const struct bt_positions *p, const char *path)
{
    struct rec *r = bt_hmap_get(&p->map, path, strlen(path));
    return r && r->has_offset ? &r->pos : NULL;
}

int bt_positions_set(struct bt_positions *p, const char *path, const struct bt_position *pos)
{
    struct rec *r = get_or_add(p, path, strlen(path));
    if (!r)
        return -ENOMEM;
    r->pos = *pos;
    r->has_offset = true;
    free(r->raw); /* a cursor loaded verbatim is now replaced by a real offset */
    r->raw = NULL;
    return 0;
}

const char *bt_positions_get_string(const struct bt_positions *p, const char *key)
{
    struct rec *r = bt_hmap_get(&p->map, key, strlen(key));
    return r && !r->has_offset ? r->raw : NULL;
}

int bt_positions_set_string(struct bt_positions *p, const char *key, const char *value)
{
    if (!value[0] || key[0] == '/')
        return -EINVAL; /* a path's record is an offset; an empty cursor would not load back */
    struct rec *r = get_or_add(p, key, strlen(key));
    if (!r)
        return -ENOMEM;
    if (r->raw && strcmp(r->raw, value) == 0)
        return 0;
    char *v = strdup(value);
    if (!v)
        return -ENOMEM;
    free(r->raw);
    r->raw = v;
    r->has_offset = false;
    r->pos = (struct bt_position){0};
    return 0;
}

void bt_positions_remove(struct bt_positions *p, const char *path)
{
    struct rec *r = bt_hmap_del(&p->map, path, strlen(path));
    if (r) {
        free(r->raw);
        free(r);
    }
}

const char *bt_positions_find_inode(const struct bt_positions *p, uint64_t dev, uint64_t ino,
                                    const struct bt_position **pos)
{
    size_t it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&p->map, &it)) != NULL) {
        struct rec *r = s->val;
        if (r->has_offset && r->pos.has_identity && r->pos.dev == dev && r->pos.ino == ino) {
            if (pos)
                *pos = &r->pos;
            return s->key;
        }
    }
    return NULL;
}

size_t bt_positions_count(const struct bt_positions *p)
{
    size_t n = 0, it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&p->map, &it)) != NULL)
        if (((struct rec *)s->val)->has_offset)
            n++;
    return n;
}

bool bt_positions_next(const struct bt_positions *p, size_t *it, const char **path,
                       const struct bt_position **pos)
{
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&p->map, it)) != NULL) {
        struct rec *r = s->val;
        if (!r->has_offset)
            continue;
        *path = s->key;
        *pos = &r->pos;
        return true;
    }
    return false;
}

/* ---- reading ---- */

static bool parse_u64(const char *s, size_t n, uint64_t *out, int base)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int d;
        char c = s[i];
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return false;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return false;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return true;
}

/* "dev:ino:hash:len" */
static bool parse_identity(const char *v, size_t n, struct bt_position *pos)
{
    const char *f[4];
    size_t fl[4];
    size_t k = 0;
    const char *start = v;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || v[i] == ':') {
            if (k == 4)
                return false;
            f[k] = start;
            fl[k] = (size_t)(v + i - start);
            k++;
            start = v + i + 1;
        }
    }
    uint64_t len;
    if (k != 4 || !parse_u64(f[0], fl[0], &pos->dev, 10) ||
        !parse_u64(f[1], fl[1], &pos->ino, 10) || !parse_u64(f[2], fl[2], &pos->fp_hash, 16) ||
        !parse_u64(f[3], fl[3], &len, 10) || len > BT_FP_MAX)
        return false;
    pos->fp_len = (uint32_t)len;
    return true;
}

/* Adds one key/value of the positions map. Returns false for an invalid record. */
static bool add_kv(struct bt_positions *p, const char *k, size_t kl, const char *v, size_t vl)
{
    if (kl == 0 || kl >= PATH_MAX + ID_PREFIX_LEN || memchr(k, '\0', kl) || memchr(v, '\0', vl))
        return false;
    if (kl > ID_PREFIX_LEN && memcmp(k, ID_PREFIX, ID_PREFIX_LEN) == 0) {
        struct bt_position id = {0};
        if (!parse_identity(v, vl, &id))
            return false;
        struct rec *r = get_or_add(p, k + ID_PREFIX_LEN, kl - ID_PREFIX_LEN);
        if (!r)
            return false;
        r->pos.dev = id.dev;
        r->pos.ino = id.ino;
        r->pos.fp_hash = id.fp_hash;
        r->pos.fp_len = id.fp_len;
        r->pos.has_identity = true;
        return true;
    }
    uint64_t off;
    if (k[0] != '/' && !parse_u64(v, vl, &off, 10)) {
        /* Another target's cursor (journald's are not numbers): keep it verbatim. */
        struct rec *r = get_or_add(p, k, kl);
        if (!r)
            return false;
        free(r->raw);
        r->raw = strndup(v, vl);
        return r->raw != NULL;
    }
    if (!parse_u64(v, vl, &off, 10))
        return false;
    struct rec *r = get_or_add(p, k, kl);
    if (!r)
        return false;
    r->pos.offset = off;
    r->has_offset = true;
    return true;
}

/* Drops identity-only records (an identity line whose offset line was lost). */
static void prune_partial(struct bt_positions *p)
{
    size_t it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&p->map, &it)) != NULL) {
        struct rec *r = s->val;
        if (!r->has_offset && !r->raw) {
            bt_hmap_del(&p->map, s->key, s->klen);
            free(r);
        }
    }
}

static int load_tree(struct bt_positions *p, const struct bt_node *root, size_t *bad)
{
    if (!root || bt_node_is_null(root))
        return 0;
    if (root->type != BT_NODE_MAP)
        return -EINVAL;
    const struct bt_node *m = bt_node_get(root, "positions");
    if (!m || bt_node_is_null(m))
        return 0; /* "positions:" with no records, as written when nothing is tailed */
    if (m->type != BT_NODE_MAP)
        return -EINVAL;
    for (size_t i = 0; i < m->n; i++) {
        const struct bt_node *k = bt_node_key(m, i), *v = bt_node_val(m, i);
        if (k->type != BT_NODE_SCALAR || v->type != BT_NODE_SCALAR ||
            !add_kv(p, k->str, k->len, v->str, v->len))
            (*bad)++;
    }
    return 0;
}

/* Reads a YAML scalar at *s (double-quoted, single-quoted or plain, ending at stop) into out. */
static bool scan_scalar(const char **s, const char *end, char stop, struct bt_buf *out)
{
    const char *q = *s;
    bt_buf_reset(out);
    if (q < end && *q == '"') {
        for (q++; q < end && *q != '"'; q++) {
            char c = *q;
            if (c == '\\') {
                if (++q >= end)
                    return false;
                switch (*q) {
                case 'n': c = '\n'; break;
                case 't': c = '\t'; break;
                case '"': c = '"'; break;
                case '\\': c = '\\'; break;
                case 'x': {
                    uint64_t v;
                    if (q + 2 >= end || !parse_u64(q + 1, 2, &v, 16))
                        return false;
                    c = (char)v;
                    q += 2;
                    break;
                }
                default: return false;
                }
            }
            if (bt_buf_add(out, &c, 1) < 0)
                return false;
        }
        if (q >= end)
            return false;
        *s = q + 1;
        return true;
    }
    if (q < end && *q == '\'') {
        for (q++; q < end; q++) {
            if (*q == '\'') {
                if (q + 1 < end && q[1] == '\'')
                    q++;
                else
                    break;
            }
            if (bt_buf_add(out, q, 1) < 0)
                return false;
        }
        if (q >= end)
            return false;
        *s = q + 1;
        return true;
    }
    const char *st = q;
    while (q < end && !(*q == stop && (stop != ':' || q + 1 == end || q[1] == ' ')))
        q++;
    const char *e = q;
    while (e > st && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    if (bt_buf_add(out, st, (size_t)(e - st)) < 0)
        return false;
    *s = q;
    return true;
}

/* Line-by-line recovery of `  key: value` records under `positions:` in a damaged file. */
static void salvage(struct bt_positions *p, const char *text, size_t len, size_t *bad)
{
    struct bt_buf k, v;
    bt_buf_init(&k, PATH_MAX + 64);
    bt_buf_init(&v, 4096);
    bool in_map = false;
    const char *line = text, *end = text + len;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *le = nl ? nl : end;
        const char *q = line;
        if (memchr(line, '\0', (size_t)(le - line))) {
            (*bad)++;
        } else if (q < le && *q != ' ' && *q != '\t') {
            in_map = (size_t)(le - q) >= 10 && memcmp(q, "positions:", 10) == 0;
        } else if (in_map) {
            while (q < le && (*q == ' ' || *q == '\t'))
                q++;
            bool ok = q < le && *q != '#' && scan_scalar(&q, le, ':', &k) && q < le && *q == ':';
            if (ok) {
                q++;
                while (q < le && *q == ' ')
                    q++;
                ok = scan_scalar(&q, le, '#', &v) &&
                     add_kv(p, k.ptr ? k.ptr : "", k.len, v.ptr ? v.ptr : "", v.len);
            }
            if (!ok && q < le)
                (*bad)++;
        }
        line = nl ? nl + 1 : end;
    }
    bt_buf_free(&k);
    bt_buf_free(&v);
}

static int read_all(const char *path, char **out, size_t *outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct bt_buf b;
    bt_buf_init(&b, BT_POSITIONS_MAX_FILE);
    char chunk[65536];
    int rc = 0;
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        size_t room = BT_POSITIONS_MAX_FILE - b.len;
        if ((size_t)r > room) {
            r = (ssize_t)room;
            rc = -EFBIG;
        }
        if (bt_buf_add(&b, chunk, (size_t)r) < 0) {
            rc = -ENOMEM;
            break;
        }
        if (rc)
            break;
    }
    close(fd);
    if (rc == -ENOMEM) {
        bt_buf_free(&b);
        return rc;
    }
    *out = bt_buf_take(&b, outlen);
    if (!*out)
        return -ENOMEM;
    return rc == -EFBIG ? 1 : 0;
}

int bt_positions_load(struct bt_positions *p, bool *salvaged)
{
    char *text = NULL;
    size_t len = 0;
    char err[256];
    if (salvaged)
        *salvaged = false;
    int rc = read_all(p->filename, &text, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0) {
        BT_WARN("positions", "cannot read positions file, starting without", "path=%s err=%s",
                p->filename, strerror(-rc));
        return rc == -ENOMEM ? rc : 0;
    }
    bool truncated = rc == 1;
    size_t bad = 0;
    struct bt_node *root = NULL;
    bool parsed = false;
    if (!truncated && !memchr(text, '\0', len)) {
        root = bt_yaml_parse(text, len, p->filename, err, sizeof(err));
        parsed =
            (root || len == 0 || strspn(text, " \t\r\n") == len) && load_tree(p, root, &bad) == 0;
    }
    if (!parsed) {
        free_recs(p);
        bad = 0;
        salvage(p, text, len, &bad);
        bad++;
    }
    prune_partial(p);
    if (bad) {
        BT_WARN("positions", "positions file is damaged; kept the valid records",
                "path=%s kept=%zu invalid=%zu", p->filename, bt_positions_count(p), bad);
        if (salvaged)
            *salvaged = true;
    }
    bt_node_free(root);
    free(text);
    return 0;
}

/* ---- writing ---- */

static int add_quoted(struct bt_buf *b, const char *s)
{
    int rc = bt_buf_add(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; rc == 0 && *c; c++) {
        if (*c == '"' || *c == '\\')
            rc = bt_buf_addf(b, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            rc = bt_buf_addf(b, "\\x%02x", *c);
        else
            rc = bt_buf_add(b, c, 1);
    }
    return rc ? rc : bt_buf_add(b, "\"", 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int render(struct bt_positions *p, struct bt_buf *b)
{
    size_t n = p->map.n, k = 0, it = 0;
    const char **keys = calloc(n ? n : 1, sizeof(*keys));
    if (!keys)
        return -ENOMEM;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&p->map, &it)) != NULL && k < n)
        keys[k++] = s->key;
    qsort(keys, k, sizeof(*keys), cmp_str);
    int rc = bt_buf_adds(b, "positions:\n");
    for (size_t i = 0; rc == 0 && i < k; i++) {
        struct rec *r = bt_hmap_get(&p->map, keys[i], strlen(keys[i]));
        if (r->raw) {
            rc = bt_buf_adds(b, "  ");
            rc = rc ? rc : add_quoted(b, keys[i]);
            rc = rc ? rc : bt_buf_adds(b, ": ");
            rc = rc ? rc : add_quoted(b, r->raw);
            rc = rc ? rc : bt_buf_adds(b, "\n");
            continue;
        }
        if (!r->has_offset)
            continue;
        rc = bt_buf_adds(b, "  ");
        rc = rc ? rc : add_quoted(b, keys[i]);
        rc = rc ? rc : bt_buf_addf(b, ": \"%" PRIu64 "\"\n", r->pos.offset);
        if (rc == 0 && r->pos.has_identity) {
            char key[PATH_MAX + 16];
            snprintf(key, sizeof(key), ID_PREFIX "%s", keys[i]);
            rc = bt_buf_adds(b, "  ");
            rc = rc ? rc : add_quoted(b, key);
            rc = rc ? rc
                    : bt_buf_addf(b, ": \"%" PRIu64 ":%" PRIu64 ":%016" PRIx64 ":%" PRIu32 "\"\n",
                                  r->pos.dev, r->pos.ino, r->pos.fp_hash, r->pos.fp_len);
        }
    }
    free(keys);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int bt_positions_save(struct bt_positions *p)
{
    if (p->readonly || !p->filename[0])
        return 0;
    struct bt_buf b;
    bt_buf_init(&b, 1u << 30);
    char tmp[PATH_MAX], dir[PATH_MAX];
    int fd = -1, dfd = -1, rc = render(p, &b);
    if (rc)
        goto out;
    uint64_t h = bt_hash64(b.ptr, b.len);
    struct stat st;
    if (p->saved && h == p->saved_hash && b.len == p->saved_len && stat(p->filename, &st) == 0)
        goto out; /* unchanged since the last save, and still there */
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", p->filename) >= sizeof(tmp)) {
        rc = -ENAMETOOLONG;
        goto out;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    if (fchmod(fd, 0600) < 0 || (rc = write_all(fd, b.ptr, b.len)) < 0 || fsync(fd) < 0) {
        rc = rc ? rc : -errno;
        unlink(tmp);
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, p->filename) < 0) {
        rc = -errno;
        unlink(tmp);
        goto out;
    }
    snprintf(dir, sizeof(dir), "%s", p->filename);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        fsync(dfd);
    p->saved = true;
    p->saved_hash = h;
    p->saved_len = b.len;
out:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    bt_buf_free(&b);
    uint64_t sup;
    if (rc && bt_ratelimit_ok(&p->rl_save, &sup))
        BT_WARN("positions", "cannot save positions", "path=%s err=%s suppressed=%llu", p->filename,
                strerror(-rc), (unsigned long long)sup);
    return rc;
}
