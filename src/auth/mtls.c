/*
 * The "mtls" authentication method (method.h): the client certificate the
 * listener verified in the TLS handshake (portico/client_cert.h) is the
 * credential. The route's auth.mtls_identity picks the field that becomes
 * the subject and the client id:
 *
 *   subject_cn (default)  the subject's most specific CN
 *   san_dns, san_uri, san_email   the first subjectAltName of that kind
 *   subject               the whole subject DN (RFC 2253)
 *   fingerprint           the SHA-256 of the certificate (hex)
 *
 * No certificate: ABSENT. A certificate marked incomplete (a value was
 * left out: too long, odd bytes, too many SANs) is refused when the field
 * is a name: "not listed" must not be read as "not there". A certificate
 * without the chosen field is refused too.
 */
#include <string.h>

#include "auth/auth_int.h"
#include "core/arena.h"

int pt_auth_mtls_field_parse(const char *s, enum pt_auth_mtls_field *out)
{
    static const char *const names[] = {"subject_cn", "san_dns", "san_uri",
                                        "san_email",  "subject", "fingerprint"};
    *out = PT_AUTH_MTLS_SUBJECT_CN;
    if (!s || !*s)
        return 0;
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum pt_auth_mtls_field)i;
            return 0;
        }
    return -1;
}

static json_t *str_list(const struct pt_str *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_stringn(v[i].ptr, v[i].len));
    return a;
}

/* The certificate as claims, for claim_headers and rules. */
static json_t *cert_claims(const struct pt_client_cert *cc, struct pt_str sub)
{
    json_t *c = json_object();
    json_object_set_new(c, "sub", json_stringn(sub.ptr, sub.len));
    json_object_set_new(c, "subject", json_stringn(cc->subject.ptr, cc->subject.len));
    json_object_set_new(c, "issuer", json_stringn(cc->issuer.ptr, cc->issuer.len));
    json_object_set_new(c, "common_name", json_stringn(cc->common_name.ptr, cc->common_name.len));
    json_object_set_new(c, "serial", json_stringn(cc->serial.ptr, cc->serial.len));
    json_object_set_new(c, "sha256", json_stringn(cc->sha256.ptr, cc->sha256.len));
    json_object_set_new(c, "dns_names", str_list(cc->dns_names, cc->n_dns_names));
    json_object_set_new(c, "uris", str_list(cc->uris, cc->n_uris));
    json_object_set_new(c, "emails", str_list(cc->emails, cc->n_emails));
    return c;
}

static enum pt_auth_status refuse(struct pt_auth_result *out, const char *reason)
{
    out->reason = reason;
    out->description = PT_STR("client certificate not accepted");
    return PT_AUTH_FAIL;
}

static enum pt_auth_status mtls_authenticate(struct pt_auth_call *call, struct pt_auth_result *out)
{
    const struct pt_client_cert *cc;
    if (!pt_exchange_client_cert(call->x, &cc) || !cc)
        return PT_AUTH_ABSENT;
    if (!cc->verified)
        return refuse(out, "mtls: certificate not verified");
    enum pt_auth_mtls_field f = call->route ? call->route->mtls_identity : PT_AUTH_MTLS_SUBJECT_CN;
    if (cc->incomplete && f != PT_AUTH_MTLS_FINGERPRINT)
        return refuse(out, "mtls: certificate incomplete (a name was too long or malformed)");
    struct pt_str v = PT_STR_NULL;
    switch (f) {
    case PT_AUTH_MTLS_SUBJECT_CN:
        v = cc->common_name;
        break;
    case PT_AUTH_MTLS_SAN_DNS:
        v = cc->n_dns_names ? cc->dns_names[0] : PT_STR_NULL;
        break;
    case PT_AUTH_MTLS_SAN_URI:
        v = cc->n_uris ? cc->uris[0] : PT_STR_NULL;
        break;
    case PT_AUTH_MTLS_SAN_EMAIL:
        v = cc->n_emails ? cc->emails[0] : PT_STR_NULL;
        break;
    case PT_AUTH_MTLS_SUBJECT:
        v = cc->subject;
        break;
    case PT_AUTH_MTLS_FINGERPRINT:
        v = cc->sha256;
        break;
    }
    if (!v.len)
        return refuse(out, "mtls: the certificate has no value for mtls_identity");
    json_t *claims = cert_claims(cc, v);
    struct pt_auth_id_fields fields = {
        .method = "mtls",
        .subject = v,
        .client_id = v,
        .credential = cc->sha256,
        .claims = claims,
    };
    const struct pt_identity_full *id = pt_auth_identity_in_exchange(call->x, &fields);
    if (!id) {
        json_decref(claims);
        out->reason = "mtls: the identity does not fit the exchange's memory";
        out->error = PT_ERR_HEADERS_TOO_LARGE;
        return PT_AUTH_FAIL;
    }
    out->id = id;
    out->claims = claims;
    out->claims_owned = true;
    return PT_AUTH_OK;
}

const struct pt_auth_method pt_auth_method_mtls = {
    .name = "mtls",
    .scheme = "Certificate", /* no registered scheme exists; the challenge names what is missing */
    .authenticate = mtls_authenticate,
};
