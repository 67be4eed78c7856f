/*
 * The table of authentication methods (see method.h). A method joins it
 * here; nothing else needs to know its name.
 */
#include "auth/method.h"

#include <stdio.h>

#include "auth/stats.h"

static const struct pt_auth_method *const methods[] = {
    &pt_auth_method_api_key,
    &pt_auth_method_jwt,
    &pt_auth_method_introspection,
    &pt_auth_method_mtls,
};

#define NMETHODS (sizeof(methods) / sizeof(methods[0]))
_Static_assert(NMETHODS <= PT_AUTH_STATS_METHODS, "raise PT_AUTH_STATS_METHODS");

const struct pt_auth_method *pt_auth_method_find(struct pt_str name, bool *has_arg,
                                                 struct pt_str *arg)
{
    struct pt_str base = name, rest = PT_STR_NULL;
    bool colon = false;
    for (size_t i = 0; i < name.len; i++)
        if (name.ptr[i] == ':') {
            base.len = i;
            rest = (struct pt_str){name.ptr + i + 1, name.len - i - 1};
            colon = true;
            break;
        }
    if (has_arg)
        *has_arg = colon;
    if (arg)
        *arg = rest;
    for (size_t i = 0; i < NMETHODS; i++)
        if (pt_str_eq(base, pt_str_from_cstr(methods[i]->name)))
            return methods[i];
    return NULL;
}

const struct pt_auth_method *pt_auth_method_at(size_t i)
{
    return i < NMETHODS ? methods[i] : NULL;
}

size_t pt_auth_method_index(const struct pt_auth_method *m)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (methods[i] == m)
            return i;
    return NMETHODS;
}

void pt_auth_method_names(char *buf, size_t n)
{
    if (!n)
        return;
    buf[0] = '\0';
    for (size_t i = 0, j = 0; i < NMETHODS; i++) {
        int w = snprintf(buf + j, n - j, "%s%s", i ? ", " : "", methods[i]->name);
        if (w < 0 || (size_t)w >= n - j)
            return;
        j += (size_t)w;
    }
}
