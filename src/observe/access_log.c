#include "observe/access_log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/diag.h"
#include "core/log.h"
#include "core/time.h"
#include "portico/errors.h"

#define MARKER PT_ACCESS_TRUNCATED_MARKER
#define MARKER_LEN (sizeof(MARKER) - 1)
#define NS_PER_SEC 1000000000u
#define FLUSH_INTERVAL_MS 100
#define REPORT_INTERVAL_NS NS_PER_SEC
#define REOPEN_WAIT_NS NS_PER_SEC

/* Keys, quotes, separators and numbers take under 400 bytes; the rest of a
 * line is the string fields, each bounded by its cap. */
#define STRING_CAPS_TOTAL                                                     \
    (PT_ACCESS_CAP_REQUEST_ID + PT_ACCESS_CAP_METHOD + PT_ACCESS_CAP_PATH +   \
     PT_ACCESS_CAP_AUTHORITY + PT_ACCESS_CAP_UPSTREAM + PT_ACCESS_CAP_ROUTE + \
     PT_ACCESS_CAP_SERVICE + PT_ACCESS_CAP_CLIENT + PT_ACCESS_CAP_ERROR +     \
     PT_ACCESS_CAP_CLIENT_CERT_SUBJECT + PT_ACCESS_CAP_CLIENT_CERT_SHA256 +   \
     PT_ACCESS_CAP_CLIENT_ID + PT_ACCESS_CAP_AUTH)
_Static_assert(STRING_CAPS_TOTAL + 1024 <= PT_ACCESS_LINE_MAX, "string caps exceed the line cap");
_Static_assert(PT_ACCESS_CAP_METHOD > MARKER_LEN && PT_ACCESS_CAP_CLIENT > MARKER_LEN,
               "every cap must leave room for the truncation marker");

/* ---- formatting -------------------------------------------------------- */

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_int(char *p, int v)
{
    if (v >= 0)
        return put_u64(p, (uint64_t)v);
    *p++ = '-';
    return put_u64(p, (uint64_t)(-(int64_t)v));
}

