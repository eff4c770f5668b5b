#include "util/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>

struct bt_tls_ctx {
    SSL_CTX *ctx;
};

struct bt_tls {
    SSL *ssl;
    char err[160];
};

static void last_error(char *out, size_t outlen)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, out, outlen);
    else
        snprintf(out, outlen, "unknown error");
    ERR_clear_error();
}

struct bt_tls_ctx *bt_tls_server_new(const char *cert_file, const char *key_file,
                                     const char *ca_file, char *err, size_t errlen)
{
    char why[200];
    if (!cert_file || !cert_file[0] || !key_file || !key_file[0]) {
        snprintf(err, errlen, "tls: cert_file and key_file are required");
        return NULL;
    }
    struct bt_tls_ctx *c = calloc(1, sizeof(*c));
    if (!c || !(c->ctx = SSL_CTX_new(TLS_server_method()))) {
        snprintf(err, errlen, "tls: out of memory");
        free(c);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    /* No session tickets: a TLS 1.3 server sends them after the handshake, and a sender that
     * wrote its messages and closed at once (logger, a short-lived forwarder) makes that write
     * fail with EPIPE, which would end the connection before its bytes were read. */
    SSL_CTX_set_num_tickets(c->ctx, 0);
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_TICKET);
    if (SSL_CTX_use_certificate_chain_file(c->ctx, cert_file) != 1) {
        last_error(why, sizeof(why));
        snprintf(err, errlen, "tls: cert_file %s: %s", cert_file, why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c->ctx) != 1) {
        last_error(why, sizeof(why));
        snprintf(err, errlen, "tls: key_file %s: %s", key_file, why);
        goto fail;
    }
    if (ca_file && ca_file[0]) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        if (SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1 || !names) {
            last_error(why, sizeof(why));
            snprintf(err, errlen, "tls: ca_file %s: %s", ca_file, why);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(c->ctx, names);
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return c;
fail:
    bt_tls_ctx_free(c);
    return NULL;
}

void bt_tls_ctx_free(struct bt_tls_ctx *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ctx);
    free(c);
}

struct bt_tls *bt_tls_accept(struct bt_tls_ctx *c, int fd)
{
    struct bt_tls *t = calloc(1, sizeof(*t));
    if (!t || !(t->ssl = SSL_new(c->ctx)) || SSL_set_fd(t->ssl, fd) != 1) {
        if (t)
            SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(t->ssl);
    return t;
}

void bt_tls_free(struct bt_tls *t)
{
    if (!t)
        return;
    SSL_free(t->ssl);
    free(t);
}

ssize_t bt_tls_read(struct bt_tls *t, void *buf, size_t n)
{
    size_t got = 0;
    int rc = SSL_read_ex(t->ssl, buf, n, &got);
    if (rc == 1)
        return (ssize_t)got;
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ: return -EAGAIN;
    case SSL_ERROR_WANT_WRITE: return -ENOBUFS;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            ERR_clear_error();
            return 0; /* the peer went away without close_notify */
        }
        /* fall through */
    default: last_error(t->err, sizeof(t->err)); return -EPROTO;
    }
}

bool bt_tls_pending(const struct bt_tls *t)
{
    return SSL_pending(t->ssl) > 0;
}

const char *bt_tls_error(const struct bt_tls *t)
{
    return t->err[0] ? t->err : "";
}
