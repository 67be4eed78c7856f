/*
 * The reflection thread on grpc core: see reflect_client.h. Built apart
 * from pt_transcode (it does I/O) with grpc core's headers ahead of src/.
 */
#include "transcode/reflect_client.h"

#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
/* grpc_security.h declares some functions as `f()`. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <grpc/grpc_security.h>
#pragma GCC diagnostic pop
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/log.h"
#include "portico/errors.h"

#define NEVER UINT64_MAX
#define V1 "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
#define V1ALPHA "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

struct target {
    char *name;
    char *address; /* "host:port" */
    uint32_t refresh_ms;
    uint64_t next_at; /* monotonic ms; NEVER = only when asked */
    unsigned failures;
    uint64_t asked;    /* refresh requests so far (their sequence numbers) */
    uint64_t finished; /* the highest request a finished fetch answered */
    bool fetched;      /* a fetch finished at least once */
    int last_rc;       /* of the last finished fetch */
    uint64_t last_gen; /* published by the last successful fetch */
    char last_err[256];
    bool live;    /* still configured */
    bool running; /* a slot is fetching it */
};

/* Fetches run on up to SLOTS threads of their own, so a backend that hangs
 * delays only its own service. */
#define SLOTS 4

struct slot {
    struct pt_tc_reflector *r;
    pthread_t thread;
    bool busy;          /* fetching (cleared by the slot thread at the end) */
    bool joinable;      /* started and not joined yet */
    grpc_call *current; /* the call in flight, for stop to cancel (under lock) */
    char *name, *address;
    uint64_t answers; /* every refresh asked before the fetch started */
};

struct pt_tc_reflector {
    struct pt_tc_reflect_registry *reg;
    struct pt_tc_reflector_opts o;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* targets changed, a fetch finished, stop */
    bool stop;
    struct slot slots[SLOTS];
    struct target *t;
    size_t n;
    unsigned seed;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The CLOCK_REALTIME time ms from now, for pthread_cond_timedwait. */
static struct timespec wall_in(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d)
        abort();
    return d;
}

/* -- one call, one fetch (no lock held) ----------------------------------- */

/* Status: the gRPC status code of one ServerReflectionInfo call carrying
 * req; on OK *resp (gpr-allocated slice copy, caller frees) holds the
 * answer. msg gets grpc's status message. */
static int call_once(struct pt_tc_reflector *r, struct slot *sl, grpc_channel *ch,
                     grpc_completion_queue *cq, const char *method, const uint8_t *req, size_t len,
                     gpr_timespec deadline, uint8_t **resp, size_t *resp_len, char *msg,
                     size_t msglen)
{
    *resp = NULL;
    *resp_len = 0;
    grpc_call *gc =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                 grpc_slice_from_static_string(method), NULL, deadline, NULL);
    pthread_mutex_lock(&r->lock);
    bool stopping = r->stop;
    sl->current = gc;
    pthread_mutex_unlock(&r->lock);
    if (stopping)
        grpc_call_cancel(gc, NULL);
    grpc_slice body = grpc_slice_from_copied_buffer((const char *)req, len);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1);
    grpc_slice_unref(body);
    grpc_metadata_array initial, trailing;
    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);
    grpc_byte_buffer *recv = NULL;
    grpc_slice details = grpc_empty_slice();
    const char *error_string = NULL;
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;
    ops[5].data.recv_status_on_client.error_string = &error_string;
    void *tag = (void *)1;
    int rc;
    if (grpc_call_start_batch(gc, ops, 6, tag, NULL) != GRPC_CALL_OK) {
        snprintf(msg, msglen, "cannot start the call");
        rc = GRPC_STATUS_INTERNAL;
    } else {
        /* The deadline ends the call; the extra second lets its status in. */
        grpc_event ev = grpc_completion_queue_pluck(
            cq, tag, gpr_time_add(deadline, gpr_time_from_seconds(1, GPR_TIMESPAN)), NULL);
        if (ev.type != GRPC_OP_COMPLETE) {
            grpc_call_cancel(gc, NULL);
            grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            snprintf(msg, msglen, "no answer before the deadline");
            rc = GRPC_STATUS_DEADLINE_EXCEEDED;
        } else {
            rc = (int)code;
            snprintf(msg, msglen, "%.*s", (int)GRPC_SLICE_LENGTH(details),
                     (const char *)GRPC_SLICE_START_PTR(details));
            if (rc == GRPC_STATUS_OK && !recv) {
                snprintf(msg, msglen, "the server sent no answer");
                rc = GRPC_STATUS_INTERNAL;
            } else if (rc == GRPC_STATUS_OK) {
                grpc_byte_buffer_reader reader;
                grpc_byte_buffer_reader_init(&reader, recv);
                grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
                grpc_byte_buffer_reader_destroy(&reader);
                *resp_len = GRPC_SLICE_LENGTH(all);
                *resp = malloc(*resp_len ? *resp_len : 1);
                if (!*resp)
                    abort();
                memcpy(*resp, GRPC_SLICE_START_PTR(all), *resp_len);
                grpc_slice_unref(all);
            }
        }
    }
    if (error_string)
        gpr_free((void *)error_string);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    if (recv)
        grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    pthread_mutex_lock(&r->lock);
    sl->current = NULL;
    pthread_mutex_unlock(&r->lock);
    grpc_call_unref(gc);
    return rc;
}

