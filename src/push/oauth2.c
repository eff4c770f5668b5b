/* OAuth 2.0 client-credentials tokens for a push client; see oauth2.h. */
#include "push/oauth2.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"
#include "push/curltls.h"
#include "util/buf.h"
#include "util/secretfile.h"
#include "util/timeutil.h"

#define MAX_ANSWER (64u << 10)
#define MAX_SECRET (64u << 10)
#define MAX_TOKEN 8192
#define EXPIRY_DELTA_NS (10 * BT_NS_PER_SEC) /* Go's oauth2 refreshes this early */

enum auth_style { STYLE_UNKNOWN, STYLE_HEADER, STYLE_PARAMS };

struct bt_oauth2 {
    const struct bt_oauth2_config *cfg;
    int64_t timeout_ns;
    int (*cancel)(void *ctx);
    void *ctx;
    CURL *curl;
    enum auth_style style;
    bool have_token;
    int64_t expiry_mono_ns; /* 0 = the token does not expire */
    char header[MAX_TOKEN + 64];
    char *secret_used; /* the secret the cached token was fetched with */
    struct bt_buf answer;
    uint64_t fetches;
};

static int on_progress(void *ctx, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    struct bt_oauth2 *o = ctx;
    return o->cancel && o->cancel(o->ctx) ? 1 : 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
    struct bt_oauth2 *o = ctx;
    size_t n = size * nmemb;
    if (bt_buf_add(&o->answer, p, n) < 0)
        return 0; /* past the cap: curl fails the transfer */
    return n;
}

struct bt_oauth2 *bt_oauth2_new(const struct bt_oauth2_config *cfg, int64_t timeout_ns,
                                int (*cancel)(void *ctx), void *ctx)
{
    struct bt_oauth2 *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->cfg = cfg;
    o->timeout_ns = timeout_ns;
    o->cancel = cancel;
    o->ctx = ctx;
    bt_buf_init(&o->answer, MAX_ANSWER);
    o->curl = curl_easy_init();
    if (!o->curl) {
        bt_oauth2_free(o);
        errno = ENOMEM;
        return NULL;
    }
    return o;
}

void bt_oauth2_free(struct bt_oauth2 *o)
{
    if (!o)
        return;
    if (o->curl)
        curl_easy_cleanup(o->curl);
    bt_buf_free(&o->answer);
    free(o->secret_used);
    free(o);
}

void bt_oauth2_invalidate(struct bt_oauth2 *o)
{
    o->have_token = false;
}

uint64_t bt_oauth2_fetches(const struct bt_oauth2 *o)
{
    return o->fetches;
}

/* Appends "&name=value" (form-encoded) to the body. */
static int form_add(CURL *e, struct bt_buf *b, const char *name, const char *value)
{
    char *v = curl_easy_escape(e, value, 0);
    if (!v)
        return -ENOMEM;
    int rc = bt_buf_addf(b, "%s%s=%s", b->len ? "&" : "", name, v);
    curl_free(v);
    return rc < 0 ? rc : 0;
}

static int build_form(struct bt_oauth2 *o, const char *secret, bool creds_in_body,
                      struct bt_buf *form)
{
    const struct bt_oauth2_config *cfg = o->cfg;
    int rc = form_add(o->curl, form, "grant_type", "client_credentials");
    if (!rc && cfg->n_scopes) {
        struct bt_buf sc;
        bt_buf_init(&sc, MAX_ANSWER);
        for (size_t i = 0; i < cfg->n_scopes && !rc; i++)
            rc = bt_buf_addf(&sc, "%s%s", i ? " " : "", cfg->scopes[i]) < 0 ? -ENOMEM : 0;
        if (!rc)
            rc = form_add(o->curl, form, "scope", bt_buf_str(&sc));
        bt_buf_free(&sc);
    }
    for (size_t i = 0; i < cfg->n_params && !rc; i++)
        rc = form_add(o->curl, form, cfg->params[i].name, cfg->params[i].value);
    if (!rc && creds_in_body) {
        rc = form_add(o->curl, form, "client_id", cfg->client_id ? cfg->client_id : "");
        rc = rc ? rc : form_add(o->curl, form, "client_secret", secret);
    }
    return rc;
}

