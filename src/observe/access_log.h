/*
 * observe/access_log.h - one JSON line per request, written off the workers.
 *
 * Each finished stream is described by a pt_access_entry. The worker formats
 * it into one JSON object on one line and copies the line into its own ring,
 * a bounded single-producer/single-consumer byte queue. One writer thread
 * drains every ring to the destination ("stdout", "stderr" or a file opened
 * O_APPEND|O_CREAT, mode 0640).
 *
 *   worker i ──format──> scratch ──copy──> ring i ─┐
 *   worker j ──format──> scratch ──copy──> ring j ─┼─> writer thread ──writev──> fd
 *                                                  │   (woken when a ring passes
 *                                                  │    1/4 full, else every 100 ms)
 *   main (SIGHUP) ──pt_access_log_reopen()─────────┘   (swaps fd between writes)
 *
 * A worker never blocks, takes no lock and never allocates here: when its
 * ring lacks room the line is dropped and the ring's dropped counter grows.
 * Only whole lines enter a ring, so the destination only ever sees whole
 * lines; lines of one ring keep their order. Write errors (disk full) leave
 * the bytes in the ring to be retried, so rings fill and new lines are
 * dropped rather than torn; errors and drops are counted and reported with
 * pt_log_warn at most once per second (and once more by stop when some
 * were not reported yet).
 *
 * Disabled logging costs nothing: no pt_access_log is started, workers hold
 * a NULL ring and skip building the entry (pt_access_log_append(NULL, e) is
 * also a no-op).
 *
 * Line format (keys in this order):
 *   {"time":"2024-02-29T23:59:59.123Z","request_id":"...","method":"GET",
 *    "path":"/a","authority":"example.com","protocol":"HTTP/2","status":200,
 *    "grpc_status":0,"duration_ms":1.235,"bytes_in":0,"bytes_out":17,
 *    "upstream":"10.0.0.1:8080","route":"users","service":"users-v2",
 *    "client":"192.0.2.7","worker":1,"attempts":2,"error":"upstream reset the stream"}
 * "grpc_status" and "error" are omitted when absent, "attempts" (upstream
 * attempts: the first, retries and hedges) when below 2; "upstream", "route"
 * and "service" are null when absent ("service" is the one the request was
 * forwarded to: the route's, its split's side or its API version's); "worker" is the index (0..N-1)
 * of the worker thread that served the stream (SO_REUSEPORT spreads connections over workers; this
 * tells which one a connection landed on). Strings are escaped so the line is valid JSON and valid
 * UTF-8: '"' and '\\' get a backslash, control bytes and DEL become \u00XX, valid UTF-8 sequences
 * are kept, and every other byte >= 0x80 becomes \u00XX of that byte. A string field whose escaped
 * form exceeds its cap (PT_ACCESS_CAP_*, counted in escaped bytes and including the marker) is cut
 * at a character boundary and ends with PT_ACCESS_TRUNCATED_MARKER, so a line never exceeds
 * PT_ACCESS_LINE_MAX bytes.
 * After them, for a connection with a verified client certificate (mTLS):
 *    "client_cert_subject":"CN=svc-a,O=Example","client_cert_sha256":"5f0c...e1"
 * (its RFC 2253 subject and SHA-256 fingerprint), omitted otherwise. Then
 *    "client_id":"acme","auth":"api_key: key expired"
 * the authenticated caller's client id, and why the auth step refused the
 * request (401/403 reasons, never sent to the client), each omitted when
 * absent.
 */
#ifndef PT_OBSERVE_ACCESS_LOG_H
#define PT_OBSERVE_ACCESS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/str.h"

struct pt_diag;

/* Upper bound of one formatted line, '\n' included. */
#define PT_ACCESS_LINE_MAX 16384u
/* Ring size used when pt_access_log_start() is given 0. */
#define PT_ACCESS_RING_DEFAULT (1024u * 1024u)
/* Largest ring accepted by pt_access_log_start(). */
#define PT_ACCESS_RING_MAX (1024u * 1024u * 1024u)

/* Caps of the string fields, in escaped bytes between the quotes. */
#define PT_ACCESS_CAP_REQUEST_ID 256u
#define PT_ACCESS_CAP_METHOD 128u
#define PT_ACCESS_CAP_PATH 4096u
#define PT_ACCESS_CAP_AUTHORITY 1024u
#define PT_ACCESS_CAP_UPSTREAM 512u
#define PT_ACCESS_CAP_ROUTE 512u
#define PT_ACCESS_CAP_SERVICE 512u
#define PT_ACCESS_CAP_CLIENT 128u
#define PT_ACCESS_CAP_ERROR 1024u
#define PT_ACCESS_CAP_CLIENT_CERT_SUBJECT 1024u
#define PT_ACCESS_CAP_CLIENT_CERT_SHA256 128u
#define PT_ACCESS_CAP_CLIENT_ID 256u
#define PT_ACCESS_CAP_AUTH 512u

/* Ends a string field that was cut to its cap. */
#define PT_ACCESS_TRUNCATED_MARKER "...[truncated]"