/* Status: 0 with a published generation in *gen, or a PT_ERR_* with why. */
static int fetch(struct pt_tc_reflector *r, struct slot *sl, const char *name, const char *address,
                 uint64_t *gen, char *why, size_t whylen)
{
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    /* One answer may carry up to the fetch's byte limit (grpc's default
     * receive limit is 4 MiB); a little more for the envelope. */
    size_t max_bytes =
        r->o.limits.max_bytes ? r->o.limits.max_bytes : PT_TC_REFLECT_DEFAULT_MAX_BYTES;
    grpc_arg arg = {.type = GRPC_ARG_INTEGER,
                    .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                    .value.integer = max_bytes > (1u << 30) ? (1 << 30) : (int)max_bytes + 65536};
    grpc_channel_args args = {.num_args = 1, .args = &arg};
    grpc_channel *ch = grpc_channel_create(address, creds, &args);
    grpc_channel_credentials_release(creds);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec end =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_millis((int64_t)r->o.fetch_timeout_ms, GPR_TIMESPAN));
    struct pt_tc_reflect_fetch *f = pt_tc_reflect_fetch_new(&r->o.limits);
    const char *method = V1;
    bool first = true, alpha = false;
    int rc = 0;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        bool stop = r->stop;
        pthread_mutex_unlock(&r->lock);
        if (stop) {
            snprintf(why, whylen, "stopped");
            rc = PT_ERR_SHUTTING_DOWN;
            break;
        }
        uint8_t *req;
        size_t len;
        int step = pt_tc_reflect_fetch_next(f, &req, &len);
        if (step < 0) {
            snprintf(why, whylen, "%s", pt_tc_reflect_fetch_error(f));
            rc = step;
            break;
        }
        if (step == 0)
            break;
        gpr_timespec deadline =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                         gpr_time_from_millis((int64_t)r->o.call_timeout_ms, GPR_TIMESPAN));
        if (gpr_time_cmp(deadline, end) > 0)
            deadline = end;
        uint8_t *resp;
        size_t resp_len;
        char msg[160];
        int code = call_once(r, sl, ch, cq, method, req, len, deadline, &resp, &resp_len, msg,
                             sizeof(msg));
        if (code == GRPC_STATUS_UNIMPLEMENTED && first && !alpha) {
            method = V1ALPHA; /* an older server: the same messages */
            alpha = true;
            code = call_once(r, sl, ch, cq, method, req, len, deadline, &resp, &resp_len, msg,
                             sizeof(msg));
        }
        free(req);
        first = false;
        pthread_mutex_lock(&r->lock);
        bool stopping = r->stop;
        pthread_mutex_unlock(&r->lock);
        if (code != GRPC_STATUS_OK && stopping) {
            free(resp);
            snprintf(why, whylen, "stopped");
            rc = PT_ERR_SHUTTING_DOWN;
            break;
        }
        if (code != GRPC_STATUS_OK) {
            snprintf(why, whylen, "%s: %s%s%s", address, pt_grpc_status_name(code),
                     *msg ? ": " : "", msg);
            if (code == GRPC_STATUS_UNIMPLEMENTED)
                snprintf(why, whylen,
                         "%s: the backend does not serve grpc.reflection (v1 or "
                         "v1alpha): UNIMPLEMENTED",
                         address);
            rc = code == GRPC_STATUS_DEADLINE_EXCEEDED ? PT_ERR_TIMEOUT : PT_ERR_UPSTREAM_CONNECT;
            break;
        }
        rc = pt_tc_reflect_fetch_on_response(f, resp, resp_len);
        free(resp);
        if (rc < 0) {
            snprintf(why, whylen, "%s", pt_tc_reflect_fetch_error(f));
            break;
        }
    }
    if (rc == 0) {
        char err[256];
        struct pt_descpool *p = pt_tc_reflect_fetch_pool(f, NULL, err, sizeof(err));
        if (!p) {
            snprintf(why, whylen, "%s", err);
            rc = PT_ERR_INVALID;
        } else {
            const char *const *names;
            size_t n = pt_tc_reflect_fetch_services(f, &names);
            *gen = pt_tc_reflect_publish(r->reg, name, p, names, n);
            pt_log_info("reflection: service %s: generation %llu, %zu file(s), %zu gRPC "
                        "service(s) from %s",
                        name, (unsigned long long)*gen, pt_tc_reflect_fetch_file_count(f), n,
                        address);
        }
    }
    pt_tc_reflect_fetch_free(f);
    grpc_channel_destroy(ch);
    grpc_completion_queue_shutdown(cq);
    for (int i = 0; i < 16; i++) {
        grpc_event ev =
            grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
    }
    grpc_completion_queue_destroy(cq);
    return rc;
}

