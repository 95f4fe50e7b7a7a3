/* websocket.c - the sans-I/O WebSocket server protocol (websocket.h): frame
 * parsing with RFC 6455's checks, message reassembly, UTF-8 validation,
 * the close handshake, ping/pong and permessage-deflate (RFC 7692).
 * Plain C and zlib only: libFuzzer drives it as it is. */
#include "websocket.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    unsigned char *p;
    size_t len, cap;
} ws_buf;

typedef struct {
    unsigned need;         /* continuation bytes still expected */
    unsigned char lo, hi;  /* bounds of the next byte */
} ws_utf8;

struct pyh_ws {
    pyh_ws_state state;
    size_t max_message;
    ws_buf in;          /* received, not yet parsed from in_pos on */
    size_t in_pos;
    ws_buf out;         /* frames to send, not yet written from out_pos on */
    size_t out_pos;
    ws_buf msg;         /* the fragmented or decompressed message so far */
    ws_buf scratch;     /* compressed payload on its way out */
    int in_message;     /* a fragmented data message is under way */
    int msg_opcode;
    int msg_compressed;
    size_t msg_wire;    /* payload bytes received for it, compressed */
    ws_utf8 utf8;
    int eof;            /* the client's side ended */
    int finished;       /* the final event (CLOSE/ERROR/EOF) was given */
    int oom;            /* an allocation failed: fail with 1011 */
    pyh_ws_pmd pmd;
    int inflate_ready, deflate_ready;
    z_stream inflater, deflater;
};

/* ---- buffers ---- */

