/*
 * Redis connections for rate limits, one per worker (see redis.h).
 */
#include "ratelimit/redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/log.h"
#include "core/worker.h"
#include "ratelimit/script.h"

#define BACKOFF_MIN_MS 50u

enum conn_state {
    DOWN = 0,
    CONNECTING,
    READY,
};

struct pt_rl_worker {
    struct pt_worker *w;
    redisAsyncContext *ac;
    enum conn_state state;
    char *id;
    char *host;
    int port;
    char *password;
    uint32_t connect_timeout_ms;
    uint32_t max_backoff_ms;
    uint32_t backoff_ms;
    struct event *timer; /* connect timeout, or the backoff before reconnecting */
    bool logged_down;
};

struct pt_rl_redis_call {
    struct pt_rl_worker *rw;
    pt_rl_redis_done_fn *done;
    void *arg;
    bool abandoned;
    bool refund_if_allowed;
    bool retried; /* sent again with EVAL after NOSCRIPT */
    enum pt_rl_redis_op op;
    struct pt_rl_params p;
    uint64_t n;
    uint64_t charged_us;
    size_t klen;
    char key[]; /* the full Redis key */
};

static char script_sha[41];

static void script_sha_init(void)
{
    if (script_sha[0])
        return;
    unsigned char md[20];
    unsigned int len = 0;
    EVP_Digest(pt_rl_script, strlen(pt_rl_script), md, &len, EVP_sha1(), NULL);
    for (int i = 0; i < 20; i++)
        snprintf(script_sha + 2 * i, 3, "%02x", md[i]);
}

/* --- connection ------------------------------------------------------------ */

static void connect_now(struct pt_rl_worker *rw);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pt_rl_worker *rw = arg;
    if (rw->state == CONNECTING && rw->ac) {
        /* Not ready in time: drop this attempt and back off. */
        redisAsyncContext *ac = rw->ac;
        rw->ac = NULL;
        rw->state = DOWN;
        redisAsyncFree(ac);
        rw->backoff_ms = rw->backoff_ms ? rw->backoff_ms : BACKOFF_MIN_MS;
        struct timeval tv = {rw->backoff_ms / 1000, (suseconds_t)(rw->backoff_ms % 1000) * 1000};
        evtimer_add(rw->timer, &tv);
        return;
    }
    if (rw->state == DOWN)
        connect_now(rw);
}