/* -- the thread ----------------------------------------------------------- */

static struct target *due(struct pt_tc_reflector *r, uint64_t now, uint64_t *wake)
{
    *wake = NEVER;
    for (size_t i = 0; i < r->n; i++) {
        struct target *t = &r->t[i];
        if (!t->live || t->running)
            continue;
        if (t->next_at <= now)
            return t;
        if (t->next_at < *wake)
            *wake = t->next_at;
    }
    return NULL;
}

/* Under r->lock: the result of a fetch of `name` onto its target. */
static void finish(struct pt_tc_reflector *r, const char *name, uint64_t answers, int rc,
                   uint64_t gen, const char *why)
{
    /* The table may have changed meanwhile: find the target again. */
    for (size_t i = 0; i < r->n; i++) {
        struct target *x = &r->t[i];
        if (strcmp(x->name, name) != 0)
            continue;
        x->running = false;
        if (answers > x->finished)
            x->finished = answers;
        x->fetched = true;
        x->last_rc = rc;
        x->last_gen = gen;
        snprintf(x->last_err, sizeof(x->last_err), "%s", why);
        if (rc == 0)
            x->failures = 0;
        else
            x->failures++;
        if (x->asked > answers) {
            x->next_at = 0; /* asked again (or moved) while this fetch ran */
        } else if (rc == 0) {
            x->next_at = x->refresh_ms ? now_ms() + x->refresh_ms : NEVER;
        } else {
            uint32_t b = pt_tc_reflect_backoff_ms(x->failures);
            x->next_at = now_ms() + b - b / 4 + (uint64_t)(rand_r(&r->seed) % (b / 2 + 1));
        }
    }
}