/* v in decimal, zero-padded to width digits (v must fit). */
static char *put_padded(char *p, unsigned v, unsigned width)
{
    for (unsigned i = width; i > 0; i--) {
        p[i - 1] = (char)('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

static bool is_leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* RFC 3339 UTC with milliseconds. gmtime_r() is avoided because glibc takes
 * its time-zone lock even for UTC, and workers must not wait on locks. The
 * year loop runs at most a few hundred times: uint64_t nanoseconds end in
 * 2554. */
static char *put_time(char *p, uint64_t ns)
{
    static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    uint64_t secs = ns / NS_PER_SEC;
    unsigned ms = (unsigned)(ns % NS_PER_SEC / 1000000u);
    unsigned sod = (unsigned)(secs % 86400u);
    unsigned days = (unsigned)(secs / 86400u);
    unsigned year = 1970;
    for (;;) {
        unsigned ylen = is_leap(year) ? 366u : 365u;
        if (days < ylen)
            break;
        days -= ylen;
        year++;
    }
    unsigned month = 0;
    for (;;) {
        unsigned mlen = mdays[month] + (month == 1 && is_leap(year) ? 1u : 0u);
        if (days < mlen)
            break;
        days -= mlen;
        month++;
    }
    p = put_padded(p, year, 4);
    *p++ = '-';
    p = put_padded(p, month + 1, 2);
    *p++ = '-';
    p = put_padded(p, days + 1, 2);
    *p++ = 'T';
    p = put_padded(p, sod / 3600, 2);
    *p++ = ':';
    p = put_padded(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = put_padded(p, sod % 60, 2);
    *p++ = '.';
    p = put_padded(p, ms, 3);
    *p++ = 'Z';
    return p;
}

/* Milliseconds with three decimals, rounded to the nearest microsecond. */
static char *put_duration_ms(char *p, uint64_t ns)
{
    uint64_t us = ns / 1000 + (ns % 1000 >= 500 ? 1 : 0);
    p = put_u64(p, us / 1000);
    *p++ = '.';
    return put_padded(p, (unsigned)(us % 1000), 3);
}

/* Length of the well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) at s, or 0 when there is none. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    }
    return len;
}

/*
 * A JSON string of at most cap bytes between its quotes. When the escaped
 * text does not fit, it is cut at the last character boundary that leaves
 * room for the marker, so no escape or UTF-8 sequence is ever split.
 */
static char *put_string(char *p, struct pt_str s, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *in = (const unsigned char *)s.ptr;
    size_t n = s.ptr ? s.len : 0;
    *p++ = '"';
    char *const limit = p + cap;
    char *const soft = limit - MARKER_LEN;
    char *cut = p;
    size_t i = 0;
    while (i < n) {
        unsigned char c = in[i];
        char esc[6];
        const char *src = esc;
        size_t len, used;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            len = 2;
            used = 1;
        } else if (c >= 0x20 && c < 0x7F) {
            src = (const char *)in + i;
            len = used = 1;
        } else if (c >= 0x80 && (len = utf8_len(in + i, n - i)) != 0) {
            src = (const char *)in + i;
            used = len;
        } else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
            used = 1;
        }
        if ((size_t)(limit - p) < len) {
            p = PUT_LIT(cut, MARKER);
            break;
        }
        p = put(p, src, len);
        i += used;
        if (p <= soft)
            cut = p;
    }
    *p++ = '"';
    return p;
}

static char *put_string_or_null(char *p, struct pt_str s, size_t cap)
{
    if (!s.ptr || s.len == 0)
        return PUT_LIT(p, "null");
    return put_string(p, s, cap);
}

static const char *protocol_name(enum pt_access_protocol proto)
{
    switch (proto) {
    case PT_ACCESS_PROTOCOL_HTTP_1_0:
        return "\"HTTP/1.0\"";
    case PT_ACCESS_PROTOCOL_HTTP_1_1:
        return "\"HTTP/1.1\"";
    case PT_ACCESS_PROTOCOL_HTTP_2:
        return "\"HTTP/2\"";
    }
    return "\"unknown\"";
}

size_t pt_access_entry_format(const struct pt_access_entry *e, char *buf)
{
    char *p = buf;
    p = PUT_LIT(p, "{\"time\":\"");
    p = put_time(p, e->time_ns);
    p = PUT_LIT(p, "\",\"request_id\":");
    p = put_string(p, e->request_id, PT_ACCESS_CAP_REQUEST_ID);
    p = PUT_LIT(p, ",\"method\":");
    p = put_string(p, e->method, PT_ACCESS_CAP_METHOD);
    p = PUT_LIT(p, ",\"path\":");
    p = put_string(p, e->path, PT_ACCESS_CAP_PATH);
    p = PUT_LIT(p, ",\"authority\":");
    p = put_string(p, e->authority, PT_ACCESS_CAP_AUTHORITY);
    p = PUT_LIT(p, ",\"protocol\":");
    const char *proto = protocol_name(e->protocol);
    p = put(p, proto, strlen(proto));
    p = PUT_LIT(p, ",\"status\":");
    p = put_int(p, e->status);
    if (e->has_grpc_status) {
        p = PUT_LIT(p, ",\"grpc_status\":");
        p = put_int(p, e->grpc_status);
    }
    p = PUT_LIT(p, ",\"duration_ms\":");
    p = put_duration_ms(p, e->duration_ns);
    p = PUT_LIT(p, ",\"bytes_in\":");
    p = put_u64(p, e->bytes_in);
    p = PUT_LIT(p, ",\"bytes_out\":");
    p = put_u64(p, e->bytes_out);
    p = PUT_LIT(p, ",\"upstream\":");
    p = put_string_or_null(p, e->upstream, PT_ACCESS_CAP_UPSTREAM);
    p = PUT_LIT(p, ",\"route\":");
    p = put_string_or_null(p, e->route, PT_ACCESS_CAP_ROUTE);
    p = PUT_LIT(p, ",\"service\":");
    p = put_string_or_null(p, e->service, PT_ACCESS_CAP_SERVICE);
    p = PUT_LIT(p, ",\"client\":");
    p = put_string(p, e->client, PT_ACCESS_CAP_CLIENT);
    p = PUT_LIT(p, ",\"worker\":");
    p = put_u64(p, e->worker);
    if (e->attempts > 1) {
        p = PUT_LIT(p, ",\"attempts\":");
        p = put_u64(p, e->attempts);
    }
    if (e->error.ptr && e->error.len) {
        p = PUT_LIT(p, ",\"error\":");
        p = put_string(p, e->error, PT_ACCESS_CAP_ERROR);
    }
    if (e->client_cert_subject.ptr && e->client_cert_subject.len) {
        p = PUT_LIT(p, ",\"client_cert_subject\":");
        p = put_string(p, e->client_cert_subject, PT_ACCESS_CAP_CLIENT_CERT_SUBJECT);
    }
    if (e->client_cert_sha256.ptr && e->client_cert_sha256.len) {
        p = PUT_LIT(p, ",\"client_cert_sha256\":");
        p = put_string(p, e->client_cert_sha256, PT_ACCESS_CAP_CLIENT_CERT_SHA256);
    }
    if (e->client_id.ptr && e->client_id.len) {
        p = PUT_LIT(p, ",\"client_id\":");
        p = put_string(p, e->client_id, PT_ACCESS_CAP_CLIENT_ID);
    }
    if (e->auth.ptr && e->auth.len) {
        p = PUT_LIT(p, ",\"auth\":");
        p = put_string(p, e->auth, PT_ACCESS_CAP_AUTH);
    }
    p = PUT_LIT(p, "}\n");
    return (size_t)(p - buf);
}

/* ---- rings and the writer ---------------------------------------------- */

/*
 * head and tail count bytes ever written and ever consumed; they only grow
 * (modulo SIZE_MAX + 1, harmless with a power-of-two capacity). The worker
 * alone stores head, the writer alone stores tail; each side's fields sit on
 * their own cache line.
 */
struct pt_access_ring {
    /* Fixed at start. */
    char *buf;
    size_t mask; /* capacity - 1 */
    size_t threshold;
    int wake_fd;
    char *scratch; /* PT_ACCESS_LINE_MAX bytes, used by the producer only */

    alignas(64) _Atomic size_t head;
    _Atomic uint64_t dropped;

    alignas(64) _Atomic size_t tail;
};

struct pt_access_log {
    struct pt_access_ring *rings;
    unsigned nrings;
    int wake_fd; /* eventfd: producers and control calls wake the writer */
    pthread_t thread;
    atomic_bool stopping;
    _Atomic uint64_t write_errors;

    /* Writer thread only (set before it starts). */
    int fd;
    bool fd_owned; /* false for stdout/stderr */
    char *fd_name;
    int last_errno;
    uint64_t last_report_ns;
    uint64_t reported_errors;
    uint64_t reported_dropped;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t switched;
    char *dest; /* what reopen(NULL) opens */
    bool pending;
    int pending_fd;
    bool pending_owned;
    char *pending_name;
    uint64_t reopen_requested;
    uint64_t reopen_done;
};

/* Status: 0 with *fd and *owned set, or an errno value. */
static int open_dest(const char *dest, int *fd, bool *owned)
{
    if (strcmp(dest, "stdout") == 0) {
        *fd = STDOUT_FILENO;
        *owned = false;
        return 0;
    }
    if (strcmp(dest, "stderr") == 0) {
        *fd = STDERR_FILENO;
        *owned = false;
        return 0;
    }
    int f = open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (f < 0)
        return errno;
    *fd = f;
    *owned = true;
    return 0;
}

static void close_dest(int fd, bool owned)
{
    if (owned)
        close(fd);
}

/* Never blocks: the eventfd is non-blocking, and a saturated counter
 * (EAGAIN) already means the writer has a wake-up pending. */
static void wake(int fd)
{
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof(one));
    (void)w;
}

void pt_access_log_append(struct pt_access_ring *r, const struct pt_access_entry *e)
{
    if (!r)
        return;
    size_t n = pt_access_entry_format(e, r->scratch);
    size_t cap = r->mask + 1;
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t used = head - tail;
    if (cap - used < n) {
        /* Single producer: a plain load and store is enough, and cheaper
         * than a locked add. */
        uint64_t d = atomic_load_explicit(&r->dropped, memory_order_relaxed);
        atomic_store_explicit(&r->dropped, d + 1, memory_order_relaxed);
        return;
    }
    size_t off = head & r->mask;
    size_t first = cap - off < n ? cap - off : n;
    memcpy(r->buf + off, r->scratch, first);
    memcpy(r->buf, r->scratch + first, n - first);
    atomic_store_explicit(&r->head, head + n, memory_order_release);
    if (used < r->threshold && used + n >= r->threshold)
        wake(r->wake_fd);
}

struct pt_access_ring *pt_access_log_ring_get(struct pt_access_log *l, unsigned i)
{
    assert(i < l->nrings);
    return &l->rings[i];
}

uint64_t pt_access_log_dropped(const struct pt_access_log *l)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < l->nrings; i++)
        sum += atomic_load_explicit(&l->rings[i].dropped, memory_order_relaxed);
    return sum;
}

