/*
 * auth/expr_eval.c - the rule evaluator: a recursive walk of the compiled
 * tree in three-valued logic. No allocation: values are borrowed from the
 * program (literals) or from the lookup (attributes); recursion depth is
 * bounded by the node count (PT_EXPR_MAX_NODES).
 */
#include <string.h>

#include "auth/expr_int.h"

enum tri { NO = 0, YES, UNKNOWN };

struct env {
    const struct pt_expr *e;
    pt_expr_lookup_fn *lookup;
    void *ctx;
};

static const struct pt_expr_value missing = {.type = PT_EXPR_VTYPE_MISSING};

static bool str_ok(struct pt_str s)
{
    return s.ptr || s.len == 0;
}

/* The binder's answer, or MISSING when it is absent or malformed. */
static struct pt_expr_value lookup(const struct env *v, const struct pt_expr_attr *a)
{
    struct pt_expr_value out = missing;
    if (!v->lookup || !v->lookup(v->ctx, a->root, a->keys, a->nkeys, &out))
        return missing;
    switch (out.type) {
    case PT_EXPR_VTYPE_STRING:
        return str_ok(out.s) ? out : missing;
    case PT_EXPR_VTYPE_INT:
    case PT_EXPR_VTYPE_BOOL:
        return out;
    case PT_EXPR_VTYPE_LIST:
        if (!out.list.items && out.list.n)
            return missing;
        for (size_t i = 0; i < out.list.n; i++)
            if (!str_ok(out.list.items[i]))
                return missing;
        return out;
    default:
        return missing;
    }
}

static enum tri tri_of(bool b)
{
    return b ? YES : NO;
}

static bool list_has(struct pt_expr_list l, struct pt_str s)
{
    for (size_t i = 0; i < l.n; i++)
        if (pt_str_eq(l.items[i], s))
            return true;
    return false;
}

