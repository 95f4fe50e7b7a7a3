/* wire.c - daemon mode's frames decoded from memory (see relay.h). No
 * socket, request or interpreter here: relay.c reads the bytes and acts on
 * what these return, and tests/fuzz feeds them arbitrary bytes. Each end
 * trusts the other only within the protocol: a frame the other end could
 * not have built is rejected, never read past its end. */

/* Logs nothing and uses no httpd function, so the fuzz targets link it
 * with APR alone: no reference to the module record's log index. */
#define PYH_MODULE_RECORD_FILE
#include "relay.h"

#include <string.h>

int pyh_wire_header(const unsigned char *hdr, int *type, uint32_t *len)
{
    *type = hdr[0];
    memcpy(len, hdr + 4, 4);
    return *len > PYH_FRAME_MAX ? -1 : 0;
}

/* Walks the records of a payload: u32 length, u8 kind, the bytes, NUL.
 * Returns the next record's kind, -1 at the end, -2 on a malformed
 * payload; *value is the record's bytes, a C string exactly that long. */
static int wire_rec_next(const char **pp, const char *end,
                         const char **value)
{
    const char *p = *pp;
    uint32_t len;
    if (p == end)
        return -1;
    if (end - p < 6)
        return -2;
    memcpy(&len, p, 4);
    /* Written so that no sum can wrap, whatever len says. */
    if ((apr_size_t)(end - p) - 6 < (apr_size_t)len || p[5 + len] != '\0'
        || memchr(p + 5, '\0', len))
        return -2;
    *value = p + 5;
    *pp = p + 5 + len + 1;
    return (unsigned char)p[4];
}

int pyh_wire_parse_q(const char *payload, apr_size_t len, pyh_wire_q *q)
{
    const char *p, *end, *v, *name = NULL;
    int kind, value_kind = -1; /* a name was read: its value must follow */

    if (!payload || len < sizeof(q->fx))
        return -1;
    memcpy(&q->fx, payload, sizeof(q->fx));
    memset(q->vars, 0, sizeof(q->vars));
    q->filename = q->callable = q->app_group = q->uri = NULL;
    p = payload + sizeof(q->fx);
    end = payload + len;
    while ((kind = wire_rec_next(&p, end, &v)) >= 0) {
        if (value_kind >= 0) {
            if (kind != value_kind)
                return -1;
            apr_table_addn(kind == PYH_R_HEADER_VALUE ? q->headers_in
                                                      : q->subprocess_env,
                           name, v);
            value_kind = -1;
        }
        else if (kind < PYH_R_VAR + PYH_K_COUNT)
            q->vars[kind - PYH_R_VAR] = v;
        else if (kind == PYH_R_HEADER_NAME || kind == PYH_R_ENV_NAME) {
            name = v;
            value_kind = kind + 1;
        }
        else if (kind == PYH_R_FILENAME)
            q->filename = v;
        else if (kind == PYH_R_CALLABLE)
            q->callable = v;
        else if (kind == PYH_R_APP_GROUP)
            q->app_group = v;
        else if (kind == PYH_R_URI)
            q->uri = v;
        else
            return -1;
    }
    if (kind == -2 || value_kind >= 0 || !q->filename
        || !q->vars[PYH_K_REQUEST_METHOD])
        return -1;
    return 0;
}

/* A status either end may send: what an app may give (3 digits, no
 * leading 0) or what a handler returns for an error. */
static int wire_status_ok(int32_t status)
{
    return status >= 100 && status <= 999;
}

int pyh_wire_parse_h(const char *payload, apr_size_t len, pyh_wire_h *h)
{
    const char *p, *end, *v, *name = NULL;
    int kind;

    if (!payload || len < sizeof(h->fx))
        return -1;
    memcpy(&h->fx, payload, sizeof(h->fx));
    h->status_line = h->content_type = NULL;
    if (!wire_status_ok(h->fx.status))
        return -1;
    p = payload + sizeof(h->fx);
    end = payload + len;
    while ((kind = wire_rec_next(&p, end, &v)) >= 0) {
        if (name) {
            if (kind != PYH_R_HEADER_VALUE)
                return -1;
            apr_table_addn(h->headers, name, v);
            name = NULL;
        }
        else if (kind == PYH_R_HEADER_NAME)
            name = v;
        else if (kind == PYH_R_STATUS_LINE)
            h->status_line = v;
        else if (kind == PYH_R_CONTENT_TYPE)
            h->content_type = v;
        else
            return -1;
    }
    return kind == -2 || name ? -1 : 0;
}

int pyh_wire_parse_i(const char *payload, apr_size_t len,
                     apr_table_t *headers)
{
    const char *p = payload, *end = payload + len, *v, *name = NULL;
    int kind;
    if (!payload || !len)
        return -1;
    while ((kind = wire_rec_next(&p, end, &v)) >= 0) {
        if (name) {
            if (kind != PYH_R_HEADER_VALUE)
                return -1;
            apr_table_addn(headers, name, v);
            name = NULL;
        }
        else if (kind == PYH_R_HEADER_NAME)
            name = v;
        else
            return -1;
    }
    return kind == -2 || name ? -1 : 0;
}

int pyh_wire_resp_next(pyh_wire_resp *st, int type, uint32_t len)
{
    int first = !st->frames && !st->body_asked;
    st->frames++;
    /* The daemon's relay_out sends H before any other frame of a
     * response but A, and E, F, A and G carry nothing. */
    switch (type) {
    case PYH_F_GOODBYE:
        return first && !len ? PYH_WIRE_RETRY : PYH_WIRE_BAD;
    case PYH_F_READ:
        st->body_asked = 1;
        return len == 4 ? PYH_WIRE_OK : PYH_WIRE_BAD;
    case PYH_F_HEADERS: {
        int again = st->headers;
        st->headers = 1;
        return again || len < sizeof(pyh_h_fixed) ? PYH_WIRE_BAD : PYH_WIRE_OK;
    }
    case PYH_F_DATA:
        return st->headers ? PYH_WIRE_OK : PYH_WIRE_BAD;
    case PYH_F_FLUSH:
    case PYH_F_END:
        return st->headers && !len ? PYH_WIRE_OK : PYH_WIRE_BAD;
    case PYH_F_ABORT:
        return !len ? PYH_WIRE_OK : PYH_WIRE_BAD;
    case PYH_F_STATUS:
        return !st->headers && len == 4 ? PYH_WIRE_OK : PYH_WIRE_BAD;
    case PYH_F_INTERIM:
        return !st->headers && len ? PYH_WIRE_OK : PYH_WIRE_BAD;
    default:
        return PYH_WIRE_BAD;
    }
}

int pyh_wire_parse_s(const char *payload, apr_size_t len, int *status)
{
    int32_t st;
    if (!payload || len != sizeof(st))
        return -1;
    memcpy(&st, payload, sizeof(st));
    if (!wire_status_ok(st))
        return -1;
    *status = st;
    return 0;
}