uint64_t pt_access_log_write_errors(const struct pt_access_log *l)
{
    return atomic_load_explicit(&l->write_errors, memory_order_relaxed);
}

/* Write what r holds now. Status: 0, or the errno of a failed write, in
 * which case the unwritten bytes stay in the ring for the next attempt. */
static int ring_flush(struct pt_access_log *l, struct pt_access_ring *r)
{
    size_t cap = r->mask + 1;
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    while (tail != head) {
        size_t off = tail & r->mask;
        size_t n = head - tail;
        struct iovec iov[2];
        int cnt = 1;
        iov[0].iov_base = r->buf + off;
        iov[0].iov_len = cap - off < n ? cap - off : n;
        if (iov[0].iov_len < n) {
            iov[1].iov_base = r->buf;
            iov[1].iov_len = n - iov[0].iov_len;
            cnt = 2;
        }
        ssize_t w = writev(l->fd, iov, cnt);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int err = w < 0 ? errno : EIO;
            atomic_fetch_add_explicit(&l->write_errors, 1, memory_order_relaxed);
            l->last_errno = err;
            return err;
        }
        tail += (size_t)w;
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    return 0;
}

/* Status: 0, or the errno of the first failed write (later rings are left
 * for the next attempt: the destination is failing for all of them). */
