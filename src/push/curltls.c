/* Prometheus' tls_config on a curl handle; see curltls.h. */
#include "push/curltls.h"

#include <string.h>

#include "config/config.h"

static long tls_version(const char *v)
{
    if (!v)
        return 0;
    if (strcmp(v, "TLS10") == 0)
        return CURL_SSLVERSION_TLSv1_0;
    if (strcmp(v, "TLS11") == 0)
        return CURL_SSLVERSION_TLSv1_1;
    if (strcmp(v, "TLS12") == 0)
        return CURL_SSLVERSION_TLSv1_2;
    return CURL_SSLVERSION_TLSv1_3;
}

static long tls_max_version(const char *v)
{
    if (!v)
        return CURL_SSLVERSION_MAX_DEFAULT;
    if (strcmp(v, "TLS10") == 0)
        return CURL_SSLVERSION_MAX_TLSv1_0;
    if (strcmp(v, "TLS11") == 0)
        return CURL_SSLVERSION_MAX_TLSv1_1;
    if (strcmp(v, "TLS12") == 0)
        return CURL_SSLVERSION_MAX_TLSv1_2;
    return CURL_SSLVERSION_MAX_TLSv1_3;
}

void bt_curl_set_tls(CURL *e, const struct bt_tls_config *t)
{
    if (t->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
    if (t->cert_file)
        curl_easy_setopt(e, CURLOPT_SSLCERT, t->cert_file);
    if (t->key_file)
        curl_easy_setopt(e, CURLOPT_SSLKEY, t->key_file);
    struct curl_blob ca = {t->ca, t->ca ? strlen(t->ca) : 0, CURL_BLOB_COPY};
    struct curl_blob cert = {t->cert, t->cert ? strlen(t->cert) : 0, CURL_BLOB_COPY};
    struct curl_blob key = {t->key, t->key ? strlen(t->key) : 0, CURL_BLOB_COPY};
    if (t->ca)
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
    if (t->cert) {
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (t->key) {
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (t->min_version || t->max_version)
        curl_easy_setopt(
            e, CURLOPT_SSLVERSION,
            (t->min_version ? tls_version(t->min_version) : (long)CURL_SSLVERSION_DEFAULT) |
                tls_max_version(t->max_version));
    if (t->insecure_skip_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}
