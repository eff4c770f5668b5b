/*
 * floor: the least work that ships a log file to Loki, as a yardstick for bpftail.
 *
 *   floor --url http://127.0.0.1:PORT/loki/api/v1/push --file F --mode plain|docker|pipeline
 *         [--label job=bench] [--batchsize 1048576]
 *
 * It does only what any agent must do for the bench's scenarios and nothing an agent does to
 * be safe or general: read the file with large reads, split lines with memchr, (docker) scan
 * each json-file record for its log, stream and time with a minimal scanner, (pipeline) match
 * the scenario's regex and use the app label, the parsed time and the msg group,
 * encode logproto.PushRequest by hand straight into per-stream buffers, compress the request
 * with snappy and POST it over one keep-alive connection, waiting for each answer before the
 * next batch (one push in flight, as bpftail's default). A batch is sealed when the next line
 * would pass batchsize bytes of lines, as bpftail counts them. No positions, no retries, no
 * watching: a non-2xx answer ends the program with status 1.
 *
 * Stream labels are built once per stream, in bpftail's canonical form (sorted, `, `-joined):
 * plain `{filename, job}`, docker adds `stream`, pipeline adds `app`. Timestamps: plain lines
 * get the read time (one clock_gettime per read, +1 ns per line so none are equal), docker
 * lines their record's time, pipeline lines their parsed `time` group.
 *
 * Prints one line on stdout: lines, bytes read, batches, request bytes before and after snappy.
 */
#define _GNU_SOURCE
#include "util/refast.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define READ_SIZE (4u << 20)
#define MAX_STREAMS 64

static void die(const char *what)
{
    fprintf(stderr, "floor: %s\n", what);
    exit(1);
}

/* ---- growable byte buffer ------------------------------------------------------------ */

struct vec {
    uint8_t *p;
    size_t len, cap;
};

