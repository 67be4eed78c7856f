/*
 * tests/unit/transcode/pbgen.h - random protobuf-c messages and deep
 * comparison, driven by any ProtobufCMessageDescriptor (generated code or a
 * descriptor pool), for round-trip tests of the transcode module.
 *
 * Random values cover every field kind: scalars of all magnitudes (NaN and
 * infinities included), strings, bytes, enums (declared values), nested
 * messages down to `depth` levels, repeated fields (0-3 elements), maps (as
 * entries), oneofs (one member or none) and optional presence. The
 * generator is a fixed-seed xorshift, so a failure reproduces.
 */
#ifndef PT_TESTS_TRANSCODE_PBGEN_H
#define PT_TESTS_TRANSCODE_PBGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Restart the generator (0 = the default seed). */
void pt_pbgen_seed(uint64_t seed);
uint64_t pt_pbgen_rand(void);

/* Pointer: a random message of type d, every part malloc'd; free it with
 * protobuf_c_message_free_unpacked(m, NULL). */
ProtobufCMessage *pt_pbgen_message(const ProtobufCMessageDescriptor *d, int depth);

/* Whether a and b hold the same values, field by field (their descriptors
 * must list the same field numbers in the same order: a generated and a
 * run-time descriptor of one type). Presence flags, oneof cases, repeated
 * counts and unknown fields count; NaN equals NaN. The first difference is
 * printed on stderr. */
bool pt_pbgen_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);
/* One value of f's type at a and at b. */
bool pt_pbgen_value_equal(const ProtobufCFieldDescriptor *f, const void *a, const void *b);
/* Bytes of one element of a repeated field of type t. */
size_t pt_pbgen_elem_size(ProtobufCType t);

#endif
