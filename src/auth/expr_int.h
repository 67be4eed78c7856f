/*
 * auth/expr_int.h - private: the layout of a compiled rule, shared by the
 * compiler (expr_parse.c) and the evaluator (expr_eval.c).
 *
 * One allocation holds struct pt_expr and, after it, the node array, the
 * child-index array, the string table (pt_str pointing into the byte pool
 * at the end), the attribute table and the CIDR table. Nodes refer to
 * everything by 16-bit index, so the compiler builds in a scratch area and
 * copies once; only the string table holds pointers.
 */
#ifndef PT_AUTH_EXPR_INT_H
#define PT_AUTH_EXPR_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/expr.h"

enum pt_expr_kind {
    PT_EXPR_N_STRING = 0, /* strs[a] */
    PT_EXPR_N_INT,        /* i */
    PT_EXPR_N_BOOL,       /* i (0 or 1) */
    PT_EXPR_N_LIST,       /* strs[a .. a+n) */
    PT_EXPR_N_ATTR,       /* attrs[a] */
    PT_EXPR_N_NOT,        /* kids[a] */
    PT_EXPR_N_AND,        /* kids[a .. a+n), n >= 2 */
    PT_EXPR_N_OR,         /* kids[a .. a+n), n >= 2 */
    PT_EXPR_N_CMP,        /* op: enum pt_expr_cmp; kids[a], kids[a+1] */
    PT_EXPR_N_IN,         /* kids[a] in kids[a+1] */
    PT_EXPR_N_CALL,       /* op: enum pt_expr_fn; kids[a .. a+n); IP_IN: cidrs[c .. c+cn) */
};

enum pt_expr_cmp {
    PT_EXPR_CMP_EQ = 0,
    PT_EXPR_CMP_NE,
    PT_EXPR_CMP_LT,
    PT_EXPR_CMP_LE,
    PT_EXPR_CMP_GT,
    PT_EXPR_CMP_GE,
};

enum pt_expr_fn {
    PT_EXPR_FN_STARTS_WITH = 0,
    PT_EXPR_FN_ENDS_WITH,
    PT_EXPR_FN_CONTAINS,
    PT_EXPR_FN_EXISTS,
    PT_EXPR_FN_SIZE,
    PT_EXPR_FN_IP_IN,
    PT_EXPR_FN_ANY_IN,
    PT_EXPR_FN_ALL_IN,
};

/* Static types the compiler checks; DYN is a claim, known only at run time. */
enum pt_expr_stype {
    PT_EXPR_T_BOOL = 0,
    PT_EXPR_T_INT,
    PT_EXPR_T_STRING,
    PT_EXPR_T_LIST,
    PT_EXPR_T_DYN,
};

struct pt_expr_node {
    uint8_t kind;  /* enum pt_expr_kind */
    uint8_t op;    /* enum pt_expr_cmp or enum pt_expr_fn */
    uint8_t stype; /* enum pt_expr_stype */
    uint16_t a, n; /* see enum pt_expr_kind */
    uint16_t c, cn;
    int64_t i;
};

/* A network. IPv4 networks (and IPv6 ones inside ::ffff:0:0/96, converted)
 * have v4 set and use addr[0..3]; bits is the prefix length. */
struct pt_expr_cidr {
    uint8_t addr[16];
    uint8_t bits;
    bool v4;
};

struct pt_expr {
    const struct pt_expr_node *nodes;
    const uint16_t *kids;
    const struct pt_str *strs;
    const struct pt_expr_attr *attrs;
    const struct pt_expr_cidr *cidrs;
    size_t nnodes, nattrs;
    uint16_t root;
    uint32_t uses; /* bit (1 << enum pt_expr_root) per root referenced */
};

/* Parse an address ("10.1.2.3", "2001:db8::1", "::ffff:10.1.2.3") into
 * out (16 bytes; IPv4 and v4-mapped IPv6 in out[0..3] with *v4 set).
 * Status-like: true on success. Used at compile time for networks and per
 * evaluation for client_ip; does not allocate. */
bool pt_expr_addr_parse(struct pt_str s, uint8_t out[16], bool *v4);

#endif