static void vec_need(struct vec *v, size_t n)
{
    if (v->len + n <= v->cap)
        return;
    size_t cap = v->cap ? v->cap : 4096;
    while (cap < v->len + n)
        cap *= 2;
    v->p = realloc(v->p, cap);
    if (!v->p)
        die("out of memory");
    v->cap = cap;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* ---- streams and the batch ------------------------------------------------------------ */

struct stream {
    char key[128]; /* the distinguishing value (stream or app), "" for plain */
    size_t key_len;
    char *labels;
    size_t labels_len;
    struct vec entries; /* encoded EntryAdapter fields (tag 2 of StreamAdapter), back to back */
};

struct batch {
    struct stream streams[MAX_STREAMS];
    size_t n_streams;
    size_t line_bytes, n_lines;
    struct vec req, comp;
};

static struct {
    const char *job, *filename;
    size_t batchsize;
    int fd; /* connection to the server */
    char host[64];
    int port;
    const char *path;
    size_t batches, raw_bytes, comp_bytes, lines;
} g;

static struct stream *stream_get(struct batch *b, const char *label, const char *key, size_t klen)
{
    for (size_t i = 0; i < b->n_streams; i++)
        if (b->streams[i].key_len == klen && memcmp(b->streams[i].key, key, klen) == 0)
            return &b->streams[i];
    if (b->n_streams == MAX_STREAMS || klen >= sizeof(b->streams[0].key))
        die("too many streams");
    struct stream *s = &b->streams[b->n_streams++];
    memcpy(s->key, key, klen);
    s->key_len = klen;
    char buf[1024];
    int n;
    /* Canonical order: app < filename < job < stream. Values here need no escaping. */
    if (!label)
        n = snprintf(buf, sizeof(buf), "{filename=\"%s\", job=\"%s\"}", g.filename, g.job);
    else if (strcmp(label, "app") == 0)
        n = snprintf(buf, sizeof(buf), "{app=\"%.*s\", filename=\"%s\", job=\"%s\"}", (int)klen,
                     key, g.filename, g.job);
    else
        n = snprintf(buf, sizeof(buf), "{filename=\"%s\", job=\"%s\", stream=\"%.*s\"}", g.filename,
                     g.job, (int)klen, key);
    if (n < 0 || (size_t)n >= sizeof(buf))
        die("labels too long");
    s->labels = strdup(buf);
    s->labels_len = (size_t)n;
    return s;
}

/* Appends one entry: field 2 (EntryAdapter) { 1: Timestamp {1: seconds, 2: nanos}, 2: line }. */
static void entry_add(struct stream *s, int64_t ts_ns, const void *line, size_t len)
{
    uint64_t sec = (uint64_t)(ts_ns / 1000000000), ns = (uint64_t)(ts_ns % 1000000000);
    size_t tlen = 1 + varint_len(sec) + (ns ? 1 + varint_len(ns) : 0);
    size_t elen = 1 + varint_len(tlen) + tlen + 1 + varint_len(len) + len;
    vec_need(&s->entries, 1 + varint_len(elen) + elen);
    uint8_t *p = s->entries.p + s->entries.len;
    *p++ = 0x12;
    p = put_varint(p, elen);
    *p++ = 0x0a;
    p = put_varint(p, tlen);
    *p++ = 0x08;
    p = put_varint(p, sec);
    if (ns) {
        *p++ = 0x10;
        p = put_varint(p, ns);
    }
    *p++ = 0x12;
    p = put_varint(p, len);
    memcpy(p, line, len);
    s->entries.len = (size_t)(p + len - s->entries.p);
}

/* ---- HTTP ------------------------------------------------------------------------------ */

static void connect_server(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
    if (inet_pton(AF_INET, g.host, &sa.sin_addr) != 1)
        die("--url: host must be an IPv4 address");
    g.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (g.fd < 0 || connect(g.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("connect failed");
    int one = 1;
    setsockopt(g.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Reads one answer (status line, headers, Content-Length body). Returns the status. */
static int read_answer(void)
{
    static char buf[65536];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len == sizeof(buf) - 1)
            die("answer headers too long");
        ssize_t n = read(g.fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            die("server closed the connection");
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        die("bad status line");
    size_t body = 0;
    char *cl = strcasestr(buf, "\r\ncontent-length:");
    if (cl && cl < end)
        body = strtoul(cl + 17, NULL, 10);
    size_t have = len - (size_t)(end + 4 - buf);
    while (have < body) {
        char tmp[4096];
        ssize_t n = read(g.fd, tmp, sizeof(tmp));
        if (n <= 0)
            die("server closed the connection");
        have += (size_t)n;
    }
    if (status < 200 || status > 299) {
        fprintf(stderr, "floor: push answered %d: %.*s\n", status, (int)(len > 300 ? 300 : len),
                buf);
        exit(1);
    }
    return status;
}

static void post(const uint8_t *body, size_t len)
{
    char head[512];
    int hn = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/x-protobuf\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      g.path, g.host, g.port, len);
    struct iovec iov[2] = {{head, (size_t)hn}, {(void *)body, len}};
    size_t left = (size_t)hn + len;
    int i = 0;
    while (left) {
        ssize_t n = writev(g.fd, iov + i, 2 - i);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write failed");
        }
        left -= (size_t)n;
        while (i < 2 && (size_t)n >= iov[i].iov_len) {
            n -= (ssize_t)iov[i].iov_len;
            i++;
        }
        if (i < 2) {
            iov[i].iov_base = (char *)iov[i].iov_base + n;
            iov[i].iov_len -= (size_t)n;
        }
    }
    read_answer();
}

/* Wraps every stream's entries into the request, compresses and posts it. */
static void flush(struct batch *b)
{
    if (!b->n_lines)
        return;
    size_t total = 0;
    for (size_t i = 0; i < b->n_streams; i++) {
        struct stream *s = &b->streams[i];
        if (!s->entries.len)
            continue;
        size_t slen = 1 + varint_len(s->labels_len) + s->labels_len + s->entries.len;
        total += 1 + varint_len(slen) + slen;
    }
    b->req.len = 0;
    vec_need(&b->req, total);
    uint8_t *p = b->req.p;
    for (size_t i = 0; i < b->n_streams; i++) {
        struct stream *s = &b->streams[i];
        if (!s->entries.len)
            continue;
        size_t slen = 1 + varint_len(s->labels_len) + s->labels_len + s->entries.len;
        *p++ = 0x0a;
        p = put_varint(p, slen);
        *p++ = 0x0a;
        p = put_varint(p, s->labels_len);
        memcpy(p, s->labels, s->labels_len);
        p += s->labels_len;
        memcpy(p, s->entries.p, s->entries.len);
        p += s->entries.len;
        s->entries.len = 0;
    }
    b->req.len = (size_t)(p - b->req.p);
    size_t clen = snappy_max_compressed_length(b->req.len);
    b->comp.len = 0;
    vec_need(&b->comp, clen);
    if (snappy_compress((const char *)b->req.p, b->req.len, (char *)b->comp.p, &clen) != SNAPPY_OK)
        die("snappy failed");
    post(b->comp.p, clen);
    g.batches++;
    g.raw_bytes += b->req.len;
    g.comp_bytes += clen;
    g.lines += b->n_lines;
    b->n_lines = 0;
    b->line_bytes = 0;
}

static void add(struct batch *b, struct stream *s, int64_t ts, const void *line, size_t len)
{
    if (b->n_lines && b->line_bytes + len > g.batchsize)
        flush(b);
    entry_add(s, ts, line, len);
    b->line_bytes += len;
    b->n_lines++;
    if (b->line_bytes >= g.batchsize)
        flush(b);
}

/* ---- per-mode line handling ------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* RFC 3339 with optional fraction and Z or +hh:mm. Returns 0 and *ns, or -1. */
static int parse_rfc3339(const char *s, size_t n, int64_t *ns)
{
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2),
        mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || mi < 0 || se < 0)
        return -1;
    size_t i = 19;
    int64_t frac = 0;
    if (i < n && s[i] == '.') {
        int k = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, k++)
            if (k < 9)
                frac = frac * 10 + (s[i] - '0');
        for (; k < 9; k++)
            frac *= 10;
    }
    int64_t off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z'))
        i++;
    else if (i + 6 <= n && (s[i] == '+' || s[i] == '-')) {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || om < 0)
            return -1;
        off = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else
        return -1;
    if (i != n)
        return -1;
    int64_t secs =
        days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    *ns = secs * 1000000000 + frac;
    return 0;
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes the JSON string body at s (after the opening quote) into out; returns a pointer
 * past the closing quote, or NULL. */
static const char *json_string(const char *s, const char *end, struct vec *out)
{
    out->len = 0;
    for (;;) {
        const char *q = s;
        while (q < end && *q != '"' && *q != '\\')
            q++;
        vec_need(out, (size_t)(q - s) + 4);
        memcpy(out->p + out->len, s, (size_t)(q - s));
        out->len += (size_t)(q - s);
        if (q >= end)
            return NULL;
        if (*q == '"')
            return q + 1;
        if (q + 1 >= end)
            return NULL;
        char c = q[1];
        s = q + 2;
        uint8_t *o = out->p + out->len;
        switch (c) {
        case 'n': *o = '\n'; break;
        case 't': *o = '\t'; break;
        case 'r': *o = '\r'; break;
        case 'b': *o = '\b'; break;
        case 'f': *o = '\f'; break;
        case 'u': {
            if (end - s < 4)
                return NULL;
            unsigned cp = 0;
            for (int k = 0; k < 4; k++) {
                int v = hexval((unsigned char)s[k]);
                if (v < 0)
                    return NULL;
                cp = cp << 4 | (unsigned)v;
            }
            s += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && end - s >= 6 && s[0] == '\\' && s[1] == 'u') {
                unsigned lo = 0;
                for (int k = 0; k < 4; k++)
                    lo = lo << 4 | (unsigned)hexval((unsigned char)s[2 + k]);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    s += 6;
                }
            }
            if (cp < 0x80)
                *o++ = (uint8_t)cp;
            else if (cp < 0x800) {
                *o++ = (uint8_t)(0xc0 | cp >> 6);
                *o++ = (uint8_t)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                *o++ = (uint8_t)(0xe0 | cp >> 12);
                *o++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                *o++ = (uint8_t)(0x80 | (cp & 0x3f));
            } else {
                *o++ = (uint8_t)(0xf0 | cp >> 18);
                *o++ = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
                *o++ = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                *o++ = (uint8_t)(0x80 | (cp & 0x3f));
            }
            out->len = (size_t)(o - out->p);
            continue;
        }
        default: *o = (uint8_t)c; break;
        }
        out->len++;
    }
}