static int drain(struct pt_access_log *l)
{
    for (unsigned i = 0; i < l->nrings; i++) {
        int err = ring_flush(l, &l->rings[i]);
        if (err)
            return err;
    }
    return 0;
}

static size_t unwritten_bytes(struct pt_access_log *l)
{
    size_t sum = 0;
    for (unsigned i = 0; i < l->nrings; i++) {
        struct pt_access_ring *r = &l->rings[i];
        sum += atomic_load_explicit(&r->head, memory_order_acquire) -
               atomic_load_explicit(&r->tail, memory_order_relaxed);
    }
    return sum;
}

/* Adopt a destination handed over by pt_access_log_reopen(), after writing
 * what the rings already hold to the old one. */
static void switch_if_requested(struct pt_access_log *l)
{
    pthread_mutex_lock(&l->mu);
    bool pending = l->pending;
    pthread_mutex_unlock(&l->mu);
    if (!pending)
        return;
    drain(l);
    pthread_mutex_lock(&l->mu);
    int old_fd = l->fd;
    bool old_owned = l->fd_owned;
    char *old_name = l->fd_name;
    l->fd = l->pending_fd;
    l->fd_owned = l->pending_owned;
    l->fd_name = l->pending_name;
    l->pending = false;
    l->pending_name = NULL;
    l->reopen_done = l->reopen_requested;
    pthread_cond_broadcast(&l->switched);
    pthread_mutex_unlock(&l->mu);
    close_dest(old_fd, old_owned);
    free(old_name);
}

