/*
 * rl_reference: algo.c driven line by line, for the integration test that
 * checks the Redis script (src/ratelimit/script.lua) against it
 * (tests/integration/test_ratelimit.py, TestScriptMirrorsAlgo).
 *
 * stdin, one operation per line:
 *   <key> <d|r|t> <token_bucket|gcra|sliding_window> <limit> <burst> <window_us> <n> <now_us>
 * <charged_us> stdout, one line per operation: d: <allowed 0|1> <remaining> <reset_us> <retry_us or
 * -1>   (times rounded up to us) t: <taken> r: ok Keys are up to 63 bytes; at most 256 distinct
 * keys.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ratelimit/algo.h"

#define MAXKEYS 256

static uint64_t up_us(uint64_t ns)
{
    return ns / 1000 + (ns % 1000 ? 1 : 0);
}

int main(void)
{
    static char keys[MAXKEYS][64];
    static struct pt_rl_state states[MAXKEYS];
    size_t nkeys = 0;
    char line[512], key[64], op[4], algo[32];
    unsigned long long limit, burst, window_us, n, now_us, charged_us;
    while (fgets(line, sizeof(line), stdin)) {
        if (sscanf(line, "%63s %3s %31s %llu %llu %llu %llu %llu %llu", key, op, algo, &limit,
                   &burst, &window_us, &n, &now_us, &charged_us) != 9) {
            fprintf(stderr, "bad line: %s", line);
            return 2;
        }
        size_t k = 0;
        while (k < nkeys && strcmp(keys[k], key) != 0)
            k++;
        if (k == nkeys) {
            if (nkeys == MAXKEYS)
                return 2;
            strcpy(keys[nkeys++], key);
        }
        struct pt_rl_params p = {
            .algorithm = strcmp(algo, "gcra") == 0             ? PT_RL_GCRA
                         : strcmp(algo, "sliding_window") == 0 ? PT_RL_SLIDING_WINDOW
                                                               : PT_RL_TOKEN_BUCKET,
            .limit = limit,
            .burst = burst,
            .window_ns = window_us * 1000,
        };
        if (pt_rl_params_check(&p) != 0)
            return 2;
        if (op[0] == 'd') {
            struct pt_rl_decision d;
            pt_rl_decide(&p, &states[k], now_us * 1000, n, &d);
            if (d.allowed || d.retry_ns == UINT64_MAX)
                printf("%d %llu %llu %lld\n", d.allowed, (unsigned long long)d.remaining,
                       (unsigned long long)up_us(d.reset_ns), d.allowed ? 0ll : -1ll);
            else
                printf("0 %llu %llu %llu\n", (unsigned long long)d.remaining,
                       (unsigned long long)up_us(d.reset_ns),
                       (unsigned long long)up_us(d.retry_ns));
        } else if (op[0] == 't') {
            printf("%llu\n", (unsigned long long)pt_rl_take(&p, &states[k], now_us * 1000, n));
        } else {
            pt_rl_refund(&p, &states[k], charged_us * 1000, n);
            printf("ok\n");
        }
        fflush(stdout);
    }
    return 0;
}