/* Finds `"key":"` in [s, end) and returns the position after its opening quote, or NULL. */
static const char *json_key(const char *s, const char *end, const char *key, size_t klen)
{
    while (s < end) {
        const char *q = memchr(s, '"', (size_t)(end - s));
        if (!q || (size_t)(end - q) < klen + 4)
            return NULL;
        if (memcmp(q + 1, key, klen) == 0 && q[klen + 1] == '"' && q[klen + 2] == ':' &&
            q[klen + 3] == '"')
            return q + klen + 4;
        s = q + 1;
    }
    return NULL;
}

enum mode { PLAIN, DOCKER, PIPELINE };

struct ctx {
    enum mode mode;
    struct batch b;
    int64_t last_ts;
    struct vec log, stream, tm;
    struct bt_refast *re;
    size_t bad;
};

static void line_plain(struct ctx *c, const char *line, size_t len, int64_t now)
{
    struct stream *s = c->b.n_streams ? &c->b.streams[0] : stream_get(&c->b, NULL, "", 0);
    int64_t ts = now > c->last_ts ? now : c->last_ts + 1;
    c->last_ts = ts;
    add(&c->b, s, ts, line, len);
}

static void line_docker(struct ctx *c, const char *line, size_t len)
{
    const char *end = line + len, *p;
    int64_t ts;
    /* json-file writes log, stream, time in this order; each is looked for after the last. */
    if (!(p = json_key(line, end, "log", 3)) || !(p = json_string(p, end, &c->log)) ||
        !(p = json_key(p, end, "stream", 6)) || !(p = json_string(p, end, &c->stream)) ||
        !(p = json_key(p, end, "time", 4)) || !(p = json_string(p, end, &c->tm)) ||
        parse_rfc3339((const char *)c->tm.p, c->tm.len, &ts)) {
        c->bad++;
        return;
    }
    struct stream *s = stream_get(&c->b, "stream", (const char *)c->stream.p, c->stream.len);
    add(&c->b, s, ts, c->log.p, c->log.len);
}

