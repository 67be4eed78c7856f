/*
 * ctl/json.h - `porticoctl json encode|decode`: one message converted
 * between the proto3 JSON mapping and binary protobuf with the gateway's
 * own transcoder, schema from a FileDescriptorSet read at run time.
 *
 *   set bytes ──pt_descpool_new_from_set──> pool ──find --type──> descriptor
 *   stdin ──encode: pt_json_decode (JSON -> wire)──> stdout
 *         ──decode: pt_json_encode (wire -> JSON)──> stdout
 *
 * Sans-I/O: main.c reads the files and stdin (bounded by --max-input) and
 * writes the result; everything here takes bytes and returns bytes, so it
 * is unit-tested without processes.
 */
#ifndef PT_CTL_JSON_H
#define PT_CTL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "ctl/cli.h"
#include "transcode/json.h"

/*
 * Status: 0 with the result appended to out (binary for encode; for decode
 * the JSON text and a newline), or -1 with a one-line reason in err: the
 * descriptor set does not build ("descriptor set: ..."), the type is not
 * in it ("type \"x\" not found ..."), or the input does not fit the type
 * (the codec's message with its JSON path, e.g. "items[2].price: expected
 * a number, got string"). Uses a->json_op, a->type_name and the codec
 * options; set and input are not kept.
 */
int pt_ctl_json_run(const struct pt_ctl_args *a, const uint8_t *set, size_t set_len,
                    const uint8_t *input, size_t input_len, struct pt_json_out *out, char *err,
                    size_t errlen);

#endif
