#include "upstream/breaker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/named.h"
#include "core/error.h"
#include "core/log.h"
#include "core/strutil.h"

struct pt_breaker {
    pthread_mutex_t mu;
    struct pt_breaker_conf conf;
    /* Under mu. */
    enum pt_breaker_state state;
    uint32_t epoch;       /* + 1 at every transition */
    uint32_t consecutive; /* failures in a row (CLOSED) */
    uint32_t wcount;      /* calls in the window (<= conf.window) */
    uint32_t wfail;       /* failures among them */
    uint32_t wpos;        /* next slot of the ring */
    uint64_t opened_ns;   /* OPEN: when */
    uint32_t probes;      /* HALF_OPEN: probes in flight */
    uint32_t successes;   /* HALF_OPEN: successful probes */
    uint64_t transitions[PT_BREAKER_NSTATES];
    uint64_t rejected;
    struct pt_named named; /* its name and references (core/named.h) */
    uint8_t *ring;         /* conf.window outcomes, 1 = failure */
};

/* Touched only when snapshots are built or freed. */
static struct pt_named_table reg = PT_NAMED_TABLE_INIT;

static uint32_t or_default(uint32_t v, uint32_t d)
{
    return v ? v : d;
}

void pt_breaker_conf_defaults(struct pt_breaker_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->failure_threshold = PT_BREAKER_DEFAULT_FAILURE_THRESHOLD;
    c->success_threshold = PT_BREAKER_DEFAULT_SUCCESS_THRESHOLD;
    c->timeout_ms = PT_BREAKER_DEFAULT_TIMEOUT_MS;
    c->half_open_max_calls = PT_BREAKER_DEFAULT_HALF_OPEN_MAX_CALLS;
    c->window = PT_BREAKER_DEFAULT_WINDOW;
    c->failure_rate = PT_BREAKER_DEFAULT_FAILURE_RATE;
    c->fail_on = PT_BREAKER_ON_DEFAULT;
}

int pt_breaker_conf_add_fail_on(struct pt_breaker_conf *c, const char *s)
{
    static const struct {
        const char *name;
        uint32_t bit;
    } kinds[] = {
        {"5xx", PT_BREAKER_ON_5XX},
        {"gateway-error", PT_BREAKER_ON_GATEWAY_ERROR},
        {"timeout", PT_BREAKER_ON_TIMEOUT},
        {"reset", PT_BREAKER_ON_RESET},
        {"connect-failure", PT_BREAKER_ON_CONNECT_FAILURE},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(s, kinds[i].name) == 0) {
            c->fail_on |= kinds[i].bit;
            return 0;
        }
    if (strncmp(s, "grpc:", 5) != 0 || !s[5])
        return PT_ERR_INVALID;
    const char *code = s + 5;
    uint64_t n;
    if (pt_str_to_u64(pt_str_from_cstr(code), &n) == 0) {
        if (n < 1 || n > 16) /* OK (0) is never a failure */
            return PT_ERR_INVALID;
        c->grpc_codes |= 1u << n;
        return 0;
    }
    for (int i = 1; i <= 16; i++)
        if (strcmp(code, pt_grpc_status_name(i)) == 0) {
            c->grpc_codes |= 1u << i;
            return 0;
        }
    return PT_ERR_INVALID;
}

bool pt_breaker_conf_is_failure(const struct pt_breaker_conf *c, int err, int status, int grpc)
{
    uint32_t m = c->fail_on;
    switch (err) {
    case 0:
        break;
    case PT_ERR_TIMEOUT:
    case PT_ERR_STREAM_IDLE:
        return m & PT_BREAKER_ON_TIMEOUT;
    case PT_ERR_UPSTREAM_CONNECT_TIMEOUT:
        return m & (PT_BREAKER_ON_TIMEOUT | PT_BREAKER_ON_CONNECT_FAILURE);
    case PT_ERR_UPSTREAM_CONNECT:
    case PT_ERR_NO_ENDPOINT:
        return m & PT_BREAKER_ON_CONNECT_FAILURE;
    case PT_ERR_UPSTREAM_RESET:
    case PT_ERR_UPSTREAM_REFUSED:
    case PT_ERR_UPSTREAM_PROTOCOL:
    case PT_ERR_CLOSED:
        return m & PT_BREAKER_ON_RESET;
    default:
        return false; /* the gateway's own errors say nothing about the upstream */
    }
    if (status >= 500 && (m & PT_BREAKER_ON_5XX))
        return true;
    if ((status == 502 || status == 503 || status == 504) && (m & PT_BREAKER_ON_GATEWAY_ERROR))
        return true;
    return grpc > 0 && grpc <= 16 && (c->grpc_codes & (1u << grpc));
}