/* At most once per REPORT_INTERVAL_NS unless forced. */
static void report(struct pt_access_log *l, bool force)
{
    uint64_t now = pt_time_mono_ns();
    if (!force && l->last_report_ns != 0 && now - l->last_report_ns < REPORT_INTERVAL_NS)
        return;
    uint64_t errors = pt_access_log_write_errors(l);
    uint64_t dropped = pt_access_log_dropped(l);
    if (errors == l->reported_errors && dropped == l->reported_dropped)
        return;
    if (errors != l->reported_errors) {
        char msg[128];
        pt_log_warn("access log: %" PRIu64 " failed writes to %s (last: %s)",
                    errors - l->reported_errors, l->fd_name,
                    strerror_r(l->last_errno, msg, sizeof(msg)));
    }
    if (dropped != l->reported_dropped)
        pt_log_warn("access log: %" PRIu64 " lines dropped because a ring was full",
                    dropped - l->reported_dropped);
    l->reported_errors = errors;
    l->reported_dropped = dropped;
    l->last_report_ns = now;
}

static void wait_for_wake(struct pt_access_log *l)
{
    struct pollfd pfd = {.fd = l->wake_fd, .events = POLLIN};
    if (poll(&pfd, 1, FLUSH_INTERVAL_MS) > 0) {
        uint64_t v;
        ssize_t n = read(l->wake_fd, &v, sizeof(v));
        (void)n;
    }
}

static void *writer_main(void *arg)
{
    struct pt_access_log *l = arg;
    for (;;) {
        /* Read before draining: every line appended before stop() set the
         * flag is then visible to this final pass. */
        bool stopping = atomic_load_explicit(&l->stopping, memory_order_acquire);
        switch_if_requested(l);
        drain(l);
        report(l, stopping);
        if (stopping)
            break;
        wait_for_wake(l);
    }
    size_t left = unwritten_bytes(l);
    if (left)
        pt_log_warn("access log: %zu bytes discarded at stop, %s is failing", left, l->fd_name);
    return NULL;
}

