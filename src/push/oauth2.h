/*
 * oauth2: the OAuth 2.0 client-credentials grant for one push client (Prometheus' `oauth2`).
 *
 * The token is fetched from token_url with libcurl on the caller's thread (the client's push
 * thread), cached, and fetched again when it is less than 10 s from its expiry (as Go's oauth2
 * package does), when bt_oauth2_invalidate was called (Loki answered 401), or when the
 * client_secret_file holds another secret than the one the token was fetched with. Client
 * credentials go in an HTTP Basic header first; if the endpoint refuses them there, they are
 * sent in the form body and that choice is kept (Go's auto-detection). Answers are JSON
 * (access_token, token_type, expires_in), capped at 64 KiB.
 *
 * Not thread-safe: one owner thread. The config is borrowed for the object's lifetime.
 */
#ifndef BT_OAUTH2_H
#define BT_OAUTH2_H

#include <stddef.h>
#include <stdint.h>

struct bt_oauth2_config;
struct bt_oauth2;

/* Creates a token source. timeout_ns bounds one token request (0 = none); cancel, when it
 * returns nonzero, aborts a request in progress. NULL with errno on failure. */
struct bt_oauth2 *bt_oauth2_new(const struct bt_oauth2_config *cfg, int64_t timeout_ns,
                                int (*cancel)(void *ctx), void *ctx);
/* Writes "<type> <access token>" (the Authorization header value) into out, fetching a token
 * when needed. 0, or -errno with a one-line reason in err (-ECANCELED when cancelled). */
int bt_oauth2_header(struct bt_oauth2 *o, char *out, size_t outlen, char *err, size_t errlen);
/* Forgets the cached token, so the next bt_oauth2_header fetches a new one. */
void bt_oauth2_invalidate(struct bt_oauth2 *o);
/* Token requests made so far (tests, logs). */
uint64_t bt_oauth2_fetches(const struct bt_oauth2 *o);
void bt_oauth2_free(struct bt_oauth2 *o);

#endif