/* --- the state machine --------------------------------------------------- */

const char *pt_breaker_state_name(enum pt_breaker_state s)
{
    switch (s) {
    case PT_BREAKER_CLOSED:
        return "closed";
    case PT_BREAKER_OPEN:
        return "open";
    case PT_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}

static void window_reset(struct pt_breaker *b)
{
    b->consecutive = b->wcount = b->wfail = b->wpos = 0;
}

/* Caller holds b->mu. */
static void transition(struct pt_breaker *b, enum pt_breaker_state to, uint64_t now,
                       const char *why)
{
    enum pt_breaker_state from = b->state;
    b->state = to;
    b->epoch++;
    b->transitions[to]++;
    b->probes = b->successes = 0;
    window_reset(b);
    if (to == PT_BREAKER_OPEN)
        b->opened_ns = now;
    /* Rare (at most a few per timeout_ms): logging under the lock keeps
     * the lines in transition order. */
    pt_log_info("circuit %s: %s -> %s (%s)", b->named.key, pt_breaker_state_name(from),
                pt_breaker_state_name(to), why);
}

/* Caller holds b->mu. OPEN whose timeout has elapsed becomes HALF_OPEN. */
static void advance(struct pt_breaker *b, uint64_t now)
{
    if (b->state == PT_BREAKER_OPEN &&
        now - b->opened_ns >= (uint64_t)b->conf.timeout_ms * 1000000ull)
        transition(b, PT_BREAKER_HALF_OPEN, now, "open timeout elapsed");
}

enum pt_breaker_verdict pt_breaker_allow(struct pt_breaker *b, uint64_t now,
                                         struct pt_breaker_ticket *t)
{
    enum pt_breaker_verdict v = PT_BREAKER_REJECT;
    pthread_mutex_lock(&b->mu);
    advance(b, now);
    switch (b->state) {
    case PT_BREAKER_CLOSED:
        v = PT_BREAKER_ALLOW;
        break;
    case PT_BREAKER_HALF_OPEN:
        if (b->probes < b->conf.half_open_max_calls) {
            b->probes++;
            v = PT_BREAKER_PROBE;
        }
        break;
    case PT_BREAKER_OPEN:
        break;
    }
    if (v == PT_BREAKER_REJECT)
        b->rejected++;
    t->epoch = b->epoch;
    t->verdict = (uint8_t)v;
    pthread_mutex_unlock(&b->mu);
    return v;
}

bool pt_breaker_would_allow(struct pt_breaker *b, uint64_t now)
{
    if (!b)
        return true;
    pthread_mutex_lock(&b->mu);
    bool ok;
    switch (b->state) {
    case PT_BREAKER_OPEN:
        ok = now - b->opened_ns >= (uint64_t)b->conf.timeout_ms * 1000000ull;
        break;
    case PT_BREAKER_HALF_OPEN:
        ok = b->probes < b->conf.half_open_max_calls;
        break;
    default:
        ok = true;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

/* Caller holds b->mu; state CLOSED. */
static void closed_record(struct pt_breaker *b, uint64_t now, bool failed)
{
    const struct pt_breaker_conf *c = &b->conf;
    b->consecutive = failed ? b->consecutive + 1 : 0;
    if (b->wcount == c->window)
        b->wfail -= b->ring[b->wpos];
    else
        b->wcount++;
    b->ring[b->wpos] = failed;
    b->wfail += failed;
    b->wpos = (b->wpos + 1) % c->window;
    if (b->consecutive >= c->failure_threshold) {
        transition(b, PT_BREAKER_OPEN, now, "consecutive failures");
        return;
    }
    /* The rate is judged only over a full window, so that the first
     * failure after a start or a reset is not a 100% rate. */
    if (b->wcount == c->window && (uint64_t)b->wfail * 100 >= (uint64_t)c->failure_rate * b->wcount)
        transition(b, PT_BREAKER_OPEN, now, "failure rate over the window");
}

void pt_breaker_record(struct pt_breaker *b, uint64_t now, const struct pt_breaker_ticket *t,
                       enum pt_breaker_outcome o)
{
    if (!b || t->verdict == PT_BREAKER_REJECT)
        return;
    pthread_mutex_lock(&b->mu);
    if (t->epoch != b->epoch) {
        pthread_mutex_unlock(&b->mu);
        return;
    }
    if (b->state == PT_BREAKER_HALF_OPEN && t->verdict == PT_BREAKER_PROBE) {
        b->probes--;
        if (o == PT_BREAKER_FAILURE)
            transition(b, PT_BREAKER_OPEN, now, "a half-open probe failed");
        else if (o == PT_BREAKER_SUCCESS && ++b->successes >= b->conf.success_threshold)
            transition(b, PT_BREAKER_CLOSED, now, "half-open probes succeeded");
    } else if (b->state == PT_BREAKER_CLOSED && o != PT_BREAKER_IGNORED) {
        closed_record(b, now, o == PT_BREAKER_FAILURE);
    }
    pthread_mutex_unlock(&b->mu);
}

void pt_breaker_read(struct pt_breaker *b, struct pt_breaker_info *out)
{
    pthread_mutex_lock(&b->mu);
    out->state = b->state;
    memcpy(out->transitions, b->transitions, sizeof(out->transitions));
    out->rejected = b->rejected;
    pthread_mutex_unlock(&b->mu);
}

const struct pt_breaker_conf *pt_breaker_conf_of(const struct pt_breaker *b)
{
    return &b->conf;
}

/* --- objects and the registry -------------------------------------------- */

/* Zeros would make a breaker that never closes or never opens. */
static void conf_normalize(struct pt_breaker_conf *c)
{
    c->failure_threshold = or_default(c->failure_threshold, 1);
    c->success_threshold = or_default(c->success_threshold, 1);
    c->half_open_max_calls = or_default(c->half_open_max_calls, 1);
    c->window = or_default(c->window, 1);
    c->failure_rate = or_default(c->failure_rate, 100);
}

struct pt_breaker *pt_breaker_new(const char *key, const struct pt_breaker_conf *c)
{
    struct pt_breaker *b = pt_xcalloc(1, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    b->conf = *c;
    conf_normalize(&b->conf);
    b->ring = pt_xcalloc(b->conf.window, 1);
    b->named.key = pt_xstrdup(key);
    b->named.refs = 1;
    return b;
}

static bool conf_equal(const struct pt_breaker_conf *a, const struct pt_breaker_conf *b)
{
    return a->failure_threshold == b->failure_threshold &&
           a->success_threshold == b->success_threshold && a->timeout_ms == b->timeout_ms &&
           a->half_open_max_calls == b->half_open_max_calls && a->window == b->window &&
           a->failure_rate == b->failure_rate && a->fail_on == b->fail_on &&
           a->grpc_codes == b->grpc_codes && a->per_instance == b->per_instance;
}

static void breaker_destroy(struct pt_named *n)
{
    struct pt_breaker *b = PT_NAMED_OF(n, struct pt_breaker, named);
    pthread_mutex_destroy(&b->mu);
    free(b->ring);
    free(b->named.key);
    free(b);
}

static struct pt_named *breaker_make(const char *key, const void *arg)
{
    return &pt_breaker_new(key, arg)->named;
}

static bool breaker_same(const struct pt_named *n, const void *arg)
{
    const struct pt_breaker *b = PT_NAMED_OF(n, const struct pt_breaker, named);
    struct pt_breaker_conf fresh = *(const struct pt_breaker_conf *)arg;
    conf_normalize(&fresh);
    return conf_equal(&b->conf, &fresh);
}

static const struct pt_named_ops breaker_ops = {breaker_make, breaker_same, breaker_destroy};

struct pt_breaker *pt_breaker_ref(const char *key, const struct pt_breaker_conf *c)
{
    return PT_NAMED_OF(pt_named_ref(&reg, key, &breaker_ops, c), struct pt_breaker, named);
}

void pt_breaker_unref(struct pt_breaker *b)
{
    if (b)
        pt_named_unref(&reg, &b->named, &breaker_ops);
}

static void read_named(struct pt_named *n, void *out)
{
    pt_breaker_read(PT_NAMED_OF(n, struct pt_breaker, named), out);
}

bool pt_breaker_lookup(const char *key, struct pt_breaker_info *out)
{
    memset(out, 0, sizeof(*out));
    return pt_named_visit(&reg, key, read_named, out);
}
