/* websocket.h - a sans-I/O WebSocket (RFC 6455) server protocol core with
 * permessage-deflate (RFC 7692). It is fed the bytes the client sent and
 * asked for the bytes to send back; it never touches a socket, an APR pool
 * or Python, so the same code runs on an Apache worker thread, on anything
 * that later takes idle connections off it, and under libFuzzer
 * (tests/fuzz/fuzz_websocket.c). Plain C + zlib. */
#ifndef PYH_WEBSOCKET_H
#define PYH_WEBSOCKET_H

#include <stddef.h>

#define PYH_WS_DEFAULT_MAX_MESSAGE (16u * 1024u * 1024u)

/* RFC 6455 section 7.4.1 codes the core sends. */
#define PYH_WS_CLOSE_NORMAL 1000
#define PYH_WS_CLOSE_GOING_AWAY 1001
#define PYH_WS_CLOSE_PROTOCOL_ERROR 1002
#define PYH_WS_CLOSE_NO_STATUS 1005     /* never on the wire */
#define PYH_WS_CLOSE_ABNORMAL 1006      /* never on the wire */
#define PYH_WS_CLOSE_INVALID_DATA 1007
#define PYH_WS_CLOSE_TOO_BIG 1009
#define PYH_WS_CLOSE_INTERNAL_ERROR 1011

typedef struct pyh_ws pyh_ws;

typedef enum {
    PYH_WS_OPEN,     /* messages flow both ways */
    PYH_WS_CLOSING,  /* we sent a close frame and wait for the client's */
    PYH_WS_CLOSED    /* close handshake done or connection failed: flush
                        pyh_ws_output() and close the TCP connection */
} pyh_ws_state;

typedef enum {
    PYH_WS_EV_TEXT = 1, /* a whole text message (valid UTF-8) */
    PYH_WS_EV_BINARY,   /* a whole binary message */
    PYH_WS_EV_PING,     /* the pong is already queued */
    PYH_WS_EV_PONG,
    PYH_WS_EV_CLOSE,    /* the client's close frame; ours is queued */
    PYH_WS_EV_ERROR,    /* we failed the connection: close frame queued */
    PYH_WS_EV_EOF       /* the connection ended without a close frame */
} pyh_ws_event_type;

typedef struct {
    pyh_ws_event_type type;
    /* TEXT/BINARY: the message; PING/PONG: the payload; CLOSE: the reason.
     * Valid until the next pyh_ws_feed() or pyh_ws_next_event(). */
    const unsigned char *data;
    size_t len;
    /* CLOSE: the client's code (1005 when it sent none); ERROR: the code we
     * sent; EOF: 1006. */
    int code;
    const char *error; /* ERROR: a static text saying why, for the log */
} pyh_ws_event;

/* permessage-deflate parameters agreed in the handshake. */
typedef struct {
    int enabled;
    int server_no_context_takeover; /* we reset our compressor per message */
    int client_no_context_takeover; /* the client resets its compressor */
    int server_max_window_bits;     /* 0 (15) or 9..15: our compressor's window */
    int client_max_window_bits;     /* 0 or 8..15, echoed in the response */
} pyh_ws_pmd;

/* Picks the first permessage-deflate offer in a Sec-WebSocket-Extensions
 * value (all header lines joined with ", ") that we can honour. Returns 1
 * and fills *out and response (the value for our Sec-WebSocket-Extensions
 * header) when one was accepted, 0 when none was (then answer without the
 * header), -1 when response_size is too small. */
int pyh_ws_pmd_negotiate(const char *offers, pyh_ws_pmd *out,
                         char *response, size_t response_size);

/* max_message: the largest message (after decompression) accepted; larger
 * ones fail the connection with 1009. pmd may be NULL (no compression).
 * Returns NULL when out of memory. */
pyh_ws *pyh_ws_new(size_t max_message, const pyh_ws_pmd *pmd);
void pyh_ws_free(pyh_ws *ws);

pyh_ws_state pyh_ws_get_state(const pyh_ws *ws);

/* Bytes received from the client. Returns 0, or -1 out of memory (the next
 * event is then an ERROR 1011). */
int pyh_ws_feed(pyh_ws *ws, const void *data, size_t len);
/* The client's side of the connection ended. */
void pyh_ws_feed_eof(pyh_ws *ws);
/* Returns 1 and fills *ev with the next event, or 0 when more bytes are
 * needed (or the connection is over). */
int pyh_ws_next_event(pyh_ws *ws, pyh_ws_event *ev);

/* Queue frames to send. Return 0, or -1 when the connection is no longer
 * open (or out of memory; the connection is then failed with 1011) or the
 * argument is invalid (text that is not UTF-8, a close code that may not
 * be sent, a control payload over 125 bytes). */
int pyh_ws_send_message(pyh_ws *ws, int binary, const void *data, size_t len);
int pyh_ws_send_ping(pyh_ws *ws, const void *data, size_t len);
int pyh_ws_send_close(pyh_ws *ws, int code, const char *reason, size_t len);

/* What is waiting to be written, and how much of it was written. */
const unsigned char *pyh_ws_output(const pyh_ws *ws, size_t *len);
void pyh_ws_output_consumed(pyh_ws *ws, size_t n);

/* Helpers for the handshake and the glue. */
int pyh_ws_utf8_valid(const void *data, size_t len);
/* A code an endpoint may put in a close frame (RFC 6455 7.4, IANA). */
int pyh_ws_close_code_valid(int code);

#endif