enum pt_access_protocol {
    PT_ACCESS_PROTOCOL_HTTP_1_0 = 0, /* "HTTP/1.0" */
    PT_ACCESS_PROTOCOL_HTTP_1_1,     /* "HTTP/1.1" */
    PT_ACCESS_PROTOCOL_HTTP_2,       /* "HTTP/2" (gRPC and gRPC-Web over h2 too) */
};

/*
 * What one line says about one stream. All strings are borrowed for the
 * duration of the call that takes the entry and may hold any bytes. A
 * zero-initialized entry is valid: empty strings, null upstream, route and service,
 * no grpc_status, no error.
 */
struct pt_access_entry {
    uint64_t time_ns;     /* wall clock (pt_time_real_ns) when the stream began */
    uint64_t duration_ns; /* from the first request byte to the last response byte */
    struct pt_str request_id;
    struct pt_str method;
    struct pt_str path;
    struct pt_str authority;
    enum pt_access_protocol protocol; /* other values print "unknown" */
    int status;                       /* HTTP status sent downstream */
    bool has_grpc_status;             /* false: "grpc_status" omitted */
    int grpc_status;
    uint64_t bytes_in;      /* request body bytes received from the client */
    uint64_t bytes_out;     /* response body bytes sent to the client */
    struct pt_str upstream; /* "host:port"; empty: null */
    struct pt_str route;    /* route name; empty: null */
    struct pt_str service;  /* service forwarded to (a split's side, a version's); empty: null */
    struct pt_str client;   /* client IP address as text */
    unsigned worker;        /* index of the worker that served the stream */
    struct pt_str error;    /* why the stream failed; empty: omitted */
    uint32_t attempts;      /* upstream attempts, retries and hedges included; < 2: omitted */
    struct pt_str client_cert_subject; /* mTLS client certificate subject; empty: omitted */
    struct pt_str client_cert_sha256;  /* its SHA-256 fingerprint (hex); empty: omitted */
    struct pt_str client_id;           /* the authenticated caller's client id; empty: omitted */
    struct pt_str auth; /* why authentication/authorization refused; empty: omitted */
};

/* The writer: owns the rings, the destination and the writer thread. */
struct pt_access_log;
/* One worker's queue of formatted lines. */
struct pt_access_ring;

/*
 * Format e as one JSON line ending in '\n' into buf, which must hold
 * PT_ACCESS_LINE_MAX bytes. The line is not NUL-terminated.
 * Returns its length in bytes (always between 2 and PT_ACCESS_LINE_MAX).
 * Thread: any; touches no shared state.
 */
size_t pt_access_entry_format(const struct pt_access_entry *e, char *buf);

/*
 * Open dest ("stdout", "stderr" or a file path), create nrings rings of
 * ring_bytes each (0: PT_ACCESS_RING_DEFAULT; rounded up to a power of two,
 * at least 2 * PT_ACCESS_LINE_MAX) and start the writer thread.
 * Pointer: the log, or NULL with the reason added to diag (dest cannot be
 * opened, nrings is 0, ring_bytes exceeds PT_ACCESS_RING_MAX, or the thread
 * or its eventfd cannot be created).
 * Thread: main, before the workers start.
 */
struct pt_access_log *pt_access_log_start(const char *dest, unsigned nrings, size_t ring_bytes,
                                          struct pt_diag *diag);

/*
 * Pointer: ring i (never NULL); i must be below the nrings given to start.
 * Hand each worker its own ring: a ring has exactly one producer thread.
 * Thread: any, while the log runs.
 */
struct pt_access_ring *pt_access_log_ring_get(struct pt_access_log *l, unsigned i);

/*
 * Format e and enqueue the line, or drop it (counted) when r lacks room.
 * Never blocks, never allocates, takes no lock. r may be NULL (disabled):
 * then nothing happens.
 * Thread: the one worker that owns r.
 */
void pt_access_log_append(struct pt_access_ring *r, const struct pt_access_entry *e);

/*
 * Open dest (NULL: the current destination again, e.g. after the file was
 * renamed by a rotation) and make the writer switch to it. Lines already in
 * the rings when the writer notices are written to the old destination
 * first; lines appended after this returns go to the new one. Returns once
 * the writer has switched, or after at most one second if it is stuck in a
 * write (it then switches as soon as that write returns).
 * Status: 0, or PT_ERR_CONFIG when dest cannot be opened (logged with the
 * reason; the current destination stays).
 * Thread: any but a worker (it may wait for the writer), while the log runs.
 */
int pt_access_log_reopen(struct pt_access_log *l, const char *dest);

/* Lines dropped because a ring was full, summed over all rings.
 * Thread: any, while the log runs. */
uint64_t pt_access_log_dropped(const struct pt_access_log *l);

/* Failed write(2) calls to the destination so far.
 * Thread: any, while the log runs. */
uint64_t pt_access_log_write_errors(const struct pt_access_log *l);

/*
 * Write every line appended before the call, stop and join the writer
 * thread, close the destination and free everything; l == NULL is a no-op.
 * Producers must have stopped appending (workers joined or quiesced). If
 * the destination fails during this final flush the remaining lines are
 * discarded and reported with pt_log_warn; a destination that blocks (a
 * full pipe) delays the return until it accepts the bytes.
 * Thread: main.
 */
void pt_access_log_stop(struct pt_access_log *l);

#endif