/* Basic credentials as Go's oauth2 sends them: both parts form-escaped first. */
static int set_basic(struct bt_oauth2 *o, const char *secret)
{
    char *u = curl_easy_escape(o->curl, o->cfg->client_id ? o->cfg->client_id : "", 0);
    char *p = curl_easy_escape(o->curl, secret, 0);
    int rc = u && p ? 0 : -ENOMEM;
    if (!rc) {
        curl_easy_setopt(o->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(o->curl, CURLOPT_USERNAME, u);
        curl_easy_setopt(o->curl, CURLOPT_PASSWORD, p);
    }
    curl_free(u);
    curl_free(p);
    return rc;
}

/* One token request. Returns the HTTP status (answer in o->answer), or -errno with err set. */
static int request(struct bt_oauth2 *o, const char *secret, bool creds_in_body, char *err,
                   size_t errlen)
{
    const struct bt_oauth2_config *cfg = o->cfg;
    CURL *e = o->curl;
    char cerr[CURL_ERROR_SIZE] = "";
    struct bt_buf form;
    bt_buf_init(&form, MAX_ANSWER);
    bt_buf_reset(&o->answer);
    curl_easy_reset(e);
    int rc = build_form(o, secret, creds_in_body, &form);
    if (!rc && !creds_in_body)
        rc = set_basic(o, secret);
    if (rc) {
        snprintf(err, errlen, "oauth2: cannot build the token request: %s", strerror(-rc));
        bt_buf_free(&form);
        return rc;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    struct curl_slist *h2 =
        h ? curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded") : NULL;
    if (!h2) {
        curl_slist_free_all(h);
        bt_buf_free(&form);
        snprintf(err, errlen, "oauth2: out of memory");
        return -ENOMEM;
    }
    curl_easy_setopt(e, CURLOPT_URL, cfg->token_url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h2);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, bt_buf_str(&form));
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)form.len);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "bpftail/" BT_VERSION);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, o);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, o);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    if (o->timeout_ns > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(o->timeout_ns / BT_NS_PER_MS));
    if (cfg->proxy_url)
        curl_easy_setopt(e, CURLOPT_PROXY, cfg->proxy_url);
    else if (!cfg->proxy_from_environment)
        curl_easy_setopt(e, CURLOPT_PROXY, "");
    if (cfg->no_proxy)
        curl_easy_setopt(e, CURLOPT_NOPROXY, cfg->no_proxy);
    bt_curl_set_tls(e, &cfg->tls);
    o->fetches++;
    CURLcode res = curl_easy_perform(e);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h2);
    bt_buf_free(&form);
    if (res == CURLE_ABORTED_BY_CALLBACK) {
        snprintf(err, errlen, "oauth2: token request cancelled");
        return -ECANCELED;
    }
    if (res != CURLE_OK) {
        snprintf(err, errlen, "oauth2: token request to %s failed: %s", cfg->token_url,
                 cerr[0] ? cerr : curl_easy_strerror(res));
        return -EIO;
    }
    return (int)code;
}

/* Go's token types: "bearer" (any case) and "" are Bearer; mac and basic are capitalised. */
static const char *token_type(const char *t)
{
    if (!t || !*t || strcasecmp(t, "bearer") == 0)
        return "Bearer";
    if (strcasecmp(t, "mac") == 0)
        return "MAC";
    if (strcasecmp(t, "basic") == 0)
        return "Basic";
    return t;
}

