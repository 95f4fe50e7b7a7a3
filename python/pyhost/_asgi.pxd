# What the ASGI bridge's classes hold (_asgi.pyx does the work).
from pyhost.includes.asgi cimport pyh_asgi_host, pyh_asgi_xfer, pyh_asgi_header


cdef class Loop:
    cdef const pyh_asgi_host *host
    cdef object loop          # the asyncio (or uvloop) loop
    cdef object thread        # the thread running it
    cdef dict lifespans       # id(app) -> Lifespan (holding the app)
    cdef void drain(self) noexcept


cdef class Request:
    cdef Loop lp
    cdef pyh_asgi_xfer *x
    cdef object app, scope, name
    cdef int lifespan
    cdef int status           # of http.response.start
    cdef bint has_body, body_done
    cdef bint started         # http.response.start was sent by the app
    cdef bint start_pending   # ... and not handed to the worker yet
    cdef bint complete        # the last body was sent by the app
    cdef bint finished        # the worker has left the request
    cdef bint client_gone
    cdef object send_waiter, recv_waiter
    cdef list disconnect_waiters
    cdef pyh_asgi_header *hdrs
    cdef list hold            # bytes the worker may be reading
    cdef object problem       # the first invalid message's description

    cdef void completed(self, unsigned bits) noexcept
    cdef object invalid(self, str problem)
    cdef int set_headers(self, headers) except -1
    cdef int start_response(self, message, str prefix) except -1
    cdef object post_body(self, message, str prefix)
    cdef object post_send(self, unsigned work)


cdef class WebSocket(Request):
    cdef bint connect_sent    # websocket.connect was handed to the app
    cdef bint accepted        # websocket.accept was sent
    cdef bint closed          # websocket.close was sent
    cdef bint disconnected    # websocket.disconnect was handed to the app
    cdef int close_code

    cdef dict disconnect_message(self)
    cdef int gone_code(self)