static int ws_buf_reserve(ws_buf *b, size_t extra)
{
    size_t want, cap;
    unsigned char *p;
    if (extra > SIZE_MAX - b->len)
        return -1;
    want = b->len + extra;
    if (want <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int ws_buf_append(ws_buf *b, const void *data, size_t len)
{
    if (ws_buf_reserve(b, len) < 0)
        return -1;
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

/* ---- UTF-8, incremental so a text message can be checked (and failed
 * fast) fragment by fragment (RFC 3629's table of well-formed bytes) ---- */

static void ws_utf8_reset(ws_utf8 *u)
{
    u->need = 0;
    u->lo = 0x80;
    u->hi = 0xBF;
}

static int ws_utf8_feed(ws_utf8 *u, const unsigned char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char b = p[i];
        if (u->need) {
            if (b < u->lo || b > u->hi)
                return 0;
            u->need--;
            u->lo = 0x80;
            u->hi = 0xBF;
            continue;
        }
        if (b < 0x80)
            continue;
        if (b >= 0xC2 && b <= 0xDF)
            u->need = 1;
        else if (b == 0xE0) {
            u->need = 2;
            u->lo = 0xA0; /* no overlong forms */
        }
        else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
            u->need = 2;
        else if (b == 0xED) {
            u->need = 2;
            u->hi = 0x9F; /* no surrogates */
        }
        else if (b == 0xF0) {
            u->need = 3;
            u->lo = 0x90;
        }
        else if (b >= 0xF1 && b <= 0xF3)
            u->need = 3;
        else if (b == 0xF4) {
            u->need = 3;
            u->hi = 0x8F; /* nothing past U+10FFFF */
        }
        else
            return 0;
    }
    return 1;
}

int pyh_ws_utf8_valid(const void *data, size_t len)
{
    ws_utf8 u;
    ws_utf8_reset(&u);
    return ws_utf8_feed(&u, data, len) && u.need == 0;
}

int pyh_ws_close_code_valid(int code)
{
    if (code >= 3000 && code <= 4999)
        return 1; /* registered and private use */
    switch (code) {
    case 1000: case 1001: case 1002: case 1003:
    case 1007: case 1008: case 1009: case 1010: case 1011:
    case 1012: case 1013: case 1014: /* IANA's additions */
        return 1;
    default:
        return 0; /* 1004-1006, 1015 and the rest may not be sent */
    }
}

/* ---- life cycle ---- */

pyh_ws *pyh_ws_new(size_t max_message, const pyh_ws_pmd *pmd)
{
    pyh_ws *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->state = PYH_WS_OPEN;
    ws->max_message = max_message ? max_message : PYH_WS_DEFAULT_MAX_MESSAGE;
    ws_utf8_reset(&ws->utf8);
    if (pmd && pmd->enabled) {
        int bits = pmd->server_max_window_bits;
        ws->pmd = *pmd;
        if (bits < 9 || bits > 15)
            bits = 15; /* 0: not limited; zlib cannot make an 8-bit window
                          and negotiate() never agrees to one */
        ws->pmd.server_max_window_bits = bits;
        /* Raw deflate (negative window bits): RFC 7692 has no zlib header.
         * The inflater takes the largest window: it reads any smaller. */
        if (inflateInit2(&ws->inflater, -15) != Z_OK)
            goto fail;
        ws->inflate_ready = 1;
        if (deflateInit2(&ws->deflater, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                         -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            goto fail;
        ws->deflate_ready = 1;
    }
    return ws;
fail:
    pyh_ws_free(ws);
    return NULL;
}

void pyh_ws_free(pyh_ws *ws)
{
    if (!ws)
        return;
    if (ws->inflate_ready)
        inflateEnd(&ws->inflater);
    if (ws->deflate_ready)
        deflateEnd(&ws->deflater);
    free(ws->in.p);
    free(ws->out.p);
    free(ws->msg.p);
    free(ws->scratch.p);
    free(ws);
}

pyh_ws_state pyh_ws_get_state(const pyh_ws *ws)
{
    return ws->state;
}

/* ---- output ---- */

static int ws_queue_frame(pyh_ws *ws, int opcode, int rsv1,
                          const unsigned char *payload, size_t len)
{
    unsigned char hdr[10];
    size_t n = 2;
    hdr[0] = (unsigned char)(0x80 | (rsv1 ? 0x40 : 0) | opcode);
    if (len < 126)
        hdr[1] = (unsigned char)len;
    else if (len <= 0xFFFF) {
        hdr[1] = 126;
        hdr[2] = (unsigned char)(len >> 8);
        hdr[3] = (unsigned char)len;
        n = 4;
    }
    else {
        uint64_t l = (uint64_t)len;
        int i;
        hdr[1] = 127;
        for (i = 0; i < 8; i++)
            hdr[2 + i] = (unsigned char)(l >> (56 - 8 * i));
        n = 10;
    }
    /* Server frames are never masked (RFC 6455 5.1). */
    if (ws_buf_reserve(&ws->out, n + len) < 0) {
        ws->oom = 1;
        return -1;
    }
    ws_buf_append(&ws->out, hdr, n);
    ws_buf_append(&ws->out, payload, len);
    return 0;
}

static int ws_queue_close(pyh_ws *ws, int code, const char *reason, size_t len)
{
    unsigned char payload[125];
    size_t n = 0;
    if (code != PYH_WS_CLOSE_NO_STATUS) {
        if (len > 123)
            len = 123;
        payload[0] = (unsigned char)(code >> 8);
        payload[1] = (unsigned char)code;
        if (len)
            memcpy(payload + 2, reason, len);
        n = 2 + len;
    }
    return ws_queue_frame(ws, 0x8, 0, payload, n);
}

/* Deflate one message into ws->scratch (RFC 7692 7.2.1: a sync flush,
 * then the trailing 00 00 ff ff dropped). */
static int ws_deflate_message(pyh_ws *ws, const unsigned char *data, size_t len)
{
    z_stream *z = &ws->deflater;
    int rc;
    ws->scratch.len = 0;
    z->next_in = (Bytef *)data;
    z->avail_in = 0;
    for (;;) {
        uInt before;
        size_t room;
        /* zlib counts in uInt: feed very large messages in pieces. */
        if (z->avail_in == 0 && len) {
            uInt piece = len > 0x40000000u ? 0x40000000u : (uInt)len;
            z->avail_in = piece;
            len -= piece;
        }
        if (ws_buf_reserve(&ws->scratch, 16384) < 0)
            return -1;
        room = ws->scratch.cap - ws->scratch.len;
        z->next_out = ws->scratch.p + ws->scratch.len;
        z->avail_out = before = (uInt)(room > 0x40000000u ? 0x40000000u : room);
        rc = deflate(z, len ? Z_NO_FLUSH : Z_SYNC_FLUSH);
        ws->scratch.len += before - z->avail_out;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -1;
        if (!len && !z->avail_in && z->avail_out)
            break; /* all in, flushed, and zlib had room to spare */
    }
    if (ws->scratch.len >= 4 &&
        memcmp(ws->scratch.p + ws->scratch.len - 4, "\0\0\xff\xff", 4) == 0)
        ws->scratch.len -= 4;
    if (ws->pmd.server_no_context_takeover && deflateReset(z) != Z_OK)
        return -1;
    return 0;
}

int pyh_ws_send_message(pyh_ws *ws, int binary, const void *data, size_t len)
{
    if (ws->state != PYH_WS_OPEN)
        return -1;
    if (!binary && !pyh_ws_utf8_valid(data, len))
        return -1;
    if (ws->pmd.enabled) {
        if (ws_deflate_message(ws, data, len) < 0) {
            ws->oom = 1;
            return -1;
        }
        return ws_queue_frame(ws, binary ? 0x2 : 0x1, 1, ws->scratch.p,
                              ws->scratch.len);
    }
    return ws_queue_frame(ws, binary ? 0x2 : 0x1, 0, data, len);
}

int pyh_ws_send_ping(pyh_ws *ws, const void *data, size_t len)
{
    if (ws->state != PYH_WS_OPEN || len > 125)
        return -1;
    return ws_queue_frame(ws, 0x9, 0, data, len);
}

int pyh_ws_send_close(pyh_ws *ws, int code, const char *reason, size_t len)
{
    if (ws->state != PYH_WS_OPEN)
        return -1;
    if (code != PYH_WS_CLOSE_NO_STATUS) {
        if (!pyh_ws_close_code_valid(code) || len > 123 ||
            !pyh_ws_utf8_valid(reason, len))
            return -1;
    }
    else if (len)
        return -1; /* a reason needs a code */
    if (ws_queue_close(ws, code, reason, len) < 0)
        return -1;
    ws->state = PYH_WS_CLOSING;
    return 0;
}

const unsigned char *pyh_ws_output(const pyh_ws *ws, size_t *len)
{
    *len = ws->out.len - ws->out_pos;
    return ws->out.p ? ws->out.p + ws->out_pos : (const unsigned char *)"";
}

void pyh_ws_output_consumed(pyh_ws *ws, size_t n)
{
    if (n > ws->out.len - ws->out_pos)
        n = ws->out.len - ws->out_pos;
    ws->out_pos += n;
    if (ws->out_pos == ws->out.len)
        ws->out.len = ws->out_pos = 0;
}

/* ---- input ---- */

int pyh_ws_feed(pyh_ws *ws, const void *data, size_t len)
{
    if (ws->finished || ws->eof)
        return 0; /* nothing more is parsed: drop it */
    if (ws->in_pos) {
        memmove(ws->in.p, ws->in.p + ws->in_pos, ws->in.len - ws->in_pos);
        ws->in.len -= ws->in_pos;
        ws->in_pos = 0;
    }
    if (ws_buf_append(&ws->in, data, len) < 0) {
        ws->oom = 1;
        return -1;
    }
    return 0;
}

void pyh_ws_feed_eof(pyh_ws *ws)
{
    ws->eof = 1;
}

/* Fail the connection (RFC 6455 7.1.7): our close frame with the code, no
 * more parsing. */
static int ws_fail(pyh_ws *ws, pyh_ws_event *ev, int code, const char *why)
{
    if (ws->state == PYH_WS_OPEN)
        ws_queue_close(ws, code, NULL, 0);
    ws->state = PYH_WS_CLOSED;
    ws->finished = 1;
    memset(ev, 0, sizeof(*ev));
    ev->type = PYH_WS_EV_ERROR;
    ev->code = code;
    ev->error = why;
    return 1;
}

/* Inflate a frame's payload onto ws->msg, never past max_message + 1
 * bytes (one more than allowed is how "too big" shows). Returns 0, -1 for
 * corrupt data, -2 for too big, -3 out of memory. */
static int ws_inflate(pyh_ws *ws, const unsigned char *data, size_t len)
{
    z_stream *z = &ws->inflater;
    size_t limit = ws->max_message + 1;
    z->next_in = (Bytef *)data;
    z->avail_in = 0;
    for (;;) {
        int rc;
        size_t room;
        uInt before;
        if (z->avail_in == 0 && len) {
            uInt piece = len > 0x40000000u ? 0x40000000u : (uInt)len;
            z->avail_in = piece;
            len -= piece;
        }
        if (ws->msg.len >= limit)
            return -2;
        room = limit - ws->msg.len;
        if (room > 65536)
            room = 65536;
        if (ws_buf_reserve(&ws->msg, room) < 0)
            return -3;
        z->next_out = ws->msg.p + ws->msg.len;
        z->avail_out = before = (uInt)room;
        rc = inflate(z, Z_SYNC_FLUSH);
        ws->msg.len += before - z->avail_out;
        if (rc == Z_STREAM_END) {
            /* The client ended its deflate stream (BFINAL): whatever
             * follows in this message is not deflate data; the next
             * message starts a new stream. */
            if (inflateReset(z) != Z_OK)
                return -3;
            return ws->msg.len >= limit ? -2 : 0;
        }
        if (rc == Z_BUF_ERROR && before == z->avail_out && z->avail_in)
            return -1; /* no progress with input left */
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return rc == Z_MEM_ERROR ? -3 : -1;
        if (ws->msg.len >= limit)
            return -2;
        if (!len && !z->avail_in && z->avail_out)
            return 0; /* all in, and zlib had room to spare: all out */
    }
}

static const unsigned char ws_deflate_tail[4] = {0x00, 0x00, 0xff, 0xff};

int pyh_ws_next_event(pyh_ws *ws, pyh_ws_event *ev)
{
    for (;;) {
        unsigned char *p, *payload;
        size_t avail, hdr, i;
        uint64_t plen;
        int fin, rsv1, opcode, len7;

        if (ws->finished)
            return 0;
        if (ws->oom)
            return ws_fail(ws, ev, PYH_WS_CLOSE_INTERNAL_ERROR, "out of memory");
        avail = ws->in.len - ws->in_pos;
        if (avail < 2)
            goto need_more; /* before any input, in.p is NULL: no p yet */
        p = ws->in.p + ws->in_pos;
        fin = p[0] & 0x80;
        rsv1 = p[0] & 0x40;
        opcode = p[0] & 0x0F;
        len7 = p[1] & 0x7F;
        /* Everything checkable from the first two bytes is checked before
         * waiting for more, so a bad frame fails at once. */
        if (p[0] & 0x30)
            return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                           "RSV2/RSV3 set without an extension for them");
        if (!(p[1] & 0x80))
            return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                           "unmasked client frame");
        if ((opcode >= 0x3 && opcode <= 0x7) || opcode >= 0xB)
            return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                           "reserved opcode");
        if (opcode & 0x8) {
            if (!fin)
                return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                               "fragmented control frame");
            if (len7 > 125)
                return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                               "control frame over 125 bytes");
            if (rsv1)
                return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                               "RSV1 on a control frame");
        }
        else if (opcode == 0x0) {
            if (!ws->in_message)
                return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                               "continuation frame without a message");
            if (rsv1)
                return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                               "RSV1 on a continuation frame");
        }
        else {
            if (ws->in_message)
                return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                               "new message inside a fragmented one");
            if (rsv1 && !ws->pmd.enabled)
                return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                               "RSV1 set without permessage-deflate");
        }
        hdr = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
        if (avail < hdr)
            goto need_more;
        if (len7 == 126)
            plen = ((uint64_t)p[2] << 8) | p[3];
        else if (len7 == 127) {
            if (p[2] & 0x80)
                return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                               "64-bit length with its top bit set");
            plen = 0;
            for (i = 0; i < 8; i++)
                plen = (plen << 8) | p[2 + i];
        }
        else
            plen = (uint64_t)len7;
        if (!(opcode & 0x8)) {
            /* Data: the limit holds for the bytes on the wire too (with a
             * little slack for deflate's overhead), so a huge frame fails
             * before it is buffered. */
            uint64_t wire = (opcode ? 0 : ws->msg_wire) + plen;
            int compressed = opcode ? rsv1 != 0 : ws->msg_compressed;
            if (wire > (uint64_t)ws->max_message + (compressed ? 1024 : 0))
                return ws_fail(ws, ev, PYH_WS_CLOSE_TOO_BIG, "message too big");
        }
        if ((uint64_t)(avail - hdr) < plen) {
            if (ws_buf_reserve(&ws->in, (size_t)plen - (avail - hdr)) < 0)
                return ws_fail(ws, ev, PYH_WS_CLOSE_INTERNAL_ERROR, "out of memory");
            goto need_more;
        }
        payload = p + hdr;
        for (i = 0; i < plen; i++)
            payload[i] ^= p[hdr - 4 + (i & 3)];
        ws->in_pos += hdr + (size_t)plen;

        if (opcode & 0x8) {
            memset(ev, 0, sizeof(*ev));
            ev->data = payload;
            ev->len = (size_t)plen;
            if (opcode == 0x9) {
                ev->type = PYH_WS_EV_PING;
                if (ws->state == PYH_WS_OPEN &&
                    ws_queue_frame(ws, 0xA, 0, payload, (size_t)plen) < 0)
                    return ws_fail(ws, ev, PYH_WS_CLOSE_INTERNAL_ERROR, "out of memory");
                return 1;
            }
            if (opcode == 0xA) {
                ev->type = PYH_WS_EV_PONG;
                return 1;
            }
            /* Close (RFC 6455 5.5.1, 7.1.5). */
            if (plen == 1)
                return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                               "close frame with a 1-byte payload");
            ev->type = PYH_WS_EV_CLOSE;
            ev->code = PYH_WS_CLOSE_NO_STATUS;
            if (plen >= 2) {
                ev->code = (payload[0] << 8) | payload[1];
                if (!pyh_ws_close_code_valid(ev->code))
                    return ws_fail(ws, ev, PYH_WS_CLOSE_PROTOCOL_ERROR,
                                   "invalid close code");
                if (!pyh_ws_utf8_valid(payload + 2, (size_t)plen - 2))
                    return ws_fail(ws, ev, PYH_WS_CLOSE_INVALID_DATA,
                                   "close reason is not UTF-8");
                ev->data = payload + 2;
                ev->len = (size_t)plen - 2;
            }
            else
                ev->data = payload + plen;
            if (ws->state == PYH_WS_OPEN)
                /* Echo the code, as RFC 6455 5.5.1 suggests; no code in,
                 * none out. */
                ws_queue_close(ws, ev->code, NULL, 0);
            ws->state = PYH_WS_CLOSED;
            ws->finished = 1;
            return 1;
        }

        if (opcode) {
            /* first frame of a message */
            ws->msg_opcode = opcode;
            ws->msg_compressed = rsv1 != 0;
            ws->msg_wire = 0;
            ws->msg.len = 0;
            ws_utf8_reset(&ws->utf8);
            if (fin && !rsv1) {
                /* The common case: one uncompressed frame, handed out
                 * from the input buffer without a copy. */
                if (opcode == 0x1 && !pyh_ws_utf8_valid(payload, (size_t)plen))
                    return ws_fail(ws, ev, PYH_WS_CLOSE_INVALID_DATA,
                                   "text message is not UTF-8");
                if (ws->state != PYH_WS_OPEN)
                    continue; /* after our close: dropped */
                memset(ev, 0, sizeof(*ev));
                ev->type = opcode == 0x1 ? PYH_WS_EV_TEXT : PYH_WS_EV_BINARY;
                ev->data = payload;
                ev->len = (size_t)plen;
                return 1;
            }
            ws->in_message = 1;
        }
        ws->msg_wire += (size_t)plen;
        {
            size_t before = ws->msg.len;
            if (ws->msg_compressed) {
                int rc = ws_inflate(ws, payload, (size_t)plen);
                if (rc == 0 && fin)
                    rc = ws_inflate(ws, ws_deflate_tail, 4);
                if (rc == -1)
                    return ws_fail(ws, ev, PYH_WS_CLOSE_INVALID_DATA,
                                   "corrupt permessage-deflate data");
                if (rc == -2)
                    return ws_fail(ws, ev, PYH_WS_CLOSE_TOO_BIG, "message too big");
                if (rc == -3)
                    return ws_fail(ws, ev, PYH_WS_CLOSE_INTERNAL_ERROR, "out of memory");
            }
            else if (ws_buf_append(&ws->msg, payload, (size_t)plen) < 0)
                return ws_fail(ws, ev, PYH_WS_CLOSE_INTERNAL_ERROR, "out of memory");
            if (ws->msg.len > ws->max_message)
                return ws_fail(ws, ev, PYH_WS_CLOSE_TOO_BIG, "message too big");
            if (ws->msg_opcode == 0x1 && ws->msg.len > before &&
                !ws_utf8_feed(&ws->utf8, ws->msg.p + before, ws->msg.len - before))
                return ws_fail(ws, ev, PYH_WS_CLOSE_INVALID_DATA,
                               "text message is not UTF-8");
        }
        if (!fin)
            continue;
        ws->in_message = 0;
        if (ws->msg_compressed && ws->pmd.client_no_context_takeover &&
            inflateReset(&ws->inflater) != Z_OK)
            return ws_fail(ws, ev, PYH_WS_CLOSE_INTERNAL_ERROR, "inflate reset failed");
        if (ws->msg_opcode == 0x1 && ws->utf8.need)
            return ws_fail(ws, ev, PYH_WS_CLOSE_INVALID_DATA,
                           "text message ends inside a UTF-8 sequence");
        if (ws->state != PYH_WS_OPEN)
            continue;
        memset(ev, 0, sizeof(*ev));
        ev->type = ws->msg_opcode == 0x1 ? PYH_WS_EV_TEXT : PYH_WS_EV_BINARY;
        ev->data = ws->msg.p ? ws->msg.p : (const unsigned char *)"";
        ev->len = ws->msg.len;
        return 1;
    }