static void *slot_main(void *arg)
{
    struct slot *sl = arg;
    struct pt_tc_reflector *r = sl->r;
    uint64_t gen = 0;
    char why[256] = "";
    int rc = fetch(r, sl, sl->name, sl->address, &gen, why, sizeof(why));
    if (rc != 0 && rc != PT_ERR_SHUTTING_DOWN) {
        pt_tc_reflect_record_failure(r->reg, sl->name, why);
        pt_log_warn("reflection: service %s: %s (keeping the last good descriptors)", sl->name,
                    why);
    }
    pthread_mutex_lock(&r->lock);
    finish(r, sl->name, sl->answers, rc, gen, why);
    free(sl->name);
    free(sl->address);
    sl->name = sl->address = NULL;
    sl->busy = false;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* The scheduler: starts due fetches on free slots, reaps finished ones. */
static void *run(void *arg)
{
    struct pt_tc_reflector *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        struct slot *free_slot = NULL;
        for (int i = 0; i < SLOTS; i++) {
            struct slot *sl = &r->slots[i];
            if (sl->joinable && !sl->busy) {
                pthread_join(sl->thread, NULL); /* it has released the lock and is ending */
                sl->joinable = false;
            }
            if (!sl->joinable && !free_slot)
                free_slot = sl;
        }
        uint64_t now = now_ms(), wake;
        struct target *t = free_slot ? due(r, now, &wake) : NULL;
        if (!t) {
            /* Sleep until the next one is due or a slot frees, at most a second. */
            if (!free_slot)
                wake = NEVER;
            uint64_t ms = wake == NEVER || wake - now > 1000 ? 1000 : wake - now;
            struct timespec ts = wall_in(ms);
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
            continue;
        }
        struct slot *sl = free_slot;
        sl->r = r;
        sl->name = xstrdup(t->name);
        sl->address = xstrdup(t->address);
        sl->answers = t->asked; /* every refresh asked so far sees this fetch */
        sl->busy = true;
        t->running = true;
        t->next_at = NEVER; /* until this fetch ends */
        int e = pthread_create(&sl->thread, NULL, slot_main, sl);
        if (e != 0) {
            pt_log_warn("reflection: service %s: cannot start a fetch: %s", t->name, strerror(e));
            free(sl->name);
            free(sl->address);
            sl->name = sl->address = NULL;
            sl->busy = false;
            t->running = false;
            t->next_at = now + 1000;
            continue;
        }
        sl->joinable = true;
    }
    /* Stopping: cut the calls in flight, then wait for every slot. */
    for (int i = 0; i < SLOTS; i++)
        if (r->slots[i].current)
            grpc_call_cancel(r->slots[i].current, NULL);
    pthread_mutex_unlock(&r->lock);
    for (int i = 0; i < SLOTS; i++)
        if (r->slots[i].joinable)
            pthread_join(r->slots[i].thread, NULL);
    return NULL;
}

struct pt_tc_reflector *pt_tc_reflector_start(struct pt_tc_reflect_registry *reg,
                                              const struct pt_tc_reflector_opts *o, char *err,
                                              size_t errlen)
{
    struct pt_tc_reflector *r = calloc(1, sizeof(*r));
    if (!r)
        abort();
    r->reg = reg;
    if (o)
        r->o = *o;
    if (!r->o.call_timeout_ms)
        r->o.call_timeout_ms = 5000;
    if (!r->o.fetch_timeout_ms)
        r->o.fetch_timeout_ms = 30000;
    r->seed = (unsigned)now_ms();
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    grpc_init();
    int e = pthread_create(&r->thread, NULL, run, r);
    if (e != 0) {
        snprintf(err, errlen, "reflection thread: %s", strerror(e));
        grpc_shutdown();
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return NULL;
    }
    return r;
}