static void log_free(struct pt_access_log *l)
{
    for (unsigned i = 0; i < l->nrings; i++) {
        free(l->rings[i].buf);
        free(l->rings[i].scratch);
    }
    free(l->rings);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    if (l->fd >= 0)
        close_dest(l->fd, l->fd_owned);
    if (l->pending)
        close_dest(l->pending_fd, l->pending_owned);
    free(l->fd_name);
    free(l->pending_name);
    free(l->dest);
    pthread_cond_destroy(&l->switched);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

struct pt_access_log *pt_access_log_start(const char *dest, unsigned nrings, size_t ring_bytes,
                                          struct pt_diag *diag)
{
    if (!dest || !*dest) {
        pt_diag_addf(diag, NULL, "access_log", "destination must not be empty");
        return NULL;
    }
    if (nrings == 0) {
        pt_diag_addf(diag, NULL, "access_log", "needs at least one ring");
        return NULL;
    }
    size_t want = ring_bytes ? ring_bytes : PT_ACCESS_RING_DEFAULT;
    if (want > PT_ACCESS_RING_MAX) {
        pt_diag_addf(diag, NULL, "access_log", "ring size %zu exceeds %u bytes", want,
                     PT_ACCESS_RING_MAX);
        return NULL;
    }
    size_t cap = 2 * (size_t)PT_ACCESS_LINE_MAX;
    while (cap < want)
        cap <<= 1;

    struct pt_access_log *l = pt_xcalloc(1, sizeof(*l));
    l->fd = -1;
    l->wake_fd = -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->switched, &ca);
    pthread_condattr_destroy(&ca);
    l->dest = pt_xstrdup(dest);
    l->fd_name = pt_xstrdup(dest);

    int err = open_dest(dest, &l->fd, &l->fd_owned);
    if (err) {
        char msg[128];
        pt_diag_addf(diag, NULL, "access_log", "cannot open \"%s\": %s", dest,
                     strerror_r(err, msg, sizeof(msg)));
        log_free(l);
        return NULL;
    }
    l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wake_fd < 0) {
        char msg[128];
        pt_diag_addf(diag, NULL, "access_log", "eventfd: %s", strerror_r(errno, msg, sizeof(msg)));
        log_free(l);
        return NULL;
    }

    size_t rings_size = (size_t)nrings * sizeof(struct pt_access_ring);
    l->rings = aligned_alloc(alignof(struct pt_access_ring), rings_size);
    if (!l->rings)
        pt_abort_oom(rings_size);
    memset(l->rings, 0, rings_size);
    l->nrings = nrings;
    for (unsigned i = 0; i < nrings; i++) {
        struct pt_access_ring *r = &l->rings[i];
        r->buf = pt_xmalloc(cap);
        r->mask = cap - 1;
        r->threshold = cap / 4;
        r->wake_fd = l->wake_fd;
        r->scratch = pt_xmalloc(PT_ACCESS_LINE_MAX);
        atomic_init(&r->head, 0);
        atomic_init(&r->tail, 0);
        atomic_init(&r->dropped, 0);
    }

    /* The writer inherits a mask blocking every signal, so SIGHUP and
     * SIGTERM reach the thread that handles them, never this one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&l->thread, NULL, writer_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        char msg[128];
        pt_diag_addf(diag, NULL, "access_log", "cannot start the writer thread: %s",
                     strerror_r(err, msg, sizeof(msg)));
        log_free(l);
        return NULL;
    }
    pthread_setname_np(l->thread, "pt-access-log");
    return l;
}

int pt_access_log_reopen(struct pt_access_log *l, const char *dest)
{
    pthread_mutex_lock(&l->mu);
    char *name = pt_xstrdup(dest ? dest : l->dest);
    pthread_mutex_unlock(&l->mu);

    int fd;
    bool owned;
    int err = open_dest(name, &fd, &owned);
    if (err) {
        char msg[128];
        pt_log_error("access log: cannot open \"%s\": %s; still writing to the old destination",
                     name, strerror_r(err, msg, sizeof(msg)));
        free(name);
        return PT_ERR_CONFIG;
    }

    pthread_mutex_lock(&l->mu);
    bool replaced = l->pending;
    int replaced_fd = l->pending_fd;
    bool replaced_owned = l->pending_owned;
    char *replaced_name = l->pending_name;
    l->pending = true;
    l->pending_fd = fd;
    l->pending_owned = owned;
    l->pending_name = name;
    free(l->dest);
    l->dest = pt_xstrdup(name);
    uint64_t ticket = ++l->reopen_requested;
    pthread_mutex_unlock(&l->mu);
    if (replaced)
        close_dest(replaced_fd, replaced_owned);
    free(replaced_name);

    wake(l->wake_fd);

    uint64_t deadline_ns = pt_time_mono_ns() + REOPEN_WAIT_NS;
    struct timespec deadline = {.tv_sec = (time_t)(deadline_ns / NS_PER_SEC),
                                .tv_nsec = (long)(deadline_ns % NS_PER_SEC)};
    pthread_mutex_lock(&l->mu);
    while (l->reopen_done < ticket) {
        if (pthread_cond_timedwait(&l->switched, &l->mu, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&l->mu);
    return 0;
}

void pt_access_log_stop(struct pt_access_log *l)
{
    if (!l)
        return;
    atomic_store_explicit(&l->stopping, true, memory_order_release);
    wake(l->wake_fd);
    pthread_join(l->thread, NULL);
    log_free(l);
}