need_more:
    if (ws->eof) {
        ws->state = PYH_WS_CLOSED;
        ws->finished = 1;
        memset(ev, 0, sizeof(*ev));
        ev->type = PYH_WS_EV_EOF;
        ev->code = PYH_WS_CLOSE_ABNORMAL;
        return 1;
    }
    return 0;
}

/* ---- permessage-deflate negotiation (RFC 7692 5, 7.1) ---- */

static const char *ws_skip_ws(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    return s;
}

static int ws_token_is(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);
    size_t i;
    if (n != w)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return 0;
    }
    return 1;
}

/* One offer: "permessage-deflate; p1; p2=v ..." between start and end.
 * Returns 1 when it can be accepted (and fills *pmd). */
static int ws_pmd_offer(const char *s, const char *end, pyh_ws_pmd *pmd)
{
    const char *name_end;
    int seen_snct = 0, seen_cnct = 0, seen_smwb = 0, seen_cmwb = 0;
    memset(pmd, 0, sizeof(*pmd));
    s = ws_skip_ws(s, end);
    name_end = s;
    while (name_end < end && *name_end != ';' && *name_end != ' ' && *name_end != '\t')
        name_end++;
    if (!ws_token_is(s, (size_t)(name_end - s), "permessage-deflate"))
        return 0;
    pmd->enabled = 1;
    s = ws_skip_ws(name_end, end);
    while (s < end) {
        const char *pname, *pname_end, *val = NULL, *val_end = NULL;
        if (*s != ';')
            return 0;
        s = ws_skip_ws(s + 1, end);
        pname = s;
        while (s < end && *s != '=' && *s != ';' && *s != ' ' && *s != '\t')
            s++;
        pname_end = s;
        s = ws_skip_ws(s, end);
        if (s < end && *s == '=') {
            s = ws_skip_ws(s + 1, end);
            val = s;
            if (s < end && *s == '"') {
                /* RFC 7692 7.1: a quoted-string value must still be a
                 * token once unquoted. */
                val = ++s;
                while (s < end && *s != '"')
                    s++;
                if (s >= end)
                    return 0;
                val_end = s++;
            }
            else {
                while (s < end && *s != ';' && *s != ' ' && *s != '\t')
                    s++;
                val_end = s;
            }
            s = ws_skip_ws(s, end);
        }
        if (pname == pname_end)
            return 0;
#define PMD_BITS(dst)                                                        \
        do {                                                                 \
            if (val_end - val == 1 && val[0] >= '8' && val[0] <= '9')        \
                dst = val[0] - '0';                                          \
            else if (val_end - val == 2 && val[0] == '1' && val[1] >= '0' && \
                     val[1] <= '5')                                          \
                dst = 10 + val[1] - '0';                                     \
            else                                                             \
                return 0;                                                    \
        } while (0)
        if (ws_token_is(pname, (size_t)(pname_end - pname), "server_no_context_takeover")) {
            if (seen_snct++ || val)
                return 0;
            pmd->server_no_context_takeover = 1;
        }
        else if (ws_token_is(pname, (size_t)(pname_end - pname), "client_no_context_takeover")) {
            if (seen_cnct++ || val)
                return 0;
            pmd->client_no_context_takeover = 1;
        }
        else if (ws_token_is(pname, (size_t)(pname_end - pname), "server_max_window_bits")) {
            if (seen_smwb++ || !val)
                return 0;
            PMD_BITS(pmd->server_max_window_bits);
            /* zlib turns a window of 8 bits into 9: we cannot promise 8,
             * so decline this offer (RFC 7692 7.1.2.1). */
            if (pmd->server_max_window_bits == 8)
                return 0;
        }
        else if (ws_token_is(pname, (size_t)(pname_end - pname), "client_max_window_bits")) {
            if (seen_cmwb++)
                return 0;
            if (val)
                PMD_BITS(pmd->client_max_window_bits);
            /* Without a value the client only says it could take a limit;
             * our inflater reads any window, so we set none. */
        }
        else
            return 0; /* an unknown parameter: decline the offer */
#undef PMD_BITS
    }
    return 1;
}