static void schedule_reconnect(struct pt_rl_worker *rw)
{
    rw->state = DOWN;
    rw->backoff_ms = rw->backoff_ms ? rw->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (rw->backoff_ms > rw->max_backoff_ms)
        rw->backoff_ms = rw->max_backoff_ms;
    if (!rw->logged_down) {
        pt_log_warn("rate limit: redis %s:%d unavailable; reconnecting (rules use their fail mode)",
                    rw->host, rw->port);
        rw->logged_down = true;
    }
    struct timeval tv = {rw->backoff_ms / 1000, (suseconds_t)(rw->backoff_ms % 1000) * 1000};
    evtimer_add(rw->timer, &tv);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct pt_rl_worker *rw = ac->data;
    if (status != REDIS_OK && rw && rw->ac == ac) {
        /* hiredis frees the context after this callback. */
        rw->ac = NULL;
        evtimer_del(rw->timer);
        schedule_reconnect(rw);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    struct pt_rl_worker *rw = ac->data;
    if (rw && rw->ac == ac) {
        rw->ac = NULL;
        evtimer_del(rw->timer);
        schedule_reconnect(rw);
    }
}

static void on_loaded(redisAsyncContext *ac, void *r, void *priv)
{
    struct pt_rl_worker *rw = priv;
    redisReply *rep = r;
    if (!rep || rw->ac != ac)
        return; /* the connection is going away; on_disconnect handles it */
    if (rep->type == REDIS_REPLY_STRING && rep->len == 40) {
        rw->state = READY;
        rw->backoff_ms = 0;
        evtimer_del(rw->timer);
        if (rw->logged_down)
            pt_log_info("rate limit: redis %s:%d connected", rw->host, rw->port);
        rw->logged_down = false;
        return;
    }
    pt_log_warn("rate limit: redis %s:%d: SCRIPT LOAD failed: %s", rw->host, rw->port,
                rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    rw->logged_down = true;
    redisAsyncDisconnect(ac);
}

static void connect_now(struct pt_rl_worker *rw)
{
    redisAsyncContext *ac = redisAsyncConnect(rw->host, rw->port);
    if (!ac || ac->err) {
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(rw);
        return;
    }
    ac->data = rw;
    if (redisLibeventAttach(ac, rw->w->base) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_reconnect(rw);
        return;
    }
    rw->ac = ac;
    rw->state = CONNECTING;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (rw->password)
        redisAsyncCommand(ac, NULL, NULL, "AUTH %s", rw->password);
    redisAsyncCommand(ac, on_loaded, rw, "SCRIPT LOAD %s", pt_rl_script);
    struct timeval tv = {rw->connect_timeout_ms / 1000,
                         (suseconds_t)(rw->connect_timeout_ms % 1000) * 1000};
    evtimer_add(rw->timer, &tv);
}

static void worker_close(struct pt_rl_worker *rw)
{
    if (rw->ac) {
        redisAsyncContext *ac = rw->ac;
        rw->ac = NULL;
        redisAsyncFree(ac);
    }
    rw->state = DOWN;
}

static void worker_configure(struct pt_rl_worker *rw, const struct pt_rl_redis_cfg *cfg)
{
    worker_close(rw);
    free(rw->id);
    free(rw->host);
    free(rw->password);
    rw->id = pt_xstrdup(cfg->id);
    rw->host = pt_xstrdup(cfg->host);
    rw->port = cfg->port;
    rw->password = cfg->password ? pt_xstrdup(cfg->password) : NULL;
    rw->connect_timeout_ms = cfg->connect_timeout_ms;
    rw->max_backoff_ms = cfg->max_backoff_ms;
    rw->backoff_ms = 0;
    evtimer_del(rw->timer);
    connect_now(rw);
}

static struct pt_rl_worker *worker_get(struct pt_worker *w, const struct pt_rl_redis_cfg *cfg)
{
    struct pt_rl_worker *rw = w->rl;
    if (!rw) {
        script_sha_init();
        rw = pt_xcalloc(1, sizeof(*rw));
        rw->w = w;
        rw->timer = evtimer_new(w->base, on_timer, rw);
        if (!rw->timer)
            pt_abort_oom(64);
        w->rl = rw;
    }
    if (!rw->id || strcmp(rw->id, cfg->id) != 0)
        worker_configure(rw, cfg);
    return rw;
}

void pt_rl_worker_fini(struct pt_worker *w)
{
    struct pt_rl_worker *rw = w->rl;
    if (!rw)
        return;
    worker_close(rw);
    event_free(rw->timer);
    free(rw->id);
    free(rw->host);
    free(rw->password);
    free(rw);
    w->rl = NULL;
}

/* --- calls ------------------------------------------------------------------ */

static int send_call(struct pt_rl_redis_call *c, bool whole_script);

static void parse_reply(const struct pt_rl_redis_call *c, const redisReply *rep,
                        struct pt_rl_redis_result *res)
{
    memset(res, 0, sizeof(*res));
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 5)
        return;
    long long v[5];
    for (int i = 0; i < 5; i++) {
        if (rep->element[i]->type != REDIS_REPLY_INTEGER)
            return;
        v[i] = rep->element[i]->integer;
    }
    res->ok = true;
    res->value = v[0] > 0 ? (uint64_t)v[0] : 0;
    res->d.allowed = v[0] > 0;
    res->d.limit = c->p.limit;
    res->d.remaining = v[1] > 0 ? (uint64_t)v[1] : 0;
    res->d.reset_ns = v[2] > 0 ? (uint64_t)v[2] * 1000 : 0;
    res->d.retry_ns = v[3] < 0 ? UINT64_MAX : (uint64_t)v[3] * 1000;
    if (res->d.allowed)
        res->d.retry_ns = 0;
    res->now_us = v[4] > 0 ? (uint64_t)v[4] : 0;
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct pt_rl_redis_call *c = priv;
    redisReply *rep = r;
    if (rep && rep->type == REDIS_REPLY_ERROR && !c->retried && c->rw->ac == ac &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        /* The script cache was flushed (SCRIPT FLUSH, a restart behind a
         * proxy): send it whole; Redis caches it again. */
        c->retried = true;
        if (send_call(c, true) == 0)
            return;
    }
    struct pt_rl_redis_result res;
    parse_reply(c, rep, &res);
    if (rep && rep->type == REDIS_REPLY_ERROR)
        pt_log_debug("rate limit: redis error: %s", rep->str);
    if (!c->abandoned && c->done) {
        c->done(c->arg, &res);
    } else if (c->abandoned && c->refund_if_allowed && res.ok && c->op == PT_RL_OP_DECIDE &&
               res.value && c->rw->ac == ac && c->rw->state == READY) {
        c->op = PT_RL_OP_REFUND;
        c->charged_us = res.now_us;
        c->done = NULL;
        c->retried = false;
        if (send_call(c, false) == 0)
            return;
    }
    free(c);
}

static int send_call(struct pt_rl_redis_call *c, bool whole_script)
{
    char lim[24], burst[24], win[24], n[24], charged[24];
    snprintf(lim, sizeof(lim), "%" PRIu64, c->p.limit);
    snprintf(burst, sizeof(burst), "%" PRIu64, c->p.burst);
    snprintf(win, sizeof(win), "%" PRIu64, c->p.window_ns / 1000);
    snprintf(n, sizeof(n), "%" PRIu64, c->n);
    snprintf(charged, sizeof(charged), "%" PRIu64, c->charged_us);
    static const char *const ops[] = {"d", "r", "t"};
    const char *argv[11] = {
        whole_script ? "EVAL" : "EVALSHA",
        whole_script ? pt_rl_script : script_sha,
        "1",
        c->key,
        ops[c->op],
        c->p.algorithm == PT_RL_SLIDING_WINDOW ? "sw" : "tb",
        lim,
        burst,
        win,
        n,
        charged,
    };
    size_t lens[11];
    for (int i = 0; i < 11; i++)
        lens[i] = i == 3 ? c->klen : strlen(argv[i]);
    return redisAsyncCommandArgv(c->rw->ac, on_reply, c, 11, argv, lens) == REDIS_OK ? 0 : -1;
}

struct pt_rl_redis_call *
pt_rl_redis_call_start(struct pt_worker *w, const struct pt_rl_redis_cfg *cfg, const char *tag,
                       const char *key, size_t klen, const struct pt_rl_params *p,
                       enum pt_rl_redis_op op, uint64_t n, uint64_t charged_us,
                       pt_rl_redis_done_fn *done, void *arg)
{
    if (!w)
        return NULL;
    struct pt_rl_worker *rw = worker_get(w, cfg);
    /* While connecting, hiredis queues the call behind AUTH and SCRIPT
     * LOAD (the caller's budget bounds the wait); while down, fail now. */
    if (rw->state == DOWN || !rw->ac)
        return NULL;
    size_t plen = strlen(cfg->key_prefix), tlen = strlen(tag);
    size_t full = plen + 1 + tlen + 1 + klen + 1;
    struct pt_rl_redis_call *c = pt_xcalloc(1, sizeof(*c) + full + 1);
    c->rw = rw;
    c->done = done;
    c->arg = arg;
    c->op = op;
    c->p = *p;
    c->n = n ? n : 1;
    c->charged_us = charged_us;
    char *k = c->key;
    memcpy(k, cfg->key_prefix, plen);
    k[plen] = '{';
    memcpy(k + plen + 1, tag, tlen);
    k[plen + 1 + tlen] = ':';
    memcpy(k + plen + 2 + tlen, key, klen);
    k[full - 1] = '}';
    c->klen = full;
    if (send_call(c, false) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

void pt_rl_redis_call_abandon(struct pt_rl_redis_call *c, bool refund_if_allowed)
{
    if (!c)
        return;
    c->abandoned = true;
    c->refund_if_allowed = refund_if_allowed;
}