static int parse_answer(struct bt_oauth2 *o, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(o->answer.ptr ? o->answer.ptr : "", o->answer.len, 0, &je);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        snprintf(err, errlen, "oauth2: the token endpoint did not answer a JSON object");
        return -EPROTO;
    }
    const char *tok = json_string_value(json_object_get(root, "access_token"));
    const char *type = json_string_value(json_object_get(root, "token_type"));
    json_t *exp = json_object_get(root, "expires_in");
    int rc = 0;
    if (!tok || !*tok) {
        snprintf(err, errlen, "oauth2: the token endpoint answered no access_token");
        rc = -EPROTO;
    } else if (strlen(tok) > MAX_TOKEN || strpbrk(tok, "\r\n") ||
               (type && (strlen(type) > 32 || strpbrk(type, "\r\n ")))) {
        snprintf(err, errlen, "oauth2: the token endpoint answered an unusable token");
        rc = -EPROTO;
    } else {
        double secs = 0;
        if (json_is_number(exp))
            secs = json_number_value(exp);
        else if (json_is_string(exp))
            secs = strtod(json_string_value(exp), NULL); /* some servers quote it */
        o->expiry_mono_ns = 0;
        if (secs > 0 && secs < 1e9)
            o->expiry_mono_ns = bt_mono_ns() + (int64_t)(secs * BT_NS_PER_SEC);
        snprintf(o->header, sizeof(o->header), "%s %s", token_type(type), tok);
        o->have_token = true;
    }
    json_decref(root);
    return rc;
}

static void first_line(const struct bt_buf *b, char *out, size_t outlen)
{
    size_t n = b->len;
    const char *s = b->ptr ? b->ptr : "";
    const char *nl = memchr(s, '\n', n);
    if (nl)
        n = (size_t)(nl - s);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static int fetch(struct bt_oauth2 *o, const char *secret, char *err, size_t errlen)
{
    int status = 0;
    /* Auto-detection: header first; a refusal there is retried with the credentials in the
     * body, and whichever worked is kept. */
    for (int pass = 0; pass < 2; pass++) {
        bool in_body = o->style == STYLE_PARAMS || (o->style == STYLE_UNKNOWN && pass == 1);
        status = request(o, secret, in_body, err, errlen);
        if (status < 0)
            return status;
        if (status >= 200 && status < 300) {
            if (o->style == STYLE_UNKNOWN)
                o->style = in_body ? STYLE_PARAMS : STYLE_HEADER;
            return parse_answer(o, err, errlen);
        }
        if (o->style != STYLE_UNKNOWN)
            break;
    }
    char line[256];
    first_line(&o->answer, line, sizeof(line));
    snprintf(err, errlen, "oauth2: token endpoint %s answered %d: %s", o->cfg->token_url, status,
             line);
    return -EACCES;
}

int bt_oauth2_header(struct bt_oauth2 *o, char *out, size_t outlen, char *err, size_t errlen)
{
    const struct bt_oauth2_config *cfg = o->cfg;
    char *secret = malloc(MAX_SECRET + 1);
    if (!secret) {
        snprintf(err, errlen, "oauth2: out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    if (cfg->client_secret_file) {
        rc = bt_read_secret(cfg->client_secret_file, secret, MAX_SECRET + 1);
        if (rc) {
            snprintf(err, errlen, "oauth2: cannot read client_secret_file %s: %s",
                     cfg->client_secret_file, strerror(-rc));
            goto out;
        }
    } else {
        snprintf(secret, MAX_SECRET + 1, "%s", cfg->client_secret ? cfg->client_secret : "");
    }
    /* A new secret in the file means a new token, as Prometheus does. */
    if (o->have_token && o->secret_used && strcmp(o->secret_used, secret) != 0)
        o->have_token = false;
    if (o->have_token && o->expiry_mono_ns && bt_mono_ns() > o->expiry_mono_ns - EXPIRY_DELTA_NS)
        o->have_token = false;
    if (!o->have_token) {
        if ((rc = fetch(o, secret, err, errlen)))
            goto out;
        free(o->secret_used);
        o->secret_used = strdup(secret);
    }
    if (strlen(o->header) >= outlen) {
        snprintf(err, errlen, "oauth2: token too long");
        rc = -E2BIG;
        goto out;
    }
    memcpy(out, o->header, strlen(o->header) + 1);
out:
    memset(secret, 0, MAX_SECRET + 1);
    free(secret);
    return rc;
}