int pyh_ws_pmd_negotiate(const char *offers, pyh_ws_pmd *out,
                         char *response, size_t response_size)
{
    const char *s = offers, *end;
    char buf[160];
    memset(out, 0, sizeof(*out));
    if (!offers)
        return 0;
    end = offers + strlen(offers);
    while (s < end) {
        /* Offers are comma-separated; a comma can only be inside a quoted
         * value, which a valid permessage-deflate offer never has. */
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *offer_end = comma ? comma : end;
        pyh_ws_pmd pmd;
        if (ws_pmd_offer(s, offer_end, &pmd)) {
            size_t n;
            int len = 0;
            len += snprintf(buf + len, sizeof(buf) - len, "permessage-deflate");
            if (pmd.server_no_context_takeover)
                len += snprintf(buf + len, sizeof(buf) - len,
                                "; server_no_context_takeover");
            if (pmd.client_no_context_takeover)
                len += snprintf(buf + len, sizeof(buf) - len,
                                "; client_no_context_takeover");
            if (pmd.server_max_window_bits)
                len += snprintf(buf + len, sizeof(buf) - len,
                                "; server_max_window_bits=%d",
                                pmd.server_max_window_bits);
            if (pmd.client_max_window_bits)
                len += snprintf(buf + len, sizeof(buf) - len,
                                "; client_max_window_bits=%d",
                                pmd.client_max_window_bits);
            n = strlen(buf);
            if (n + 1 > response_size)
                return -1;
            memcpy(response, buf, n + 1);
            *out = pmd;
            return 1;
        }
        s = offer_end + 1;
    }
    return 0;
}