/* memcmp order, a prefix before its extensions. */
static int str_cmp(struct pt_str a, struct pt_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static bool values_equal(const struct pt_expr_value *a, const struct pt_expr_value *b)
{
    switch (a->type) {
    case PT_EXPR_VTYPE_STRING:
        return pt_str_eq(a->s, b->s);
    case PT_EXPR_VTYPE_INT:
        return a->i == b->i;
    case PT_EXPR_VTYPE_BOOL:
        return a->b == b->b;
    case PT_EXPR_VTYPE_LIST:
        if (a->list.n != b->list.n)
            return false;
        for (size_t i = 0; i < a->list.n; i++)
            if (!pt_str_eq(a->list.items[i], b->list.items[i]))
                return false;
        return true;
    default:
        return false;
    }
}

static bool cidr_match(const struct pt_expr_cidr *c, const uint8_t addr[16])
{
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

static enum tri eval_bool(const struct env *v, uint16_t i);

static struct pt_expr_value eval_value(const struct env *v, uint16_t i)
{
    const struct pt_expr *e = v->e;
    const struct pt_expr_node *nd = &e->nodes[i];
    struct pt_expr_value out = missing;
    switch (nd->kind) {
    case PT_EXPR_N_STRING:
        out.type = PT_EXPR_VTYPE_STRING;
        out.s = e->strs[nd->a];
        return out;
    case PT_EXPR_N_INT:
        out.type = PT_EXPR_VTYPE_INT;
        out.i = nd->i;
        return out;
    case PT_EXPR_N_LIST:
        out.type = PT_EXPR_VTYPE_LIST;
        out.list = (struct pt_expr_list){e->strs + nd->a, nd->n};
        return out;
    case PT_EXPR_N_ATTR:
        return lookup(v, &e->attrs[nd->a]);
    case PT_EXPR_N_CALL:
        if (nd->op == PT_EXPR_FN_SIZE) {
            struct pt_expr_value x = eval_value(v, e->kids[nd->a]);
            if (x.type == PT_EXPR_VTYPE_STRING || x.type == PT_EXPR_VTYPE_LIST) {
                out.type = PT_EXPR_VTYPE_INT;
                out.i = (int64_t)(x.type == PT_EXPR_VTYPE_STRING ? x.s.len : x.list.n);
            }
            return out;
        }
        break;
    default:
        break;
    }
    /* A boolean in a value position (exists(x) == true): UNKNOWN is MISSING. */
    enum tri t = eval_bool(v, i);
    if (t != UNKNOWN) {
        out.type = PT_EXPR_VTYPE_BOOL;
        out.b = t == YES;
    }
    return out;
}

static enum tri eval_cmp(const struct env *v, const struct pt_expr_node *nd)
{
    struct pt_expr_value l = eval_value(v, v->e->kids[nd->a]);
    struct pt_expr_value r = eval_value(v, v->e->kids[nd->a + 1]);
    if (l.type == PT_EXPR_VTYPE_MISSING || l.type != r.type)
        return UNKNOWN;
    if (nd->op == PT_EXPR_CMP_EQ)
        return tri_of(values_equal(&l, &r));
    if (nd->op == PT_EXPR_CMP_NE)
        return tri_of(!values_equal(&l, &r));
    int c;
    if (l.type == PT_EXPR_VTYPE_INT)
        c = l.i < r.i ? -1 : l.i > r.i;
    else if (l.type == PT_EXPR_VTYPE_STRING)
        c = str_cmp(l.s, r.s);
    else
        return UNKNOWN;
    switch (nd->op) {
    case PT_EXPR_CMP_LT:
        return tri_of(c < 0);
    case PT_EXPR_CMP_LE:
        return tri_of(c <= 0);
    case PT_EXPR_CMP_GT:
        return tri_of(c > 0);
    default:
        return tri_of(c >= 0);
    }
}

static enum tri eval_call(const struct env *v, const struct pt_expr_node *nd)
{
    const struct pt_expr *e = v->e;
    if (nd->op == PT_EXPR_FN_EXISTS) {
        const struct pt_expr_node *arg = &e->nodes[e->kids[nd->a]];
        return tri_of(lookup(v, &e->attrs[arg->a]).type != PT_EXPR_VTYPE_MISSING);
    }
    struct pt_expr_value a = eval_value(v, e->kids[nd->a]);
    if (nd->op == PT_EXPR_FN_IP_IN) {
        uint8_t addr[16];
        bool v4;
        if (a.type != PT_EXPR_VTYPE_STRING || !pt_expr_addr_parse(a.s, addr, &v4))
            return UNKNOWN;
        for (size_t k = 0; k < nd->cn; k++) {
            const struct pt_expr_cidr *c = &e->cidrs[nd->c + k];
            if (c->v4 == v4 && cidr_match(c, addr))
                return YES;
        }
        return NO;
    }
    struct pt_expr_value b = eval_value(v, e->kids[nd->a + 1]);
    switch (nd->op) {
    case PT_EXPR_FN_STARTS_WITH:
    case PT_EXPR_FN_ENDS_WITH:
        if (a.type != PT_EXPR_VTYPE_STRING || b.type != PT_EXPR_VTYPE_STRING)
            return UNKNOWN;
        if (b.s.len > a.s.len)
            return NO;
        if (b.s.len == 0)
            return YES;
        return tri_of(
            memcmp(nd->op == PT_EXPR_FN_STARTS_WITH ? a.s.ptr : a.s.ptr + a.s.len - b.s.len,
                   b.s.ptr, b.s.len) == 0);
    case PT_EXPR_FN_CONTAINS:
        if (b.type != PT_EXPR_VTYPE_STRING)
            return UNKNOWN;
        if (a.type == PT_EXPR_VTYPE_LIST)
            return tri_of(list_has(a.list, b.s));
        if (a.type != PT_EXPR_VTYPE_STRING)
            return UNKNOWN;
        if (b.s.len == 0)
            return YES;
        /* glibc's memmem is linear (two-way), whatever the input. */
        return tri_of(a.s.len && memmem(a.s.ptr, a.s.len, b.s.ptr, b.s.len) != NULL);
    case PT_EXPR_FN_ANY_IN:
    case PT_EXPR_FN_ALL_IN: {
        if (a.type != PT_EXPR_VTYPE_LIST || b.type != PT_EXPR_VTYPE_LIST)
            return UNKNOWN;
        bool all = nd->op == PT_EXPR_FN_ALL_IN;
        for (size_t k = 0; k < a.list.n; k++)
            if (list_has(b.list, a.list.items[k]) != all)
                return tri_of(!all);
        return tri_of(all);
    }
    default:
        return UNKNOWN;
    }
}

static enum tri eval_bool(const struct env *v, uint16_t i)
{
    const struct pt_expr *e = v->e;
    const struct pt_expr_node *nd = &e->nodes[i];
    switch (nd->kind) {
    case PT_EXPR_N_BOOL:
        return tri_of(nd->i != 0);
    case PT_EXPR_N_ATTR: {
        /* A claim as a condition: only a boolean true or false decides. */
        struct pt_expr_value x = lookup(v, &e->attrs[nd->a]);
        return x.type == PT_EXPR_VTYPE_BOOL ? tri_of(x.b) : UNKNOWN;
    }
    case PT_EXPR_N_NOT: {
        enum tri t = eval_bool(v, e->kids[nd->a]);
        return t == UNKNOWN ? UNKNOWN : tri_of(t == NO);
    }
    case PT_EXPR_N_AND:
    case PT_EXPR_N_OR: {
        /* Kleene: the deciding value (NO for &&, YES for ||) wins at once,
         * else any UNKNOWN makes the whole UNKNOWN. */
        enum tri decide = nd->kind == PT_EXPR_N_AND ? NO : YES, res = decide == NO ? YES : NO;
        for (size_t k = 0; k < nd->n; k++) {
            enum tri t = eval_bool(v, e->kids[nd->a + k]);
            if (t == decide)
                return decide;
            if (t == UNKNOWN)
                res = UNKNOWN;
        }
        return res;
    }
    case PT_EXPR_N_CMP:
        return eval_cmp(v, nd);
    case PT_EXPR_N_IN: {
        struct pt_expr_value l = eval_value(v, e->kids[nd->a]);
        struct pt_expr_value r = eval_value(v, e->kids[nd->a + 1]);
        if (l.type != PT_EXPR_VTYPE_STRING || r.type != PT_EXPR_VTYPE_LIST)
            return UNKNOWN;
        return tri_of(list_has(r.list, l.s));
    }
    case PT_EXPR_N_CALL:
        return eval_call(v, nd);
    default:
        return UNKNOWN; /* values are not conditions; the compiler rejects them */
    }
}

bool pt_expr_eval(const struct pt_expr *e, pt_expr_lookup_fn *lookup_fn, void *ctx)
{
    if (!e)
        return false;
    struct env v = {e, lookup_fn, ctx};
    return eval_bool(&v, e->root) == YES;
}
