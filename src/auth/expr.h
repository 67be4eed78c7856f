/*
 * auth/expr.h - authorization rule expressions (attribute-based access control).
 *
 * A route's authorization rule is one small boolean expression over the
 * caller's attributes, for example
 *
 *     claims.sub == path.user_id || "admin" in claims.roles
 *
 * The language (operators, functions, attribute roots, limits, the exact
 * MISSING rules) is specified in docs/authorization-rules.md. Deliberately
 * absent: loops, assignment, side effects, user-defined functions and
 * regular expressions, so every evaluation is bounded by the size of the
 * program and the lengths of the values it is given.
 *
 * Life cycle:
 *
 *   source --pt_expr_compile()--> struct pt_expr --pt_expr_eval()--> allow/deny
 *            (control thread, once                (any worker, concurrently,
 *             per snapshot)                        no allocation)
 *
 * Representation: a typed syntax tree in one allocation. Nodes sit in a
 * flat array and name their children by 16-bit index; string literals,
 * list literals, attribute paths and CIDR networks are decoded and parsed
 * at compile time into tables next to the nodes. Why a tree rather than
 * bytecode: programs are at most PT_EXPR_MAX_NODES nodes, short-circuit
 * `&&`/`||` and the three-valued logic below map one-to-one onto a
 * recursive walk whose depth is bounded by the node count, and the type
 * checker already works on the tree; bytecode would add jump patching and
 * a value stack and save nothing measurable at this size. The evaluator
 * keeps its state in C locals (a few hundred bytes per level) and never
 * allocates.
 *
 * Semantics in one paragraph: every boolean sub-expression is TRUE, FALSE
 * or UNKNOWN. A comparison or function whose operand is MISSING (a lookup
 * that found nothing) or has the wrong type at run time is UNKNOWN, never
 * an error. `!UNKNOWN` is UNKNOWN; `&&` and `||` are Kleene's (FALSE &&
 * UNKNOWN is FALSE, TRUE || UNKNOWN is TRUE) and short-circuit left to
 * right. The rule allows only when the whole expression is TRUE. So a
 * failed lookup can never become an allow through `!`; the one way to test
 * absence is exists(attr), which is always TRUE or FALSE.
 *
 * Thread: pt_expr_compile and pt_expr_free on the control thread (any one
 * thread); a compiled program is immutable, so pt_expr_eval and the
 * accessors may run on any number of threads at once.
 */
#ifndef PT_AUTH_EXPR_H
#define PT_AUTH_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portico/str.h"

/* Compile-time limits; exceeding one is a compile error. */
#define PT_EXPR_MAX_SOURCE 4096 /* bytes of source */
#define PT_EXPR_MAX_NODES 256   /* syntax-tree nodes */
#define PT_EXPR_MAX_DEPTH 32    /* nesting of (), !, function calls */
#define PT_EXPR_MAX_LIST 64     /* items in one list literal */
#define PT_EXPR_MAX_KEYS 8      /* segments of one attribute path */
#define PT_EXPR_MAX_KEY_LEN 256 /* bytes of one segment */
#define PT_EXPR_MAX_CIDRS 64    /* networks in one ip_in() */
/* An error buffer this large holds every compile message untruncated. */
#define PT_EXPR_ERR_MAX 256

/* Where an attribute comes from. The names are the contract with the
 * binder (the auth filter) that answers lookups. */
enum pt_expr_root {
    PT_EXPR_ROOT_CLAIMS = 0, /* token claims; keys = path into nested objects */
    PT_EXPR_ROOT_IDENTITY,   /* 1 key: subject client_id tier method (strings),
                                scopes roles (lists) */
    PT_EXPR_ROOT_PATH,       /* 1 key: a route path parameter */
    PT_EXPR_ROOT_HEADER,     /* 1 key: a header name, lower case */
    PT_EXPR_ROOT_QUERY,      /* 1 key: a query parameter name, as written */
    PT_EXPR_ROOT_REQUEST,    /* 1 key: method path host */
    PT_EXPR_ROOT_CLIENT_IP,  /* no key: the peer address as text, no port */
};
#define PT_EXPR_ROOT_COUNT 7

enum pt_expr_vtype {
    PT_EXPR_VTYPE_MISSING = 0,
    PT_EXPR_VTYPE_STRING,
    PT_EXPR_VTYPE_INT,
    PT_EXPR_VTYPE_BOOL,
    PT_EXPR_VTYPE_LIST, /* of strings only */
};

struct pt_expr_list {
    const struct pt_str *items;
    size_t n;
};

struct pt_expr_value {
    enum pt_expr_vtype type;
    union {
        bool b;
        int64_t i;
        struct pt_str s;
        struct pt_expr_list list;
    };
};

/*
 * Answers one attribute lookup. Returns true and fills *out when the
 * attribute exists, false when it is MISSING. The storage *out points to
 * is the binder's and must stay valid until pt_expr_eval returns (a rule
 * may look the same attribute up more than once; each answer must stay
 * valid). A JSON claim maps as: string -> STRING, integral number in int64
 * range -> INT, true/false -> BOOL, array of strings -> LIST; anything else
 * (null, fractions, objects, arrays holding a non-string) should be
 * reported MISSING. An answer with an unknown type, or a list or string
 * with a NULL pointer and a non-zero length, is treated as MISSING.
 */
typedef bool pt_expr_lookup_fn(void *ctx, enum pt_expr_root root, const struct pt_str *keys,
                               size_t nkeys, struct pt_expr_value *out);

/* One distinct attribute a program references (see pt_expr_attrs). */
struct pt_expr_attr {
    enum pt_expr_root root;
    const struct pt_str *keys; /* header names lower case */
    size_t nkeys;
};

struct pt_expr;

/*
 * Compile a rule. Pointer: the program (caller frees with pt_expr_free),
 * or NULL with "col N: message" in err (N is the 1-based byte offset into
 * src of the problem; err is always NUL-terminated when errlen > 0; err
 * may be NULL). Compile errors: syntax, limits, unknown attribute roots,
 * fields or functions, wrong arity, static type errors (`1 && "x"`), and
 * ip_in() networks that are not valid CIDR string literals.
 */
struct pt_expr *pt_expr_compile(struct pt_str src, char *err, size_t errlen);

/*
 * Evaluate. True only when the rule is TRUE for the attributes lookup
 * reports (allow); false for FALSE and UNKNOWN (deny). lookup may be NULL
 * (every attribute MISSING); a NULL program denies. Never allocates.
 */
bool pt_expr_eval(const struct pt_expr *e, pt_expr_lookup_fn *lookup, void *ctx);

/* Does the program reference any attribute under root? (lets the binder
 * skip work, e.g. claims parsing). False for a NULL program. */
bool pt_expr_uses(const struct pt_expr *e, enum pt_expr_root root);

/* Pointer: the distinct attributes the program references, in first-use
 * order, *n of them; borrowed until pt_expr_free. Lets the binder check
 * path parameters against the route and prepare header lookups. */
const struct pt_expr_attr *pt_expr_attrs(const struct pt_expr *e, size_t *n);

void pt_expr_free(struct pt_expr *e);

#endif
