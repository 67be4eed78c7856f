/*
 * porticoctl json encode|decode: see json.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/json.h"
#include "transcode/descpool.h"
#include "transcode/pool_hooks.h"

/* Appends one byte; the codec's buffer is plain malloc'd storage. */
static void out_newline(struct pt_json_out *out)
{
    if (out->len == out->cap) {
        size_t cap = out->cap ? out->cap + 1 : 16;
        char *d = realloc(out->data, cap);
        if (!d)
            abort();
        out->data = d;
        out->cap = cap;
    }
    out->data[out->len++] = '\n';
}

int pt_ctl_json_run(const struct pt_ctl_args *a, const uint8_t *set, size_t set_len,
                    const uint8_t *input, size_t input_len, struct pt_json_out *out, char *err,
                    size_t errlen)
{
    char why[256];
    struct pt_descpool *pool = pt_descpool_new_from_set(set, set_len, NULL, why, sizeof(why));
    if (!pool) {
        /* The pool's reasons sometimes name the set already. */
        bool named = strncmp(why, "descriptor set", 14) == 0;
        snprintf(err, errlen, "%s%s", named ? "" : "descriptor set: ", why);
        return -1;
    }
    const char *name = a->type_name ? a->type_name : "";
    const ProtobufCMessageDescriptor *d = pt_descpool_find_message(pool, pt_str_from_cstr(name));
    if (!d) {
        snprintf(err, errlen, "type \"%s\" not found in the descriptor set (%zu message types)",
                 name, pt_descpool_message_count(pool));
        pt_descpool_unref(pool);
        return -1;
    }
    struct pt_json_hooks hooks;
    pt_tc_pool_hooks(pool, &hooks);
    struct pt_json_options opts = {
        .ignore_unknown = a->ignore_unknown,
        .emit_defaults = a->emit_defaults,
        .original_names = a->original_names,
    };
    struct pt_json_error jerr = {0};
    int rc;
    if (a->json_op == PT_CTL_JSON_ENCODE)
        rc = pt_json_decode(d, (struct pt_str){(const char *)input, input_len}, &hooks, &opts, out,
                            &jerr);
    else
        rc = pt_json_encode(d, input, input_len, &hooks, &opts, out, &jerr);
    pt_descpool_unref(pool);
    if (rc != 0) {
        snprintf(err, errlen, "%s", jerr.message[0] ? jerr.message : "invalid input");
        return -1;
    }
    if (a->json_op == PT_CTL_JSON_DECODE)
        out_newline(out);
    return 0;
}