static void line_pipeline(struct ctx *c, const char *line, size_t len)
{
    ssize_t g[8];
    int64_t ts;
    if (bt_refast_match(c->re, line, len, g) != 1 || parse_rfc3339(line + g[2], g[3] - g[2], &ts)) {
        c->bad++;
        return;
    }
    struct stream *s = stream_get(&c->b, "app", line + g[4], g[5] - g[4]);
    add(&c->b, s, ts, line + g[6], g[7] - g[6]);
}

static void usage(void)
{
    fprintf(stderr, "usage: floor --url http://IP:PORT/PATH --file F --mode plain|docker|pipeline"
                    " [--label job=VALUE] [--batchsize N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *url = NULL, *mode = "plain";
    g.job = "bench";
    g.batchsize = 1048576;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--file") == 0)
            g.filename = argv[i + 1];
        else if (strcmp(argv[i], "--mode") == 0)
            mode = argv[i + 1];
        else if (strcmp(argv[i], "--label") == 0 && strncmp(argv[i + 1], "job=", 4) == 0)
            g.job = argv[i + 1] + 4;
        else if (strcmp(argv[i], "--batchsize") == 0)
            g.batchsize = strtoul(argv[i + 1], NULL, 10);
        else
            usage();
    }
    if (argc % 2 == 0 || !url || !g.filename || !g.batchsize)
        usage();
    if (strncmp(url, "http://", 7) != 0)
        usage();
    const char *hp = url + 7, *colon = strchr(hp, ':'), *slash = strchr(hp, '/');
    if (!colon || !slash || colon > slash || (size_t)(colon - hp) >= sizeof(g.host))
        usage();
    memcpy(g.host, hp, (size_t)(colon - hp));
    g.port = atoi(colon + 1);
    g.path = slash;

    static struct ctx c;
    if (strcmp(mode, "plain") == 0)
        c.mode = PLAIN;
    else if (strcmp(mode, "docker") == 0)
        c.mode = DOCKER;
    else if (strcmp(mode, "pipeline") == 0) {
        c.mode = PIPELINE;
        /* The scenario's pattern with only the groups the pipeline uses (time, app, msg)
         * capturing, matched the cheapest exact way this project has: util/refast, which
         * bpftail also uses for it (a line of bad UTF-8 it leaves undecided counts as bad). */
        c.re = bt_refast_new("^(\\S+) (?:\\S+) ([^\\[:]+)(?:\\[(?:\\d+)\\])?: (.*)$", 3);
        if (!c.re)
            die("regex did not compile");
    } else
        usage();

    int fd = open(g.filename, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("cannot open --file");
    connect_server();
    char *buf = malloc(READ_SIZE);
    if (!buf)
        die("out of memory");
    size_t have = 0, total = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, READ_SIZE - have);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("read failed");
        }
        if (n == 0)
            break;
        total += (size_t)n;
        have += (size_t)n;
        int64_t now = c.mode == PLAIN ? now_ns() : 0;
        char *p = buf, *end = buf + have, *nl;
        while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
            size_t len = (size_t)(nl - p);
            switch (c.mode) {
            case PLAIN: line_plain(&c, p, len, now); break;
            case DOCKER: line_docker(&c, p, len); break;
            case PIPELINE: line_pipeline(&c, p, len); break;
            }
            p = nl + 1;
        }
        have = (size_t)(end - p);
        if (have == READ_SIZE)
            die("line longer than the read buffer");
        memmove(buf, p, have);
    }
    flush(&c.b);
    printf("{\"lines\": %zu, \"bytes\": %zu, \"batches\": %zu, \"raw_bytes\": %zu, "
           "\"snappy_bytes\": %zu, \"bad\": %zu}\n",
           g.lines, total, g.batches, g.raw_bytes, g.comp_bytes, c.bad);
    close(g.fd);
    close(fd);
    return c.bad ? 1 : 0;
}
