/*
 * Fuzz the authorization rule compiler and evaluator (auth/expr).
 *
 * Input: the rule's source, whole. A rejected rule must carry "col N: ..."
 * with N inside the source (or just past it). An accepted rule is
 * evaluated against environments derived from a hash of each attribute's
 * path (every type, including types the root never has), and must:
 *   - give the same answer twice;
 *   - never allow together with its negation !(rule);
 *   - never allow with some attributes MISSING and deny with all of them
 *     present (knowing less never allows more), unless it uses exists();
 *   - list only well-formed attributes (header names lower case).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

static const struct pt_str strings[] = {
    {"alice", 5}, {"", 0},    {"10.1.2.3", 8}, {"2001:db8::1", 11}, {"::ffff:10.0.0.1", 15},
    {"a", 1},     {"GET", 3},
};

/* 0: answers everything; 1: MISSING wherever the hash says so. */
struct env {
    int mode;
};

static uint64_t hash(enum pt_expr_root root, const struct pt_str *keys, size_t nkeys)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)root;
    for (size_t k = 0; k < nkeys; k++) {
        for (size_t i = 0; i < keys[k].len; i++)
            h = (h ^ (unsigned char)keys[k].ptr[i]) * 1099511628211ull;
        h = (h ^ '.') * 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static bool lookup(void *ctx, enum pt_expr_root root, const struct pt_str *keys, size_t nkeys,
                   struct pt_expr_value *out)
{
    const struct env *env = ctx;
    uint64_t h = hash(root, keys, nkeys);
    if (env->mode == 1 && (h & 1))
        return false;
    size_t nstr = sizeof(strings) / sizeof(strings[0]);
    switch ((h >> 1) % 5) {
    case 0:
    case 1:
        out->type = PT_EXPR_VTYPE_STRING;
        out->s = strings[(h >> 4) % nstr];
        break;
    case 2:
        out->type = PT_EXPR_VTYPE_INT;
        out->i = (int64_t)((h >> 4) % 7) - 3;
        break;
    case 3:
        out->type = PT_EXPR_VTYPE_BOOL;
        out->b = (h >> 4) & 1;
        break;
    default:
        out->type = PT_EXPR_VTYPE_LIST;
        out->list.items = strings + (h >> 4) % nstr;
        out->list.n = (h >> 8) % (nstr - (h >> 4) % nstr + 1);
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[PT_EXPR_ERR_MAX];
    struct pt_str src = {(const char *)data, size};
    struct pt_expr *e = pt_expr_compile(src, err, sizeof(err));
    if (!e) {
        unsigned long col = 0;
        check(sscanf(err, "col %lu: ", &col) == 1);
        check(col >= 1 &&
              (col <= size + 1 || (size > PT_EXPR_MAX_SOURCE && col == PT_EXPR_MAX_SOURCE + 1)));
        return 0;
    }
    size_t n;
    const struct pt_expr_attr *attrs = pt_expr_attrs(e, &n);
    for (size_t i = 0; i < n; i++) {
        check(pt_expr_uses(e, attrs[i].root));
        check(attrs[i].nkeys <= PT_EXPR_MAX_KEYS);
        check((attrs[i].root == PT_EXPR_ROOT_CLIENT_IP) == (attrs[i].nkeys == 0));
        for (size_t k = 0; k < attrs[i].nkeys; k++) {
            check(attrs[i].keys[k].len > 0 && attrs[i].keys[k].len <= PT_EXPR_MAX_KEY_LEN);
            if (attrs[i].root == PT_EXPR_ROOT_HEADER)
                for (size_t c = 0; c < attrs[i].keys[k].len; c++)
                    check(!(attrs[i].keys[k].ptr[c] >= 'A' && attrs[i].keys[k].ptr[c] <= 'Z'));
        }
    }

    struct env full = {0}, partial = {1};
    bool all = pt_expr_eval(e, lookup, &full);
    check(pt_expr_eval(e, lookup, &full) == all);
    bool some = pt_expr_eval(e, lookup, &partial);
    bool none = pt_expr_eval(e, NULL, NULL);
    if (!memmem(data, size, "exists", 6))
        check((!some || all) && (!none || some));

    if (size + 3 <= PT_EXPR_MAX_SOURCE) {
        char *neg = malloc(size + 3);
        check(neg != NULL);
        neg[0] = '!';
        neg[1] = '(';
        memcpy(neg + 2, data, size);
        neg[size + 2] = ')';
        struct pt_expr *ne = pt_expr_compile((struct pt_str){neg, size + 3}, NULL, 0);
        if (ne) {
            check(!(all && pt_expr_eval(ne, lookup, &full)));
            check(!(some && pt_expr_eval(ne, lookup, &partial)));
            check(!(none && pt_expr_eval(ne, NULL, NULL)));
            pt_expr_free(ne);
        }
        free(neg);
    }
    pt_expr_free(e);
    return 0;
}