static struct target *target_find(struct pt_tc_reflector *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->t[i].name, name) == 0)
            return &r->t[i];
    return NULL;
}

void pt_tc_reflector_configure(struct pt_tc_reflector *r, const Portico__Config__V1__Config *cfg)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n; i++)
        r->t[i].live = false;
    for (size_t i = 0; cfg && i < cfg->n_services; i++) {
        const Portico__Config__V1__Service *s = cfg->services[i];
        if (!s->reflection || !s->name)
            continue;
        char address[300];
        if (s->n_instances == 0 || !s->instances[0]->host) {
            pt_tc_reflect_record_failure(r->reg, s->name,
                                         "reflection needs a static instance to ask");
            continue;
        }
        const char *h = s->instances[0]->host;
        snprintf(address, sizeof(address), strchr(h, ':') ? "[%s]:%u" : "%s:%u", h,
                 s->instances[0]->port);
        struct target *t = target_find(r, s->name);
        if (!t) {
            struct target *v = realloc(r->t, (r->n + 1) * sizeof(*v));
            if (!v)
                abort();
            r->t = v;
            t = &r->t[r->n++];
            memset(t, 0, sizeof(*t));
            t->name = xstrdup(s->name);
            t->next_at = 0; /* new: fetch at once */
        } else if (strcmp(t->address, address) != 0 || !t->live) {
            t->asked++; /* moved or back: also after a fetch in flight ends */
        }
        bool again = t->asked > t->finished && t->fetched;
        free(t->address);
        t->address = xstrdup(address);
        if (t->refresh_ms != s->descriptor_refresh_ms && t->failures == 0 && t->fetched)
            t->next_at = s->descriptor_refresh_ms ? now_ms() + s->descriptor_refresh_ms : NEVER;
        t->refresh_ms = s->descriptor_refresh_ms;
        if (again)
            t->next_at = 0; /* moved, back in the configuration, or a refresh pending */
        t->live = true;
        pt_tc_reflect_entry_get(r->reg, s->name);
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

int pt_tc_reflector_refresh(struct pt_tc_reflector *r, const char *name, unsigned timeout_ms,
                            uint64_t *generation, char *err, size_t errlen)
{
    *generation = 0;
    pthread_mutex_lock(&r->lock);
    struct target *t = target_find(r, name);
    if (!t || !t->live) {
        pthread_mutex_unlock(&r->lock);
        snprintf(err, errlen, "service \"%s\" does not fetch its descriptors by reflection", name);
        return PT_ERR_NOT_FOUND;
    }
    /* Wait for a fetch that starts after this call: one already running
     * may predate what the caller wants to see. */
    uint64_t mine = ++t->asked;
    t->next_at = 0;
    pthread_cond_broadcast(&r->cond);
    uint64_t deadline = now_ms() + timeout_ms;
    int rc = PT_ERR_TIMEOUT;
    snprintf(err, errlen, "no result within %u ms", timeout_ms);
    while (!r->stop) {
        t = target_find(r, name); /* the table may have moved */
        if (!t)
            break;
        if (t->finished >= mine) {
            rc = t->last_rc;
            *generation = t->last_gen;
            snprintf(err, errlen, "%s", rc ? t->last_err : "");
            break;
        }
        uint64_t now = now_ms();
        if (now >= deadline)
            break;
        uint64_t ms = deadline - now;
        struct timespec ts = wall_in(ms);
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void pt_tc_reflector_stop(struct pt_tc_reflector *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    for (int i = 0; i < SLOTS; i++)
        if (r->slots[i].current) /* thread-safe; the call ends at once */
            grpc_call_cancel(r->slots[i].current, NULL);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    for (size_t i = 0; i < r->n; i++) {
        free(r->t[i].name);
        free(r->t[i].address);
    }
    free(r->t);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    grpc_shutdown();
    free(r);
}
